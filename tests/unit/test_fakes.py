"""The shared fakes of tests/unit/fakes.py behave as their docs say (they stand in for Docker elsewhere)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fakes import FakeSandbox, make_result

from harness.errors import SandboxError
from harness.sandbox import SANDBOXES, RunOutcome, RunRequest, Sandbox, get_sandbox


def _request(tmp_path: Path, name: str) -> RunRequest:
    out = tmp_path / name
    out.mkdir()
    return RunRequest(image="harness-task/unit:latest", command=("python", "main.py"), output_dir=out, label=name)


def test_fake_sandbox_scripts_results_files_and_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timed_out = make_result(outcome=RunOutcome.TIMED_OUT, exit_code=None, log="slow\n")
    fake = FakeSandbox(
        [make_result(log="hello\n"), SandboxError("engine failed"), timed_out],
        files=lambda request: {"predictions.csv": f"id,y\n{request.label},1\n", "sub/raw.bin": b"\x00\x01"},
    )
    assert isinstance(fake, Sandbox)

    first = fake.run(_request(tmp_path, "a"))
    assert first.ok and first.log == "hello\n"
    assert (tmp_path / "a" / "predictions.csv").read_text() == "id,y\na,1\n"
    assert (tmp_path / "a" / "sub" / "raw.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(SandboxError, match="engine failed"):
        fake.run(_request(tmp_path, "b"))
    assert (tmp_path / "b" / "predictions.csv").exists()  # written before the scripted failure
    assert fake.run(_request(tmp_path, "c")) is timed_out
    assert fake.run(_request(tmp_path, "d")) is timed_out  # the last result repeats
    assert [r.label for r in fake.requests] == ["a", "b", "c", "d"]

    with pytest.raises(SandboxError, match="must be empty"):  # checked like the real sandboxes
        fake.run(RunRequest(image="x", command=("true",), output_dir=tmp_path / "a"))

    assert fake.closed == 0
    with fake as box:
        assert box is fake
    fake.close()
    assert fake.closed == 2

    monkeypatch.setitem(SANDBOXES, "fake", lambda: fake)
    assert get_sandbox("fake") is fake


def test_fake_sandbox_default_result_counts_files_and_is_thread_safe(tmp_path: Path) -> None:
    fake = FakeSandbox(files={"predictions.csv": "id,y\n"}, name="docker")
    requests = [_request(tmp_path, f"r{i}") for i in range(8)]
    results = []
    threads = [threading.Thread(target=lambda r=r: results.append(fake.run(r))) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.requests) == 8
    assert all(r.ok and r.output_bytes == len("id,y\n") and r.sandbox == "docker" for r in results)
    with pytest.raises(SandboxError, match="not inside the output folder"):
        FakeSandbox(files={"../escape.txt": "x"}).run(_request(tmp_path, "e"))
