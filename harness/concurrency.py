"""How many sandboxes a batch runs at once by default: the machine's cores, memory and what its CPUs do now.

:func:`default_workers` chooses the concurrency of a batch without ``--workers``; :class:`IdleWindow` measures
whether other work keeps the CPUs busy (the batch opens one as it starts and reads it once its plan is known, so
the measurement costs no waiting of its own). Linux's /proc/stat and /proc/meminfo where present; elsewhere the
load average and no memory bound.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.spec import TaskSpec

__all__ = ["BUSY_BELOW_IDLE", "IdleWindow", "cpu_ticks", "default_workers", "idle_cpu_fraction"]

#: Clock ticks per second of /proc/stat's counters (``SC_CLK_TCK``; 100 on Linux).
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _available_memory_mb() -> float | None:
    """MemAvailable of /proc/meminfo in MiB, or ``None`` where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) clock ticks of all CPUs since boot from /proc/stat's ``cpu`` line, or ``None`` where unreadable.

    Idle counts ``idle`` and ``iowait``; total every field but ``guest``/``guest_nice`` (already inside ``user``).
    """
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields)


def _own_ticks() -> float:
    """CPU clock ticks used so far by this process (every thread) and its children that ended (``os.times``)."""
    times = os.times()
    return (times.user + times.system + times.children_user + times.children_system) * _CLOCK_TICKS


class IdleWindow:
    """The share of the CPUs that other processes left idle from when the window was opened until it is read.

    Made at the start of a batch, read once its plan is known (:meth:`idle_share`): the batch's own opening,
    hashing and planning run inside the window, so the sample costs no extra waiting unless the window is
    shorter than the minimum asked, and this process's own CPU time over it (``os.times``) counts as idle, since
    it is the batch itself, not other work on the machine. Read from /proc/stat's ``cpu`` line: what the
    machine does now, unlike the load average, which lags by a minute (a benchmark's or an earlier batch's
    containers still count in it long after they ended).
    """

    def __init__(self) -> None:
        self._opened = time.monotonic()
        self._ticks = cpu_ticks()
        self._own = _own_ticks()

    def idle_share(self, min_s: float = 0.2) -> float | None:
        """The idle share (0.0 to 1.0) since the window opened, after sleeping what is left of ``min_s`` seconds.

        Returns:
            The share, or ``None`` where /proc/stat is missing (not Linux) or no tick passed.
        """
        if self._ticks is None:
            return None
        left = min_s - (time.monotonic() - self._opened)
        if left > 0:
            time.sleep(left)
        after = cpu_ticks()
        if after is None or after[1] <= self._ticks[1]:
            return None
        idle = after[0] - self._ticks[0] + max(0.0, _own_ticks() - self._own)
        return min(1.0, max(0.0, idle / (after[1] - self._ticks[1])))


def idle_cpu_fraction(sample_s: float = 0.2) -> float | None:
    """The share of all CPUs that other processes leave idle over the next ``sample_s`` seconds (0.0 to 1.0;
    sleeps that long): an :class:`IdleWindow` opened now and read after ``sample_s``.

    Returns:
        The idle share, or ``None`` where /proc/stat is missing (not Linux) or no tick passed.
    """
    return IdleWindow().idle_share(sample_s)


#: A machine with less than this share of its CPUs idle counts as busy for :func:`default_workers`.
BUSY_BELOW_IDLE = 0.5


def default_workers(
    spec: TaskSpec, *, cores: int | None = None, memory_mb: float | None = None, idle: float | None = None
) -> int:
    """How many sandboxes a batch runs at once when ``--workers`` is not given.

    A trivial run is mostly waiting (on the engine creating and removing its container, on the kernel starting),
    so twice as many runs as their CPUs fill the cores (on 2 cores, bare ``docker run`` of papermill is fastest 4
    at a time). Bounded by the spec's limits and the machine: the runs' ``limits.cpus`` together at most twice
    the cores, or only the cores themselves when other processes left less than half of the CPUs idle (while
    the batch was planned, at least 0.2 s: :class:`IdleWindow`, :data:`BUSY_BELOW_IDLE`; a busy machine is not
    overloaded further); and each run's memory, the larger of ``limits.memory_mb`` and the evaluator's
    ``evaluator.memory_mb`` (a worker scores a run after its sandbox is gone, so the two never add up; counting
    their sum chose 3 instead of 4 for the minimal task on a 24 GiB machine whenever less than 23.2 GiB was
    available), together at most three quarters of the memory available now. The idle share is sampled now
    rather than read from the 1-minute load average, which still counts work that ended up to a minute ago (a
    previous batch or benchmark halved the workers for nothing).

    Args:
        spec: the task (its limits).
        cores: the machine's cores (default: ``os.cpu_count()``).
        memory_mb: memory available in MiB (default: MemAvailable of /proc/meminfo; no bound where unknown).
        idle: the share of the CPUs idle now, 0.0 to 1.0 (default: :func:`idle_cpu_fraction`, which takes 0.2 s;
            where it is unknown, the machine counts as busy only if its 1-minute load average exceeds the cores).

    Returns:
        At least 1.
    """
    cores = cores or os.cpu_count() or 1
    memory_mb = memory_mb if memory_mb is not None else _available_memory_mb()
    idle = idle if idle is not None else idle_cpu_fraction()
    if idle is not None:
        busy = idle < BUSY_BELOW_IDLE
    else:
        try:
            busy = os.getloadavg()[0] > cores
        except OSError:
            busy = False
    cpus = max(float(spec.limits.cpus), 0.1)
    by_cpu = int((cores if busy else 2 * cores) / cpus)
    per_run_mb = max(spec.limits.memory_mb, spec.evaluator.memory_mb)
    by_memory = int(0.75 * memory_mb / per_run_mb) if memory_mb else by_cpu
    return max(1, min(by_cpu, by_memory))
