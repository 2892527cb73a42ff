"""Sandboxes: run untrusted team code with limits. See :mod:`harness.sandbox.base` for the contract.

Implementations are registered explicitly in :data:`SANDBOXES` and imported only when asked for:

* ``docker`` (:class:`harness.sandbox.docker.DockerSandbox`): production; isolates (the default).
* ``process`` (:class:`harness.sandbox.process.ProcessSandbox`): a local subprocess for laptops without Docker;
  does NOT isolate.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import SandboxError
from harness.sandbox.base import Limits, Mount, RunOutcome, RunRequest, RunResult, Sandbox

__all__ = ["SANDBOXES", "Limits", "Mount", "RunOutcome", "RunRequest", "RunResult", "Sandbox", "get_sandbox"]


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
