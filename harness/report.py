"""Judges' reports: the parameterised notebooks in ``notebooks/``, executed with papermill, exported to HTML.

:func:`write_report` runs ``notebooks/leaderboard.ipynb`` (and, for one team, ``notebooks/submission_review.ipynb``)
in a kernel of the harness's own Python, writes the executed notebooks into ``reports/<task>/`` and exports each to
a self-contained HTML page with the code hidden and the plots embedded as images. The rest of this module is the
small toolbox those notebooks call, so that what they show is computed by tested code:

* :func:`glue_table` / :func:`read_glued`: a table displayed in a notebook with a machine-readable copy (exact
  values) that tests and other tools read back from the executed notebook;
* :func:`style_metric_table`: the metric table as a pandas Styler, best value per metric marked, values shown at
  the spec's precision, every string HTML-escaped (team names, reasons and logs are written by teams);
* :func:`find_baseline_team`, :func:`artifact_links_html`, :func:`resource_table`, :func:`log_tail`;
* error analysis of prediction tasks: :func:`load_predictions`, :func:`load_reference`, :func:`load_test_input`,
  :func:`default_group_by`, :func:`prediction_errors`, :func:`errors_by_group`. The reference they read is the
  hidden one: these reports are for judges only.

Open the executed notebooks in JupyterLab from the project folder (the root must hold both ``reports/`` and the
harness home, which is hidden by default, for the artifact links to work)::

    .venv/bin/jupyter lab --ServerApp.root_dir=. --ContentsManager.allow_hidden=True \\
        reports/nyc-flight-delays/leaderboard.ipynb
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.spec import MetricSpec, TaskSpec
from harness.store import ScoredRun, Store

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

__all__ = [
    "GLUE_KEY",
    "KERNEL_NAME",
    "NOTEBOOKS_DIR",
    "ReportError",
    "ReportPaths",
    "artifact_link",
    "artifact_links_html",
    "default_group_by",
    "errors_by_group",
    "find_baseline_team",
    "glue_table",
    "load_predictions",
    "load_reference",
    "load_test_input",
    "log_tail",
    "plain_label",
    "plain_table",
    "prediction_errors",
    "read_glued",
    "resource_table",
    "runs_by_split_table",
    "style_metric_table",
    "table_records",
    "write_report",
]

log = logging.getLogger(__name__)

#: Folder of the notebook templates (``leaderboard.ipynb``, ``submission_review.ipynb``).
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
LEADERBOARD_NOTEBOOK = "leaderboard.ipynb"
REVIEW_NOTEBOOK = "submission_review.ipynb"
#: Kernel the report notebooks run in; it is made to resolve to this interpreter (``sys.executable``).
KERNEL_NAME = "python3"
#: Key under an output's metadata that names a glued table (see :func:`glue_table`).
GLUE_KEY = "harness_report"
#: MIME type of a glued table's exact records.
GLUE_MIME = "application/json"
#: Cell tag of cells kept in the executed notebook but left out of the HTML export.
REMOVE_FROM_HTML_TAG = "remove_cell"
#: Spec parameter naming the columns error analysis groups by, comma-separated (``carrier,origin,month``).
GROUP_BY_PARAMETER = "report_group_by"

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar", ".ipynb")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ReportError(HarnessError):
    """A report notebook could not be executed or exported.

    Args:
        message: what failed and where, e.g. ``"leaderboard.ipynb failed at In [5] (cell 7 of 16 ...)"``.
        notebook: the executed notebook written despite the failure, or ``""``.
        cell_index: 0-based index of the failing cell in that saved notebook, or ``None``.
    """

    def __init__(self, message: str, notebook: str = "", cell_index: int | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.args = (message, notebook, cell_index)


@dataclass(frozen=True)
class ReportPaths:
    """Files written by :func:`write_report` (absolute paths).

    Attributes:
        out_dir: the report folder (``reports/<task>`` by default).
        leaderboard_notebook: the executed ``leaderboard.ipynb``.
        leaderboard_html: its HTML export (code hidden, plots embedded).
        review_notebook: the executed ``review-<team>.ipynb`` when a team was asked for, else ``None``.
        review_html: its HTML export, else ``None``.
    """

    out_dir: Path
    leaderboard_notebook: Path
    leaderboard_html: Path
    review_notebook: Path | None = None
    review_html: Path | None = None

    def files(self) -> list[Path]:
        """Every file written, notebooks before their HTML."""
        files = [self.leaderboard_notebook, self.leaderboard_html]
        if self.review_notebook is not None and self.review_html is not None:
            files += [self.review_notebook, self.review_html]
        return files


# --- writing reports -------------------------------------------------------------------------------------------
def write_report(
    task: str | Path | TaskSpec,
    *,
    db_url: str | None = None,
    home: Path | None = None,
    team: str | None = None,
    out_dir: Path | None = None,
    split: str = "public",
    group_by: Sequence[str] | None = None,
    baseline_team: str | None = None,
    link_base: str | None = None,
    cell_timeout_s: float = 600.0,
    echo: Callable[[str], object] | None = None,
) -> ReportPaths:
    """Execute the judges' notebooks of a task with papermill and export them to HTML.

    Always writes ``leaderboard.ipynb`` and ``leaderboard.html``; with ``team`` also ``review-<team>.ipynb`` and
    ``review-<team>.html`` (the team name made safe for a file name). Notebooks run in the ``python3`` kernel of
    this interpreter (see :data:`KERNEL_NAME`); HTML pages load no script from the network.

    Args:
        task: a task folder, a loaded spec, or a task id under ``./task_specs`` (or ``$HARNESS_TASKS``).
        db_url: SQLAlchemy URL of the results store; default ``$HARNESS_DB_URL`` or ``HOME/results.sqlite``. A
            password in the URL is passed to the kernel through ``$HARNESS_DB_URL``, never written into a notebook.
        home: harness home (store file and artifacts); default ``$HARNESS_HOME`` or ``./.harness``.
        team: a team to review (all its runs, active or not).
        out_dir: report folder; default ``reports/<task id>`` under the current folder.
        split: test split the leaderboard shows, ``public`` or ``private`` (one of the spec's test splits).
        group_by: columns of the test input the review's error analysis groups by; default the spec's
            ``parameters.report_group_by`` (comma-separated) or up to three low-cardinality input columns.
        baseline_team: team marked as the baseline; default the team whose submission is the spec's ``baseline``,
            else a team named ``baseline``.
        link_base: URL prefix for links to run artifacts (``https://host/artifacts``), joined with each artifact's
            path relative to ``home``; default links relative to ``out_dir``.
        cell_timeout_s: limit of one notebook cell, in seconds.
        echo: called with one progress line before each notebook runs (the CLI prints them on stderr).

    Returns:
        The paths written.

    Raises:
        SpecError: the task cannot be found.
        StoreError: the results store cannot be opened.
        HarnessError: the task has no results in the store, the team has no runs, or the split is unknown
            (raised before any notebook starts).
        ReportError: a notebook cell failed (the executed notebook is still saved; the message names the cell and
            the file), the kernel could not be prepared, or the HTML export failed.
    """
    from harness.leaderboard import resolve_task
    from harness.store import default_home, resolve_db_url

    spec = resolve_task(task)
    splits = spec.splits("test")
    if split not in splits:
        raise HarnessError(f"unknown split {split!r} for task {spec.id!r}; expected one of {', '.join(splits)}")
    home_dir = (home or default_home()).resolve()
    url = resolve_db_url(db_url, home)  # an explicit home beats $HARNESS_DB_URL
    _check_results(spec, url, team)

    out = (out_dir or Path("reports") / spec.id).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shown_url, secret_url = _split_secret(url)
    common: dict[str, Any] = {
        "task": str(spec.task_dir),
        "db_url": shown_url,
        "home": str(home_dir),
        "split": split,
        "reports_dir": str(out),
        "link_base": link_base,
        "baseline_team": baseline_team,
    }
    say = echo or (lambda _line: None)
    with _db_url_env(secret_url), _kernel_manager_class() as kernel_manager_class:
        leaderboard_nb = out / LEADERBOARD_NOTEBOOK
        say(f"executing {LEADERBOARD_NOTEBOOK} for {spec.id} ({split} split)")
        _execute(
            _template(LEADERBOARD_NOTEBOOK),
            leaderboard_nb,
            common,
            kernel_manager_class=kernel_manager_class,
            cell_timeout_s=cell_timeout_s,
        )
        leaderboard_html = _export_html(leaderboard_nb, title=f"{spec.title} — leaderboard ({split})")
        paths = ReportPaths(out, leaderboard_nb, leaderboard_html)
        if team is not None:
            review_nb = out / f"review-{_file_safe(team)}.ipynb"
            say(f"executing {REVIEW_NOTEBOOK} for team {team!r}")
            params = {**common, "team": team, "group_by": list(group_by) if group_by is not None else None}
            _execute(
                _template(REVIEW_NOTEBOOK),
                review_nb,
                params,
                kernel_manager_class=kernel_manager_class,
                cell_timeout_s=cell_timeout_s,
            )
            review_html = _export_html(review_nb, title=f"{spec.title} — review of {team}")
            paths = ReportPaths(out, leaderboard_nb, leaderboard_html, review_nb, review_html)
    log.info("wrote report of %s to %s", spec.id, out)
    return paths


def _check_results(spec: TaskSpec, url: str, team: str | None) -> None:
    """Fail early, with a message naming the fix, when there is nothing to report (without creating a store)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise HarnessError(
            f"no results store at {url.removeprefix('sqlite:///')}, so no results for task {spec.id!r}. Run "
            "`harness run TASK_DIR SUBMISSIONS_DIR` first (with the same --home/--db), then `harness report`."
        )
    store = Store(url)
    try:
        runs = store.runs(spec.id, phase="test")
        if not runs:
            known = store.task_ids()
            hint = f"; tasks with results there: {', '.join(known)}" if known else ""
            raise HarnessError(
                f"no results for task {spec.id!r} in the store at {store._safe_url()}{hint}. Run "
                "`harness run TASK_DIR SUBMISSIONS_DIR` first (with the same --home/--db), then `harness report`."
            )
        if team is not None:
            all_runs = store.runs(spec.id, phase="test", active_only=False)
            if not any(run.team == team for run in all_runs):
                teams = sorted({run.team for run in all_runs})
                shown = ", ".join(teams[:20]) + (f" and {len(teams) - 20} more" if len(teams) > 20 else "")
                raise HarnessError(f"team {team!r} has no runs of task {spec.id!r}; teams with runs: {shown}")
    finally:
        store.close()


def _template(name: str) -> Path:
    path = NOTEBOOKS_DIR / name
    if not path.is_file():
        raise ReportError(
            f"report notebook {path} is missing; the harness's notebooks/ folder must sit beside the harness "
            "package (install the harness from its source tree, e.g. `pip install -e .`)"
        )
    return path


def _file_safe(name: str) -> str:
    """A file-name fragment for a team name.

    A name of letters, digits, ``.``, ``_`` and ``-`` is kept as it is; any other name becomes its safe characters
    (other runs replaced by ``-``) plus 8 hex digits of its sha256, so two teams never share a report file.
    """
    import hashlib

    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,79}", name):
        return name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:60]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{safe}-{digest}" if safe else digest


