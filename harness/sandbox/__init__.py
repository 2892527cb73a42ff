"""Sandboxes: run untrusted team code with limits. See :mod:`harness.sandbox.base` for the contract and the run
lifecycle (:class:`BaseSandbox`) every implementation shares.

Implementations are registered explicitly in :data:`SANDBOXES` and imported only when asked for:

* ``docker`` (:class:`harness.sandbox.docker.DockerSandbox`): production; isolates (the default).
* ``process`` (:class:`harness.sandbox.process.ProcessSandbox`): a local subprocess for laptops without Docker;
  does NOT isolate.

A sandbox is a context manager (``with get_sandbox() as box: ...``); ``close()`` stops what it still runs.

Modules: ``base`` (contract, lifecycle, signal guards), ``docker`` (policy and the Docker sandbox), ``engine`` (the
thin Docker SDK layer), ``output`` (output trees and capped output areas), ``memory`` (memory sampling of a
container), ``logs`` (the bounded log and its pump), ``process`` (the process sandbox).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import SandboxError
from harness.sandbox.base import (
    ArtifactArea,
    BaseSandbox,
    Limits,
    Mount,
    RunOutcome,
    RunRequest,
    RunResult,
    Sandbox,
)

__all__ = [
    "SANDBOXES",
    "ArtifactArea",
    "BaseSandbox",
    "Limits",
    "Mount",
    "RunOutcome",
    "RunRequest",
    "RunResult",
    "Sandbox",
    "get_sandbox",
]


def _docker() -> Sandbox:
    from harness.sandbox.docker import DockerSandbox

    return DockerSandbox()


def _process() -> Sandbox:
    from harness.sandbox.process import ProcessSandbox

    return ProcessSandbox()


#: Sandbox name -> factory of a new instance (the factory imports its module).
SANDBOXES: dict[str, Callable[[], Sandbox]] = {"docker": _docker, "process": _process}


def get_sandbox(name: str = "docker") -> Sandbox:
    """A new sandbox of the given kind (cheap: the Docker one connects to the engine on its first run).

    Args:
        name: ``"docker"`` or ``"process"``.

    Raises:
        SandboxError: unknown name (the message lists the known ones).
    """
    try:
        factory = SANDBOXES[name]
    except KeyError:
        known = ", ".join(sorted(SANDBOXES))
        raise SandboxError(f"unknown sandbox {name!r}; choose one of: {known}") from None
    return factory()
