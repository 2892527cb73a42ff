"""The program that runs papermill inside the sandbox, so that what a notebook displays never costs its predictions.

The pipeline runs ``python -c <this module's source> <caps as JSON> <papermill's arguments...>``: the source
travels in the command, so nothing is mounted and the team's code cannot change it. It patches papermill (2.x)
and nbclient (0.x) in that process, then runs papermill's own command line:

* **each output is capped as it is recorded** (``NotebookClient.output``): a text output keeps at most
  ``output_chars`` characters, a cell at most ``cell_chars`` characters over all its outputs and at most
  ``outputs_per_cell`` outputs, and a rich output (image, SVG, HTML, JSON) larger than ``rich_chars`` is replaced by
  a text marker naming what was dropped. A display updated later (``display_id``) is capped the same way. Memory
  stays bounded too: what was cut is not kept.
* **the executed notebook is saved atomically within ``max_bytes``** (papermill's ``write_ipynb``): written to a
  temporary file next to it and renamed, so a run killed mid-save leaves the previous complete version; when the
  notebook would be larger than ``max_bytes`` the outputs of its largest cells are replaced by a marker until it
  fits; a failed save (a full disk) is reported on stderr and the run goes on.
* **a cell's late outputs are waited for** (``iopub_timeout``): a cell that displayed a flood of outputs is not
  failed for them; the harness's wall clock still stops the run.

Every marker is a ``stderr`` stream output starting ``[harness: ``, visible in JupyterLab where the output was.
The capping functions are used on the host too (:func:`harness.notebooks.read_executed`), on a parsed notebook.

This module imports only the standard library at import time (nbformat, nbclient and papermill inside
:func:`main`) and never ``harness``: the task image does not have it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from typing import Any

__all__ = ["MARKER_PREFIX", "Caps", "cap_cell_outputs", "cap_new_output", "fit_notebook", "main", "save_atomically"]

#: How every marker the harness leaves in a notebook begins.
MARKER_PREFIX = "[harness: "
_DROPPED = re.compile(r"^\[harness: (\d+) more outputs? of this cell dropped")
_RICH_TYPES = ("display_data", "execute_result")
#: Seconds nbclient waits for a finished cell's remaining output messages (its default, 4 s, fails a run whose cell
#: displayed more than the client could read meanwhile); the run's wall clock is the harness's limit anyway.
IOPUB_TIMEOUT_S = 24 * 3600


class Caps:
    """The caps on a notebook's outputs (characters) and on the saved file (bytes).

    Args:
        output_chars: text kept per output.
        cell_chars: text kept per cell, over all its outputs.
        outputs_per_cell: outputs kept per cell (then one marker counting the rest).
        rich_chars: largest rich output (image, SVG, HTML...) kept, in characters of its data.
        max_bytes: largest executed notebook file saved, in bytes (``0``: no cap).
    """

    def __init__(
        self, output_chars: int, cell_chars: int, outputs_per_cell: int, rich_chars: int, max_bytes: int = 0
    ) -> None:
        self.output_chars = output_chars
        self.cell_chars = cell_chars
        self.outputs_per_cell = outputs_per_cell
        self.rich_chars = rich_chars
        self.max_bytes = max_bytes

    def as_json(self) -> str:
        """The caps as the JSON object :func:`main` reads."""
        return json.dumps(vars(self), sort_keys=True)


def _marker(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stderr", "text": f"{MARKER_PREFIX}{text}]\n"}


def _dropped_marker(count: int, caps: Caps) -> dict[str, Any]:
    return _marker(
        f"{count} more output{'s' if count != 1 else ''} of this cell dropped (caps: {caps.cell_chars} characters, "
        f"{caps.outputs_per_cell} outputs per cell)"
    )


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(len(v) for v in value)
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _cut(text: str, allowed: int) -> str:
    return text[: max(0, allowed)] + f"\n{MARKER_PREFIX}output truncated at {max(0, allowed)} characters]\n"


def _text_chars(output: Any) -> int:
    """Characters of text an output holds (what the per-cell budget counts)."""
    kind = output.get("output_type")
    if kind == "stream":
        return _chars(output.get("text", ""))
    if kind == "error":
        return _chars(output.get("evalue", "")) + _chars(output.get("traceback", []))
    return _chars(output.get("data", {}).get("text/plain", ""))


def cap_output(output: Any, allowed: int, caps: Caps) -> bool:
    """Cap one output in place: its text to ``allowed`` characters, rich data past ``caps.rich_chars`` dropped.

    A dropped rich output keeps its (capped) ``text/plain`` after a marker naming the formats and sizes dropped; its
    metadata (image sizes...) goes with it. Returns whether anything was cut.
    """
    kind = output.get("output_type")
    cut = False
    if kind == "stream":
        text = _text(output.get("text", ""))
        if len(text) > allowed:
            output["text"] = _cut(text, allowed)
            cut = True
    elif kind == "error":
        evalue = _text(output.get("evalue", ""))
        if len(evalue) > allowed:
            output["evalue"] = _cut(evalue, allowed)
            cut = True
        lines = [str(line) for line in output.get("traceback", []) or []]
        if sum(len(line) for line in lines) > allowed:
            kept: list[str] = []
            budget = allowed
            for line in lines:
                if len(line) > budget:
                    kept.append(_cut(line, budget))
                    break
                kept.append(line)
                budget -= len(line)
            output["traceback"] = kept
            cut = True
    elif kind in _RICH_TYPES:
        data = output.get("data", {})
        big = {mime: _chars(value) for mime, value in data.items() if mime != "text/plain"}
        big = {mime: size for mime, size in big.items() if size > caps.rich_chars}
        plain = _text(data.get("text/plain", ""))
        if len(plain) > allowed:
            plain, cut = _cut(plain, allowed), True
        if big:
            dropped = ", ".join(f"{mime} of {size:,} characters" for mime, size in big.items())
            note = f"{MARKER_PREFIX}output dropped: {dropped} (cap: {caps.rich_chars:,} characters per output)]"
            output["data"] = {"text/plain": note + ("\n" + plain if plain else "")}
            output["metadata"] = {}
            cut = True
        elif cut:
            data["text/plain"] = plain
    return cut


def cap_new_output(outputs: list[Any], caps: Caps) -> None:
    """Cap the output just appended to a cell's ``outputs`` (its last item), given the ones before it.

    Past ``caps.outputs_per_cell`` outputs or ``caps.cell_chars`` characters, the new output is replaced by one
    marker counting the outputs dropped (later ones increment its count). Each call costs O(outputs kept).
    """
    if not outputs:
        return
    if len(outputs) >= 2 and outputs[-2].get("output_type") == "stream":
        match = _DROPPED.match(_text(outputs[-2].get("text", "")))
        if match:
            outputs.pop()
            outputs[-1]["text"] = _dropped_marker(int(match.group(1)) + 1, caps)["text"]
            return
    used = sum(_text_chars(o) for o in outputs[:-1])
    if len(outputs) > caps.outputs_per_cell or used >= caps.cell_chars:
        outputs[-1] = _as_node(outputs[-1], _dropped_marker(1, caps))
        return
    cap_output(outputs[-1], min(caps.output_chars, caps.cell_chars - used), caps)


def cap_cell_outputs(outputs: list[Any], caps: Caps) -> tuple[list[Any], int]:
    """Cap a whole cell's outputs (a parsed notebook's): returns ``(kept outputs, outputs cut or dropped)``."""
    kept: list[Any] = []
    cut = 0
    used = 0
    for index, output in enumerate(outputs):
        if output.get("output_type") == "stream" and _DROPPED.match(_text(output.get("text", ""))):
            kept.append(output)  # a marker of the run's own capping: kept as it is
            continue
        if len(kept) >= caps.outputs_per_cell or used >= caps.cell_chars:
            rest = len(outputs) - index
            kept.append(_as_node(output, _dropped_marker(rest, caps)))
            cut += rest
            break
        cut += cap_output(output, min(caps.output_chars, caps.cell_chars - used), caps)
        used += _text_chars(output)
        kept.append(output)
    return kept, cut


def _as_node(like: Any, value: dict[str, Any]) -> Any:
    """``value`` as the same mapping type as ``like`` (a NotebookNode inside papermill, a dict otherwise)."""
    try:
        return type(like)(value)
    except Exception:  # pragma: no cover - any mapping type takes a dict
        return value


def fit_notebook(nb: Any, max_bytes: int, dumps: Any = None) -> tuple[str, int]:
    """Serialise a notebook within ``max_bytes``, dropping the outputs of its largest cells first when needed.

    Args:
        nb: the notebook (a mapping with ``cells``); changed in place when outputs are dropped.
        max_bytes: the cap (``0``: none).
        dumps: serialiser of the notebook (default: ``json.dumps`` with an indent of 1, as nbformat writes).

    Returns:
        ``(text, cells)``: the serialised notebook and the number of cells whose outputs were replaced by a
        marker. The text may still exceed the cap when the cells' sources alone do.
    """
    write = dumps or (lambda value: json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    text = write(nb)
    if not max_bytes or len(text.encode("utf-8")) <= max_bytes:
        return text, 0
    cells = [c for c in nb["cells"] if c.get("outputs")]
    cells.sort(key=lambda c: _chars(c["outputs"]), reverse=True)
    dropped = 0
    for cell in cells:
        size = _chars(cell["outputs"])
        cell["outputs"] = [
            _as_node(
                cell["outputs"][0],
                _marker(
                    f"the outputs of this cell ({size:,} characters) were dropped: the executed notebook would be "
                    f"larger than {max_bytes:,} bytes"
                ),
            )
        ]
        dropped += 1
        text = write(nb)
        if len(text.encode("utf-8")) <= max_bytes:
            break
    return text, dropped


def save_atomically(text: str, path: str) -> bool:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    Returns:
        Whether it was saved; on failure (e.g. no space left) the previous file stays as it was, a line says why on
        stderr, and nothing is raised.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".executed-", suffix=".tmp", dir=folder)
        os.fchmod(fd, 0o644)  # as papermill's own open() would make it
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        sys.stderr.write(f"{MARKER_PREFIX}could not save the executed notebook: {exc}]\n")
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


def _install(caps: Caps) -> None:
    """Patch nbclient and papermill in this process (see the module docs)."""
    import nbclient.client
    import nbformat
    import papermill.clientwrap
    import papermill.engines
    import papermill.execute

    client = nbclient.client.NotebookClient
    original_output = client.output

    def output(self: Any, outs: list[Any], msg: Any, display_id: Any, cell_index: int) -> Any:
        out = original_output(self, outs, msg, display_id, cell_index)
        if out is not None and outs and outs[-1] is out:
            cap_new_output(outs, caps)
        return out

    def update_display_id(self: Any, display_id: str, msg: Any) -> None:
        if display_id not in self._display_id_map:
            return
        if msg["header"]["msg_type"] == "update_display_data":
            msg["header"]["msg_type"] = "display_data"
        try:
            out = nbclient.client.output_from_msg(msg)
        except ValueError:
            return
        cap_output(out, caps.output_chars, caps)
        for cell_idx, output_indices in self._display_id_map[display_id].items():
            outputs = self.nb["cells"][cell_idx]["outputs"]
            for output_idx in output_indices:  # outputs dropped by the caps are not there any more
                if output_idx < len(outputs) and outputs[output_idx].get("output_type") in _RICH_TYPES:
                    outputs[output_idx]["data"] = out["data"]
                    outputs[output_idx]["metadata"] = out["metadata"]

    def write_ipynb(nb: Any, path: str) -> None:
        text, _ = fit_notebook(nb, caps.max_bytes, dumps=lambda value: nbformat.writes(value))
        save_atomically(text, path)

    wrapper = papermill.clientwrap.PapermillNotebookClient
    original_init = wrapper.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # nbclient waits 4 s for a cell's remaining IOPub messages after its reply, then fails the run ("Timeout
        # waiting for IOPub output"); a cell that displays 100,000 outputs leaves more than that queued. The
        # harness enforces the wall clock from outside, so wait as long as it lets the run go on.
        self.iopub_timeout = IOPUB_TIMEOUT_S

    wrapper.__init__ = init
    client.output = output  # type: ignore[method-assign]
    client._update_display_id = update_display_id  # type: ignore[method-assign]
    for module in (papermill.engines, papermill.execute):  # each imported the name itself
        if hasattr(module, "write_ipynb"):
            module.write_ipynb = write_ipynb


def main(argv: list[str]) -> None:
    """Run papermill's command line with the caps installed.

    Args:
        argv: ``[program, caps_json, *papermill_arguments]`` (``sys.argv`` of ``python -c``).
    """
    caps = Caps(**json.loads(argv[1]))
    os.environ["HARNESS_BATCH_KERNEL"] = "1"  # no debugger in the kernel (harness.stack, configure)
    _install(caps)
    from papermill.cli import papermill

    papermill.main(args=list(argv[2:]), prog_name="papermill")


if __name__ == "__main__":
    main(sys.argv)
