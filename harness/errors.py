"""The harness's exception hierarchy: one root, structured and picklable subclasses.

Every error a user can hit derives from :class:`HarnessError`. Each subclass keeps its structured fields as
attributes *and* passes them to ``Exception.__init__`` in order, so instances survive ``pickle`` (they cross
process boundaries: the evaluator subprocess, worker pools, Dask workers). The CLI maps each class to an exit
code (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "EngineUnavailableError",
    "EvaluatorError",
    "HarnessError",
    "ImageError",
    "InvalidOutputError",
    "PrepareError",
    "SandboxError",
    "SpecError",
    "StoreError",
    "SubmissionError",
]


class HarnessError(Exception):
    """Root of every error the harness raises on purpose.

    Args:
        message: what was wrong and, where possible, how to fix it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(HarnessError):
    """A task spec (task.yaml) or a task folder is invalid.

    Args:
        message: the problem, e.g. ``"expected 'minimize' or 'maximize', got 'lower'"``.
        file: the file at fault (``task.yaml``, an evaluator module), or ``""``.
        field: dotted field path such as ``"metrics[1].goal"``, or ``""`` for the whole file.
    """

    def __init__(self, message: str, file: str = "", field: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.field = field
        self.args = (message, file, field)

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        return f"{where}: {self.message}" if where else self.message


class PrepareError(HarnessError):
    """Building a task's data failed: its prepare packages cannot be installed, or its prepare script failed.

    Not a :class:`SpecError`: the spec may be valid while a package is missing from every index, or the script
    raises halfway.

    Args:
        message: what failed and how to fix it, e.g. ``"cannot install 'nosuchpkg==1.0' ..."``.
        file: the file at fault (``task.yaml`` for packages, the prepare script for its failure), or ``""``.
        field: the spec key at fault (``"data.prepare_packages"``, ``"data.prepare"``), or ``""``.
        output: the last lines of pip's or the script's output, or ``""``.
    """

    def __init__(self, message: str, file: str = "", field: str = "", output: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.field = field
        self.output = output
        self.args = (message, file, field, output)

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}\n{self.output}" if self.output else text


class SubmissionError(HarnessError):
    """A submission cannot be opened: unsafe or broken archive, too large, no entry point.

    Args:
        message: what was refused and why, e.g. ``"archive member '../x' leaves the submission folder"``.
        path: the submission as given (file or folder), or ``""``.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.args = (message, path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SandboxError(HarnessError):
    """The sandbox itself failed (not the team's code): container could not start, engine vanished.

    Args:
        message: what failed.
        exit_code: the container's exit code if it ran, else ``None``.
        log_tail: the last lines of its log (already capped), or ``""``.
    """

    def __init__(self, message: str, exit_code: int | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.args = (message, exit_code, log_tail)


class EngineUnavailableError(SandboxError):
    """No Docker engine answers. The message says how to get one or to use ``--sandbox process``."""


class ImageError(HarnessError):
    """A task image cannot be built or is missing (images are never pulled implicitly)."""


class InvalidOutputError(HarnessError):
    """A submission's outputs do not match the task's prediction schema.

    Args:
        message: one-line summary.
        problems: each problem as a sentence a team can act on, e.g.
            ``"predictions.csv lacks 1,204 of 40,000 ids; first missing: 20131001-0042"``.
    """

    def __init__(self, message: str, problems: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.args = (message, self.problems)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class EvaluatorError(HarnessError):
    """The task's evaluator raised, hung past its time limit, or returned malformed metrics.

    Args:
        message: what went wrong (``"evaluator exceeded its time limit of 120 s"``).
        detail: the evaluator's traceback or extra context, or ``""``.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
        self.args = (message, detail)


class StoreError(HarnessError):
    """The results store cannot be opened or written (bad URL, locked by another run, schema mismatch)."""


#: Exit codes of the ``harness`` CLI, by error class (most specific first). 0 is success, 1 is reserved for
#: "the command worked but the answer is no" (e.g. ``harness check`` on a submission that would not be scored).
EXIT_CODES: dict[type[HarnessError], int] = {
    SpecError: 3,
    SubmissionError: 4,
    InvalidOutputError: 5,
    EvaluatorError: 6,
    EngineUnavailableError: 7,
    SandboxError: 8,
    ImageError: 9,
    StoreError: 10,
    PrepareError: 11,
    HarnessError: 2,
}
