"""The sandbox contract: what a run asks for and what it gets back.

A :class:`Sandbox` runs one command from one image with mounts and limits, and returns a :class:`RunResult`.
Implementations: ``docker`` (production, isolating) and ``process`` (a local subprocess for team laptops
without Docker; it does NOT isolate). Both take the same :class:`RunRequest`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["Limits", "Mount", "RunOutcome", "RunRequest", "RunResult", "Sandbox"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run (defaults are the task spec's defaults).

    Attributes:
        time_s: wall-clock limit in seconds, enforced from outside (the container is killed on expiry).
        memory_mb: memory limit in MiB (RAM; swap is not granted).
        cpus: CPU share (1.0 = one core).
        pids: maximum number of processes/threads in the sandbox (fork bombs stop here).
        output_mb: maximum total bytes, in MiB, the run may write to its output folder.
        log_kb: maximum bytes, in KiB, of stdout+stderr kept; the rest is dropped and a marker appended.
    """

    time_s: float = 600.0
    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 256
    output_mb: int = 64
    log_kb: int = 256


@dataclass(frozen=True)
class Mount:
    """A host folder made visible in the sandbox.

    Attributes:
        source: absolute host path (must exist).
        target: absolute path inside the sandbox, e.g. ``/submission``.
        read_only: mount read-only (everything but the output folder is).
    """

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunRequest:
    """One command to run in a sandbox.

    Attributes:
        image: image reference (name:tag or id). It must exist locally; it is never pulled.
        command: argv list, run by the image's Python environment (e.g. ``["python", "main.py"]``).
        mounts: read-only mounts (submission, input data). Never the hidden reference or the store.
        output_dir: host folder that receives the run's outputs; mounted writable at ``output_target``,
            capped at ``limits.output_mb``. It must exist and be empty.
        limits: resource limits.
        workdir: working directory inside the sandbox.
        env: extra environment variables (no secrets: teams' code reads them).
        output_target: where ``output_dir`` appears inside the sandbox.
        label: free text for logs and container labels (e.g. ``"team-a/3f2c1d"``).
    """

    image: str
    command: tuple[str, ...]
    output_dir: Path
    mounts: tuple[Mount, ...] = ()
    limits: Limits = field(default_factory=Limits)
    workdir: str = "/submission"
    env: tuple[tuple[str, str], ...] = ()
    output_target: str = "/output"
    label: str = ""


class RunOutcome(str, enum.Enum):
    """How a sandboxed command ended (the pipeline maps these to run statuses)."""

    EXITED = "exited"  # the command ended by itself; see exit_code
    TIMED_OUT = "timed_out"  # killed from outside at limits.time_s
    OUT_OF_MEMORY = "out_of_memory"  # killed by the kernel's OOM killer at limits.memory_mb
    OUTPUT_LIMIT = "output_limit"  # wrote more than limits.output_mb to the output folder


@dataclass(frozen=True)
class RunResult:
    """What a sandboxed run did.

    Attributes:
        outcome: how it ended (see :class:`RunOutcome`).
        exit_code: the command's exit code (``None`` when killed before it could exit).
        duration_s: wall-clock seconds from start to end of the command.
        peak_memory_mb: peak memory use in MiB as the sandbox measured it (``None`` if unknown).
        log: stdout and stderr interleaved, decoded as UTF-8 with replacement, at most ``limits.log_kb``
            KiB; when cut, it ends with :data:`LOG_TRUNCATED_MARKER` and the count of bytes dropped.
        log_truncated: whether the log was cut.
        output_bytes: bytes in the output folder after the run.
        image_id: the id (sha256) of the image that ran, for provenance (``""`` for ``process``).
        sandbox: the implementation's name (``"docker"`` or ``"process"``).
    """

    outcome: RunOutcome
    exit_code: int | None
    duration_s: float
    peak_memory_mb: float | None
    log: str
    log_truncated: bool
    output_bytes: int = 0
    image_id: str = ""
    sandbox: str = ""

    @property
    def ok(self) -> bool:
        """True when the command exited by itself with code 0."""
        return self.outcome is RunOutcome.EXITED and self.exit_code == 0


#: Appended to a log that was cut at its cap: ``"\n[harness: log truncated at 256 KiB; 104857600 bytes dropped]\n"``.
LOG_TRUNCATED_MARKER = "[harness: log truncated"


@runtime_checkable
class Sandbox(Protocol):
    """Runs one :class:`RunRequest` and always cleans up after it (container/process removed, even on Ctrl-C).

    Raises (from ``run``):
        EngineUnavailableError: no engine to run in (docker only).
        ImageError: the image does not exist locally.
        SandboxError: the sandbox itself failed (not the team's code).
    """

    name: str

    def run(self, request: RunRequest) -> RunResult:
        """Run the request to completion and return what happened."""
        ...
