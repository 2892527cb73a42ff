"""Snapshots of ``harness leaderboard``'s output: the same request, with nothing it reads changed, is answered
from the output it gave last time instead of ranking every run again.

Why: ranking 10,000 runs needs pandas, SQLAlchemy and pydantic, whose imports alone take longer than a second
here, and judges ask for the same board again and again between batches. A snapshot is a JSON file in a
``leaderboards/`` folder beside the SQLite store (``<home>/leaderboards/<request key>.json``, readable by the
store's owner only) holding what the command wrote (stdout and stderr text, in order, and its log records, which
are logged again with the time of the replay) and what that output was computed from:

* the request: the command's options, the working folder, the environment variables that can change the
  answer or its layout (``HARNESS_*``, ``DOCKER_*``, terminal, locale), whether each standard stream is a
  terminal and its size, the harness version and the modification times of the harness's own sources, the
  import path and the times of its ``site-packages`` folders (a library installed, upgraded or removed);
* the store: the sha256 of the SQLite file and its write-ahead log (a read changes neither; any committed write
  changes one of them);
* every file and folder the board reads: the spec and the places a task id is looked up, the evaluator and the
  modules it imports, the references, the phase's input folder, and, with intervals or the Ladder, every run's
  kept predictions and every file below the task and data folders (the evaluator runs then, and may read any of
  them), each by its size, inode, and modification and change times, and a symbolic link by its own
  and its target's (a file that did not exist is recorded as missing, so one that appears is noticed);
* the task image's id in the Docker engine (the stale check compares it with each run's), taken before the board
  is computed and again when the snapshot is written.

A snapshot is replayed only when every one of these is the same now. It is written only when it can be trusted:
the store hashed the same before and after the board was computed, and no file it depends on changed within
:data:`SETTLE_S` seconds before (a change inside a file system's timestamp granularity could otherwise go
unseen; git calls these entries "racy"). Other stores (PostgreSQL), ``--similar``, ``--output``, ``--verbose``
and a ``DOCKER_HOST`` other than a local socket always take the full path. This module imports nothing beyond
the standard library, so a replay costs the Python start, the CLI's imports and hashing the store file.

A snapshot folder that is a link, another user's, or writable by group or others is neither read nor written (what
it holds could be anyone's board); a snapshot that does not have the recorded shape is a miss; pruning deletes
only files named like snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

__all__ = [
    "KEEP",
    "SETTLE_S",
    "Recording",
    "Request",
    "board_files",
    "local_image_id",
    "open_request",
    "task_lookup_files",
]

#: Seconds a file must have stayed unchanged before a snapshot depending on it is written.
SETTLE_S: Final = 2.0
#: Snapshots kept per store (the most recently written; one per distinct request).
KEEP: Final = 32
#: Seconds after which a snapshot's partial file is a killed write's leftover, deleted by the next prune.
PARTIAL_STALE_S: Final = 3600.0
_FORMAT: Final = 1
_STORE_FILE: Final = "results.sqlite"  # harness.settings.STORE_FILE (not imported: pydantic)
_ENV_NAMES: Final = frozenset(
    {"COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
     "JUPYTER_COLUMNS", "JUPYTER_LINES", "HOME", "XDG_CACHE_HOME", "TZ", "LANG", "LC_ALL", "LC_CTYPE",
     "PYTHONIOENCODING", "PYTHONUTF8"}
)  # fmt: skip
_ENV_PREFIXES: Final = ("HARNESS_", "DOCKER_")


@dataclass(frozen=True)
class Request:
    """One ``harness leaderboard`` call that can be snapshotted.

    Attributes:
        key: sha256 hex of the request (options, folder, environment, terminal, harness sources).
        store_url: the SQLite URL this request reads (as :func:`harness.store.resolve_db_url` resolves it).
        db_path: the SQLite file.
    """

    key: str
    store_url: str
    db_path: Path

    @property
    def path(self) -> Path:
        """The snapshot file of this request."""
        return self.db_path.parent / "leaderboards" / f"{self.key}.json"

    def replay(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> bool:
        """Write the snapshot's output again and return True, when it exists and nothing it depends on changed;
        else write nothing and return False (the caller then computes the board)."""
        if not _private(self.path.parent):  # another user could have written it: never replay what they wrote
            return False
        try:
            snapshot = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if not isinstance(snapshot, dict) or snapshot.get("format") != _FORMAT:
            return False
        if snapshot.get("store_url") != self.store_url or snapshot.get("store") != _store_digest(self.db_path):
            return False
        files = snapshot.get("files")
        if not isinstance(files, dict) or any(_stat(Path(p)) != v for p, v in files.items()):
            return False
        image = snapshot.get("image")
        if not isinstance(image, list) or len(image) != 2 or local_image_id(str(image[0])) != image[1]:
            return False
        events = snapshot.get("events", [])
        if not _valid_events(events):  # a damaged snapshot is a miss, never a crash halfway through its output
            return False
        _write_events(events, stdout or sys.stdout, stderr or sys.stderr)
        return True

    @contextlib.contextmanager
    def recording(self) -> Iterator[Recording]:
        """Record what the command writes to stdout, stderr and the log while it computes the board (the
        output still reaches the terminal as it is written); :meth:`Recording.save` then writes the snapshot."""
        rec = Recording(self, started=time.time(), store_before=_store_digest(self.db_path))
        handler = _CaptureHandler(rec.events)
        root = logging.getLogger()
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, "out", rec.events), _Tee(err, "err", rec.events)
        root.addHandler(handler)
        try:
            yield rec
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = out, err


@dataclass
class Recording:
    """What one computed board wrote, to be saved as its request's snapshot."""

    request: Request
    started: float
    store_before: str
    events: list[list[str | int]] = field(default_factory=list)
    image_before: tuple[str, str | None] | None = None

    def note_image(self, image_tag: str) -> None:
        """Remember the task image's id before the board's stale check reads it: :meth:`save` then keeps no
        snapshot when the image was rebuilt or retagged while the board was computed (the board would say
        "current" under the new id)."""
        self.image_before = (image_tag, local_image_id(image_tag))

    def save(self, files: Iterable[Path], *, store_url: str, image_tag: str) -> bool:
        """Write the snapshot (atomically, mode 0600) when it can be trusted (see the module docstring).

        Args:
            files: every file and folder the board was computed from (missing ones included).
            store_url: the URL the board was read from (a snapshot is kept only when it is this request's).
            image_tag: the task image whose id the stale check compared.

        Returns:
            Whether a snapshot was written; never raises for a folder that cannot be written (no snapshot).
        """
        if store_url != self.request.store_url or _store_digest(self.request.db_path) != self.store_before:
            return False
        stats = {str(path): _stat(path) for path in dict.fromkeys(Path(p) for p in files)}
        if _newest(stats.values()) > self.started - SETTLE_S:
            return False  # changed just now: a second change within the timestamp granularity could go unseen
        image_id = local_image_id(image_tag)
        if self.image_before is not None and self.image_before != (image_tag, image_id):
            return False  # the image changed while the board was computed: its stale check saw the old one
        snapshot = {
            "format": _FORMAT,
            "store_url": store_url,
            "store": self.store_before,
            "files": stats,
            "image": [image_tag, image_id],
            "events": self.events,
        }
        path = self.request.path
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            if not _private(path.parent):
                return False
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()  # a killed earlier process's (or a planted link: never written through)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(snapshot, fh)
            os.replace(partial, path)
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink()
            return False
        _prune(path.parent, keep=KEEP)
        return True


