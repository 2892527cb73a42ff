"""Shared fakes for Docker-free unit tests: the engine layer (:class:`FakeEngine`), a sandbox (:class:`FakeSandbox`).

Import them as ``from fakes import FakeEngine, FakeSandbox`` (pytest puts ``tests/unit`` on the path, as for
``spec_fixtures``).

* :class:`FakeEngine` implements :class:`harness.sandbox.engine.EngineAPI` and records every call, so tests check
  what :class:`~harness.sandbox.docker.DockerSandbox` asks the engine for and that the container is removed.
* :class:`FakeSandbox` implements :class:`harness.sandbox.Sandbox` without running anything: it writes scripted
  files into the request's output folder and returns scripted results, for unit tests of the pipeline and the
  scheduler. Code that takes a sandbox *name* finds it once registered:
  ``monkeypatch.setitem(harness.sandbox.SANDBOXES, "fake", lambda: fake)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import SandboxError
from harness.record import RunRecord
from harness.sandbox.base import RunOutcome, RunRequest, RunResult, validate_request
from harness.sandbox.engine import ContainerSpec

__all__ = ["IMAGE", "IMAGE_ID", "FakeEngine", "FakeSandbox", "FakeStream", "MiB", "make_result"]

#: The one image the fake engine has.
IMAGE = "harness-task/unit:latest"
IMAGE_ID = "sha256:" + "ab" * 32
MiB = 1024 * 1024


# --- the engine layer ------------------------------------------------------------------------------------------


class FakeStream:
    """Chunks the 'container' prints; ends when the fake container stops."""

    def __init__(self, engine: FakeEngine, chunks: list[bytes]) -> None:
        self.engine = engine
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        self.engine.stopped.wait(30)

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    """A scripted engine.

    Args:
        exit_code: what ``wait`` returns when the container ends by itself.
        run_s: seconds the container "runs" before exiting (``None``: until killed).
        chunks: output the container prints.
        oom_killed: ``State.OOMKilled`` reported by ``inspect``.
        max_usage: ``memory_stats.max_usage`` reported by ``stats`` (bytes).
        fail_on: name of a call that raises ``failure`` instead of working.
    """

    def __init__(
        self,
        *,
        exit_code: int = 0,
        run_s: float | None = 0.0,
        chunks: list[bytes] | None = None,
        oom_killed: bool = False,
        max_usage: int = 10 * MiB,
        fail_on: str = "",
        failure: BaseException | None = None,
    ) -> None:
        self.exit_code = exit_code
        self.run_s = run_s
        self.chunks = chunks or []
        self.oom_killed = oom_killed
        self.max_usage = max_usage
        self.fail_on = fail_on
        self.failure = failure or SandboxError("engine failed")
        self.calls: list[tuple[str, str]] = []
        self.specs: list[ContainerSpec] = []
        self.containers: set[str] = set()  # by name (ids equal names here)
        self.stopped = threading.Event()
        self.killed = False
        self.streams: list[FakeStream] = []

    def _call(self, name: str, arg: str) -> None:
        self.calls.append((name, arg))
        if name == self.fail_on:
            raise self.failure

    def image_id(self, ref: str) -> str | None:
        self._call("image_id", ref)
        return IMAGE_ID if ref == IMAGE else None

    def create_container(self, spec: ContainerSpec) -> str:
        self.specs.append(spec)
        self.containers.add(spec.name)
        self._call("create_container", spec.name)
        return spec.name

    def attach(self, container: str) -> FakeStream:
        self._call("attach", container)
        stream = FakeStream(self, list(self.chunks))
        self.streams.append(stream)
        return stream

    def start(self, container: str) -> None:
        self._call("start", container)
        if self.run_s is not None:
            threading.Timer(self.run_s, self.stopped.set).start()

    def wait(self, container: str) -> int:
        self._call("wait", container)
        self.stopped.wait()
        return 137 if self.killed else self.exit_code

    def kill(self, container: str) -> None:
        self._call("kill", container)
        if not self.stopped.is_set():
            self.killed = True
            self.stopped.set()

    def remove(self, container: str) -> None:
        self._call("remove", container)
        self.containers.discard(container)
        self.stopped.set()

    def stats(self, container: str) -> dict[str, Any]:
        self._call("stats", container)
        return {"memory_stats": {"max_usage": self.max_usage, "usage": self.max_usage // 2}}

    def inspect(self, container: str) -> dict[str, Any]:
        self._call("inspect", container)
        code = 137 if self.killed else self.exit_code
        return {"State": {"Running": False, "ExitCode": code, "OOMKilled": self.oom_killed}}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def list_containers(self, labels: Mapping[str, str]) -> list[str]:
        self._call("list_containers", ",".join(f"{k}={v}" for k, v in labels.items()))
        return sorted(
            spec.name
            for spec in self.specs
            if spec.name in self.containers and all(spec.labels.get(k) == v for k, v in labels.items())
        )


# --- a whole sandbox -------------------------------------------------------------------------------------------

#: What a fake run writes: relative path -> text or bytes.
Files = Mapping[str, str | bytes]


def make_result(**fields: Any) -> RunResult:
    """A :class:`RunResult` of a run that exited 0 with an empty log; ``fields`` override any attribute."""
    values: dict[str, Any] = {
        "outcome": RunOutcome.EXITED,
        "exit_code": 0,
        "duration_s": 0.01,
        "peak_memory_mb": None,
        "log": "",
        "log_truncated": False,
        "sandbox": "fake",
    }
    values.update(fields)
    return RunResult(**values)


class FakeSandbox:
    """A :class:`harness.sandbox.Sandbox` that runs nothing (thread-safe, so a scheduler's workers may share it).

    Each :meth:`run` checks the request like the real sandboxes (unless ``validate=False``), records it, writes
    ``files`` into ``request.output_dir`` and returns the next of ``results``.

    Args:
        results: what the runs return, in order; the last one repeats. An exception in the list is raised by its
            run instead (after the files are written), e.g. ``SandboxError("engine failed")``. Default: one
            :func:`make_result` whose ``output_bytes`` counts the files written.
        files: files each run writes, relative to the output folder (folders are made): a mapping, or a function
            of the request returning one (e.g. to write what depends on ``request.label``).
        name: the sandbox's name (:attr:`RunResult.sandbox` of the default result, provenance).
        validate: check each request with :func:`harness.sandbox.base.validate_request`.

    Attributes:
        requests: every request received, in order.
        closed: how many times :meth:`close` was called (``__exit__`` closes too).
    """

    def __init__(
        self,
        results: Sequence[RunResult | BaseException] = (),
        *,
        files: Files | Callable[[RunRequest], Files] | None = None,
        name: str = "fake",
        validate: bool = True,
    ) -> None:
        self.name = name
        self._results = list(results)
        self._files = files
        self._validate = validate
        self._lock = threading.Lock()
        self.requests: list[RunRequest] = []
        self.closed = 0

    def run(self, request: RunRequest) -> RunResult:
        """Record the request, write the scripted files, return (or raise) the next scripted result.

        Raises:
            SandboxError: the request is malformed (as the real sandboxes would say), or scripted.
        """
        if self._validate:
            validate_request(request)
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
        written = self._write(request)
        if not self._results:
            return make_result(output_bytes=written, sandbox=self.name)
        scripted = self._results[min(index, len(self._results) - 1)]
        if isinstance(scripted, BaseException):
            raise scripted
        return scripted

    def _write(self, request: RunRequest) -> int:
        files = self._files(request) if callable(self._files) else self._files or {}
        out = Path(request.output_dir)
        written = 0
        for rel, content in files.items():
            path = out / rel
            if out.resolve() not in path.resolve().parents:
                raise SandboxError(f"fake sandbox: {rel!r} is not inside the output folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            path.write_bytes(data)
            written += len(data)
        return written

    def close(self) -> None:
        """Count the call (nothing runs in the background)."""
        with self._lock:
            self.closed += 1

    def __enter__(self) -> FakeSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- a run's record --------------------------------------------------------------------------------------------


def finished_record(status: str, scores: dict[str, dict[str, float]] | None = None, **fields: Any) -> RunRecord:
    """A finished run's record of task ``task`` with only the fields a store test cares about."""
    return RunRecord(
        task_id="task",
        phase="test",
        team="",
        content_hash="",
        kind="script",
        status=status,
        scores=scores or {},
        **fields,
    )
