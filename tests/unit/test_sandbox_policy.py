"""DockerSandbox's policy against a fake engine layer: no Docker needed.

The fake (``tests/unit/fakes.py``) implements :class:`harness.sandbox.engine.EngineAPI` (the thin layer's calls)
and records every call, so these tests check what the sandbox asks the engine for, how it maps what the engine
reports, and that the container is removed on every path.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import IMAGE, IMAGE_ID, FakeEngine, MiB

from harness.errors import EngineUnavailableError, ImageError, SandboxError
from harness.sandbox import SANDBOXES, get_sandbox
from harness.sandbox.base import Limits, Mount, RunOutcome, RunRequest
from harness.sandbox.docker import CONTAINER_LABEL, CONTAINER_LABEL_NAME, DockerSandbox
from harness.sandbox.engine import DockerAPI
from harness.sandbox.logs import LOG_TAIL_BYTES, LOG_TRUNCATED_MARKER, LogCollector
from harness.sandbox.output import copy_output_tree


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / name for name in ("submission", "input", "output", "scratch")}
    for path in out.values():
        path.mkdir()
    return out


def make_request(folders: dict[str, Path], **limits: Any) -> RunRequest:
    return RunRequest(
        image=IMAGE,
        command=("python", "main.py"),
        output_dir=folders["output"],
        mounts=(Mount(folders["submission"], "/submission"), Mount(folders["input"], "/input")),
        limits=Limits(**{"time_s": 10, "memory_mb": 256, "pids": 32, "output_mb": 4, "log_kb": 4, **limits}),
        env=(("HARNESS_TASK", "unit"),),
        label="team-a/abc123",
    )


def sandbox(engine: FakeEngine, folders: dict[str, Path]) -> DockerSandbox:
    # Polling output (no loop mounts in unit tests) and engine stats for memory (no host cgroup files).
    return DockerSandbox(
        engine, work_dir=folders["scratch"], enforce_output="poll", cgroup_root=None, stats_interval_s=0.01
    )


# --- policy -------------------------------------------------------------------------------------------------


def test_container_spec_carries_the_whole_policy(folders: dict[str, Path]) -> None:
    engine = FakeEngine()
    result = sandbox(engine, folders).run(make_request(folders))
    assert result.ok
    (spec,) = engine.specs
    assert spec.image == IMAGE
    assert spec.command == ("python", "main.py")
    assert spec.network_mode == "none"
    assert spec.read_only is True
    assert spec.cap_drop == ("ALL",)
    assert spec.security_opt == ("no-new-privileges",)
    assert spec.init is True
    assert spec.pids_limit == 32
    assert spec.mem_limit_bytes == spec.memswap_limit_bytes == 256 * MiB
    assert spec.nano_cpus == 1_000_000_000
    assert spec.log_driver == "none"
    assert not spec.user.startswith("0:") and spec.user.split(":")[0] != "0"
    assert set(spec.tmpfs) == {"/tmp", "/home/team"}
    assert "size=" in spec.tmpfs["/tmp"] and "nosuid" in spec.tmpfs["/tmp"]
    assert f"uid={spec.user.split(':')[0]}" in spec.tmpfs["/home/team"]
    assert spec.labels[CONTAINER_LABEL] == "1"
    assert spec.labels[CONTAINER_LABEL_NAME] == "team-a/abc123"
    assert spec.working_dir == "/submission"
    binds = {b.target: b for b in spec.binds}
    assert binds["/submission"].read_only and binds["/input"].read_only
    assert not binds["/output"].read_only
    assert binds["/submission"].source == str(folders["submission"])
    env = dict(spec.env)
    assert env["HOME"] == "/home/team"
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for key in ("JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR", "IPYTHONDIR"):
        assert env[key].startswith("/tmp/")
    assert env["HARNESS_INPUT_DIR"] == "/input" and env["HARNESS_OUTPUT_DIR"] == "/output"
    assert env["HARNESS_TASK"] == "unit"
    assert result.image_id == IMAGE_ID
    assert result.sandbox == "docker" and result.isolated


def test_the_team_user_is_1000_when_the_harness_is_root(folders: dict[str, Path], monkeypatch: Any) -> None:
    monkeypatch.setattr("harness.sandbox.docker.os.geteuid", lambda: 0)
    spec = DockerSandbox(FakeEngine()).container_spec(make_request(folders), folders["output"], "c1")
    assert spec.user == "1000:1000"
    monkeypatch.setattr("harness.sandbox.docker.os.geteuid", lambda: 1234)
    monkeypatch.setattr("harness.sandbox.docker.os.getegid", lambda: 99)
    spec = DockerSandbox(FakeEngine()).container_spec(make_request(folders), folders["output"], "c1")
    assert spec.user == "1234:99"


def test_attach_comes_before_start_so_no_output_is_lost(folders: dict[str, Path]) -> None:
    engine = FakeEngine(chunks=[b"first line\n"])
    result = sandbox(engine, folders).run(make_request(folders))
    names = engine.names()
    assert names.index("attach") < names.index("start")
    assert result.log == "first line\n"


# --- cleanup on every path ----------------------------------------------------------------------------------


def test_removed_after_success(folders: dict[str, Path]) -> None:
    engine = FakeEngine()
    sandbox(engine, folders).run(make_request(folders))
    assert engine.names()[-1] == "remove" or "remove" in engine.names()
    assert engine.containers == set()


def test_removed_when_the_engine_fails(folders: dict[str, Path]) -> None:
    engine = FakeEngine(fail_on="start")
    with pytest.raises(SandboxError, match="engine failed"):
        sandbox(engine, folders).run(make_request(folders))
    assert engine.containers == set()
    assert os.listdir(folders["scratch"]) == []


def test_removed_when_interrupted_at_start(folders: dict[str, Path]) -> None:
    engine = FakeEngine(fail_on="start", failure=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sandbox(engine, folders).run(make_request(folders))
    assert engine.containers == set()


def test_removed_by_name_when_create_reply_is_lost(folders: dict[str, Path]) -> None:
    engine = FakeEngine(fail_on="create_container", failure=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sandbox(engine, folders).run(make_request(folders))
    assert engine.containers == set()  # the engine made it; the sandbox removed it by its chosen name


def test_removed_when_ctrl_c_arrives_while_waiting(folders: dict[str, Path]) -> None:
    engine = FakeEngine(run_s=None)
    main = threading.get_ident()
    timer = threading.Timer(0.3, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sandbox(engine, folders).run(make_request(folders))
    timer.join()
    assert time.monotonic() - started < 3
    assert engine.containers == set()
    assert "kill" in engine.names()


def test_a_second_ctrl_c_during_cleanup_is_delivered_after_it(folders: dict[str, Path]) -> None:
    main = threading.get_ident()

    class SlowRemove(FakeEngine):
        def remove(self, container: str) -> None:
            signal.pthread_kill(main, signal.SIGINT)  # the user presses Ctrl-C again during cleanup
            time.sleep(0.05)
            super().remove(container)

    engine = SlowRemove()
    with pytest.raises(KeyboardInterrupt):
        sandbox(engine, folders).run(make_request(folders))
    assert engine.containers == set()


def test_kill_all_removes_running_containers(folders: dict[str, Path]) -> None:
    engine = FakeEngine(run_s=None)
    box = sandbox(engine, folders)
    thread = threading.Thread(target=lambda: box.run(make_request(folders)))
    thread.start()
    deadline = time.monotonic() + 5
    while "start" not in engine.names() and time.monotonic() < deadline:
        time.sleep(0.01)
    box.kill_all()
    thread.join(5)
    assert not thread.is_alive()
    assert engine.containers == set()


# --- outcomes -----------------------------------------------------------------------------------------------


def test_timeout_kills_and_reports_timed_out(folders: dict[str, Path]) -> None:
    engine = FakeEngine(run_s=None)
    started = time.monotonic()
    result = sandbox(engine, folders).run(make_request(folders, time_s=0.3))
    assert result.outcome is RunOutcome.TIMED_OUT
    assert result.exit_code is None
    assert 0.3 <= result.duration_s < 1.5
    assert time.monotonic() - started < 2.3
    assert "kill" in engine.names()
    assert engine.containers == set()


@pytest.mark.parametrize(
    ("exit_code", "oom_killed", "max_usage", "expected"),
    [
        (137, True, 256 * MiB, RunOutcome.OUT_OF_MEMORY),  # the engine saw the OOM killer
        (1, True, 200 * MiB, RunOutcome.OUT_OF_MEMORY),  # papermill: dead kernel, papermill exits 1
        (137, False, 255 * MiB, RunOutcome.OUT_OF_MEMORY),  # fallback: SIGKILL at the limit
        (137, False, 20 * MiB, RunOutcome.EXITED),  # SIGKILL far below the limit: not memory
        (0, True, 256 * MiB, RunOutcome.EXITED),  # a child was OOM-killed but the command succeeded
        (3, False, 20 * MiB, RunOutcome.EXITED),
    ],
)
def test_oom_mapping(
    folders: dict[str, Path], exit_code: int, oom_killed: bool, max_usage: int, expected: RunOutcome
) -> None:
    engine = FakeEngine(exit_code=exit_code, oom_killed=oom_killed, max_usage=max_usage, run_s=0.1)
    result = sandbox(engine, folders).run(make_request(folders, memory_mb=256))
    assert result.outcome is expected
    assert result.exit_code == exit_code
    # Killed by the OOM killer: the cgroup reached its limit, whatever the last sample said.
    peak = max(max_usage / MiB, 256.0) if expected is RunOutcome.OUT_OF_MEMORY else max_usage / MiB
    assert result.peak_memory_mb == pytest.approx(peak, abs=0.1)


def test_log_is_capped_with_marker_and_tail(folders: dict[str, Path]) -> None:
    chunks = [bytes([65 + i % 26]) * 65536 for i in range(160)] + [b"Traceback: the end\n"]  # 10 MiB + a bit
    engine = FakeEngine(chunks=chunks)
    result = sandbox(engine, folders).run(make_request(folders, log_kb=4))
    total = sum(len(c) for c in chunks)
    assert result.log_truncated
    assert len(result.log.encode()) <= 4 * 1024
    last = result.log.splitlines()[-1]
    assert last.startswith(LOG_TRUNCATED_MARKER)
    kept = len(result.log.encode()) - len(last) - 2
    assert f"{total - kept} bytes dropped" in last
    assert result.log_tail.endswith("Traceback: the end\n")
    assert len(result.log_tail.encode()) <= LOG_TAIL_BYTES


def test_missing_image_raises_and_creates_nothing(folders: dict[str, Path]) -> None:
    engine = FakeEngine()
    request = make_request(folders)
    request = RunRequest(**{**request.__dict__, "image": "harness-task/nope:latest"})
    with pytest.raises(ImageError, match="harness image build"):
        sandbox(engine, folders).run(request)
    assert "create_container" not in engine.names()


def test_output_over_the_cap_is_reported_when_polling(folders: dict[str, Path]) -> None:
    class Writer(FakeEngine):
        def start(self, container: str) -> None:
            super().start(container)
            (folders["output"] / "big.bin").write_bytes(b"x" * (5 * MiB))

    engine = Writer(run_s=None)
    result = sandbox(engine, folders).run(make_request(folders, output_mb=4))
    assert result.outcome is RunOutcome.OUTPUT_LIMIT
    assert any("polled" in w for w in result.warnings)
    assert engine.containers == set()


def test_request_is_checked_before_the_engine_is_asked(folders: dict[str, Path]) -> None:
    (folders["output"] / "stale.csv").write_text("x")
    engine = FakeEngine()
    with pytest.raises(SandboxError, match="must be empty"):
        sandbox(engine, folders).run(make_request(folders))
    assert engine.calls == []


def test_engine_unavailable_says_how_to_get_one(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(EngineUnavailableError) as info:
        DockerAPI()
    message = str(info.value)
    assert "scripts/ensure-docker.sh" in message
    assert "--sandbox process" in message
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args


# --- shared helpers -----------------------------------------------------------------------------------------


def test_log_collector_keeps_head_counts_rest_and_stays_small() -> None:
    logs = LogCollector(1024)
    for _ in range(10_000):
        logs.feed(b"y" * 1000)
    log, truncated, tail = logs.render()
    assert truncated
    assert len(log.encode()) <= 1024
    assert logs.total_bytes == 10_000_000
    assert logs.dropped_bytes == 10_000_000 - len(log.split("\n" + LOG_TRUNCATED_MARKER)[0])
    assert len(tail) == LOG_TAIL_BYTES
    assert len(logs._head) <= 1024 and sum(len(c) for c in logs._tail) <= LOG_TAIL_BYTES + 1000


def test_log_collector_under_the_cap_is_verbatim() -> None:
    logs = LogCollector(1024)
    logs.feed("héllo\n".encode())
    assert logs.render() == ("héllo\n", False, "")


def test_copy_output_tree_skips_links_and_oversized(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "sub").mkdir(parents=True)
    dest.mkdir()
    (src / "predictions.csv").write_text("id,y\n")
    (src / "sub" / "notes.txt").write_text("ok")
    (src / "passwd").symlink_to("/etc/passwd")
    (src / "linkdir").symlink_to(src / "sub")
    with open(src / "sparse.bin", "wb") as fh:
        fh.truncate(1 << 40)
    copied, over, skipped = copy_output_tree(src, dest, 1 * MiB)
    assert copied == len("id,y\n") + 2
    assert over
    assert sorted(skipped) == ["linkdir", "passwd", "sparse.bin"]
    assert sorted(p.name for p in dest.rglob("*")) == ["notes.txt", "predictions.csv", "sub"]


def test_registry_names_and_unknown_name() -> None:
    assert set(SANDBOXES) == {"docker", "process"}
    assert get_sandbox("docker").name == "docker"
    assert get_sandbox("process").name == "process"
    assert get_sandbox().name == "docker"
    with pytest.raises(SandboxError, match="unknown sandbox 'podman'; choose one of: docker, process"):
        get_sandbox("podman")


def test_a_run_starting_while_the_sandbox_is_stopped_never_starts(folders: dict[str, Path]) -> None:
    """Ctrl-C as a run starts: kill_all comes between making the container and starting it."""
    engine = FakeEngine()
    box = sandbox(engine, folders)
    create = engine.create_container

    def create_then_stopped(spec: Any) -> str:
        made = create(spec)
        box.kill_all()  # the coordinator closes the shared sandbox at this moment
        return made

    engine.create_container = create_then_stopped  # type: ignore[method-assign]
    with pytest.raises(SandboxError, match="stopped while this run was starting"):
        box.run(make_request(folders))
    assert "start" not in engine.names() and engine.containers == set()  # never started, and removed
    engine.create_container = create  # type: ignore[method-assign]
    assert box.run(make_request(folders)).ok  # a later run of the same sandbox works