def _split_secret(url: str) -> tuple[str | None, str | None]:
    """``(url to write into the notebook, url to pass through the environment)``; one of them is ``None``."""
    from sqlalchemy.engine import make_url

    try:
        has_password = make_url(url).password is not None
    except Exception:
        has_password = False
    return (None, url) if has_password else (url, None)


@contextmanager
def _db_url_env(url: str | None) -> Iterator[None]:
    """Set ``$HARNESS_DB_URL`` for the kernels started inside the block (they inherit the environment)."""
    if url is None:
        yield
        return
    previous = os.environ.get("HARNESS_DB_URL")
    os.environ["HARNESS_DB_URL"] = url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HARNESS_DB_URL", None)
        else:
            os.environ["HARNESS_DB_URL"] = previous


def _runs_this_python(argv0: str) -> bool:
    """Whether a kernelspec's ``argv[0]`` starts this interpreter (jupyter_client maps bare ``python`` to it)."""
    bare = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if argv0 in bare:
        return True
    return os.path.abspath(argv0) == os.path.abspath(sys.executable)


@contextmanager
def _kernel_manager_class() -> Iterator[type]:
    """A kernel manager class whose ``python3`` kernelspec is this interpreter's (the harness's venv).

    The kernelspec is read from ``sys.prefix/share/jupyter/kernels`` only, so a user-level or system ``python3``
    kernel pointing at another Python cannot shadow it. When missing there it is installed, as
    ``python -m ipykernel install --sys-prefix`` would; when ``sys.prefix`` is read-only, into a temporary folder
    removed on exit. Kernels talk over Unix sockets in that temporary folder.

    Raises:
        ReportError: the kernelspec there starts another interpreter, or none can be installed.
    """
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    with tempfile.TemporaryDirectory(prefix="harness-kernel-") as fallback:
        kernels_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels"
        if not (kernels_dir / KERNEL_NAME / "kernel.json").is_file():
            try:
                install(kernel_name=KERNEL_NAME, prefix=sys.prefix)
                log.info("installed the %s kernelspec into %s", KERNEL_NAME, kernels_dir)
            except OSError as exc:
                log.info("cannot install a kernelspec into %s (%s); using a temporary one", sys.prefix, exc)
                install(kernel_name=KERNEL_NAME, prefix=fallback)
                kernels_dir = Path(fallback) / "share" / "jupyter" / "kernels"
        manager = KernelSpecManager(kernel_dirs=[str(kernels_dir)], ensure_native_kernel=False)
        try:
            kernel_spec = manager.get_kernel_spec(KERNEL_NAME)
        except NoSuchKernel as exc:
            raise ReportError(f"no {KERNEL_NAME} kernelspec in {kernels_dir}: {exc}") from None
        if not kernel_spec.argv or not _runs_this_python(kernel_spec.argv[0]):
            raise ReportError(
                f"the {KERNEL_NAME} kernelspec in {kernels_dir} starts {kernel_spec.argv[:1]}, not this harness's "
                f"Python ({sys.executable}); reinstall it with `{sys.executable} -m ipykernel install --sys-prefix`"
            )
        dirs = [str(kernels_dir)]

        sockets = str(Path(fallback) / "kernel")
        kernel_log = Path(fallback) / "kernel.log"

        class VenvKernelManager(AsyncKernelManager):
            """A kernel manager that only sees the harness venv's kernelspecs and talks over Unix sockets.

            IPC sockets in a private folder instead of TCP ports: no race for ports between kernels started at
            once, and no "running over TCP without encryption" warning on the judge's terminal.
            """

            @default("kernel_spec_manager")
            def _venv_kernel_spec_manager(self) -> KernelSpecManager:
                return KernelSpecManager(kernel_dirs=dirs, ensure_native_kernel=False)

            @default("transport")
            def _ipc_transport(self) -> str:
                return "ipc"

            @default("ip")
            def _ipc_path(self) -> str:
                return sockets

            async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
                # The kernel process's own stdout/stderr (start-up and shut-down chatter, not cell outputs, which
                # travel over the sockets) go to a log read back when a kernel dies, not to the judge's terminal.
                with kernel_log.open("ab") as sink:
                    kw.setdefault("stdout", sink)
                    kw.setdefault("stderr", sink)
                    await super()._async_start_kernel(**kw)

        VenvKernelManager.log_path = kernel_log  # type: ignore[attr-defined]

        yield VenvKernelManager


