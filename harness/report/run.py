"""Running the judges' notebooks: papermill executes the templates (package data, ``harness/report/templates/``, or
an organiser's own folder) into ``reports/<task>/``.

:func:`write_report` checks there is something to report (before any kernel starts), passes the store URL to the
kernels (a password through the environment, never into a notebook), runs each notebook in a ``python3`` kernel of
this interpreter (:data:`KERNEL_NAME`, over Unix sockets) and has :mod:`harness.report.export` write the HTML page.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.report.artifacts import log_tail
from harness.report.errors import ReportError
from harness.report.export import export_html
from harness.spec import TaskSpec
from harness.store import Store
from harness.text import slug, visible

__all__ = [
    "KERNEL_NAME",
    "LEADERBOARD_NOTEBOOK",
    "NOTEBOOKS_DIR",
    "REVIEW_NOTEBOOK",
    "ReportPaths",
    "write_report",
]

log = logging.getLogger(__name__)

#: Folder of the notebook templates (``leaderboard.ipynb``, ``submission_review.ipynb``): package data of
#: ``harness.report`` (``templates/``), found with :mod:`importlib.resources`, so a wheel install has them too.
NOTEBOOKS_DIR = Path(str(resources.files("harness.report").joinpath("templates")))
LEADERBOARD_NOTEBOOK = "leaderboard.ipynb"
REVIEW_NOTEBOOK = "submission_review.ipynb"
#: Kernel the report notebooks run in; it is made to resolve to this interpreter (``sys.executable``).
KERNEL_NAME = "python3"


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
    templates_dir: Path | None = None,
) -> ReportPaths:
    """Execute the judges' notebooks of a task with papermill and export them to HTML.

    Always writes ``leaderboard.ipynb`` and ``leaderboard.html``; with ``team`` also ``review-<team>.ipynb`` and
    ``review-<team>.html`` (the team name made a file-name slug, :func:`harness.text.slug`). Notebooks run in the
    ``python3`` kernel of this interpreter (see :data:`KERNEL_NAME`); HTML pages load no script from the network.

    Args:
        task: a task folder, a loaded spec, or a task id under ``./task_specs`` (or ``$HARNESS_TASKS``).
        db_url: SQLAlchemy URL of the results store; default ``$HARNESS_DB_URL`` or ``HOME/results.sqlite``. A
            password in the URL is passed to the kernel through ``$HARNESS_DB_URL``, never written into a notebook.
        home: harness home (store file and artifacts); default ``$HARNESS_HOME`` or ``./.harness``.
        team: a team to review (all its runs, active or not).
        out_dir: report folder; default ``reports/<task id>`` under the current folder.
        split: test split the leaderboard shows, ``public`` or ``private`` (one of the spec's test splits).
        group_by: columns of the predict file or of the reference the review's error analysis groups by; default
            the spec's ``report.group_by`` (else the older ``parameters.report_group_by``, comma-separated) or up to
            three low-cardinality input columns.
        baseline_team: team marked as the baseline; default the team whose submission is the spec's ``baseline``,
            else a team named ``baseline``.
        link_base: URL prefix for links to run artifacts (``https://host/artifacts``), joined with each artifact's
            path relative to ``home``; default links relative to ``out_dir``.
        cell_timeout_s: limit of one notebook cell, in seconds.
        echo: called with one progress line before each notebook runs (the CLI prints them on stderr).
        templates_dir: a folder of one's own notebook templates (``leaderboard.ipynb``, and
            ``submission_review.ipynb`` for ``team``), run with the same parameters; default :data:`NOTEBOOKS_DIR`.

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
    from harness.ranking import resolve_task
    from harness.settings import get_settings

    spec = resolve_task(task)
    splits = spec.splits("test")
    if split not in splits:
        raise HarnessError(f"unknown split {split!r} for task {spec.id!r}; expected one of {', '.join(splits)}")
    settings = get_settings()
    home_dir = settings.home_dir(home)
    url = settings.store_url(db_url, home)  # an explicit home beats $HARNESS_DB_URL
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
            _template(LEADERBOARD_NOTEBOOK, templates_dir),
            leaderboard_nb,
            common,
            kernel_manager_class=kernel_manager_class,
            cell_timeout_s=cell_timeout_s,
        )
        leaderboard_html = export_html(leaderboard_nb, title=f"{spec.title} — leaderboard ({split})")
        paths = ReportPaths(out, leaderboard_nb, leaderboard_html)
        if team is not None:
            review_nb = out / f"review-{_file_safe(team)}.ipynb"
            say(f"executing {REVIEW_NOTEBOOK} for team {team!r}")
            params = {**common, "team": team, "group_by": list(group_by) if group_by is not None else None}
            _execute(
                _template(REVIEW_NOTEBOOK, templates_dir),
                review_nb,
                params,
                kernel_manager_class=kernel_manager_class,
                cell_timeout_s=cell_timeout_s,
            )
            review_html = export_html(review_nb, title=f"{spec.title} — review of {visible(team, keep='')}")
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


def _template(name: str, templates_dir: Path | None = None) -> Path:
    if templates_dir is not None:
        path = Path(templates_dir) / name
        if not path.is_file():
            raise ReportError(
                f"report notebook {path} is missing: a templates folder holds {LEADERBOARD_NOTEBOOK} (and "
                f"{REVIEW_NOTEBOOK} for --team); copy them from {NOTEBOOKS_DIR} to start your own"
            )
        return path
    path = NOTEBOOKS_DIR / name
    if not path.is_file():
        raise ReportError(
            f"report notebook {path} is missing from the installed harness package (its package data); "
            "reinstall the harness (`pip install --force-reinstall hackathon-harness`, or `pip install -e .` "
            "from a source checkout)"
        )
    return path


def _file_safe(name: str) -> str:
    """A file-name fragment for a team name: :func:`harness.text.slug` (ASCII names kept; others folded plus a
    hash, so two teams never share a report file)."""
    return slug(name)


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