def _is_snapshot_name(name: str) -> bool:
    """Whether a file name is a snapshot's (``<64 hex digits>.json``): other files in the folder are not ours."""
    stem, dot, suffix = name.partition(".")
    return dot == "." and suffix == "json" and len(stem) == 64 and all(c in "0123456789abcdef" for c in stem)


def _is_partial_name(name: str) -> bool:
    """Whether a file name is a snapshot being written (``<64 hex digits>.<pid>.partial``: :meth:`Recording.save`)."""
    stem, _, rest = name.partition(".")
    pid, dot, suffix = rest.partition(".")
    return _is_snapshot_name(f"{stem}.json") and pid.isdigit() and dot == "." and suffix == "partial"


def _private(folder: Path) -> bool:
    """Whether a snapshot folder is a real folder (not a link) of this user that nobody else can write to."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _prune(folder: Path, *, keep: int) -> None:
    """Delete all but the ``keep`` most recently written snapshots of a folder (another terminal size or option
    makes another snapshot; old ones are only ever a miss), and the partial files of writes older than
    :data:`PARTIAL_STALE_S` (a process killed while writing; a live write takes milliseconds). Only snapshot
    names are touched: a judge's own ``leaderboards/*.json`` exports beside the store stay."""
    try:
        mine = [p for p in folder.glob("*.json") if _is_snapshot_name(p.name)]
        found = sorted(mine, key=lambda p: p.stat().st_mtime_ns, reverse=True)
        cutoff = time.time() - PARTIAL_STALE_S
        left = [p for p in folder.glob("*.partial") if _is_partial_name(p.name) and p.lstat().st_mtime < cutoff]
    except OSError:
        return
    for old in found[keep:] + left:
        with contextlib.suppress(OSError):
            old.unlink()