def _execute(
    template: Path,
    output: Path,
    parameters: dict[str, Any],
    *,
    kernel_manager_class: type,
    cell_timeout_s: float,
) -> None:
    """Run one notebook with papermill into ``output``; on a cell error the executed notebook is kept.

    Raises:
        ReportError: a cell raised, the kernel died or the notebook could not be read (message names the cell).
    """
    import papermill as pm
    from papermill.exceptions import PapermillException, PapermillExecutionError

    log.info("executing %s -> %s", template.name, output)
    try:
        pm.execute_notebook(
            str(template),
            str(output),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
            execution_timeout=math.ceil(cell_timeout_s),
            kernel_manager_class=kernel_manager_class,
        )
    except PapermillExecutionError as exc:
        index, total = _error_cell(output, exc.cell_index)
        first_line = next((line for line in str(exc.source).splitlines() if line.strip()), "")
        raise ReportError(
            f"{template.name} failed at In [{exc.exec_count}] (cell {index + 1} of {total} in the saved notebook, "
            f"starting {first_line.strip()[:80]!r}): {exc.ename}: {exc.evalue}. The executed notebook, with the "
            f"traceback, is saved at {output}",
            str(output),
            index,
        ) from None
    except (PapermillException, RuntimeError, OSError, ValueError) as exc:
        # A dead kernel, a kernel that never started, or an unreadable template: no cell to blame.
        saved = f"; the partly executed notebook is at {output}" if output.is_file() else ""
        kernel_log = getattr(kernel_manager_class, "log_path", None)
        tail = log_tail(kernel_log, 10) if kernel_log is not None else ""
        said = f"\nlast lines of the kernel's log:\n{tail}" if tail else ""
        raise ReportError(
            f"{template.name} could not be executed: {type(exc).__name__}: {exc}{saved}{said}", str(output)
        ) from exc


