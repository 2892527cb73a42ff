"""Judging on a Dask cluster: the executor the coordinator submits runs to, and the clean-up on its workers.

The coordinator (:func:`harness.scheduling.run_batch`) submits :func:`harness.pipeline.evaluate_opened` calls to
:func:`cluster_executor`'s executor and alone writes the store. Each worker runs the sandboxes of the runs it was
given; :class:`SandboxCleanup` is registered on every worker, so a worker that is stopped (``SIGTERM`` or Ctrl-C to
``dask worker``, its nanny closing it, a cluster shut down) removes the containers and output areas it started
before it goes, instead of leaving them on its Docker host.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["CLEANUP_WAIT_S", "SandboxCleanup", "cluster_executor"]

log = logging.getLogger(__name__)

#: How long a closing worker waits for its killed runs to unmount their output areas (seconds).
CLEANUP_WAIT_S = 30.0

try:  # the plugin base class comes with the `distributed` extra; without it this module still imports
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - depends on the installed extras
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class SandboxCleanup(_WorkerPlugin):
    """A Dask worker plugin: when the worker closes, remove every container of the sandboxes alive in it.

    The runs they belonged to are then lost to the coordinator (Dask reports the worker gone); their rows stay
    ``running`` until the coordinator stops, and the next ``harness run`` evaluates them again.
    """

    name = "harness-sandbox-cleanup"
    idempotent = True  # registering it again (each batch) keeps one instance per worker

    def teardown(self, worker: Any) -> None:
        """Called by the worker as it closes; blocking is fine there."""
        from harness.sandbox.docker import kill_live_sandboxes

        busy = kill_live_sandboxes(wait_s=CLEANUP_WAIT_S)
        if busy:
            log.warning("worker %s is closing: removed the containers of %s sandbox run(s) in progress", worker, busy)


def cluster_executor(address: str) -> tuple[cf.Executor, Callable[[], None]]:
    """An executor over the Dask cluster at ``address`` (``tcp://host:8786``), with :class:`SandboxCleanup`
    registered on its workers, and the function that closes the client.

    Raises:
        ImportError: Dask distributed is not installed (the message says which extra to install).
        OSError: the scheduler cannot be reached (Dask's own message).
    """
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("--scheduler needs Dask distributed: pip install 'hackathon-harness[distributed]'") from exc
    client = Client(address)
    client.register_plugin(SandboxCleanup())
    return client.get_executor(), client.close
