"""A run's log: kept bounded however much the command prints, and read live from the command's output stream.

:class:`LogCollector` keeps the head of the output up to a cap, counts the rest and keeps its tail;
:class:`LogPump` feeds it from a stream of chunks in its own thread (the Docker attach socket, a subprocess's
pipe). Both sandboxes use them, so a log is cut and marked the same way whatever ran the command.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable

__all__ = ["LOG_TAIL_BYTES", "LOG_TRUNCATED_MARKER", "LogCollector", "LogPump"]

logger = logging.getLogger(__name__)

#: Appended to a log that was cut at its cap: ``"\n[harness: log truncated at 256 KiB; 104857600 bytes dropped]\n"``.
LOG_TRUNCATED_MARKER = "[harness: log truncated"

#: Bytes of the end of a cut log kept in :attr:`RunResult.log_tail`.
LOG_TAIL_BYTES = 4096

# Room kept free under the cap for the marker, so that log + marker never exceed ``log_kb`` KiB.
_MARKER_RESERVE = 128


class LogCollector:
    """Keeps the head of a stream of output bytes up to a cap, counts the rest and keeps its tail.

    Memory stays bounded (cap + :data:`LOG_TAIL_BYTES` + one chunk) however much is fed. Thread-safe:
    one thread may :meth:`feed` while another reads :meth:`render`.

    Args:
        cap_bytes: most bytes the rendered log may take, marker included.
    """

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self._keep = max(cap_bytes - _MARKER_RESERVE, 0)
        self._head = bytearray()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_len = 0
        self.dropped_bytes = 0
        self.total_bytes = 0
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        """Add a chunk of output (any size; bytes past the cap are counted and only the tail is kept)."""
        if not chunk:
            return
        with self._lock:
            self.total_bytes += len(chunk)
            room = self._keep - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            if not chunk:
                return
            self.dropped_bytes += len(chunk)
            if len(chunk) >= LOG_TAIL_BYTES:
                self._tail.clear()
                self._tail.append(bytes(chunk[-LOG_TAIL_BYTES:]))
                self._tail_len = LOG_TAIL_BYTES
                return
            self._tail.append(bytes(chunk))
            self._tail_len += len(chunk)
            while self._tail_len - len(self._tail[0]) >= LOG_TAIL_BYTES:
                self._tail_len -= len(self._tail.popleft())

    @property
    def truncated(self) -> bool:
        """Whether any byte was dropped."""
        return self.dropped_bytes > 0

    def render(self) -> tuple[str, bool, str]:
        """The log as the result carries it.

        Returns:
            ``(log, truncated, tail)``: the kept head decoded as UTF-8 with replacement, plus a marker line
            ``"[harness: log truncated at N KiB; M bytes dropped]"`` when cut; whether it was cut; the last
            :data:`LOG_TAIL_BYTES` bytes of the dropped part (``""`` when nothing was dropped).
        """
        with self._lock:
            head = self._head.decode("utf-8", errors="replace")
            if not self.dropped_bytes:
                return head, False, ""
            tail = b"".join(self._tail)[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace")
            kb = self.cap_bytes / 1024
            marker = f"\n{LOG_TRUNCATED_MARKER} at {kb:g} KiB; {self.dropped_bytes} bytes dropped]\n"
            return head + marker, True, tail


class LogPump:
    """Reads a stream of output chunks to its end in a daemon thread, feeding a :class:`LogCollector`.

    A read that fails ends the pump quietly (the stream closes under it when the container or process is
    removed). When the stream ends, ``close`` is called (errors ignored).

    Args:
        chunks: the output, chunk by chunk (e.g. the attach socket, or ``iter(lambda: pipe.read1(65536), b"")``).
        logs: where the chunks go.
        close: closes the stream; called when the pump ends and by :meth:`stop` when the pump is stuck.
        name: the thread's name.
    """

    def __init__(self, chunks: Iterable[bytes], logs: LogCollector, *, close: Callable[[], object], name: str) -> None:
        self._chunks = chunks
        self._logs = logs
        self._close = close
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Wait at most ``timeout_s`` seconds for the stream to end, then close it if the pump is still reading."""
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            self._close()

    def _run(self) -> None:
        try:
            for chunk in self._chunks:
                self._logs.feed(chunk)
        except Exception as exc:  # the stream closes when the container or process is removed under us
            logger.debug("log stream ended: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                self._close()
