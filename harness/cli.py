"""The ``harness`` command line: a thin shell over the library.

Each command parses its arguments, calls one library function and maps :class:`~harness.errors.HarnessError`
subclasses to the exit codes in :data:`harness.errors.EXIT_CODES`. No work happens at import; logging handlers are
configured here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_CODES, HarnessError, SubmissionError
from harness.interrupts import Interrupted, Shutdown, graceful_shutdown
from harness.text import visible

if TYPE_CHECKING:
    from harness.record import RunRecord
    from harness.store import Store

app = typer.Typer(
    help="Evaluate hackathon submissions in sandboxes and publish honest metric tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
task_app = typer.Typer(help="Task authors: prepare and validate a task.", no_args_is_help=True)
image_app = typer.Typer(
    help="Build, list, save and load task images (offline; images are never pulled).", no_args_is_help=True
)
app.add_typer(task_app, name="task")
app.add_typer(image_app, name="image")

# Piped output (logs, CI) is not hard-wrapped at 80 columns, and text is never read as rich markup (messages
# quote team names, paths and lists).
console = Console(soft_wrap=True, markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Harness home: store (SQLite; beats $HARNESS_DB_URL) and artifacts. Default: $HARNESS_HOME or ./.harness",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="SQLAlchemy URL of the results store (overrides --home's SQLite file; or $HARNESS_DB_URL)."
    ),
]


def _exit_code(exc: HarnessError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 2


def _run_reporting_errors(func: Callable[..., Any], shutdown: Shutdown, *args: Any, **kwargs: Any) -> Any:
    """Call ``func`` under :func:`graceful_shutdown` (noting a signal in ``shutdown``) and map its errors."""
    try:
        with graceful_shutdown() as state:
            try:
                return func(*args, **kwargs)
            finally:
                shutdown.signum = state.signum
    except HarnessError as exc:
        # Messages quote team text (escapes made visible) and lists (not markup).
        message = escape(visible(f"{type(exc).__name__}: {exc}"))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
        raise typer.Exit(_exit_code(exc)) from None
    except OSError as exc:  # a path the user gave: missing folder, a file where a folder is expected, ...
        said = visible(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        err_console.print(said, highlight=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or a closed terminal (SIGHUP): see harness.interrupts
        code = exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT
        shutdown.signum = code - 128
        with contextlib.suppress(OSError):  # after SIGHUP stderr may be /dev/null; never fail here
            err_console.print("interrupted: the sandboxes were removed; run the same command again to resume.")
        raise typer.Exit(code) from None


def handle_errors(func: F) -> F:
    """Run a command under :func:`~harness.interrupts.graceful_shutdown`; turn a HarnessError into its message on
    stderr and its documented exit code, an interruption into 128 + the signal's number (130, 143, 129)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        shutdown = Shutdown()
        try:
            return _run_reporting_errors(func, shutdown, *args, **kwargs)
        except SystemExit:
            # After a signal the clean-up may end in rich's broken-pipe exit (SystemExit(1): a pipe reader that
            # died with the terminal); the exit code still says which signal stopped the command.
            if shutdown.exit_code is not None:
                raise typer.Exit(shutdown.exit_code) from None
            raise

    return wrapper  # type: ignore[return-value]


def _echo(message: str) -> None:
    """Progress lines of library calls, printed verbatim (no rich markup: task scripts may print brackets)."""
    err_console.print(message, markup=False, highlight=False)