def open_request(
    options: Mapping[str, Any], *, db: str | None, home: Path | None, environ: Mapping[str, str] | None = None
) -> Request | None:
    """The snapshot request of a ``harness leaderboard`` call, or ``None`` when it is never snapshotted (the
    store is not a SQLite file, ``DOCKER_HOST`` is not a local socket, debug logging is on).

    Args:
        options: the command's options and arguments that shape its output (JSON-serialisable values).
        db, home: ``--db`` and ``--home`` as given (``None`` when not given).
        environ: the environment (default: ``os.environ``).
    """
    env = dict(os.environ if environ is None else environ)
    docker_host = env.get("DOCKER_HOST", "")
    if (docker_host and not docker_host.startswith("unix://")) or logging.getLogger().isEnabledFor(logging.DEBUG):
        return None
    url = _store_url(db, home, env)
    if url is None:
        return None
    db_path = Path(url.removeprefix("sqlite:///"))
    identity = {
        "format": _FORMAT,
        "options": dict(options),
        "db": db,
        "home": str(home) if home is not None else None,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in sorted(env.items()) if k in _ENV_NAMES or k.upper().startswith(_ENV_PREFIXES)},
        "streams": [_terminal(stream) for stream in (sys.stdin, sys.stdout, sys.stderr)],
        "python": sys.version,
        "import_path": sys.path,  # PYTHONPATH, another venv: other libraries (rich lays the table out)
        "installed": [_stat(Path(p)) for p in sys.path if Path(p).name in ("site-packages", "dist-packages")],
        "harness": _sources_digest(),
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return Request(key=key, store_url=url, db_path=db_path)


def _store_url(db: str | None, home: Path | None, env: Mapping[str, str]) -> str | None:
    """The SQLite URL :meth:`harness.settings.Settings.store_url` gives for these (``None`` for any other
    store): a disagreement only costs a snapshot, as :meth:`Recording.save` compares it with the real one."""
    lowered = {k.lower(): v for k, v in env.items()}
    if db is not None:
        url = db
    elif home is not None:
        url = f"sqlite:///{Path(home).resolve() / _STORE_FILE}"
    elif lowered.get("harness_db_url"):
        url = lowered["harness_db_url"]
    else:
        url = f"sqlite:///{Path(lowered.get('harness_home') or '.harness').expanduser().resolve() / _STORE_FILE}"
    if not url.startswith("sqlite:///") or "?" in url or url == "sqlite:///:memory:":
        return None
    return url


