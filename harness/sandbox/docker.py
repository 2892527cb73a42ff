"""The Docker sandbox: run untrusted team code in a fresh, locked-down container.

Two layers, as in docker-py's own split between ``api/`` and ``models/``:

* :class:`DockerAPI` is a thin wrapper of docker SDK calls (create, attach, start, wait, kill, remove, stats,
  inspect, image lookup, image build/import). It holds no policy; unit tests replace it with a fake.
* :class:`DockerSandbox` implements :class:`~harness.sandbox.base.Sandbox`: it owns the policy (what a container
  may do), limits, the wall clock, log capping, the output-size cap and cleanup.

Policy of every container (see :meth:`DockerSandbox.container_spec`): network mode ``none``; a non-root user
(``1000:1000``); a read-only root file system with small ``tmpfs`` for ``/tmp`` and ``HOME``
(``/home/team``); all capabilities dropped; ``no-new-privileges``; an init process; limits on pids, memory
(swap equal to memory: no swap) and CPUs; no log driver (output is read live through ``attach``, so a run that
prints 100 MB does not fill the host's disk either). The wall clock is enforced from outside: the container is
killed at ``time_s``. Images are never pulled.

The output folder is capped with a hard guarantee when the harness runs as root: a sparse file of
``output_mb`` MiB formatted ext4 (no journal, no reserved blocks) is loop-mounted ``nosuid,nodev,noexec`` on the
host and bind-mounted into the container. The team's writes fail with ENOSPC at the cap, the host disk takes at
most ``output_mb`` MiB, and after the run the contents are copied (regular files only, within the budget) into
the request's ``output_dir``. Without root, the output folder is bind-mounted directly, its size is polled and the
container killed when it passes the cap (logged as a warning: between two polls it can overshoot).
Alternatives considered: Docker's ``--storage-opt size`` needs xfs with project quotas (not this machine's
ext4); a tmpfs output mount is capped but vanishes with the container and charges RAM; polling alone cannot
guarantee the cap.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.errors import EngineUnavailableError, ImageError, SandboxError
from harness.procs import pid_alive
from harness.sandbox.base import (
    LogCollector,
    RunOutcome,
    RunRequest,
    RunResult,
    copy_output_tree,
    deferred_signals,
    sigterm_unwinds,
    validate_request,
)

__all__ = [
    "CONTAINER_LABEL",
    "CONTAINER_LABEL_NAME",
    "CONTAINER_LABEL_SESSION",
    "ENGINE_HELP",
    "SESSION_ENV",
    "BindMount",
    "ContainerSpec",
    "DockerAPI",
    "DockerSandbox",
    "EngineAPI",
    "LogStream",
    "session_id",
]

logger = logging.getLogger(__name__)

#: Label every harness container carries (value ``"1"``); filter on it to find leftovers.
CONTAINER_LABEL = "org.hackathon-harness"
#: Label carrying :attr:`RunRequest.label`.
CONTAINER_LABEL_NAME = "org.hackathon-harness.label"
#: Label carrying the harness process id that created the container.
CONTAINER_LABEL_PID = "org.hackathon-harness.pid"
#: Label carrying ``$HARNESS_SESSION_ID`` (see :func:`session_id`).
CONTAINER_LABEL_SESSION = "org.hackathon-harness.session"
#: Environment variable naming a harness session (a test session, a judging batch); optional.
SESSION_ENV = "HARNESS_SESSION_ID"

#: How to get an engine; part of every :class:`EngineUnavailableError`.
ENGINE_HELP = (
    "Start or install a Docker engine: as root on Debian run `bash scripts/ensure-docker.sh` (installs and "
    "starts docker.io), otherwise install Docker (https://docs.docker.com/engine/install/) and make sure "
    "`docker info` works for your user. Without Docker, run with `--sandbox process` (no isolation)."
)

#: Team user inside the container (uid:gid) when the harness runs as root.
TEAM_USER = "1000:1000"
TEAM_HOME = "/home/team"
#: The task image's virtual environment (see :mod:`harness.images`).
VENV_BIN = "/opt/venv/bin"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: File in each output area's scratch folder naming the host and pid of the harness process that made it.
OWNER_FILE = "owner"


def remove_orphans(api: EngineAPI | None = None, *, label_prefix: str = "", work_dir: Path | None = None) -> int:
    """Remove what a harness process killed with SIGKILL left behind: its containers and its output mounts.

    A container counts as orphaned when its ``org.hackathon-harness.pid`` label names a process that no longer
    exists on this host (and its ``org.hackathon-harness.label`` starts with ``label_prefix``); an output area
    (``harness-output-*`` under ``work_dir``) when the process named in its owner file is gone. Live harness
    processes are never touched.

    Args:
        api: engine layer (default: a new :class:`DockerAPI`, closed afterwards).
        label_prefix: only containers whose run label starts with this (e.g. ``"nyc-flight-delays/"``).
        work_dir: folder of the output areas (default: the system temp folder).

    Returns:
        The number of containers and output areas removed.

    Raises:
        EngineUnavailableError: no engine answers.
    """
    own_api = api is None
    engine: EngineAPI = api or DockerAPI()
    removed = 0
    try:
        for container in engine.list_containers({CONTAINER_LABEL: "1"}):
            try:
                labels = engine.inspect(container).get("Config", {}).get("Labels") or {}
            except SandboxError:
                continue  # removed meanwhile
            pid = labels.get(CONTAINER_LABEL_PID, "")
            if not labels.get(CONTAINER_LABEL_NAME, "").startswith(label_prefix) or not pid.isdigit():
                continue
            if not pid_alive(int(pid)):
                logger.warning("removing container %s left by harness process %s, which is gone", container[:12], pid)
                with contextlib.suppress(SandboxError):
                    engine.remove(container)
                    removed += 1
    finally:
        if own_api and isinstance(engine, DockerAPI):
            engine.close()
    host = socket.gethostname()
    for folder in Path(work_dir or tempfile.gettempdir()).glob("harness-output-*"):
        try:
            owner_host, owner_pid = (folder / OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if owner_host != host or not owner_pid.isdigit() or pid_alive(int(owner_pid)):
            continue
        mount_point = folder / "mnt"
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
        logger.warning("removing output area %s left by harness process %s, which is gone", folder, owner_pid)
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


#: An output file system with less free space than this (or a quarter of it, for tiny caps) counts as full.
NEAR_FULL_BYTES = 2 * 1024 * 1024


def session_id() -> str:
    """``$HARNESS_SESSION_ID`` or ``""``: tags the containers (label) and scratch folders (name) of one session,
    so that a test session or a judging batch can find exactly what it made, even across processes."""
    return "".join(c for c in os.environ.get(SESSION_ENV, "") if c.isalnum() or c in "-_")[:64]


# --- layer (a): thin wrapper of SDK calls --------------------------------------------------------------------


@dataclass(frozen=True)
class BindMount:
    """A host path bound into a container.

    Attributes:
        source: absolute host path.
        target: absolute path in the container.
        read_only: bind read-only.
    """

    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a container is created with; :class:`DockerAPI` maps it 1:1 onto the SDK.

    Attributes:
        image: image reference or id.
        command: argv.
        name: container name (chosen up front, so cleanup can find it even if create's reply is lost).
        user: ``"uid:gid"``.
        env: environment variables.
        working_dir: working directory in the container.
        labels: container labels.
        binds: host paths bound in.
        tmpfs: mount point -> tmpfs options (e.g. ``"rw,nosuid,nodev,size=64m"``).
        network_mode: ``"none"`` for no network at all.
        read_only: read-only root file system.
        cap_drop: capabilities dropped (``["ALL"]``).
        security_opt: e.g. ``["no-new-privileges"]``.
        init: run docker-init as PID 1 (reaps zombies, forwards signals).
        pids_limit: most processes/threads.
        mem_limit_bytes: memory limit in bytes.
        memswap_limit_bytes: memory + swap limit in bytes (equal to ``mem_limit_bytes``: no swap).
        nano_cpus: CPU limit in units of 1e-9 CPUs.
        log_driver: Docker log driver (``"none"``: output is only read live through attach).
        hostname: container host name.
    """

    image: str
    command: tuple[str, ...]
    name: str
    user: str
    env: Mapping[str, str]
    working_dir: str
    labels: Mapping[str, str]
    binds: tuple[BindMount, ...]
    tmpfs: Mapping[str, str]
    network_mode: str
    read_only: bool
    cap_drop: tuple[str, ...]
    security_opt: tuple[str, ...]
    init: bool
    pids_limit: int
    mem_limit_bytes: int
    memswap_limit_bytes: int
    nano_cpus: int
    log_driver: str = "none"
    hostname: str = "sandbox"


