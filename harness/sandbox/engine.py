"""The thin engine layer: one method per Docker engine call, no policy (layer (a) of the Docker sandbox).

As in docker-py's own split between ``api/`` and ``models/``: :class:`DockerAPI` wraps the SDK's low-level client
(create, attach, start, wait, kill, remove, stats, inspect, image lookup, image build/import) and maps SDK errors
onto the harness's error tree in one place (:meth:`DockerAPI._errors`). :class:`ContainerSpec` is the whole
container as one frozen value, so the policy of :class:`harness.sandbox.docker.DockerSandbox` can be asserted
against a fake of :class:`EngineAPI` without Docker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import EngineUnavailableError, ImageError, SandboxError

__all__ = ["ENGINE_HELP", "BindMount", "ContainerSpec", "DockerAPI", "EngineAPI", "LogStream"]

#: How to get an engine; part of every :class:`EngineUnavailableError`.
ENGINE_HELP = (
    "Start or install a Docker engine: as root on Debian run `apt-get install -y docker.io` and start `dockerd` "
    "(in a source checkout `bash scripts/ensure-docker.sh` does both), otherwise install Docker "
    "(https://docs.docker.com/engine/install/) and make sure "
    "`docker info` works for your user. Without Docker, run with `--sandbox process` (no isolation)."
)


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
    """The calls :class:`~harness.sandbox.docker.DockerSandbox` makes; :class:`DockerAPI` implements them, unit
    tests fake them (``tests/unit/fakes.py``)."""

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
            if str(client.base_url).startswith("http+docker://"):
                # A local socket: no proxy, netrc or CA bundle of the environment applies to it, and requests
                # otherwise scans the environment for them on every call (~0.5 ms each, ~7 calls a run).
                client.trust_env = False
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
        self,
        context_dir: Path,
        tag: str,
        labels: Mapping[str, str],
        network_mode: str = "none",
        *,
        nocache: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Build an image from a folder holding a Dockerfile; yields the engine's decoded progress messages.

        Never pulls a newer base (``pull=False``); intermediate containers are always removed. ``nocache``: build
        every step again instead of reusing the engine's layer cache (benchmarks).
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
                nocache=nocache,
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

    def images_with_labels(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of the local images carrying every ``label=value`` given."""
        with self._errors("list images"):
            found = self.client.images(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        return [str(image["Id"]) for image in found]

    def tag_image(self, ref: str, repository: str, tag: str) -> None:
        """Give a local image the name ``repository:tag`` as well (``docker tag``)."""
        with self._errors(f"tag {ref} as {repository}:{tag}"):
            self.client.tag(ref, repository, tag)

    def save_image(self, ref: str) -> Iterator[bytes]:
        """``docker save`` of a local image: its tar archive as chunks."""
        with self._errors(f"save {ref}"):
            yield from self.client.get_image(ref)

    def load_image(self, data: Any) -> list[dict[str, Any]]:
        """``docker load`` of an image archive (bytes or a binary file); returns the engine's messages."""
        with self._errors("load an image archive"):
            return list(self.client.load_image(data))

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
