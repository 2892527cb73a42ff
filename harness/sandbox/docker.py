"""The Docker sandbox: run untrusted team code in a fresh, locked-down container.

Two layers, as in docker-py's own split between ``api/`` and ``models/``:

* :class:`~harness.sandbox.engine.DockerAPI` (:mod:`harness.sandbox.engine`) is a thin wrapper of docker SDK calls.
  It holds no policy; unit tests replace it with a fake.
* :class:`DockerSandbox` (here) implements the steps of :class:`~harness.sandbox.base.BaseSandbox`: it owns the
  policy (what a container may do), the output area, memory sampling and removing the container; the lifecycle
  (wall clock, log capping, kill, clean-up order, signal safety) is the base class's.

Policy of every container (see :meth:`DockerSandbox.container_spec`): network mode ``none``; a non-root user
(``1000:1000``); a read-only root file system with small ``tmpfs`` for ``/tmp`` and ``HOME``
(``/home/team``); all capabilities dropped; ``no-new-privileges``; an init process; limits on pids, memory
(swap equal to memory: no swap) and CPUs; no log driver (output is read live through ``attach``, so a run that
prints 100 MB does not fill the host's disk either). The wall clock is enforced from outside: the container is
killed at ``time_s``. Images are never pulled.

The output folder is capped with a hard guarantee when the harness runs as root (a loop-mounted file system of
``output_mb`` MiB), and polled otherwise (logged as a warning: between two polls it can overshoot); see
:mod:`harness.sandbox.output`. A request's :class:`~harness.sandbox.base.ArtifactArea` (papermill's executed
notebook) gets an area of its own made the same way, of ``size_mb`` MiB, bound at its target; it does not count
against the output cap. Memory peaks come from :mod:`harness.sandbox.memory`.

This module also holds the labels every harness container carries, the session id, and :func:`remove_orphans`.
The engine layer's names (``DockerAPI``, ``ContainerSpec``, ...) are re-exported here, where they used to live.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ImageError, SandboxError
from harness.procs import pid_alive
from harness.sandbox.base import (
    BaseSandbox,
    Collected,
    Execution,
    RunOutcome,
    RunRequest,
    deferred_signals,
)
from harness.sandbox.engine import ENGINE_HELP, BindMount, ContainerSpec, DockerAPI, EngineAPI, LogStream
from harness.sandbox.logs import LogPump
from harness.sandbox.memory import MemorySampler
from harness.sandbox.output import OWNER_FILE, LoopOutput, OutputArea, PolledOutput, remove_orphan_areas

__all__ = [
    "CONTAINER_LABEL",
    "CONTAINER_LABEL_NAME",
    "CONTAINER_LABEL_PID",
    "CONTAINER_LABEL_SESSION",
    "ENGINE_HELP",
    "OWNER_FILE",
    "SESSION_ENV",
    "BindMount",
    "ContainerSpec",
    "DockerAPI",
    "DockerSandbox",
    "EngineAPI",
    "LogStream",
    "remove_orphans",
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

#: Team user inside the container (uid:gid) when the harness runs as root.
TEAM_USER = "1000:1000"
TEAM_HOME = "/home/team"
#: The task image's virtual environment (see :mod:`harness.images`).
VENV_BIN = "/opt/venv/bin"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
    return removed + remove_orphan_areas(work_dir)


def session_id() -> str:
    """``$HARNESS_SESSION_ID`` or ``""``: tags the containers (label) and scratch folders (name) of one session,
    so that a test session or a judging batch can find exactly what it made, even across processes."""
    from harness.settings import get_settings

    return get_settings().session_id


# --- the sandbox ----------------------------------------------------------------------------------------------

_LIVE_SANDBOXES: weakref.WeakSet[DockerSandbox] = weakref.WeakSet()


def kill_live_sandboxes(wait_s: float = 0.0) -> int:
    """Remove the running containers of every Docker sandbox alive in this process; with ``wait_s``, wait up to
    that many seconds for their runs to release their output areas.

    Called at exit and when a Dask worker closes (:class:`harness.distributed.SandboxCleanup`).

    Returns:
        How many sandboxes had a run in progress.
    """
    live = list(_LIVE_SANDBOXES)
    busy = [sandbox for sandbox in live if sandbox.busy]
    for sandbox in live:
        sandbox.kill_all()
    deadline = time.monotonic() + wait_s
    for sandbox in busy:
        if not sandbox.wait_idle(max(0.0, deadline - time.monotonic())):
            logger.warning("a run of a closing sandbox did not finish its clean-up within %.0f s", wait_s)
    return len(busy)


atexit.register(kill_live_sandboxes)


@dataclass(eq=False, kw_only=True)
class _DockerRun(Execution):
    """One container run: the engine it talks to and what :meth:`DockerSandbox._start` made, as it made it."""

    api: EngineAPI
    area: OutputArea | None = None
    artifact: OutputArea | None = None  # the request's artifact area, when it has one
    spec: ContainerSpec | None = None  # set once the container's name is chosen: from then on, remove it
    container: str = ""
    pump: LogPump | None = None
    sampler: MemorySampler | None = None  # set right before the container starts: from then on, stop it
    removed: bool = False


class DockerSandbox(BaseSandbox[_DockerRun]):
    """Runs a :class:`RunRequest` in a fresh container with the harness's policy; always removes it.

    :meth:`run` (the lifecycle of :class:`~harness.sandbox.base.BaseSandbox`) returns the run's
    :class:`~harness.sandbox.base.RunResult`. Outcome precedence: killed by the harness (``TIMED_OUT``, or
    ``OUTPUT_LIMIT`` when polling), then ``OUT_OF_MEMORY`` (the engine saw the OOM killer act and the command did
    not exit 0; or exit 137 with peak memory within 5% of the limit), then ``OUTPUT_LIMIT`` (the output file system
    is full, or outputs exceed the cap), then ``EXITED``. ``request.output_dir`` must exist and be empty.
    ``run`` raises :class:`~harness.errors.EngineUnavailableError` (no engine answers),
    :class:`~harness.errors.ImageError` (the image is not present locally; it is never pulled) or
    :class:`SandboxError` (the request is malformed or the engine failed).

    Args:
        api: the engine layer; by default a :class:`DockerAPI` connected on first use.
        work_dir: host folder for per-run scratch (the output file systems); default: the system temp folder.
        tmp_mb: size of the ``/tmp`` tmpfs in MiB (counts against the memory limit when used).
        home_mb: size of the ``HOME`` tmpfs (``/home/team``) in MiB.
        stats_interval_s: seconds between memory samples taken through the engine's stats (only when the
            container's cgroup files are not readable on this host; see :class:`~harness.sandbox.memory.MemorySampler`).
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
        super().__init__()
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
        self._kills = 0  # how many times kill_all ran: a run that was starting meanwhile must not start
        _LIVE_SANDBOXES.add(self)

    def close(self) -> None:
        """Remove running containers of this sandbox and close the engine connection it opened itself."""
        self.kill_all()
        if self._owns_api and isinstance(self._api, DockerAPI):
            self._api.close()
            self._api = None

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

    def container_spec(
        self, request: RunRequest, output_source: Path, name: str, artifact_source: Path | None = None
    ) -> ContainerSpec:
        """The container a request runs in (the whole policy in one value; unit tests assert on it).

        Args:
            request: the run.
            output_source: host folder bound writable at ``request.output_target``.
            name: container name.
            artifact_source: host folder bound writable at ``request.artifact_area.target`` (when it has one).
        """
        limits = request.limits
        memory = int(limits.memory_mb) * 1024 * 1024
        uid, gid = self._user().split(":")
        binds = tuple(BindMount(str(Path(m.source).resolve()), m.target, m.read_only) for m in request.mounts)
        binds += (BindMount(str(output_source), request.output_target, read_only=False),)
        if request.artifact_area is not None and artifact_source is not None:
            binds += (BindMount(str(artifact_source), request.artifact_area.target, read_only=False),)
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
    def check_image(self, image: str, *, build_hint: str = "harness image build TASK_DIR") -> str:
        """Make sure an image can run here, before any work is queued (the one image check of a batch and a run).

        Args:
            image: image reference (e.g. a task's ``harness-task/<id>:latest``).
            build_hint: the command that builds it, for the error message.

        Returns:
            The image's id (``sha256:...``).

        Raises:
            EngineUnavailableError: no engine answers.
            ImageError: the image is not present locally (it is never pulled).
        """
        image_id = self.api.image_id(image)
        if not image_id:
            raise ImageError(
                f"image {image!r} is not present locally and images are never pulled; build it with `{build_hint}`"
            )
        return image_id

    # -- the lifecycle's steps (see BaseSandbox) ---------------------------------------------------------------
    def _prepare(self, request: RunRequest) -> _DockerRun:
        api = self.api
        image_id = self.check_image(request.image)
        return _DockerRun(request=request, api=api, image_id=image_id)

    def _start(self, run: _DockerRun) -> None:
        request, api = run.request, run.api
        limits = request.limits
        with deferred_signals():
            run.area = self._area(Path(request.output_dir), limits.output_mb)
            if request.artifact_area is not None:
                run.artifact = self._area(Path(request.artifact_area.host_dir), request.artifact_area.size_mb)
        if not run.area.enforced:
            msg = (
                f"output size of {request.label or request.image} is polled, not enforced "
                "(the harness is not root): a run can overshoot output_mb between two polls"
            )
            logger.warning("%s", msg)
            run.warnings.append(msg)
            run.poll_s = 0.25
        run.name = f"harness-{uuid.uuid4().hex[:12]}"
        artifact_source = run.artifact.host_path if run.artifact is not None else None
        run.spec = self.container_spec(request, run.area.host_path, run.name, artifact_source)
        with self._lock:
            self._active.add(run.name)
            kills = self._kills
        run.container = api.create_container(run.spec)
        with self._lock:
            if self._kills != kills:  # kill_all ran while this container was being made (Ctrl-C as a run starts)
                raise SandboxError("the sandbox was stopped while this run was starting; its container never started")
        stream = api.attach(run.container)
        run.pump = LogPump(stream, run.logs, close=stream.close, name=f"{run.name}-log")
        run.pump.start()
        run.sampler = MemorySampler(api, run.container, self.stats_interval_s, self.cgroup_root)
        api.start(run.container)
        run.sampler.start()

    def _wait(self, run: _DockerRun) -> int:
        return run.api.wait(run.container)

    def _kill(self, run: _DockerRun) -> None:
        run.api.kill(run.container)

    def _area(self, host_dir: Path, size_mb: int) -> OutputArea:
        """A capped area: loop-mounted when root (see :meth:`_use_loop`), else ``host_dir`` itself, polled."""
        if self._use_loop():
            return LoopOutput(size_mb, self.work_dir, self._user(), session_id())
        return PolledOutput(host_dir, size_mb, self._user())

    def _exceeded(self, run: _DockerRun) -> bool:
        areas = (run.area, run.artifact)
        return any(area is not None and area.exceeded() for area in areas)

    def _stop(self, run: _DockerRun) -> None:
        if run.sampler is None or run.pump is None:  # never started: removing the container is all there is
            return
        if not run.exited.is_set():  # interrupted or failed: stop the container before waiting for threads
            run.api.kill(run.container)
        run.sampler.stop()
        run.pump.stop(5.0 if run.exited.is_set() else 0.5)

    def _collect(self, run: _DockerRun) -> Collected:
        # The outcome precedence is in the class docs; the lifecycle puts a limit it killed for first.
        assert run.sampler is not None and run.area is not None
        limits = run.request.limits
        peak_bytes = run.sampler.peak_bytes
        state = dict(run.api.inspect(run.container).get("State") or {})
        if run.exit_code is None and "ExitCode" in state and not state.get("Running"):
            run.exit_code = int(state["ExitCode"])
        with deferred_signals():
            self._remove(run)
        budget = int(limits.output_mb) * 1024 * 1024
        output_bytes, over_budget, dropped = run.area.collect(Path(run.request.output_dir), budget)
        area = run.request.artifact_area
        if run.artifact is not None and area is not None:  # its own cap; never the team's output limit
            run.artifact.collect(Path(area.host_dir), int(area.size_mb) * 1024 * 1024)
        outcome = self._outcome(run.exit_code, state, peak_bytes, run.area.hit_cap() or over_budget, limits.memory_mb)
        peak_mb = peak_bytes / 2**20 if peak_bytes else None
        if run.killed_for is None and outcome is RunOutcome.OUT_OF_MEMORY:
            # The kernel killed it at the limit: its peak reached the limit even when the last sample (every 50 ms,
            # from a cgroup that vanishes with the container) came before the final allocation.
            peak_mb = max(peak_mb or 0.0, float(limits.memory_mb))
        return Collected(outcome, output_bytes, peak_mb, tuple(dropped))

    def _release(self, run: _DockerRun) -> None:
        try:
            if run.spec is not None and not run.removed:
                self._remove(run)
        finally:
            try:
                if run.artifact is not None:
                    run.artifact.close()
            finally:
                if run.area is not None:
                    run.area.close()

    @staticmethod
    def _outcome(
        exit_code: int | None, state: dict[str, Any], peak_bytes: int | None, output_full: bool, memory_mb: int
    ) -> RunOutcome:
        peak = peak_bytes or 0
        near_limit = peak >= 0.95 * memory_mb * 2**20
        if exit_code != 0 and (state.get("OOMKilled") or (exit_code == 137 and near_limit)):
            return RunOutcome.OUT_OF_MEMORY
        if output_full:
            return RunOutcome.OUTPUT_LIMIT
        return RunOutcome.EXITED

    def _remove(self, run: _DockerRun) -> None:
        try:
            run.api.remove(run.name)
        finally:
            run.removed = True
            with self._lock:
                self._active.discard(run.name)

    def kill_all(self) -> None:
        """Remove every container this sandbox is running now (for a coordinator shutting down).

        Runs in any thread; each run in progress then sees its container gone and cleans up the rest.
        """
        with self._lock:
            self._kills += 1
            names = list(self._active)
        for name in names:
            try:
                self.api.remove(name)
            except Exception as exc:  # keep going: remove as many as possible
                logger.warning("could not remove container %s: %s", name, exc)
