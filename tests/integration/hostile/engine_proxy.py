"""A Unix-socket proxy in front of the Docker engine that can "restart": what a harness sees of an engine restart.

A harness given ``DOCKER_HOST=unix://<proxy socket>`` reaches the engine only through the proxy. :meth:`down`
drops every open connection and removes the socket, as an engine that stops does (calls in flight fail with a
broken connection, new ones find no socket); :meth:`up` listens again, as the restarted engine does. The real
engine keeps running, so other tests and sessions on this machine are not disturbed. What a restart does to the
containers themselves (stops them) the test does through the real engine.

Threads only, no processes: nothing is left behind once :meth:`close` returns.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

#: The engine's own socket.
ENGINE_SOCKET = "/var/run/docker.sock"


class EngineProxy:
    """Forwards connections from ``path`` to the engine's socket until :meth:`down`.

    Args:
        path: where to listen (a Unix socket file that must not exist yet; keep it under ~100 bytes).
        upstream: the engine's socket.
    """

    def __init__(self, path: Path, upstream: str = ENGINE_SOCKET) -> None:
        self.path = Path(path)
        self.upstream = upstream
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The value for ``DOCKER_HOST``."""
        return f"unix://{self.path}"

    def up(self) -> None:
        """Listen and forward (again)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), name="engine-proxy", daemon=True)
        self._acceptor.start()

    def down(self) -> None:
        """Stop listening, remove the socket and break every open connection, as a stopping engine does."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept() (Linux)
            listener.close()
            self.path.unlink(missing_ok=True)
        if self._acceptor is not None:
            self._acceptor.join(5.0)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
            threads, self._threads = self._threads, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(5.0)

    def close(self) -> None:
        """:meth:`down`, for teardown."""
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
                for source, target in ((client, upstream), (upstream, client)):
                    thread = threading.Thread(target=_pump, args=(source, target), daemon=True)
                    self._threads.append(thread)
                    thread.start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until either side closes; then close both directions."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def short_socket_path(folder: Path) -> Path:
    """A socket path under ``folder`` if it fits the ~108-byte limit of Unix socket names, else under /tmp.

    Returns:
        A path that does not exist yet.
    """
    candidate = folder / "engine.sock"
    if len(os.fsencode(candidate)) < 100:
        return candidate
    return Path("/tmp") / f"harness-engine-proxy-{os.getpid()}-{id(folder):x}.sock"