def _store_digest(db_path: Path) -> str:
    """sha256 of the SQLite file's bytes and of its write-ahead log's (``""`` for a missing one)."""
    digest = hashlib.sha256()
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        try:
            with path.open("rb") as fh:
                digest.update(hashlib.file_digest(fh, "sha256").digest())
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()


def _stat(path: Path) -> list[int | None] | None:
    """``[size, inode, mtime_ns, ctime_ns]`` of a file or folder, ``None`` when missing (or not a valid path).

    A symbolic link gives its own four and then its target's (``None`` for a dangling link): the board reads a
    linked reference, ``task.yaml`` or input folder through the link, so the target's changes must be seen too.
    """
    try:
        st = os.lstat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in a path (a damaged snapshot's)
        return None
    own: list[int | None] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    if not stat.S_ISLNK(st.st_mode):
        return own
    try:
        target = os.stat(path)
    except OSError:
        return [*own, None, None, None, None]
    return [*own, target.st_size, target.st_ino, target.st_mtime_ns, target.st_ctime_ns]


def _newest(stats: Iterable[list[int | None] | None]) -> float:
    """The latest modification or change time (seconds) among :func:`_stat` results, 0 when there are none."""
    times = [t for s in stats if s is not None for i, t in enumerate(s) if i % 4 >= 2 and t is not None]
    return max(times, default=0) / 1e9


def _sources_digest() -> str:
    """sha256 of every harness source file's path, size and modification time (an edited harness is another
    harness, even before its version changes)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if name.endswith((".py", ".yaml", ".json", ".html", ".j2", ".css")):
                path = os.path.join(folder, name)
                digest.update(f"{path}\0{_stat(Path(path))}\0".encode())
    return digest.hexdigest()


def _terminal(stream: Any) -> list[Any] | None:
    """Whether a standard stream is a terminal, its size and encoding (what rich lays the table out by)."""
    if stream is None:
        return None
    try:
        tty = stream.isatty()
        size = list(os.get_terminal_size(stream.fileno())) if tty else None
    except (OSError, ValueError, AttributeError):
        tty, size = False, None
    return [tty, size, getattr(stream, "encoding", None)]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the Docker engine's local socket."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        """Connect to the engine's socket instead of a TCP host."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def local_image_id(tag: str) -> str | None:
    """The local image's id as the engine at ``$DOCKER_HOST``'s socket (a ``unix://`` one, or the default socket)
    reports it (``GET /images/TAG/json``, one plain HTTP request), ``None`` when the engine does not answer or has
    no such image: what :func:`harness.provenance.current_image_id` returns then, which calls this for a local
    socket (the docker SDK's import and its version negotiation took longer than the board's ranking)."""
    host = os.environ.get("DOCKER_HOST", "") or "unix:///var/run/docker.sock"
    conn = _UnixHTTPConnection(host.removeprefix("unix://"), timeout=10.0)
    try:
        conn.request("GET", f"/images/{tag}/json")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        found = json.loads(body).get("Id")
        return str(found) if found else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class _Tee:
    """A text stream that passes everything to ``target`` (terminal checks included) and records the writes."""

    def __init__(self, target: TextIO, name: str, events: list[list[str | int]]) -> None:
        self._target, self._name, self._events = target, name, events

    def write(self, text: str) -> int:
        """Write to the target and record the text."""
        self._events.append([self._name, text])
        return self._target.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _CaptureHandler(logging.Handler):
    """Records log records (logger, level, message) to log them again, at the replay's time."""

    def __init__(self, events: list[list[str | int]]) -> None:
        super().__init__(level=logging.NOTSET)
        self._events = events

    def emit(self, record: logging.LogRecord) -> None:
        """Record the message with its exception text, if any."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        self._events.append(["log", record.name, record.levelno, message])


def _valid_events(events: Any) -> bool:
    """Whether a snapshot's events are what :class:`_Tee` and :class:`_CaptureHandler` record: ``["out"|"err",
    text]`` and ``["log", logger name, level, message]``."""
    if not isinstance(events, list):
        return False
    for event in events:
        if not isinstance(event, list) or not event:
            return False
        if event[0] in ("out", "err"):
            ok = len(event) == 2 and isinstance(event[1], str)
        elif event[0] == "log":
            ok = len(event) == 4 and isinstance(event[1], str) and type(event[2]) is int and isinstance(event[3], str)
        else:
            ok = False
        if not ok:
            return False
    return True


def _write_events(events: list[Any], stdout: TextIO, stderr: TextIO) -> None:
    """Write a snapshot's output again, in its order; log records go through the logging set up now."""
    for event in events:  # each flushed as written: the two streams interleave on a terminal as they did
        if event[0] in ("out", "err"):
            stream = stdout if event[0] == "out" else stderr
            stream.write(event[1])
            stream.flush()
        elif event[0] == "log":
            logging.getLogger(event[1]).log(int(event[2]), "%s", event[3])


