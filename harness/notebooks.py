"""Everything the harness knows about notebooks: the submitted one at the door, the executed one after a run.

Two moments, one module:

* **Checking a submitted notebook** (:func:`check_notebook`, called by :func:`harness.submission.open_submission`):
  it must be valid (any failure to read it becomes ``not a valid notebook: <reason>``), is upgraded to the current
  nbformat 4 minor when older (with deterministic cell ids ``cell-0``, ``cell-1``...), and must have exactly one
  code cell tagged ``parameters``. A kernel name other than the task's is a note, not an error.
* **Running it** (:func:`runner_command`): papermill runs under :mod:`harness.notebook_runner`, which caps each
  output as it is recorded and saves the executed notebook atomically within :data:`NOTEBOOK_MAX_MB`, into an
  area of its own (not the team's output folder, not counted against ``output_mb``).
* **Reading the executed notebook** (:func:`read_executed`, called by :mod:`harness.pipeline` once per run): it is
  parsed once, its outputs are capped (and the capped file written back, so judges can open it), and the parsed
  value answers every question the pipeline asks of it (:class:`ExecutedNotebook`): the first error a team's cell
  raised, the cell that called ``sys.exit()``, the cell a stopped run was in. The kept file is always a valid
  notebook: one that cannot be read is replaced by the submitted cells under a marker saying why.

Cells in reasons are named as a team sees them in the executed notebook, ``In [N]`` (its execution count), with
their position as papermill's log counts it (``Cell M``: every cell from the top, the injected parameters cell
included, papermill's error banner not); see :func:`cell_name`.

nbformat is imported inside the functions, so importing this module (and :mod:`harness.submission`) stays cheap.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from harness.errors import SubmissionError
from harness.notebook_runner import MARKER_PREFIX, Caps, cap_cell_outputs

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from harness.reasons import ReasonContext

__all__ = [
    "EXECUTED_NOTEBOOK",
    "NOTEBOOK_AREA_MB",
    "NOTEBOOK_CELL_CAP_CHARS",
    "NOTEBOOK_MAX_MB",
    "NOTEBOOK_OUTPUTS_PER_CELL",
    "NOTEBOOK_OUTPUT_CAP_CHARS",
    "NOTEBOOK_RICH_CAP_CHARS",
    "ExecutedNotebook",
    "cell_name",
    "check_notebook",
    "read_executed",
    "runner_command",
    "truncate_notebook_outputs",
]

log = logging.getLogger(__name__)

#: File name (in the output folder) of the executed notebook; reserved.
EXECUTED_NOTEBOOK = "executed.ipynb"
#: Cap on the text kept per output of the executed notebook kept for judges (characters).
NOTEBOOK_OUTPUT_CAP_CHARS = 20_000
#: Cap on the text kept per cell of the executed notebook, over all its outputs (characters).
NOTEBOOK_CELL_CAP_CHARS = 60_000
#: Cap on the number of outputs kept per cell of the executed notebook.
NOTEBOOK_OUTPUTS_PER_CELL = 50
#: Cap on one rich output (image, SVG, HTML, JSON) kept in the executed notebook (characters of its data).
NOTEBOOK_RICH_CAP_CHARS = 50 * NOTEBOOK_OUTPUT_CAP_CHARS
#: Cap on the executed notebook's file (MiB): past it, the outputs of its largest cells are replaced by a marker.
NOTEBOOK_MAX_MB = 16
#: Size of the executed notebook's own area in the sandbox (MiB): room for the file and its next version while it
#: is saved atomically. Not counted against the team's ``output_mb``.
NOTEBOOK_AREA_MB = 2 * NOTEBOOK_MAX_MB + 8


# -- the submitted notebook, at the door ----------------------------------------------------------------------

_NO_PARAMETERS = (
    "no cell of {entry!r} is tagged 'parameters'. The harness passes input_dir, output_dir and the task's "
    "parameters with papermill, which inserts them right after the cell tagged 'parameters'; without that tag "
    "it inserts them at the top, and any later assignment (input_dir = ...) silently overrides the harness's "
    "values. Put your default values in one code cell and tag it: in JupyterLab select the cell, open the "
    "property inspector (gear icon in the right sidebar) and add the tag 'parameters' under Cell Tags"
)


def check_notebook(path: Path, entry: str, kernel: str, source: Path) -> tuple[str | None, list[str]]:
    """Read, upgrade if needed and check a submission's entry notebook.

    A byte-order mark is removed, an older nbformat is upgraded to the current 4 minor (cell ids ``cell-0``,
    ``cell-1``...), missing or duplicate cell ids are repaired; when any of that happens the file at ``path`` is
    rewritten (it is the work folder's copy, never the team's source) and a note says so.

    Args:
        path: the notebook file in the work folder.
        entry: its name relative to the submission (used in messages).
        kernel: the task's kernel name; a notebook declaring another one gets a note.
        source: the submission as sent (named in errors).

    Returns:
        ``(kernel_name, notes)``: the kernel name the notebook declares (``None`` if none) and the non-fatal notes.

    Raises:
        SubmissionError: the file is not a valid notebook (not UTF-8, not JSON, a lone surrogate such as an
            unpaired ``\\ud800`` escape, unsupported nbformat, schema errors), or it does not have exactly one
            *code* cell tagged ``parameters``.
    """
    import nbformat
    from nbformat.validator import normalize

    def invalid(reason: str) -> NoReturn:
        raise SubmissionError(f"{entry!r} is not a valid notebook: {reason}", str(source))

    notes: list[str] = []
    raw = path.read_bytes()
    rewrite = False
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
        rewrite = True
        notes.append(f"removed a byte-order mark from {entry}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        invalid(f"not UTF-8 text (byte {exc.start}); save it again from Jupyter")
    try:
        data = json.loads(text)
    except RecursionError:
        invalid("its JSON is nested too deeply")
    except ValueError as exc:
        invalid(f"not JSON ({_short(exc)}); a notebook is the .ipynb file Jupyter saves")
    if not isinstance(data, dict):
        invalid(f"the file holds a JSON {type(data).__name__}, not a notebook object")
    surrogate = _lone_surrogate(text, data)
    if surrogate:
        invalid(
            f"a lone surrogate (U+{ord(surrogate[1]):04X}, an unpaired \\u{ord(surrogate[1]):04x} escape in the "
            f"file) {surrogate[0]}; Jupyter can neither save nor run such text: delete it, or write it as an "
            "escape sequence inside a Python string"
        )
    major, minor = data.get("nbformat"), data.get("nbformat_minor", 0)
    if type(major) is not int or type(minor) is not int:
        invalid("no integer 'nbformat'/'nbformat_minor' version fields; is it a Jupyter notebook?")
    current = (nbformat.current_nbformat, nbformat.current_nbformat_minor)
    if major > current[0] or major < 1:
        invalid(f"nbformat {major} is not supported (this harness reads nbformat 1 to {current[0]})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reader.reads(text)
            if (major, minor) < current:
                nb = nbformat.convert(nb, current[0]) if major < current[0] else nbformat.v4.upgrade(nb)
                for index, cell in enumerate(nb.cells):  # deterministic ids: same submission, same file
                    cell["id"] = f"cell-{index}"
                nb.nbformat, nb.nbformat_minor = current
                notes.append(f"upgraded {entry} from nbformat {major}.{minor} to {current[0]}.{current[1]}")
                rewrite = True
            changes, nb = normalize(nb)
            if changes:
                notes.append(f"repaired {changes} missing or duplicate cell id(s) in {entry}")
                rewrite = True
            nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", ()))
        invalid(f"{_short(exc.message)}{f' (at {where})' if where else ''}")
    except Exception as exc:  # a team's file at the trust boundary: any failure to read it is the team's
        invalid(f"{type(exc).__name__}: {_short(exc)}")

    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in (cell.get("metadata", {}).get("tags") or [])]
    if not tagged:
        raise SubmissionError(_NO_PARAMETERS.format(entry=entry), str(source))
    if len(tagged) > 1:
        shown = ", ".join(f"cell {i + 1} ({_first_line(nb.cells[i])!r})" for i in tagged)
        raise SubmissionError(
            f"{len(tagged)} cells of {entry!r} are tagged 'parameters': {shown}, counting cells from 1 at the "
            "top. papermill inserts the harness's values after one of them only; keep the tag on exactly one "
            "code cell",
            str(source),
        )
    cell = nb.cells[tagged[0]]
    if cell.cell_type != "code":
        raise SubmissionError(
            f"cell {tagged[0] + 1} of {entry!r} is tagged 'parameters' but is a {cell.cell_type} cell; move the "
            "tag to the code cell that sets your default values",
            str(source),
        )

    kernelspec = nb.metadata.get("kernelspec")
    name = kernelspec.get("name") if isinstance(kernelspec, dict) else None
    name = name if isinstance(name, str) and name else None
    if name is None:
        notes.append(f"{entry} declares no kernel; it runs with the task's kernel {kernel!r}")
    elif name != kernel:
        notes.append(f"{entry} declares the kernel {name!r}; the harness runs it with the task's kernel {kernel!r}")
    if rewrite:
        path.write_text(nbformat.writes(nb), encoding="utf-8")
    return name, notes


def _first_line(cell: Any) -> str:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:40]


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(text: str, data: object) -> tuple[str, str] | None:
    """Where the first lone surrogate of a parsed notebook is, and that character; ``None`` when it holds none.

    ``text`` is the file's (strictly decoded) UTF-8 text, ``data`` its parsed JSON: a surrogate can only come from a
    ``\\udXXX`` escape, and a valid pair of them is one ordinary character. Returns e.g. ``("in the source of cell
    2", "\\ud800")`` (cells counted from 1) or ``("at metadata/kernelspec/display_name", ...)``.
    """
    if not _SURROGATE_ESCAPE.search(text):
        return None
    stack: list[tuple[tuple[str | int, ...], object]] = [((), data)]
    while stack:
        path, value = stack.pop()
        items: list[tuple[str | int, object]] = []
        if isinstance(value, dict):
            for key, item in value.items():
                found = _SURROGATE.search(key)
                if found:
                    return _where(path) + " (a key)", found.group()
                items.append((key, item))
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return _where(path), found.group()
        stack.extend(((*path, key), item) for key, item in reversed(items))
    return None


def _where(path: tuple[str | int, ...]) -> str:
    if len(path) >= 3 and path[0] == "cells" and isinstance(path[1], int):
        return f"in the {path[2]} of cell {path[1] + 1}"
    return "at " + "/".join(str(part) for part in path) if path else "at the top level"


def _short(exc: object, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- running it -----------------------------------------------------------------------------------------------


def runner_caps() -> Caps:
    """The caps :mod:`harness.notebook_runner` applies while a notebook runs (this module's constants)."""
    return Caps(
        output_chars=NOTEBOOK_OUTPUT_CAP_CHARS,
        cell_chars=NOTEBOOK_CELL_CAP_CHARS,
        outputs_per_cell=NOTEBOOK_OUTPUTS_PER_CELL,
        rich_chars=NOTEBOOK_RICH_CAP_CHARS,
        max_bytes=NOTEBOOK_MAX_MB * 1024 * 1024,
    )


def runner_command(papermill_args: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The argv that runs papermill with ``papermill_args`` under :mod:`harness.notebook_runner`.

    The runner's source travels in the argv (``python -c``), so the image needs nothing of the harness and the
    team's code cannot change it; its first argument is the caps (:func:`runner_caps`) as JSON.
    """
    from harness import notebook_runner

    source = Path(notebook_runner.__file__).read_text(encoding="utf-8")
    return ("python", "-c", source, runner_caps().as_json(), *papermill_args)


# -- the executed notebook, after a run -----------------------------------------------------------------------

#: What to do about errors that come from running unattended rather than from the team's logic.
_ERROR_HINTS = {
    "StdinNotImplementedError": "input() cannot be answered: a judging run has no keyboard (no stdin); set the "
    "value in your parameters cell or read it from a file",
}
#: Tags of the cells papermill adds to an executed notebook after the run (its error banner and anchor).
_ERROR_MARKER_TAG = "papermill-error-cell-tag"
_INJECTED_TAG = "injected-parameters"


def cell_name(number: int, execution_count: object) -> str:
    """How a reason names a cell of the executed notebook, so it matches what a team sees and papermill's log.

    ``In [10] of the executed notebook (Cell 18 in papermill's log)``: ``In [10]`` is the prompt JupyterLab shows
    for the cell in the executed notebook (and papermill's error banner names); ``Cell 18`` counts every cell of it
    from the top (markdown and the injected parameters included), as papermill's log ``Executing Cell 18`` does.
    A cell with no execution count (it had not started) is named by that position alone.

    Args:
        number: the 1-based position in the executed notebook, papermill's error banner cells not counted.
        execution_count: the cell's ``execution_count`` (``None`` when it has none).
    """
    if isinstance(execution_count, int) and not isinstance(execution_count, bool) and execution_count > 0:
        return f"In [{execution_count}] of the executed notebook (Cell {number} in papermill's log)"
    return f"Cell {number} of the executed notebook (counting all its cells from the top, as papermill's log does)"


@dataclass(frozen=True, eq=False)
class ExecutedNotebook:
    """An executed notebook, parsed once (see :func:`read_executed`), and what a run's reasons need from it.

    Cells are named in reasons by :func:`cell_name`.

    Attributes:
        path: the file (``None`` when the run left no executed notebook).
        notebook: the parsed notebook with its outputs capped, or ``None`` when there is no file or it cannot be
            read (a killed run may leave it partial; the file is then kept as it is, as evidence).
        n_cut: outputs cut or dropped by the caps (``0`` when none, or when the file could not be read).
    """

    path: Path | None
    notebook: NotebookNode | None = None
    n_cut: int = 0

    @property
    def size_bytes(self) -> int:
        """The file's size in bytes after capping (``0`` when there is no file)."""
        return self.path.stat().st_size if self.path is not None and self.path.is_file() else 0

    def _team_cells(self) -> list[tuple[int, NotebookNode]]:
        """The team's cells with their 1-based position as papermill numbers them (injected cell counted, skipped)."""
        if self.notebook is None:
            return []
        cells = [c for c in self.notebook.cells if _ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
        return [
            (number, cell)
            for number, cell in enumerate(cells, start=1)
            if _INJECTED_TAG not in cell.get("metadata", {}).get("tags", [])
        ]

    def failure(self, context: ReasonContext | None = None) -> str:
        """The first error a team's cell raised, as ``<cell> raised Name: value[; hint]``; ``""`` if none.

        The cell is named by :func:`cell_name`. ``SystemExit`` is not an error here (a run that called
        ``sys.exit()`` is judged by the outputs it left); errors that come from running unattended (``input()``)
        get a hint saying what to change, and errors the sandbox explains (a missing module, an input column that
        does not exist, a pandas API removed, no network) get one from :func:`harness.reasons.hint_for` when
        ``context`` is given.
        """
        source: list[str] = []
        for number, cell in self._team_cells():
            if cell.get("cell_type") == "code":
                source.append(str(cell.get("source", "")))
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    ename, evalue = output.get("ename", "Error"), str(output.get("evalue", ""))[:300]
                    if ename == "SystemExit":
                        continue  # sys.exit() is judged by the outputs it left, not as an error
                    hint = _ERROR_HINTS.get(ename)
                    if hint is None and context is not None:
                        from harness.reasons import hint_for

                        traceback = "\n".join(str(line) for line in output.get("traceback", []) or [])
                        hint = hint_for(ename, evalue, traceback, "\n".join(source), context)
                    name = cell_name(number, cell.get("execution_count"))
                    shown = evalue.strip().splitlines()[0] if hint and evalue.strip() else evalue  # short with a hint
                    reason = f"{name} raised {ename}: {shown}".rstrip(": ")
                    return f"{reason.rstrip('.')}; {hint}" if hint else reason
        return ""

    @property
    def exit_cell(self) -> int:
        """The position (as papermill numbers it) of the team's cell that called ``sys.exit()`` (0 if none)."""
        for number, cell in self._team_cells():
            if any(o.get("output_type") == "error" and o.get("ename") == "SystemExit" for o in cell.get("outputs", [])):
                return number
        return 0

    @property
    def exit_cell_name(self) -> str:
        """:func:`cell_name` of the cell that called ``sys.exit()`` (``""`` if none): the cells after it did not run."""
        for number, cell in self._team_cells():
            if any(o.get("output_type") == "error" and o.get("ename") == "SystemExit" for o in cell.get("outputs", [])):
                return cell_name(number, cell.get("execution_count"))
        return ""

    @property
    def last_started_cell(self) -> str:
        """`` while <cell> was running`` for the cell a stopped run was in; ``""`` if unknown.

        A run killed from outside leaves its cell marked ``running``. When the kernel dies instead (the OOM killer,
        ``os.kill``), papermill marks that cell ``completed`` and stops, so the last cell that started is the one.
        """
        started: tuple[int, NotebookNode] | None = None
        for number, cell in self._team_cells():
            state = cell.get("metadata", {}).get("papermill", {})
            if state.get("status") == "running":
                return f" while {cell_name(number, cell.get('execution_count'))} was running"
            if state.get("start_time"):
                started = (number, cell)
        return f" while {cell_name(started[0], started[1].get('execution_count'))} was running" if started else ""


def read_executed(
    path: Path | None,
    *,
    cap_chars: int = NOTEBOOK_OUTPUT_CAP_CHARS,
    cell_cap_chars: int = NOTEBOOK_CELL_CAP_CHARS,
    submitted: Path | None = None,
) -> ExecutedNotebook:
    """Parse an executed notebook once, cap its outputs in place and return it for the run's reasons.

    Each text output keeps at most ``cap_chars`` characters, and each cell at most ``cell_cap_chars`` characters
    of text over all its outputs and at most :data:`NOTEBOOK_OUTPUTS_PER_CELL` outputs; a marker says what was
    cut. Rich outputs (images, SVG, HTML) larger than 50 times ``cap_chars`` are replaced by a text marker naming
    what was dropped. When anything was cut the capped notebook is written back to ``path``, so judges can open it.

    A file that is not a readable notebook (a run killed mid-save by an older runner, a team writing over it) is
    logged and, when ``submitted`` is given, replaced by a valid notebook: a marker cell saying why, then the
    submitted cells without outputs; without ``submitted`` it is left as it is.

    Args:
        path: the executed notebook file, or ``None`` when the run left none.
        cap_chars: cap per text output, in characters.
        cell_cap_chars: cap per cell over all its text outputs, in characters.
        submitted: the submitted notebook, whose cells replace an unreadable executed one.

    Returns:
        The :class:`ExecutedNotebook`; its ``notebook`` is ``None`` when there is no readable file.

    Raises:
        OSError: the capped notebook cannot be written back.
    """
    if path is None:
        return ExecutedNotebook(None)
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        log.warning("cannot read executed notebook %s to cap its outputs: %s", path, exc)
        if submitted is not None:
            _replace_unreadable(path, submitted, f"{type(exc).__name__}: {_short(exc)}")
        return ExecutedNotebook(path)
    cut = _cap_outputs(nb, cap_chars, cell_cap_chars)
    if cut:
        nbformat.write(nb, path)
    return ExecutedNotebook(path, nb, cut)


def _replace_unreadable(path: Path, submitted: Path, why: str) -> None:
    """Replace an unreadable executed notebook by the submitted cells (no outputs) under a marker cell."""
    import nbformat

    try:
        nb = nbformat.read(submitted, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    except Exception:
        nb = nbformat.v4.new_notebook()
    size = path.stat().st_size if path.is_file() else 0
    note = nbformat.v4.new_markdown_cell(
        f"**{MARKER_PREFIX}the executed notebook ({size:,} bytes) could not be read ({why}); the cells below are "
        "the submitted ones, without outputs]**"
    )
    nb.cells.insert(0, note)
    nbformat.write(nb, path)


def truncate_notebook_outputs(
    path: Path, *, cap_chars: int = NOTEBOOK_OUTPUT_CAP_CHARS, cell_cap_chars: int = NOTEBOOK_CELL_CAP_CHARS
) -> int:
    """Cap the outputs of an executed notebook in place, so judges can open it (see :func:`read_executed`).

    Returns:
        The number of outputs cut or dropped (``0`` for a file that is not a readable notebook, left as it is).
    """
    return read_executed(path, cap_chars=cap_chars, cell_cap_chars=cell_cap_chars).n_cut


def _cap_outputs(nb: NotebookNode, cap_chars: int, cell_cap_chars: int) -> int:
    """Cap the outputs of a parsed notebook in memory (the runner's caps); return the outputs cut or dropped."""
    caps = Caps(cap_chars, cell_cap_chars, NOTEBOOK_OUTPUTS_PER_CELL, cap_chars * 50)
    cut = 0
    for cell in nb.cells:
        outputs = cell.get("outputs")
        if outputs:
            cell["outputs"], n_cut = cap_cell_outputs(outputs, caps)
            cut += n_cut
    return cut
