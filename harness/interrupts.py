"""Orderly shutdown on Ctrl-C, SIGTERM and a closed terminal (SIGHUP), for every long command.

Inside :func:`graceful_shutdown` the first of SIGINT, SIGTERM or SIGHUP raises :class:`Interrupted` in the main
thread, which unwinds through the library's ``finally`` blocks: sandboxes are removed, output areas unmounted,
runs in flight recorded as ``interrupted`` and the task's lease released. Signals that arrive while that clean-up
runs are noted and ignored, so a second Ctrl-C or the SIGHUP that follows a dropped SSH connection cannot cut the
clean-up short.

A hung-up terminal can no longer be written to (``EIO``): on SIGHUP the standard streams that are terminals are
pointed at ``/dev/null`` first, so the clean-up never fails on a progress bar or a message. Streams redirected to a
file or a pipe (``nohup``, ``tmux``, a systemd unit) are left alone.

Signals the process was started ignoring stay ignored (``nohup`` ignores SIGHUP: such a batch outlives its
terminal). Exit codes follow the shell's convention, 128 + the signal's number: 130 (SIGINT), 143 (SIGTERM),
129 (SIGHUP).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["SHUTDOWN_SIGNALS", "Interrupted", "Shutdown", "graceful_shutdown"]

log = logging.getLogger(__name__)

#: The signals that stop a long command cleanly.
SHUTDOWN_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A shutdown signal arrived (a :class:`KeyboardInterrupt`, so every Ctrl-C path handles it too).

    Attributes:
        signum: the signal's number.
        exit_code: ``128 + signum``, the code the CLI exits with.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """``128 + signum`` (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        """``SIGINT``, ``SIGTERM``, ``SIGHUP``, ..."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def __reduce__(self) -> tuple[type[Interrupted], tuple[int]]:
        return (type(self), (self.signum,))


def _terminal_fds() -> list[int]:
    """Which of stdin, stdout and stderr are terminals (asked while the terminal is still there: a hung-up
    terminal no longer says it is one)."""
    found = []
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                found.append(fd)
    return found


def _silence(fds: list[int]) -> None:
    """Point these file descriptors at /dev/null (a hung-up terminal fails every write with EIO)."""
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class Shutdown:
    """What :func:`graceful_shutdown` saw: ``signum`` is the first shutdown signal's number, or ``None``."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def exit_code(self) -> int | None:
        """``128 + signum`` once a signal arrived, else ``None``."""
        return None if self.signum is None else 128 + self.signum


@contextlib.contextmanager
def graceful_shutdown() -> Iterator[Shutdown]:
    """Turn the first SIGINT, SIGTERM or SIGHUP into :class:`Interrupted`; ignore later ones while unwinding.

    A signal the process was told to ignore stays ignored: under ``nohup`` SIGHUP is ignored and a closed terminal
    must not stop the batch; a job started with ``&`` by a non-interactive shell ignores SIGINT. Only the main thread
    can install handlers; elsewhere (a worker thread, a notebook's kernel thread) the block runs unchanged. The
    previous handlers are restored on exit.

    Yields:
        A :class:`Shutdown` whose ``signum`` says which signal stopped the block (for the exit code even when the
        clean-up then fails to write to a closed pipe).
    """
    state = Shutdown()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    terminals = _terminal_fds()

    def _handler(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            _silence(terminals)
        if state.signum is not None:
            log.warning("signal %s arrived while shutting down; the clean-up goes on", signum)
            return
        state.signum = signum
        raise Interrupted(signum)

    previous = {
        sig: signal.signal(sig, _handler) for sig in SHUTDOWN_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