class VisibleFormatter(logging.Formatter):
    """A log formatter that makes control characters visible (:func:`harness.text.visible`): log messages quote
    entry and file names, which a team chose and which may hold escapes."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record (tracebacks included), newlines and tabs kept."""
        return visible(super().format(record))


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(VisibleFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


# --- task authors --------------------------------------------------------------------------------------------
@task_app.command("prepare")
@handle_errors
def task_prepare(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    force: Annotated[bool, typer.Option(help="Replace the data even when it changes under scored runs.")] = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Build the task's data (public, inputs, hidden references) with its prepare script; record its hashes.

    A prepare whose data differs from the data the store's runs were scored on is refused without --force.
    """
    from harness.provenance import prepare_guard
    from harness.tasks import prepare_task

    store = _existing_store(db, home)
    try:
        guard = prepare_guard(store, force=force, echo=_echo) if store is not None else None
        out = prepare_task(task_dir, echo=_echo, guard=guard)
    finally:
        if store is not None:
            store.close()
    console.print(f"data ready in {out}")


def _existing_store(db: str | None, home: Path | None) -> Store | None:
    """The results store if there is one (a SQLite file that does not exist is not created), else ``None``."""
    from harness.settings import get_settings

    url = get_settings().store_url(db, home)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    return _store(db, home)


def _print_stale(spec: Any, db: str | None, home: Path | None, phase: str = "test") -> None:
    """Say on stderr which active results are stale and why (issue 14); nothing when all are current."""
    from harness.provenance import stale_report

    store = _existing_store(db, home)
    if store is None:
        return
    try:
        lines = stale_report(spec, store, phase=phase)
    finally:
        store.close()
    _print_stale_lines(lines)


def _print_stale_lines(lines: list[str]) -> None:
    """The lines of :func:`harness.provenance.stale_report` on stderr, each after ``stale:``."""
    for line in lines:
        err_console.print(visible(f"stale: {line}", keep=""), highlight=False, markup=False, soft_wrap=True)


@task_app.command("validate")
@handle_errors
def task_validate(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    sandbox: Annotated[
        str, typer.Option(help="Sandbox for the baseline and starter notebook runs: docker or process.")
    ] = "docker",
) -> None:
    """Prove a task sound: spec, README/starter/baseline present, data and hidden-reference isolation, a perfect
    prediction reaching each metric's best, the baseline and starter notebook scored, every degenerate submission
    refused or worse than the baseline, and prepare deterministic (run twice)."""
    from harness.tasks import validate_task

    report = validate_task(task_dir, sandbox=sandbox, echo=_echo)
    console.print(report.render())
    if not report.ok:
        raise typer.Exit(1)


@task_app.command("new")
@handle_errors
def task_new(
    task_id: Annotated[str, typer.Argument(help="Id of the new task (lower-case letters, digits, dashes).")],
    kind: Annotated[str, typer.Option(help="Kind of task: regression, classification, forecast or files.")],
    root: Annotated[Path, typer.Option(help="Folder to write task_specs/, evaluators/, examples/ into.")] = Path("."),
) -> None:
    """Write the skeleton of a new task (spec, README, prepare.py, evaluator, starter notebook, examples) that
    `harness task validate` passes as written; every placeholder to replace is marked TODO(author)."""
    from harness.skeleton import new_task

    task_dir = new_task(task_id, kind, root)
    console.print(f"task skeleton written to {task_dir}; next: `harness task prepare {task_dir}`", highlight=False)


@image_app.command("build")
@handle_errors
def image_build(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    base: Annotated[
        str | None,
        typer.Option(help="Base image: 'offline' (debootstrap, default) or a local image such as python:3.11-slim."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if an image with the same inputs exists.")] = False,
) -> None:
    """Build the task's image offline; reuse it when its inputs did not change."""
    from harness.images import build_task_image
    from harness.spec import load_spec

    built = build_task_image(load_spec(task_dir), base=base, force=force, echo=_echo)
    verb = "reused" if built.reused else "built"
    console.print(f"{verb} image {built.tag} ({built.image_id[:19]}) in {built.duration_s:.1f} s")


@image_app.command("packages")
@handle_errors
def image_packages_cmd(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    markdown: Annotated[bool, typer.Option(help="Print the teams' SANDBOX_PACKAGES.md page, not a list.")] = False,
) -> None:
    """List the Python packages and versions installed in the task's built image (name==version, one a line)."""
    from harness.image_io import packages_markdown, sandbox_packages
    from harness.spec import load_spec

    spec = load_spec(task_dir)
    resolved = sandbox_packages(spec)
    typer.echo(packages_markdown(spec, resolved) if markdown else "\n".join(resolved))


@image_app.command("save")
@handle_errors
def image_save(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    file: Annotated[Path, typer.Argument(help="Image file to write (a tar archive, as `docker save` writes).")],
) -> None:
    """Export the task's image to a file that teams load with `harness image load` (no root, no registry)."""
    from harness.image_io import save_task_image
    from harness.spec import load_spec

    spec = load_spec(task_dir)
    path, size = save_task_image(spec, file)
    console.print(f"saved image {spec.image_tag} to {path} ({size / 1e6:.1f} MB)")


@image_app.command("load")
@handle_errors
def image_load(
    file: Annotated[Path, typer.Argument(help="Image file written by `harness image save`.")],
) -> None:
    """Load a task image from a file (`docker load`): what a team does instead of building the image."""
    from harness.image_io import load_image_file

    for name in load_image_file(file):
        console.print(f"loaded image {name}")


def _home(home: Path | None) -> Path:
    from harness.settings import get_settings

    return get_settings().home_dir(home)


def _store(db: str | None, home: Path | None) -> Store:
    from harness.settings import get_settings
    from harness.store import Store

    return Store(get_settings().store_url(db, home))  # an explicit --home beats $HARNESS_DB_URL


# --- judges --------------------------------------------------------------------------------------------------
@app.command("run")
@handle_errors
def run(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    submissions_dir: Annotated[
        Path, typer.Argument(help="Folder with one entry per team (folder, .zip, .tar.gz, .ipynb).")
    ],
    home: HomeOption = None,
    db: DbOption = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Sandboxes run at once (default: 2x cores, within memory and limits).")
    ] = None,
    rerun: Annotated[bool, typer.Option(help="Evaluate everything again; results replace, never add.")] = False,
    phase: Annotated[str, typer.Option(help="test (judging, hidden reference) or validation.")] = "test",
    sandbox: Annotated[str, typer.Option(help="docker (isolating, default) or process (no isolation).")] = "docker",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://host:8786) to spread runs over machines.")
    ] = None,
) -> None:
    """Evaluate every new or changed submission in sandboxes and record the results."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.scheduling import Hooks, evaluate_many
    from harness.settings import get_settings
    from harness.spec import PHASES, load_spec

    if phase not in PHASES:
        raise typer.BadParameter(f"expected one of {', '.join(PHASES)}", param_hint="--phase")
    spec = load_spec(task_dir)
    if not submissions_dir.is_dir():
        raise SubmissionError("not a folder of submissions (one entry per team)", str(submissions_dir))
    submissions_dir = submissions_dir.absolute()  # recorded as each run's source: `verify` from elsewhere finds it
    store = _store(db, home)
    counts: dict[str, int] = {}
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and not get_settings().progress,
    )
    bar = progress.add_task(f"evaluating {spec.id}", total=None, counts="")

    def planned(*, total: int, skipped: int) -> None:
        progress.update(bar, total=float(total))
        if skipped:
            err_console.print(f"{skipped} submission(s) unchanged since their last run: not evaluated again")

    def finished(*, record: RunRecord) -> None:
        counts[record.status] = counts.get(record.status, 0) + 1
        progress.update(bar, advance=1, counts=" ".join(f"{k}:{v}" for k, v in sorted(counts.items())))
        # One line per run; team text is made visible (an escape in a reason must not act on the terminal).
        line = visible(f"{record.team:<24} {record.status:<16} {record.reason}", keep="")
        progress.console.print(line[:200], highlight=False, markup=False, soft_wrap=True)

    try:
        with progress:
            summary = evaluate_many(
                spec,
                submissions_dir,
                store=store,
                home=_home(home),
                workers=workers,
                rerun=rerun,
                phase=phase,
                sandbox=sandbox,
                scheduler_address=scheduler,
                hooks=Hooks(on_batch_planned=planned, on_run_finished=finished),
            )
    finally:
        store.close()
    console.print(summary.message(), highlight=False, soft_wrap=True)
    _print_stale(spec, db, home, phase)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (reference counting still frees what it can).

    Ranking 10,000 runs makes several hundred thousand objects (the runs, their dicts, pandas' modules imported
    on the way), and each of the collector's full passes walks every live one: about a fifth of
    ``harness leaderboard``'s first call here, for garbage that is nearly all freed by reference counting anyway.
    The objects made in the block are frozen at its end (:func:`gc.freeze`: out of the collector's later passes,
    still freed by reference counting), and every object at the process's exit (see the comments below).
    """
    import atexit
    import gc

    # At the process's exit, Python's finalisation runs full passes over every object left (the imported
    # libraries' and the board's): about 0.2 s here. Frozen ones (gc.freeze, at exit: nothing is collected
    # after it) are skipped; the operating system takes the memory back.
    atexit.register(gc.freeze)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Re-enabled as it was, the collector's next pass would walk every object made in the block (0.05 s
        # here): they are frozen first (still freed by reference counting; the command ends right after).
        gc.freeze()
        if enabled:
            gc.enable()