def task_lookup_files(task: str, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Every path :func:`harness.ranking.resolve_task` may look at for ``task`` (a folder, a ``task.yaml`` or an
    id under ``$HARNESS_TASKS`` or ``./task_specs``): one that appears or changes can change which spec is read."""
    env = os.environ if environ is None else environ
    roots = [Path(v).expanduser() for k, v in env.items() if k.upper() == "HARNESS_TASKS" and v]
    roots.append(Path("task_specs"))
    given = Path(task)
    files = [given, given / "task.yaml"]
    for root in roots:
        files += [root, root / task, root / task / "task.yaml"]
    return [path.absolute() for path in files]


def board_files(spec: Any, runs: Iterable[Any], *, kept: bool, store_dir: Path | None = None) -> list[Path]:
    """The files and folders a task's board is computed from (see the module docstring), missing ones included.

    Args:
        spec: the :class:`~harness.spec.TaskSpec`.
        runs: the active runs the board ranks (:class:`~harness.store.ScoredRun`; their ``artifacts_dir``).
        kept: whether the board read the runs' kept predictions and ran the evaluator (intervals, the Ladder):
            then every file below the task folder and the data folder is listed too.
        store_dir: the SQLite store's folder (a harness home), left out of those when it lies below them: the
            store is hashed instead, and its sidecar files and snapshots change on every read.
    """
    from harness.provenance import evaluator_files
    from harness.scoring.kept import kept_predictions_path
    from harness.spec import PHASES

    files = [spec.task_dir, spec.spec_file, spec.data_root, spec.evaluator_path.parent]
    evaluators = evaluator_files(spec)
    files += evaluators + sorted({path.parent for path in evaluators})
    for phase in PHASES:
        if phase in spec.data.references:
            reference = spec.reference_path(phase)
            files += [reference.parent, reference]
        if phase in spec.data.inputs:
            folder = spec.input_dir(phase)
            files.append(folder)
            if folder.is_dir():
                files += sorted(folder.rglob("*"))
    if kept:  # the board runs the evaluator, which may read any file of its task (row weights beside the reference)
        skip = store_dir.resolve() if store_dir is not None else None
        for root in dict.fromkeys([spec.task_dir, spec.data_root]):
            found = sorted(root.rglob("*")) if root.is_dir() else []
            files += [
                f
                for f in found
                if "__pycache__" not in f.parts  # Python's own bytecode: importing the evaluator writes it
                and (skip is None or not (f == skip or skip in f.parents))
            ]
        files += [kept_predictions_path(spec, run.artifacts_dir) for run in runs if run.artifacts_dir]
    return files