def _error_cell(notebook: Path, fallback: int) -> tuple[int, int]:
    """``(index, number of cells)`` of the first cell with an error output in a saved notebook.

    papermill's ``cell_index`` counts cells before it inserts its error banner at the top, so the saved file is
    read back; ``fallback`` is returned as the index when it cannot be.
    """
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # the notebook is evidence only; the error is reported either way
        return fallback, fallback + 1
    for index, cell in enumerate(nb.cells):
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return index, len(nb.cells)
    return fallback, len(nb.cells)


_HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{#- A self-contained report: no require.js, MathJax or mermaid from a CDN (pages open offline, no console
    errors); plots are already embedded as data: images. -#}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
{%- set alt = (output | get_metadata('alt', 'image/png')) or 'plot' -%}
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}" alt="{{ alt | escape_html }}">
</div>
{%- endblock data_png -%}
{%- block extra_css -%}
<style type="text/css">
  body.jp-Notebook { max-width: 1200px; margin: 0 auto; padding: 1em 2em; }
  .jp-RenderedHTMLCommon table { font-size: 12px; }
</style>
{%- endblock extra_css -%}
"""


def _describe_plots(nb: Any) -> None:
    """Give each PNG output an alternative text: ``Plot: <the markdown heading above it>``."""
    heading = "report"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            titles = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            heading = titles[-1] if titles else heading
            continue
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output.setdefault("metadata", {}).setdefault("image/png", {})["alt"] = f"Plot: {heading}"


def _export_html(notebook: Path, *, title: str) -> Path:
    """Export an executed notebook next to it as ``.html``: code hidden, cells tagged ``remove_cell`` dropped.

    Raises:
        ReportError: the notebook cannot be read or rendered.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    target = notebook.with_suffix(".html")
    try:
        nb = nbformat.read(notebook, as_version=4)
        nb.metadata["title"] = title
        _describe_plots(nb)
        exporter = HTMLExporter(
            template_name="lab",
            extra_loaders=[jinja2.DictLoader({"harness_report.html.j2": _HTML_TEMPLATE})],
            template_file="harness_report.html.j2",
            exclude_input=True,
            exclude_input_prompt=True,
            exclude_output_prompt=True,
            embed_images=True,
        )
        exporter.register_preprocessor(
            TagRemovePreprocessor(remove_cell_tags={REMOVE_FROM_HTML_TAG}, enabled=True), enabled=True
        )
        body, _resources = exporter.from_notebook_node(nb)
    except Exception as exc:  # nbconvert raises many types (template, schema, IO)
        raise ReportError(f"cannot export {notebook} to HTML: {type(exc).__name__}: {exc}", str(notebook)) from None
    target.write_text(body, encoding="utf-8")
    return target