@app.command("leaderboard")
@handle_errors
def leaderboard_cmd(
    task: Annotated[str, typer.Argument(help="Task id (found under ./task_specs) or task folder.")],
    home: HomeOption = None,
    db: DbOption = None,
    split: Annotated[str, typer.Option(help="public or private.")] = "public",
    selection: Annotated[
        str | None, typer.Option(help="best or latest run per team (default: the spec's rule).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="table, csv, markdown, html, json or parquet (default: from --output's suffix, else table).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of the terminal.")] = None,
    wide: Annotated[bool, typer.Option(help="Show every column (submission hash, timings, ...) in the table.")] = False,
    similar: Annotated[
        bool, typer.Option(help="Judges only: add the most similar other team (code or predictions), see `similar`.")
    ] = False,
    intervals: Annotated[
        bool,
        typer.Option(help="Paired bootstrap intervals, rank ranges and tie groups (--no-intervals: faster)."),
    ] = True,
    top: Annotated[
        int, typer.Option(min=0, help="Rows of the terminal table (0: every row); exports always hold every row.")
    ] = 100,  # harness.cli_output.DEFAULT_TOP (not imported here: rich stays out of the other commands' start)
) -> None:
    """Print or export the leaderboard: one ranked row per team.

    The same request with nothing it reads changed is answered from its last output (harness.board_snapshot).
    """
    if split not in ("public", "private"):
        raise typer.BadParameter("expected public or private", param_hint="--split")
    if selection not in (None, "best", "latest"):
        raise typer.BadParameter("expected best or latest", param_hint="--selection")
    suffixes = {
        ".csv": "csv",
        ".md": "markdown",
        ".html": "html",
        ".htm": "html",
        ".json": "json",
        ".parquet": "parquet",
    }
    if fmt is None:
        fmt = suffixes.get(output.suffix.lower(), "") if output is not None else "table"
        if not fmt:
            raise typer.BadParameter(
                f"cannot tell the format from {output}; give --format or a suffix among {', '.join(suffixes)}",
                param_hint="--output",
            )
    if fmt not in ("table", *suffixes.values()):
        raise typer.BadParameter("expected table, csv, markdown, html, json or parquet", param_hint="--format")
    if fmt == "table" and output is not None:
        raise typer.BadParameter(
            "the table is for the terminal; give --format csv/markdown/html/json/parquet", param_hint="--output"
        )
    if fmt == "parquet" and output is None:
        raise typer.BadParameter("parquet is a binary format: give --output FILE.parquet", param_hint="--format")
    from harness import board_snapshot

    options = {"task": task, "split": split, "selection": selection, "format": fmt, "wide": wide, "top": top,
               "intervals": intervals}  # fmt: skip
    request = None if similar or output is not None else board_snapshot.open_request(options, db=db, home=home)
    if request is not None and request.replay():
        return
    paused = contextlib.nullcontext() if similar else _cyclic_gc_paused()
    with request.recording() if request is not None else contextlib.nullcontext() as recording, paused:
        read: list[Path] = []
        from harness.cli_output import compute_leaderboard

        spec = compute_leaderboard(
            console, err_console, _print_stale_lines, task=task, fmt=fmt, output=output, db=db, home=home,
            split=split, selection=selection, similar=similar, intervals=intervals, wide=wide, top=top, read=read,
            recording=recording,
        )  # fmt: skip
    if recording is not None:
        from harness.store.reading import resolve_db_url

        files = board_snapshot.task_lookup_files(task) + read
        recording.save(files, store_url=resolve_db_url(db, home), image_tag=spec.image_tag)


@app.command("rescore")
@handle_errors
def rescore_cmd(
    task: Annotated[str, typer.Argument(help="Task id (found under ./task_specs) or task folder.")],
    team: Annotated[str | None, typer.Option(help="Only this team's active runs.")] = None,
    split: Annotated[
        str | None, typer.Option(help="Split whose score changes are shown (every split is scored again).")
    ] = None,
    phase: Annotated[str, typer.Option(help="test (judging) or validation.")] = "test",
    home: HomeOption = None,
    db: DbOption = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Evaluator processes at once (default: cores).")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Also score runs already current (default: stale or unknown ones only).")
    ] = False,
) -> None:
    """Score the kept predictions of every active run again with the current evaluator and reference.

    No team code runs and no sandbox starts. Old scores stay in the history; the new ones become active.
    """
    from harness.ranking import resolve_task
    from harness.rescoring import rescore_task

    spec = resolve_task(task)
    store = _store(db, home)
    try:
        summary = rescore_task(spec, store, team=team, phase=phase, split=split, workers=workers, every=every)
    finally:
        store.close()
    for line in summary.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if summary.evaluator_errors:  # the author's to fix: a script running rescore must see it failed
        from harness.errors import EXIT_CODES, EvaluatorError

        raise typer.Exit(EXIT_CODES[EvaluatorError])


@app.command("verify")
@handle_errors
def verify_cmd(
    run_id: Annotated[int, typer.Argument(help="Run to verify (run_id in `harness leaderboard --format json`).")],
    task: Annotated[
        str | None, typer.Option(help="Task folder or id (default: the run's task under ./task_specs).")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    sandbox: Annotated[str, typer.Option(help="docker (isolating, default) or process (no isolation).")] = "docker",
) -> None:
    """Run one recorded submission again in a fresh sandbox: are its predictions byte-identical, its scores equal?

    Nothing is written to the store. Exit 0 when the run reproduced, 1 when it did not.
    """
    from harness.ranking import resolve_task
    from harness.verify import verify_run

    store = _store(db, home)
    try:
        result = verify_run(store, run_id, home=_home(home), spec=resolve_task(task) if task else None, sandbox=sandbox)
    finally:
        store.close()
    for line in result.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if not result.reproduced:
        raise typer.Exit(1)


# --- teams ---------------------------------------------------------------------------------------------------
@app.command("check")
@handle_errors
def check_cmd(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml (the starter kit's task/).")],
    submission: Annotated[Path, typer.Argument(help="Your submission: a folder, .zip, .tar.gz or .ipynb.")],
    sandbox: Annotated[
        str, typer.Option(help="docker (the judges' sandbox, default) or process (no Docker; does not isolate).")
    ] = "docker",
    artifacts: Annotated[
        Path | None, typer.Option(help="Keep the log, executed notebook and outputs here (default ./.harness/check/).")
    ] = None,
) -> None:
    """Self-check a submission with the judges' code path on the validation split. Exit 0 only if it would be scored."""
    from harness.selfcheck import check

    result = check(task_dir, submission, sandbox=sandbox, artifacts_dir=artifacts)
    console.print(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command("starter")
@handle_errors
def starter_cmd(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml (with prepared data).")],
    dest: Annotated[Path, typer.Argument(help="New folder for the starter kit.")],
) -> None:
    """Write a team's starter kit: README, public data, template notebook, and the self-check task folder."""
    from harness.starter import write_starter_kit

    kit = write_starter_kit(task_dir, dest)
    console.print(f"starter kit written to {kit}; teams start with {kit / 'README.md'}")


@app.command("report")
@handle_errors
def report_cmd(
    task: Annotated[str, typer.Argument(help="Task id (found under ./task_specs) or task folder.")],
    team: Annotated[str | None, typer.Option(help="Also review this team: all its runs, logs, error analysis.")] = None,
    home: HomeOption = None,
    db: DbOption = None,
    split: Annotated[str, typer.Option(help="Test split the leaderboard shows: public or private.")] = "public",
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default: reports/<task id>).")] = None,
    templates: Annotated[
        Path | None,
        typer.Option(help="Folder of your own leaderboard.ipynb / submission_review.ipynb (default: the harness's)."),
    ] = None,
) -> None:
    """Execute the judges' notebooks with papermill and export them to HTML (code hidden); print the paths.

    Explore them in JupyterLab: `.venv/bin/jupyter lab --ServerApp.root_dir=. --ContentsManager.allow_hidden=True
    reports/TASK/leaderboard.ipynb` (from the project folder, so links to the run artifacts work).
    """
    from harness.ranking import resolve_task
    from harness.report import write_report

    _print_stale(resolve_task(task), db, home)
    paths = write_report(
        task, db_url=db, home=home, team=team, out_dir=out, split=split, echo=_echo, templates_dir=templates
    )
    for path in paths.files():
        console.print(str(path), highlight=False, markup=False, soft_wrap=True)


@app.command("similar")
@handle_errors
def similar_cmd(
    task: Annotated[str, typer.Argument(help="Task id (found under ./task_specs) or task folder.")],
    home: HomeOption = None,
    db: DbOption = None,
    predictions: Annotated[
        bool, typer.Option(help="Also compare the teams' kept predictions on the hidden test rows.")
    ] = True,
) -> None:
    """Judges: list pairs of teams with similar code (starter kit code removed) or similar hidden-row predictions.

    Each team's leaderboard submission is compared with every other team's; thresholds are the spec's
    `similarity:` section. Evidence for judges only: nothing is disqualified, and teams never see it.
    """
    from harness.ranking import metric_table, resolve_task
    from harness.similarity import find_similar, findings_lines

    spec = resolve_task(task)
    store = _store(db, home)
    try:
        board = metric_table(spec, store)
        runs = store.runs(spec.id, phase="test")
    finally:
        store.close()
    findings = find_similar(
        spec, runs, home=_home(home), run_ids=[int(r) for r in board["run_id"]], predictions=predictions
    )
    for line in findings_lines(findings):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("overview")
@handle_errors
def overview_cmd(
    tasks_dir: Annotated[Path, typer.Argument(help="Folder with one task folder per task.")] = Path("task_specs"),
    home: HomeOption = None,
    db: DbOption = None,
    reports: Annotated[Path, typer.Option(help="Folder `harness report` wrote into.")] = Path("reports"),
) -> None:
    """Print the hackathon overview: per task, teams, valid runs, the public leader and the report's path."""
    from harness.overview import find_tasks, format_overview, overview

    store = _store(db, home)
    try:
        rows = overview(find_tasks(tasks_dir), store, reports=reports)
    finally:
        store.close()
    cells = [[visible(c, keep="") for c in line] for line in format_overview(rows, base=Path.cwd())]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    console.print(f"hackathon overview: {len(rows)} task(s)", highlight=False)
    for line in cells:  # plain aligned text: stays a table in a log or a narrow terminal (lines may be long)
        text = "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        console.print(text, highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
