"""The ``harness`` command line: a thin shell over the library.

Each command parses its arguments, calls one library function and maps :class:`~harness.errors.HarnessError`
subclasses to the exit codes in :data:`harness.errors.EXIT_CODES`. No work happens at import; logging handlers are
configured here and nowhere else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from harness.errors import EXIT_CODES, HarnessError

app = typer.Typer(
    help="Evaluate hackathon submissions in sandboxes and publish honest metric tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
task_app = typer.Typer(help="Task authors: prepare and validate a task.", no_args_is_help=True)
image_app = typer.Typer(help="Build task images (offline; images are never pulled).", no_args_is_help=True)
app.add_typer(task_app, name="task")
app.add_typer(image_app, name="image")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Harness home: results store (SQLite) and artifacts. Default: $HARNESS_HOME or ./.harness"),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy URL of the results store (overrides --home's SQLite file; or $HARNESS_DB_URL)."),
]


def _exit_code(exc: HarnessError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]  # type: ignore[index]
    return 2


def handle_errors(func: F) -> F:
    """Turn a HarnessError into its message on stderr and its documented exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HarnessError as exc:
            err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, markup=True)
            raise typer.Exit(_exit_code(exc)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: the sandboxes were removed; run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# --- task authors --------------------------------------------------------------------------------------------
@task_app.command("prepare")
@handle_errors
def task_prepare(task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")]) -> None:
    """Build the task's data (public, inputs, hidden references) with its prepare script."""
    from harness.tasks import prepare_task

    out = prepare_task(task_dir, echo=err_console.print)
    console.print(f"data ready in {out}")


@task_app.command("validate")
@handle_errors
def task_validate(
    task_dir: Annotated[Path, typer.Argument(help="Task folder holding task.yaml.")],
    sandbox: Annotated[str, typer.Option(help="Sandbox for the baseline run: docker or process.")] = "docker",
) -> None:
    """Check the spec and data, score the reference against itself, run and score the baseline."""
    from harness.tasks import validate_task

    report = validate_task(task_dir, sandbox=sandbox, echo=err_console.print)
    console.print(report.render())
    if not report.ok:
        raise typer.Exit(1)


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

    built = build_task_image(load_spec(task_dir), base=base, force=force, echo=err_console.print)
    verb = "reused" if built.reused else "built"
    console.print(f"{verb} image {built.tag} ({built.image_id[:19]}) in {built.duration_s:.1f} s")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