# --- tables in notebooks -----------------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    """A JSON-safe, exact copy of one cell value: floats stay floats (NaN -> None), timestamps -> ISO 8601."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def table_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as a list of row dicts that JSON round-trips exactly.

    Floats keep every bit (``json`` writes ``repr``), NaN/NA/NaT become ``None``, timestamps ISO 8601 strings,
    numpy scalars Python scalars. Two tables are equal cell by cell iff their records are equal.
    """
    columns = [str(c) for c in df.columns]
    return [
        {column: _json_value(value) for column, value in zip(columns, row, strict=True)}
        for row in df.itertuples(index=False, name=None)
    ]


def glue_table(name: str, df: pd.DataFrame, *, summary: str = "") -> None:
    """Display a table's exact records in a notebook output that :func:`read_glued` finds by ``name``.

    Call it from a cell tagged ``remove_cell`` so the HTML export leaves it out. The output carries
    ``application/json`` (the records of :func:`table_records`) and a short ``text/plain`` summary, and its
    metadata ``{"harness_report": {"name": name}}``.
    """
    from IPython.display import display

    text = summary or f"{name}: {len(df)} rows x {df.shape[1]} columns (machine-readable copy)"
    bundle = {
        GLUE_MIME: {"name": name, "columns": [str(c) for c in df.columns], "records": table_records(df)},
        "text/plain": text,
    }
    display(bundle, raw=True, metadata={GLUE_KEY: {"name": name}})


def read_glued(notebook: str | Path, name: str) -> list[dict[str, Any]]:
    """The records a notebook glued under ``name`` (see :func:`glue_table`).

    Raises:
        ReportError: the notebook holds no such output.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            tag = output.get("metadata", {}).get(GLUE_KEY, {})
            if isinstance(tag, dict) and tag.get("name") == name and GLUE_MIME in output.get("data", {}):
                return list(output["data"][GLUE_MIME]["records"])
    raise ReportError(f"{notebook} holds no glued table named {name!r}", str(notebook))


