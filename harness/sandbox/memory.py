"""A container's memory high-water mark, followed while it runs (for :attr:`RunResult.peak_memory_mb`).

:class:`MemorySampler` reads the container's cgroup file on this host when it can (the kernel's own high-water
mark, see :data:`CGROUP_PEAK_FILES`) and falls back to the engine's stats otherwise (a remote engine, another
cgroup layout).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.sandbox.engine import EngineAPI

__all__ = ["CGROUP_PEAK_FILES", "MemorySampler"]

logger = logging.getLogger(__name__)
#: Files holding a container's memory high-water mark, relative to the cgroup root, by cgroup layout
#: (cgroupfs or systemd driver; v1 ``max_usage_in_bytes``, v2 ``memory.peak`` on kernels >= 5.19).
CGROUP_PEAK_FILES = (
    "memory/docker/{id}/memory.max_usage_in_bytes",
    "memory/system.slice/docker-{id}.scope/memory.max_usage_in_bytes",
    "docker/{id}/memory.peak",
    "system.slice/docker-{id}.scope/memory.peak",
)


class MemorySampler:
    """Follows the container's memory high-water mark until stopped (its own thread).

    Preferred source: the container's cgroup file on this host (see :data:`CGROUP_PEAK_FILES`), read every
    ``fast_interval_s`` - the kernel's own high-water mark, page cache included. Fallback (remote engine,
    other layout): the engine's stats, which arrive about once a second; cgroup v1 engines report
    ``memory_stats.max_usage`` (a high-water mark), cgroup v2 engines only the current ``usage``, so the
    highest sample is kept and a short spike between samples can be missed.

    Args:
        api: the engine layer (for the stats fallback).
        container: container id (the cgroup files are named by it).
        interval_s: seconds between two engine stats samples.
        cgroup_root: where this host's cgroup file systems are mounted (``None``: use only the engine's stats).
        fast_interval_s: seconds between two reads of the cgroup file.

    Attributes:
        peak_bytes: the highest memory use seen, in bytes (``None`` until a sample arrived).
    """

    def __init__(
        self, api: EngineAPI, container: str, interval_s: float, cgroup_root: Path | None, fast_interval_s: float = 0.05
    ) -> None:
        self._api = api
        self._container = container
        self._interval_s = interval_s
        self._fast_interval_s = fast_interval_s
        self._cgroup_root = cgroup_root
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{container[:12]}-memory", daemon=True)
        self.peak_bytes: int | None = None

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait (at most 1.5 s) for the thread; fine if it was never started."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=1.5)

    def _record(self, value: int) -> None:
        if value > 0:
            self.peak_bytes = max(self.peak_bytes or 0, value)

    def _peak_file(self) -> Path | None:
        if self._cgroup_root is None:
            return None
        for pattern in CGROUP_PEAK_FILES:
            path = self._cgroup_root / pattern.format(id=self._container)
            if path.is_file():
                return path
        return None

    def _loop(self) -> None:
        path = self._peak_file()
        while not self._stop.is_set():
            if path is not None:
                try:
                    self._record(_read_int(path))
                except (OSError, ValueError):  # the cgroup is gone: the container ended
                    return
                self._stop.wait(self._fast_interval_s)
                continue
            try:
                memory = self._api.stats(self._container).get("memory_stats") or {}
            except Exception as exc:  # the container ended between two samples
                logger.debug("stats sample failed: %s", exc)
                return
            if memory:
                self._record(max(int(memory.get(key) or 0) for key in ("max_usage", "peak", "usage")))
            self._stop.wait(self._interval_s)


def _read_int(path: Path) -> int:
    """The integer in a cgroup file (``0`` when empty), read with plain system calls: the sampler reads it every
    50 ms for each running container, and ``Path.read_text`` (a text wrapper, a decoder) cost several times more.

    Raises:
        OSError: the file cannot be opened or read (the cgroup is gone).
        ValueError: it does not hold an integer.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 64)
    finally:
        os.close(fd)
    return int(data.strip() or 0)