class LogStream(Protocol):
    """An iterator of output chunks (stdout and stderr interleaved) that can be closed early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class EngineAPI(Protocol):
    """The calls :class:`DockerSandbox` makes; :class:`DockerAPI` implements them, unit tests fake them."""

    def image_id(self, ref: str) -> str | None: ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def attach(self, container: str) -> LogStream: ...

    def start(self, container: str) -> None: ...

    def wait(self, container: str) -> int: ...

    def kill(self, container: str) -> None: ...

    def remove(self, container: str) -> None: ...

    def stats(self, container: str) -> dict[str, Any]: ...

    def inspect(self, container: str) -> dict[str, Any]: ...

    def list_containers(self, labels: Mapping[str, str]) -> list[str]: ...


class DockerAPI:
    """Thin wrapper of the docker SDK's low-level client: one method per engine call, no policy.

    Engine failures surface as :class:`SandboxError` (or :class:`EngineUnavailableError` when the engine cannot
    be reached at all); "not found" is a return value where the caller needs it.

    Args:
        client: a ``docker.APIClient``; by default one is made from the environment (``DOCKER_HOST`` etc.)
            with the API version negotiated with the engine.
        timeout_s: timeout of ordinary API calls in seconds (``wait``, ``attach`` and builds have none).

    Raises:
        EngineUnavailableError: no engine answers (only when ``client`` is not given).
    """

    def __init__(self, client: Any = None, *, timeout_s: float = 60.0) -> None:
        if client is None:
            client = self._connect(timeout_s)
        self.client = client

    @staticmethod
    def _connect(timeout_s: float) -> Any:
        import docker
        from docker.utils import kwargs_from_env

        try:
            # Each run holds two connections for its whole duration (attach, wait): a pool larger than
            # docker-py's default of 10 lets many worker threads share one client without churn.
            client = docker.APIClient(version="auto", timeout=int(timeout_s), max_pool_size=64, **kwargs_from_env())
            client.ping()
        except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError...
            raise EngineUnavailableError(f"no Docker engine answers ({exc}). {ENGINE_HELP}") from None
        return client

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        import docker.errors
        import requests.exceptions

        try:
            yield
        except docker.errors.ImageNotFound as exc:
            raise ImageError(f"{what}: image not found ({exc.explanation})") from None
        except docker.errors.APIError as exc:
            raise SandboxError(f"{what}: the Docker engine refused: {exc.explanation or exc}") from None
        except requests.exceptions.ConnectionError as exc:
            raise EngineUnavailableError(f"{what}: lost the Docker engine ({exc}). {ENGINE_HELP}") from None

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    # -- images ---------------------------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        """The id (``sha256:...``) of a local image, or ``None`` when it is not present. Never pulls."""
        return self.inspect_image(ref).get("Id") or None

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """``docker image inspect`` of a local image, or ``{}`` when it is not present. Never pulls."""
        import docker.errors

        with self._errors(f"inspect image {ref}"):
            try:
                return dict(self.client.inspect_image(ref))
            except docker.errors.NotFound:
                return {}

    def build_image(
        self, context_dir: Path, tag: str, labels: Mapping[str, str], network_mode: str = "none"
    ) -> Iterator[dict[str, Any]]:
        """Build an image from a folder holding a Dockerfile; yields the engine's decoded progress messages.

        Never pulls a newer base (``pull=False``); intermediate containers are always removed.
        """
        with self._errors(f"build {tag}"):
            yield from self.client.build(
                path=str(context_dir),
                tag=tag,
                labels=dict(labels),
                network_mode=network_mode,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=None,
            )

    def import_image(self, chunks: Iterator[bytes], repository: str, tag: str, changes: list[str]) -> str:
        """Import a root file system tar stream as an image (``docker import -``); returns the engine's reply."""
        with self._errors(f"import {repository}:{tag}"):
            return str(
                self.client.import_image(src=chunks, repository=repository, tag=tag, changes=changes, stream_src=True)
            )

    def remove_image(self, ref: str) -> None:
        """Remove a local image (missing is fine)."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.client.remove_image(ref)

    # -- containers -----------------------------------------------------------------------------------------
    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) a container; returns its id."""
        from docker.types import LogConfig

        host_config = self.client.create_host_config(
            binds={b.source: {"bind": b.target, "mode": "ro" if b.read_only else "rw"} for b in spec.binds},
            tmpfs=dict(spec.tmpfs),
            network_mode=spec.network_mode,
            read_only=spec.read_only,
            cap_drop=list(spec.cap_drop),
            security_opt=list(spec.security_opt),
            init=spec.init,
            pids_limit=spec.pids_limit,
            mem_limit=spec.mem_limit_bytes,
            memswap_limit=spec.memswap_limit_bytes,
            nano_cpus=spec.nano_cpus,
            log_config=LogConfig(type=spec.log_driver),
        )
        with self._errors(f"create container from {spec.image}"):
            reply = self.client.create_container(
                image=spec.image,
                command=list(spec.command),
                name=spec.name,
                user=spec.user,
                environment=dict(spec.env),
                working_dir=spec.working_dir,
                labels=dict(spec.labels),
                host_config=host_config,
                hostname=spec.hostname,
                stdin_open=False,
                tty=False,
                detach=True,
            )
        return str(reply["Id"])

    def attach(self, container: str) -> LogStream:
        """Attach to stdout and stderr (call before :meth:`start` to miss nothing); chunks arrive as written."""
        with self._errors("attach"):
            stream = self.client.attach(container, stdout=True, stderr=True, stream=True, logs=False)
        return stream

    def start(self, container: str) -> None:
        """Start a created container."""
        with self._errors("start container"):
            self.client.start(container)

    def wait(self, container: str) -> int:
        """Block until the container stops; returns its exit code."""
        with self._errors("wait for container"):
            reply = self.client.wait(container, timeout=None)
        return int(reply.get("StatusCode", -1))

    def kill(self, container: str) -> None:
        """Send SIGKILL (a container that is not running is fine)."""
        import docker.errors

        with self._errors("kill container"), contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.kill(container)

    def remove(self, container: str) -> None:
        """Remove a container, killing it if it runs (a missing container is fine)."""
        import docker.errors

        with self._errors("remove container"), contextlib.suppress(docker.errors.NotFound):
            try:
                self.client.remove_container(container, force=True, v=True)
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc) and "No such container" not in str(exc):
                    raise SandboxError(f"cannot remove container {container}: {exc.explanation or exc}") from None

    def stats(self, container: str) -> dict[str, Any]:
        """One resource-usage sample (``docker stats --no-stream``, one-shot: no 1 s CPU sampling delay)."""
        with self._errors("container stats"):
            return dict(self.client.stats(container, stream=False, one_shot=True))

    def inspect(self, container: str) -> dict[str, Any]:
        """``docker container inspect``."""
        with self._errors("inspect container"):
            return dict(self.client.inspect_container(container))

    def list_containers(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of all containers (running or not) carrying every given label."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with self._errors("list containers"):
            return [c["Id"] for c in self.client.containers(all=True, filters=filters)]


# --- output folder areas ------------------------------------------------------------------------------------


class _OutputArea:
    """Where the container writes its outputs during a run; :meth:`collect` moves them to ``output_dir``."""

    host_path: Path
    enforced: bool = True

    def exceeded(self) -> bool:
        """True when the run must be stopped for writing too much (polled areas only)."""
        return False

    def hit_cap(self) -> bool:
        """True when the run filled its output space."""
        return False

    def collect(self, dest: Path, budget_bytes: int) -> tuple[int, bool]:
        """Copy the outputs into ``dest``; returns ``(bytes, over_budget)``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything the area holds (mounts, files)."""


class _LoopOutput(_OutputArea):
    """A sparse ext4 image of exactly ``output_mb`` MiB, loop-mounted on the host (root only).

    Args:
        output_mb: size of the file system in MiB (the team's hard cap; ext4 metadata takes ~1-2% of it).
        work_dir: host folder for the image file and mount point.
        owner: ``"uid:gid"`` owning the file system's root.
    """

    def __init__(self, output_mb: int, work_dir: Path, owner: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=f"harness-output-{session_id()}-", dir=work_dir))
        self._image = self._dir / "output.ext4"
        self.host_path = self._dir / "mnt"
        self._mounted = False
        try:
            # Whose area this is, so remove_orphans() can clean up after a harness killed with SIGKILL.
            (self._dir / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
            self.host_path.mkdir()
            with open(self._image, "wb") as fh:
                fh.truncate(output_mb * 1024 * 1024)
            _run_tool(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-b",
                    "4096",
                    "-i",
                    "16384",
                    "-O",
                    "^has_journal,^resize_inode",
                    "-E",
                    f"root_owner={owner}",
                    str(self._image),
                ]
            )
            _run_tool(["mount", "-o", "loop,nosuid,nodev,noexec", str(self._image), str(self.host_path)])
            self._mounted = True
            shutil.rmtree(self.host_path / "lost+found", ignore_errors=True)
        except BaseException:
            self.close()
            raise

    def hit_cap(self) -> bool:
        # ext4 refuses a large write that nears the end of the space (it reserves room for metadata per
        # chunk of up to ~2 MiB), so a team that got ENOSPC can leave up to ~2 MiB free: "near-full" counts.
        st = os.statvfs(self.host_path)
        size = st.f_blocks * st.f_frsize
        threshold = max(4 * st.f_frsize, min(NEAR_FULL_BYTES, size // 4))
        return st.f_bavail * st.f_frsize < threshold or st.f_favail == 0

    def collect(self, dest: Path, budget_bytes: int) -> tuple[int, bool]:
        copied, over, _ = copy_output_tree(self.host_path, dest, budget_bytes)
        return copied, over

    def close(self) -> None:
        if self._mounted:
            for attempt in range(20):
                proc = subprocess.run(["umount", str(self.host_path)], capture_output=True, text=True)
                if proc.returncode == 0:
                    self._mounted = False
                    break
                time.sleep(0.05 * (attempt + 1))
            if self._mounted:
                logger.warning("output mount %s is busy; detaching it lazily", self.host_path)
                subprocess.run(["umount", "-l", str(self.host_path)], capture_output=True)
                self._mounted = False
        shutil.rmtree(self._dir, ignore_errors=True)


class _PolledOutput(_OutputArea):
    """The request's own output folder, bound directly; its size is polled (no hard guarantee)."""

    enforced = False

    def __init__(self, output_dir: Path, output_mb: int, owner: str) -> None:
        self.host_path = output_dir
        self._cap = output_mb * 1024 * 1024
        self._over = False
        if os.geteuid() == 0:  # the team user must be able to write here
            uid, gid = (int(x) for x in owner.split(":"))
            os.chown(output_dir, uid, gid)

    def _size(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.host_path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def exceeded(self) -> bool:
        self._over = self._over or self._size() > self._cap
        return self._over

    def hit_cap(self) -> bool:
        return self._over or self._size() > self._cap

    def collect(self, dest: Path, budget_bytes: int) -> tuple[int, bool]:
        # The files are already in place; drop what the evaluator must not follow (links, special files).
        for root, dirs, files in os.walk(self.host_path):
            for name in dirs + files:
                path = os.path.join(root, name)
                st = os.lstat(path)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    logger.warning("removing %s from the output folder: not a regular file or folder", path)
                    os.unlink(path)
        size = self._size()
        return size, size > budget_bytes


def _run_tool(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"{argv[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


# --- layer (b): the sandbox ----------------------------------------------------------------------------------

_LIVE_SANDBOXES: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()


def kill_live_sandboxes() -> int:
    """Remove the running containers of every Docker sandbox alive in this process (at exit, or when a Dask worker
    closes: see :class:`harness.distributed.SandboxCleanup`). Returns how many sandboxes were asked."""
    live = list(_LIVE_SANDBOXES)
    for sandbox in live:
        sandbox.kill_all()
    return len(live)


atexit.register(kill_live_sandboxes)


@dataclass
class _Observation:
    exit_code: int | None = None
    killed_for: RunOutcome | None = None
    duration_s: float = 0.0
    peak_bytes: int | None = None
    state: dict[str, Any] = field(default_factory=dict)


class DockerSandbox:
    """Runs a :class:`RunRequest` in a fresh container with the harness's policy; always removes it.

    Args:
        api: the engine layer; by default a :class:`DockerAPI` connected on first use.
        work_dir: host folder for per-run scratch (the output file systems); default: the system temp folder.
        tmp_mb: size of the ``/tmp`` tmpfs in MiB (counts against the memory limit when used).
        home_mb: size of the ``HOME`` tmpfs (``/home/team``) in MiB.
        stats_interval_s: seconds between memory samples taken through the engine's stats (only when the
            container's cgroup files are not readable on this host; see :class:`_MemorySampler`).
        cgroup_root: where this host's cgroup file systems are mounted (``None``: use only the engine's stats).
        enforce_output: ``"auto"`` (loop-mounted file system when root, else polling), ``"loop"`` or ``"poll"``.

    Attributes:
        name: ``"docker"``.
    """

    name = "docker"

    def __init__(
        self,
        api: EngineAPI | None = None,
        *,
        work_dir: Path | None = None,
        tmp_mb: int = 128,
        home_mb: int = 32,
        stats_interval_s: float = 0.25,
        cgroup_root: Path | None = Path("/sys/fs/cgroup"),
        enforce_output: str = "auto",
    ) -> None:
        if enforce_output not in {"auto", "loop", "poll"}:
            raise ValueError(f"enforce_output must be 'auto', 'loop' or 'poll', got {enforce_output!r}")
        self._api = api
        self._owns_api = api is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
        self.tmp_mb = tmp_mb
        self.home_mb = home_mb
        self.stats_interval_s = stats_interval_s
        self.cgroup_root = cgroup_root
        self.enforce_output = enforce_output
        self._active: set[str] = set()
        self._lock = threading.Lock()
        _LIVE_SANDBOXES.add(self)

    def close(self) -> None:
        """Remove running containers of this sandbox and close the engine connection it opened itself."""
        self.kill_all()
        if self._owns_api and isinstance(self._api, DockerAPI):
            self._api.close()
            self._api = None

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def api(self) -> EngineAPI:
        """The engine layer (connects on first use).

        Raises:
            EngineUnavailableError: no engine answers.
        """
        if self._api is None:
            self._api = DockerAPI()
        return self._api

    # -- policy ---------------------------------------------------------------------------------------------
    def _user(self) -> str:
        return TEAM_USER if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}"

    def _use_loop(self) -> bool:
        if self.enforce_output == "poll":
            return False
        if os.geteuid() == 0 and shutil.which("mkfs.ext4") and shutil.which("mount"):
            return True
        if self.enforce_output == "loop":
            raise SandboxError("enforce_output='loop' needs root and mkfs.ext4/mount on the host")
        return False

    def environment(self, request: RunRequest) -> dict[str, str]:
        """The container's environment: the policy's variables, then the request's ``env``."""
        env = {
            "HOME": TEAM_HOME,
            "USER": "team",
            "PATH": f"{VENV_BIN}:{BASE_PATH}",
            "VIRTUAL_ENV": VENV_BIN.rsplit("/", 1)[0],
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
            "MPLCONFIGDIR": "/tmp/matplotlib",
            "IPYTHONDIR": "/tmp/ipython",
            # No network: a `!pip install` in a notebook should fail at once instead of retrying for seconds.
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "HARNESS_OUTPUT_DIR": request.output_target,
            "HARNESS_SANDBOX": self.name,
        }
        for mount in request.mounts:
            key = "HARNESS_" + mount.target.strip("/").replace("/", "_").upper() + "_DIR"
            env[key] = mount.target
        env.update(dict(request.env))
        return env

    def container_spec(self, request: RunRequest, output_source: Path, name: str) -> ContainerSpec:
        """The container a request runs in (the whole policy in one value; unit tests assert on it).

        Args:
            request: the run.
            output_source: host folder bound writable at ``request.output_target``.
            name: container name.
        """
        limits = request.limits
        memory = int(limits.memory_mb) * 1024 * 1024
        uid, gid = self._user().split(":")
        binds = tuple(BindMount(str(Path(m.source).resolve()), m.target, m.read_only) for m in request.mounts)
        binds += (BindMount(str(output_source), request.output_target, read_only=False),)
        return ContainerSpec(
            image=request.image,
            command=tuple(request.command),
            name=name,
            user=self._user(),
            env=self.environment(request),
            working_dir=request.workdir,
            labels={
                CONTAINER_LABEL: "1",
                CONTAINER_LABEL_NAME: request.label,
                CONTAINER_LABEL_PID: str(os.getpid()),
                CONTAINER_LABEL_SESSION: session_id(),
            },
            binds=binds,
            tmpfs={
                "/tmp": f"rw,exec,nosuid,nodev,size={self.tmp_mb}m,mode=1777",
                TEAM_HOME: f"rw,nosuid,nodev,noexec,size={self.home_mb}m,mode=0700,uid={uid},gid={gid}",
            },
            network_mode="none",
            read_only=True,
            cap_drop=("ALL",),
            security_opt=("no-new-privileges",),
            init=True,
            pids_limit=int(limits.pids),
            mem_limit_bytes=memory,
            memswap_limit_bytes=memory,
            nano_cpus=int(limits.cpus * 1e9),
        )

    # -- running --------------------------------------------------------------------------------------------
    def check_image(self, image: str) -> str:
        """Make sure an image can run here, before any work is queued.

        Args:
            image: image reference (e.g. a task's ``harness-task/<id>:latest``).

        Returns:
            The image's id (``sha256:...``).

        Raises:
            EngineUnavailableError: no engine answers.
            ImageError: the image is not present locally (it is never pulled).
        """
        image_id = self.api.image_id(image)
        if not image_id:
            raise ImageError(
                f"image {image!r} is not present locally and images are never pulled; "
                "build it with `harness image build TASK_DIR`"
            )
        return image_id

    def run(self, request: RunRequest) -> RunResult:
        """Run the request in a fresh container and remove the container, whatever happens.

        Args:
            request: what to run; ``request.output_dir`` must exist and be empty.

        Returns:
            The run's :class:`RunResult`. Outcome precedence: killed by the harness (``TIMED_OUT``, or
            ``OUTPUT_LIMIT`` when polling), then ``OUT_OF_MEMORY`` (the engine saw the OOM killer act and the
            command did not exit 0; or exit 137 with peak memory within 5% of the limit), then
            ``OUTPUT_LIMIT`` (the output file system is full, or outputs exceed the cap), then ``EXITED``.

        Raises:
            EngineUnavailableError: no engine answers.
            ImageError: the image is not present locally (it is never pulled).
            SandboxError: the request is malformed or the engine failed.
        """
        validate_request(request)
        api = self.api
        image_id = self.check_image(request.image)
        limits = request.limits
        warnings: list[str] = []
        area: _OutputArea | None = None
        try:
            with deferred_signals():
                if self._use_loop():
                    area = _LoopOutput(limits.output_mb, self.work_dir, self._user())
                else:
                    area = _PolledOutput(Path(request.output_dir), limits.output_mb, self._user())
            if not area.enforced:
                msg = (
                    f"output size of {request.label or request.image} is polled, not enforced "
                    "(the harness is not root): a run can overshoot output_mb between two polls"
                )
                logger.warning("%s", msg)
                warnings.append(msg)
            logs = LogCollector(int(limits.log_kb) * 1024)
            name = f"harness-{uuid.uuid4().hex[:12]}"
            spec = self.container_spec(request, area.host_path, name)
            with sigterm_unwinds():
                try:
                    obs = self._execute(api, spec, logs, limits.time_s, area)
                finally:
                    with deferred_signals():
                        self._remove(api, name)
            budget = int(limits.output_mb) * 1024 * 1024
            output_bytes, over_budget = area.collect(Path(request.output_dir), budget)
            outcome = self._outcome(obs, area.hit_cap() or over_budget, limits.memory_mb)
        finally:
            if area is not None:
                with deferred_signals():
                    area.close()
        log, truncated, tail = logs.render()
        peak_mb = obs.peak_bytes / 2**20 if obs.peak_bytes else None
        if outcome is RunOutcome.OUT_OF_MEMORY and peak_mb is None:
            peak_mb = float(limits.memory_mb)
        result = RunResult(
            outcome=outcome,
            exit_code=None if obs.killed_for else obs.exit_code,
            duration_s=round(obs.duration_s, 3),
            peak_memory_mb=round(peak_mb, 1) if peak_mb is not None else None,
            log=log,
            log_truncated=truncated,
            output_bytes=output_bytes,
            image_id=image_id,
            sandbox=self.name,
            log_tail=tail,
            isolated=True,
            warnings=tuple(warnings),
        )
        logger.info(
            "run %s: %s exit=%s %.2fs peak=%s MiB log=%s B",
            request.label or name,
            result.outcome.value,
            result.exit_code,
            result.duration_s,
            result.peak_memory_mb,
            logs.total_bytes,
        )
        return result

    def _execute(
        self, api: EngineAPI, spec: ContainerSpec, logs: LogCollector, time_s: float, area: _OutputArea
    ) -> _Observation:
        obs = _Observation()
        with self._lock:
            self._active.add(spec.name)
        container = api.create_container(spec)
        stream = api.attach(container)
        reader = threading.Thread(target=_pump, args=(stream, logs), name=f"{spec.name}-log", daemon=True)
        reader.start()
        exited = threading.Event()
        exit_box: list[int] = []
        failure: list[BaseException] = []

        def _wait() -> None:
            try:
                exit_box.append(api.wait(container))
            except BaseException as exc:  # surfaced in the main thread
                failure.append(exc)
            finally:
                exited.set()

        sampler = _MemorySampler(api, container, self.stats_interval_s, self.cgroup_root)
        try:
            api.start(container)
            started = time.monotonic()
            waiter = threading.Thread(target=_wait, name=f"{spec.name}-wait", daemon=True)
            waiter.start()
            sampler.start()
            deadline = started + time_s
            poll_s = 0.25 if not area.enforced else None
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    obs.killed_for = RunOutcome.TIMED_OUT
                    break
                if exited.wait(remaining if poll_s is None else min(remaining, poll_s)):
                    break
                if area.exceeded():
                    obs.killed_for = RunOutcome.OUTPUT_LIMIT
                    break
            if obs.killed_for is not None:
                api.kill(container)
                exited.wait(10.0)
            obs.duration_s = time.monotonic() - started
            if failure:
                raise failure[0]
            obs.exit_code = exit_box[0] if exit_box else None
        finally:
            if not exited.is_set():  # interrupted or failed: stop the container before waiting for threads
                api.kill(container)
            sampler.stop()
            reader.join(timeout=5.0 if exited.is_set() else 0.5)
            if reader.is_alive():
                stream.close()
        obs.peak_bytes = sampler.peak_bytes
        obs.state = dict(api.inspect(container).get("State") or {})
        if obs.exit_code is None and "ExitCode" in obs.state and not obs.state.get("Running"):
            obs.exit_code = int(obs.state["ExitCode"])
        return obs

    @staticmethod
    def _outcome(obs: _Observation, output_full: bool, memory_mb: int) -> RunOutcome:
        if obs.killed_for is not None:
            return obs.killed_for
        peak = obs.peak_bytes or 0
        near_limit = peak >= 0.95 * memory_mb * 2**20
        if obs.exit_code != 0 and (obs.state.get("OOMKilled") or (obs.exit_code == 137 and near_limit)):
            return RunOutcome.OUT_OF_MEMORY
        if output_full:
            return RunOutcome.OUTPUT_LIMIT
        return RunOutcome.EXITED

    def _remove(self, api: EngineAPI, name: str) -> None:
        try:
            api.remove(name)
        finally:
            with self._lock:
                self._active.discard(name)

    def kill_all(self) -> None:
        """Remove every container this sandbox is running now (for a coordinator shutting down).

        Runs in any thread; each run in progress then sees its container gone and cleans up the rest.
        """
        with self._lock:
            names = list(self._active)
        for name in names:
            try:
                self.api.remove(name)
            except Exception as exc:  # keep going: remove as many as possible
                logger.warning("could not remove container %s: %s", name, exc)


def _pump(stream: LogStream, logs: LogCollector) -> None:
    """Read the attach stream to its end, keeping a bounded log (runs in its own thread)."""
    try:
        for chunk in stream:
            logs.feed(chunk)
    except Exception as exc:  # the socket closes when the container is removed under us
        logger.debug("log stream ended: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            stream.close()


#: Files holding a container's memory high-water mark, relative to the cgroup root, by cgroup layout
#: (cgroupfs or systemd driver; v1 ``max_usage_in_bytes``, v2 ``memory.peak`` on kernels >= 5.19).
CGROUP_PEAK_FILES = (
    "memory/docker/{id}/memory.max_usage_in_bytes",
    "memory/system.slice/docker-{id}.scope/memory.max_usage_in_bytes",
    "docker/{id}/memory.peak",
    "system.slice/docker-{id}.scope/memory.peak",
)


class _MemorySampler:
    """Follows the container's memory high-water mark until stopped (its own thread).

    Preferred source: the container's cgroup file on this host (see :data:`CGROUP_PEAK_FILES`), read every
    ``fast_interval_s`` - the kernel's own high-water mark, page cache included. Fallback (remote engine,
    other layout): the engine's stats, which arrive about once a second; cgroup v1 engines report
    ``memory_stats.max_usage`` (a high-water mark), cgroup v2 engines only the current ``usage``, so the
    highest sample is kept and a short spike between samples can be missed.
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
        self._thread.start()

    def stop(self) -> None:
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
                    self._record(int(path.read_text().strip() or 0))
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