def plain_label(text: str) -> str:
    """A string matplotlib shows literally (``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


def _text_columns(df: pd.DataFrame) -> list[Any]:
    return [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]


def plain_table(df: pd.DataFrame, *, precision: int = 3, formats: dict[str, str] | None = None) -> Styler:
    """A table for a report: strings HTML-escaped and left-aligned, numbers right-aligned, index hidden.

    Args:
        df: any table; team-written strings in it are escaped.
        precision: decimals of float columns without an entry in ``formats``.
        formats: column -> format string (``"{:.1f}"``) for particular columns.

    Returns:
        A Styler; timestamps are shown as ``YYYY-MM-DD HH:MM UTC``, missing values as empty cells.
    """
    shown = df.reset_index(drop=True).copy()
    for column in shown.columns:
        if isinstance(shown[column].dtype, pd.DatetimeTZDtype):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M UTC")
    styler = shown.style.format(precision=precision, na_rep="", escape="html")
    for column, fmt in (formats or {}).items():
        if column in shown:
            styler = styler.format(fmt, subset=[column], na_rep="")
    text = _text_columns(shown)
    if text:
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
        styler = styler.set_table_styles(
            [{"selector": f"th.col_heading.col{shown.columns.get_loc(c)}", "props": "text-align: left"} for c in text],
            overwrite=False,
        )
    return styler.hide(axis="index")


def style_metric_table(df: pd.DataFrame, metrics: Sequence[MetricSpec]) -> Styler:
    """The metric table for judges' eyes: best value per metric marked, spec precision, strings HTML-escaped.

    Args:
        df: a metric table (:func:`harness.leaderboard.metric_table`), one row per team or per run.
        metrics: the spec's metrics; each column is shown with ``precision`` decimals and its best value among
            ``succeeded`` rows (minimum or maximum by ``goal``) is marked in bold on green. Rows that did not
            succeed are greyed.

    Returns:
        A Styler over :func:`harness.leaderboard.display_table`'s columns, index hidden.
    """
    from harness.leaderboard import display_table

    shown = display_table(df, metrics).reset_index(drop=True)
    shown["submitted_at"] = pd.to_datetime(shown["submitted_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M UTC")
    succeeded = (shown["status"] == "succeeded").to_numpy(dtype=bool)

    def mark_best(column: pd.Series) -> list[str]:
        metric = next(m for m in metrics if m.name == column.name)
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
        valid = succeeded & np.isfinite(values)
        if not valid.any():
            return [""] * len(column)
        best = values[valid].min() if metric.goal == "minimize" else values[valid].max()
        return [
            "font-weight: bold; background-color: #c8e6c9" if ok and v == best else ""
            for ok, v in zip(valid, values, strict=True)
        ]

    def grey_failures(row: pd.Series) -> list[str]:
        return [""] * len(row) if row["status"] == "succeeded" else ["color: #8a8a8a"] * len(row)

    metric_columns = [m.name for m in metrics if m.name in shown]
    formats = {m.name: f"{{:.{m.precision}f}}" for m in metrics} | {"duration_s": "{:.1f}", "peak_memory_mb": "{:.0f}"}
    styler = plain_table(shown, formats=formats).apply(grey_failures, axis=1)
    if metric_columns:
        styler = styler.apply(mark_best, axis=0, subset=metric_columns)
    labels = {m.name: m.display_name for m in metrics if m.name in shown}
    return styler.relabel_index([labels.get(str(c), str(c)) for c in shown.columns], axis="columns")


def runs_by_split_table(
    runs: Sequence[ScoredRun], metrics: Sequence[MetricSpec], splits: Sequence[str]
) -> pd.DataFrame:
    """One row per run (active or not) with every metric on every split, for one team's review.

    Returns:
        Rows in the given order. Columns: ``run_id`` (int64), ``submitted_at`` (datetime64[ns, UTC]),
        ``submission`` (first 12 hex digits of the content hash), ``status``, ``reason`` (object), ``active``
        (bool), then ``"<metric> (<split>)"`` (float64, NaN when not scored) for each split and metric, then
        ``duration_s`` and ``peak_memory_mb`` (float64, NaN when unknown).
    """
    metric_columns = [f"{m.name} ({s})" for s in splits for m in metrics]
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "submitted_at": pd.Timestamp(run.submitted_at),
            "submission": run.content_hash[:12],
            "status": run.status,
            "reason": run.reason,
            "active": bool(run.active),
        }
        for split in splits:
            scores = run.scores.get(split, {})
            for metric in metrics:
                row[f"{metric.name} ({split})"] = float(scores.get(metric.name, math.nan))
        row["duration_s"] = float(run.duration_s) if run.duration_s is not None else math.nan
        row["peak_memory_mb"] = float(run.peak_memory_mb) if run.peak_memory_mb is not None else math.nan
        rows.append(row)
    columns = [
        "run_id",
        "submitted_at",
        "submission",
        "status",
        "reason",
        "active",
        *metric_columns,
        "duration_s",
        "peak_memory_mb",
    ]
    df = pd.DataFrame(rows, columns=columns)
    df["run_id"] = df["run_id"].astype("int64")
    df["submitted_at"] = pd.to_datetime(df["submitted_at"], utc=True).astype("datetime64[ns, UTC]")
    df["active"] = df["active"].astype("bool")
    for column in [*metric_columns, "duration_s", "peak_memory_mb"]:
        df[column] = df[column].astype("float64")
    return df


# --- runs, artifacts and logs ----------------------------------------------------------------------------------------
def _stem(name: str) -> str:
    lowered = name.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_baseline_team(spec: TaskSpec, runs: Sequence[ScoredRun], override: str | None = None) -> str | None:
    """The team that stands for the task's baseline, to mark it in plots.

    Args:
        spec: the task; ``spec.baseline`` names the baseline submission (folder or archive).
        runs: the task's runs (any phase).
        override: a team name given by the judge; returned if some run belongs to it.

    Returns:
        ``override`` if it has runs; else the team of a run whose submission source is the spec's baseline (the
        same path, or the same name without archive suffix in a folder of the same name); else a team named
        ``baseline`` (any case); else ``None``.
    """
    teams = {run.team for run in runs}
    if override is not None:
        return override if override in teams else None
    baseline = spec.baseline_path
    if baseline is not None:
        for run in runs:
            if not run.source:
                continue
            source = Path(run.source)
            try:
                if source.resolve() == baseline:
                    return run.team
            except OSError:
                pass
            if _stem(source.name) == _stem(baseline.name) and source.parent.name == baseline.parent.name:
                return run.team
    return next((team for team in sorted(teams) if team.lower() == "baseline"), None)


def artifact_link(
    path: Path, *, reports_dir: Path | None = None, link_base: str | None = None, home: Path | None = None
) -> str:
    """A URL for one artifact file, as seen from a report page.

    Args:
        path: the artifact (absolute).
        reports_dir: folder of the report page; the link is relative to it when possible.
        link_base: URL prefix of published artifacts; used for artifacts under ``home``, joined with their path
            relative to ``home`` (``https://host/artifacts`` + ``/artifacts/task/run-3/log.txt``).
        home: the harness home the artifacts live in.

    Returns:
        A URL-quoted relative link, a ``link_base`` URL, or a ``file://`` URI.
    """
    path = Path(path).absolute()
    if link_base and home is not None and path.is_relative_to(Path(home).absolute()):
        rel = path.relative_to(Path(home).absolute()).as_posix()
        return f"{link_base.rstrip('/')}/{quote(rel)}"
    if reports_dir is not None:
        try:
            return quote(Path(os.path.relpath(path, Path(reports_dir).absolute())).as_posix())
        except ValueError:  # another drive
            pass
    return path.as_uri()


def _artifact_files(run: ScoredRun, predictions_file: str) -> dict[str, Path]:
    """The run's artifacts that exist: ``notebook``, ``log``, ``predictions``."""
    if not run.artifacts_dir:
        return {}
    base = Path(run.artifacts_dir)
    candidates = {
        "notebook": base / "executed.ipynb",
        "log": base / "log.txt",
        "predictions": base / "output" / predictions_file,
    }
    return {name: path for name, path in candidates.items() if path.is_file()}


def artifact_links_html(
    runs: Sequence[ScoredRun],
    *,
    predictions_file: str = "predictions.csv",
    reports_dir: Path | None = None,
    link_base: str | None = None,
    home: Path | None = None,
) -> str:
    """An HTML table linking each run's executed notebook, log and predictions (see :func:`artifact_link`).

    Every team-written string is escaped. Columns: team, run, status, submitted (UTC), notebook, log, predictions.
    """
    rows = []
    for run in runs:
        files = _artifact_files(run, predictions_file)
        cells = [
            html.escape(run.team),
            str(run.run_id),
            html.escape(run.status),
            run.submitted_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for name, label in (("notebook", "executed.ipynb"), ("log", "log.txt"), ("predictions", predictions_file)):
            if name in files:
                url = artifact_link(files[name], reports_dir=reports_dir, link_base=link_base, home=home)
                cells.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>')
            else:
                cells.append("—")
        rows.append("<tr>" + "".join(f'<td style="text-align: left">{c}</td>' for c in cells) + "</tr>")
    names = ("team", "run", "status", "submitted (UTC)", "notebook", "log", "predictions")
    head = "".join(f'<th style="text-align: left">{name}</th>' for name in names)
    return f'<table class="harness-artifacts"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def resource_table(runs: Sequence[ScoredRun], spec: TaskSpec) -> pd.DataFrame:
    """Each run's resource use against the limits it ran under.

    The limits come from the run's provenance (``limits``), else from the spec.

    Returns:
        One row per run, in the given order. Columns: ``run_id`` (int64), ``submitted_at`` (datetime64[ns, UTC]),
        ``status`` (object), ``duration_s``, ``time_limit_s``, ``time_used_pct``, ``peak_memory_mb``,
        ``memory_limit_mb``, ``memory_used_pct`` (float64; NaN when unknown). Percentages are of the limit.
    """
    rows = []
    for run in runs:
        limits = run.provenance.get("limits") or {}
        time_limit = float(limits.get("time_s", spec.limits.time_s))
        memory_limit = float(limits.get("memory_mb", spec.limits.memory_mb))
        duration = float(run.duration_s) if run.duration_s is not None else math.nan
        memory = float(run.peak_memory_mb) if run.peak_memory_mb is not None else math.nan
        rows.append(
            {
                "run_id": run.run_id,
                "submitted_at": pd.Timestamp(run.submitted_at),
                "status": run.status,
                "duration_s": duration,
                "time_limit_s": time_limit,
                "time_used_pct": 100.0 * duration / time_limit,
                "peak_memory_mb": memory,
                "memory_limit_mb": memory_limit,
                "memory_used_pct": 100.0 * memory / memory_limit,
            }
        )
    columns = [
        "run_id",
        "submitted_at",
        "status",
        "duration_s",
        "time_limit_s",
        "time_used_pct",
        "peak_memory_mb",
        "memory_limit_mb",
        "memory_used_pct",
    ]
    df = pd.DataFrame(rows, columns=columns)
    df["run_id"] = df["run_id"].astype("int64")
    df["submitted_at"] = pd.to_datetime(df["submitted_at"], utc=True).astype("datetime64[ns, UTC]")
    for column in columns[3:]:
        df[column] = df[column].astype("float64")
    return df


def log_tail(path: str | Path, lines: int = 30, *, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of a log file, ANSI colour codes removed; ``""`` if the file does not exist.

    Args:
        path: the log (``log.txt`` of a run's artifacts).
        lines: how many lines to keep.
        max_bytes: read at most this many bytes from the end (bytes), so a huge log costs little.
    """
    path = Path(path)
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    text = _ANSI.sub("", data.decode("utf-8", errors="replace"))
    kept = text.splitlines()[-lines:] if lines > 0 else []
    return "\n".join(kept)


# --- error analysis of prediction tasks ------------------------------------------------------------------------------
def _read_csv_ids_as_text(path: Path, id_column: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype={id_column: "string"}, low_memory=False)


def load_predictions(spec: TaskSpec, run: ScoredRun) -> pd.DataFrame | None:
    """A run's predictions (``artifacts/output/<predictions.file>``), ids as strings; ``None`` if absent.

    Files larger than ``predictions.max_mb`` are not read (``None``).
    """
    files = _artifact_files(run, spec.predictions.file)
    path = files.get("predictions")
    if path is None or path.stat().st_size > spec.predictions.max_mb * 1024 * 1024:
        return None
    return _read_csv_ids_as_text(path, spec.predictions.id_column)


def load_reference(spec: TaskSpec, phase: str = "test") -> pd.DataFrame | None:
    """The phase's reference (for ``test``: the hidden one, judges only), ids as strings; ``None`` if absent."""
    path = spec.reference_path(phase)
    return _read_csv_ids_as_text(path, spec.predictions.id_column) if path.is_file() else None


def load_test_input(spec: TaskSpec, phase: str = "test") -> pd.DataFrame | None:
    """The rows to predict of a phase (its input's ``predict_file``, else the first CSV holding the id column).

    Returns:
        The input table with ids as strings, or ``None`` when the data is not prepared or has no such file.
    """
    folder = spec.input_dir(phase)
    id_column = spec.predictions.id_column
    if spec.data.predict_file:
        path = folder / spec.data.predict_file
        return _read_csv_ids_as_text(path, id_column) if path.is_file() else None
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*.csv")):
        header = pd.read_csv(path, nrows=0)
        if id_column in header.columns:
            return _read_csv_ids_as_text(path, id_column)
    return None


def default_group_by(
    spec: TaskSpec, test_input: pd.DataFrame | None, *, max_columns: int = 3, max_distinct: int = 24
) -> list[str]:
    """Columns to break errors down by, when the judge gave none.

    The spec's ``parameters.report_group_by`` (comma-separated, e.g. ``carrier,origin,month``) wins. Otherwise
    the first ``max_columns`` columns of the test input, in file order, that are neither the id nor a target and
    hold between 2 and ``max_distinct`` distinct values (for NYC flights: month, carrier, origin).
    """
    declared = spec.parameters.get(GROUP_BY_PARAMETER)
    if isinstance(declared, str) and declared.strip():
        return [c.strip() for c in declared.split(",") if c.strip()]
    if test_input is None:
        return []
    skip = {spec.predictions.id_column, *spec.target_columns, spec.data.split_column}
    chosen = []
    for column in test_input.columns:
        if column in skip:
            continue
        distinct = test_input[column].nunique(dropna=True)
        if 2 <= distinct <= max_distinct:
            chosen.append(str(column))
        if len(chosen) == max_columns:
            break
    return chosen


def prediction_errors(
    spec: TaskSpec,
    predictions: pd.DataFrame,
    reference: pd.DataFrame,
    test_input: pd.DataFrame | None = None,
    group_by: Sequence[str] = (),
) -> pd.DataFrame:
    """Join predictions with the reference (and the input's grouping columns), one row per reference id.

    Args:
        spec: the task (id column, targets, split column).
        predictions: the run's predictions (id column and targets).
        reference: the phase's reference (id column, targets, split column).
        test_input: the phase's input rows; its ``group_by`` columns are joined by id when given.
        group_by: columns to carry for grouping; taken from ``test_input`` or, failing that, the reference.

    Returns:
        Columns: the id (string), ``split`` (string) and the ``group_by`` columns present, then per target
        ``T``: ``T_true``, ``T_pred`` and, for numeric targets, ``T_error`` (pred - true) and ``T_abs_error``
        (float64); for other targets ``T_wrong`` (float64, 1.0 when pred != true). A missing prediction gives NaN.

    Raises:
        HarnessError: the predictions or the reference lack the id column or a target column.
    """
    id_column = spec.predictions.id_column
    targets = list(spec.target_columns)
    for name, frame, needed in (
        ("predictions", predictions, [id_column, *targets]),
        ("reference", reference, [id_column, *targets]),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise HarnessError(f"the {name} lack column(s) {missing}; found {list(frame.columns)}")
    ref = reference[[id_column, *targets, *([spec.data.split_column] if spec.data.split_column in reference else [])]]
    ref = ref.rename(columns={t: f"{t}_true" for t in targets} | {spec.data.split_column: "split"})
    pred = predictions[[id_column, *targets]].drop_duplicates(subset=[id_column], keep="first")
    pred = pred.rename(columns={t: f"{t}_pred" for t in targets})
    joined = ref.merge(pred, on=id_column, how="left", validate="one_to_one")
    if "split" not in joined:
        joined["split"] = ""
    groups = [g for g in group_by if g not in (id_column, "split")]
    if groups:
        source = test_input if test_input is not None else reference
        present = [g for g in groups if g in source.columns and g not in joined.columns]
        if present:
            extra = source[[id_column, *present]].drop_duplicates(subset=[id_column], keep="first")
            joined = joined.merge(extra, on=id_column, how="left", validate="one_to_one")
    for target in targets:
        true, predicted = joined[f"{target}_true"], joined[f"{target}_pred"]
        if pd.api.types.is_numeric_dtype(true) and pd.api.types.is_numeric_dtype(predicted):
            error = predicted.astype("float64") - true.astype("float64")
            joined[f"{target}_error"] = error
            joined[f"{target}_abs_error"] = error.abs()
        else:
            wrong = (predicted.astype("string") != true.astype("string")).astype("float64")
            joined[f"{target}_wrong"] = wrong.where(predicted.notna(), np.nan)
    keep_groups = [g for g in groups if g in joined.columns]
    ordered = [id_column, "split", *keep_groups]
    rest = [c for c in joined.columns if c not in ordered]
    out = joined[ordered + rest].copy()
    out[id_column] = out[id_column].astype("string")
    out["split"] = out["split"].astype("string")
    return out


def errors_by_group(errors: pd.DataFrame, target: str, group: str) -> pd.DataFrame:
    """Summarise one target's errors per value of one column (rows without a prediction are counted apart).

    Args:
        errors: output of :func:`prediction_errors`.
        target: a target column name (``arr_delay``).
        group: a column of ``errors`` (``carrier``), or ``split``.

    Returns:
        One row per group value, sorted by it. Numeric targets: ``group``, ``rows`` (int64), ``missing``
        (int64, rows without a prediction), ``mean_abs_error``, ``median_abs_error``, ``mean_error`` (bias,
        pred - true; float64, in the target's unit). Other targets: ``group``, ``rows``, ``missing``,
        ``error_rate`` (float64, share of wrong predictions).

    Raises:
        KeyError: ``group`` or the target's error columns are not in ``errors``.
    """
    if group not in errors.columns:
        raise KeyError(f"no column {group!r} to group by; columns: {list(errors.columns)}")
    grouped = errors.groupby(group, dropna=False, sort=True)
    if f"{target}_abs_error" in errors.columns:
        abs_error, error = f"{target}_abs_error", f"{target}_error"
        out = pd.DataFrame(
            {
                "rows": grouped.size(),
                "missing": grouped[abs_error].apply(lambda s: int(s.isna().sum())),
                "mean_abs_error": grouped[abs_error].mean(),
                "median_abs_error": grouped[abs_error].median(),
                "mean_error": grouped[error].mean(),
            }
        )
    elif f"{target}_wrong" in errors.columns:
        wrong = f"{target}_wrong"
        out = pd.DataFrame(
            {
                "rows": grouped.size(),
                "missing": grouped[wrong].apply(lambda s: int(s.isna().sum())),
                "error_rate": grouped[wrong].mean(),
            }
        )
    else:
        raise KeyError(f"no error columns for target {target!r} in the errors table")
    out.index.name = group
    out = out.reset_index()
    out["rows"] = out["rows"].astype("int64")
    out["missing"] = out["missing"].astype("int64")
    return out
