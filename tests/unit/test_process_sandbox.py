"""The process sandbox with real subprocesses (no Docker): path mapping, limits, outcomes, cleanup."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import SandboxError
from harness.sandbox.base import Limits, Mount, RunOutcome, RunRequest
from harness.sandbox.logs import LOG_TRUNCATED_MARKER
from harness.sandbox.process import NOT_ISOLATED_WARNING, ProcessSandbox, map_paths

MiB = 1024 * 1024


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                found.add(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _no_processes_left() -> Iterator[None]:
    before = _children()
    yield
    assert _children() - before == set()


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / name for name in ("submission", "input", "output", "scratch")}
    for path in out.values():
        path.mkdir()
    (out["input"] / "features.csv").write_text("id,x\na,1\n")
    return out


def run(folders: dict[str, Path], code: str, **limits: Any) -> Any:
    """Run ``code`` as main.py. Code reads its folders from HARNESS_*_DIR (literal /output is not mapped in code)."""
    (folders["submission"] / "main.py").write_text(textwrap.dedent(code))
    request = RunRequest(
        image="ignored",
        command=("python", "main.py"),
        output_dir=folders["output"],
        mounts=(Mount(folders["submission"], "/submission"), Mount(folders["input"], "/input")),
        limits=Limits(**{"time_s": 20, "memory_mb": 512, "pids": 64, "output_mb": 4, "log_kb": 16, **limits}),
        env=(("HARNESS_TASK", "unit"),),
    )
    return ProcessSandbox(work_dir=folders["scratch"]).run(request)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/input", "/h/in"),
        ("/input/flights.csv", "/h/in/flights.csv"),
        ("/input/test/x.csv", "/h/test/x.csv"),  # the longer target wins
        ("--cwd=/submission", "--cwd=/h/sub"),
        ('{"input_dir": "/input", "output_dir": "/output"}', '{"input_dir": "/h/in", "output_dir": "/h/out"}'),
        ("/inputs", "/inputs"),
        ("/data/input", "/data/input"),
        ("input", "input"),
        ("a /output b", "a /h/out b"),
    ],
)
def test_map_paths(text: str, expected: str) -> None:
    mapping = {"/input": "/h/in", "/input/test": "/h/test", "/submission": "/h/sub", "/output": "/h/out"}
    assert map_paths(text, mapping) == expected


def test_map_paths_never_maps_the_root() -> None:
    assert map_paths("/etc/passwd /input", {"/": "/host", "/input": "/h/in"}) == "/etc/passwd /h/in"


def test_one_command_for_both_sandboxes(folders: dict[str, Path], caplog: Any) -> None:
    code = """
        import json, os, sys
        print(json.dumps({
            "cwd": os.getcwd(), "exe": sys.executable, "argv": sys.argv,
            "input": os.environ["HARNESS_INPUT_DIR"], "output": os.environ["HARNESS_OUTPUT_DIR"],
            "submission": os.environ["HARNESS_SUBMISSION_DIR"], "task": os.environ["HARNESS_TASK"],
            "home": os.environ["HOME"], "features": open(os.path.join(os.environ["HARNESS_INPUT_DIR"],
                                                                    "features.csv")).read(),
        }))
        open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], "predictions.csv"), "w").write("id,y\\na,1\\n")
    """
    with caplog.at_level(logging.WARNING, logger="harness.sandbox.process"):
        result = run(folders, code)
    assert result.ok, result.log
    seen = json.loads(result.log.splitlines()[-1])
    assert seen["cwd"] == str(folders["submission"])
    assert seen["exe"] == sys.executable
    assert seen["input"] == str(folders["input"]) and seen["output"] == str(folders["output"])
    assert seen["submission"] == str(folders["submission"])
    assert seen["task"] == "unit"
    assert seen["home"].startswith(str(folders["scratch"]))
    assert seen["features"] == "id,x\na,1\n"
    assert (folders["output"] / "predictions.csv").read_text() == "id,y\na,1\n"
    assert result.output_bytes == len("id,y\na,1\n")
    assert result.isolated is False and result.sandbox == "process" and result.image_id == ""
    assert result.warnings == (NOT_ISOLATED_WARNING,)
    assert any("does not isolate" in r.getMessage() for r in caplog.records)
    assert os.listdir(folders["scratch"]) == []  # the scratch HOME is gone
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 1


def test_sandbox_paths_in_argv_are_mapped(folders: dict[str, Path]) -> None:
    (folders["submission"] / "main.py").write_text("import sys; print(sys.argv[1:])\n")
    request = RunRequest(
        image="ignored",
        command=("python", "/submission/main.py", "/input/features.csv", "--out=/output/p.csv"),
        output_dir=folders["output"],
        mounts=(Mount(folders["submission"], "/submission"), Mount(folders["input"], "/input")),
    )
    result = ProcessSandbox(work_dir=folders["scratch"]).run(request)
    assert result.ok, result.log
    assert result.log.strip() == str([f"{folders['input']}/features.csv", f"--out={folders['output']}/p.csv"])


def test_exit_code_is_kept(folders: dict[str, Path]) -> None:
    result = run(folders, "import sys\nprint('bye')\nsys.exit(3)\n")
    assert result.outcome is RunOutcome.EXITED and result.exit_code == 3 and not result.ok


def test_missing_command_exits_127_with_a_message(folders: dict[str, Path]) -> None:
    request = RunRequest(image="ignored", command=("no-such-program-xyz",), output_dir=folders["output"])
    result = ProcessSandbox(work_dir=folders["scratch"]).run(request)
    assert result.exit_code == 127
    assert "cannot start 'no-such-program-xyz'" in result.log


def test_timeout_kills_the_whole_group(folders: dict[str, Path]) -> None:
    code = """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(child.pid, flush=True)
        time.sleep(120)
    """
    started = time.monotonic()
    result = run(folders, code, time_s=1)
    assert result.outcome is RunOutcome.TIMED_OUT
    assert result.exit_code is None
    assert 1.0 <= result.duration_s < 3.0
    assert time.monotonic() - started < 4.0
    grandchild = int(result.log.split()[0])
    time.sleep(0.1)
    state = ""
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in ("", "Z")  # gone (or a zombie waiting for init)


def test_memory_blow_up_is_out_of_memory(folders: dict[str, Path]) -> None:
    result = run(folders, "block = b'x' * (400 * 1024 * 1024)\nprint('survived')\n", memory_mb=200)
    assert result.outcome is RunOutcome.OUT_OF_MEMORY, result.log
    assert "survived" not in result.log


def test_one_file_past_output_mb_is_stopped(folders: dict[str, Path]) -> None:
    code = """
        import os
        with open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], "big.bin"), "wb") as fh:
            for _ in range(12):
                fh.write(b"y" * (1024 * 1024))
    """
    result = run(folders, code, output_mb=4)
    assert result.outcome is RunOutcome.OUTPUT_LIMIT
    assert "File too large" in result.log
    assert (folders["output"] / "big.bin").stat().st_size <= 4 * MiB


def test_many_files_past_output_mb_are_killed(folders: dict[str, Path]) -> None:
    code = """
        import os, time
        for i in range(100):
            with open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], f"part{i}.bin"), "wb") as fh:
                fh.write(b"y" * (512 * 1024))
            time.sleep(0.02)
    """
    result = run(folders, code, output_mb=4)
    assert result.outcome is RunOutcome.OUTPUT_LIMIT
    assert result.exit_code is None  # killed by the harness
    assert result.output_bytes < 100 * 512 * 1024


def test_links_are_removed_from_the_output(folders: dict[str, Path]) -> None:
    result = run(folders, "import os\nos.symlink('/etc/passwd', os.environ['HARNESS_OUTPUT_DIR'] + '/passwd')\n")
    assert result.ok, result.log
    assert os.listdir(folders["output"]) == []


def test_log_is_capped(folders: dict[str, Path]) -> None:
    code = """
        import sys
        for _ in range(10):
            sys.stdout.write("z" * 1024 * 1024)
        print("THE END")
    """
    result = run(folders, code, log_kb=16)
    assert result.ok
    assert result.log_truncated
    assert len(result.log.encode()) <= 16 * 1024
    assert result.log.splitlines()[-1].startswith(LOG_TRUNCATED_MARKER)
    assert result.log_tail.endswith("THE END\n")


def test_ctrl_c_kills_the_process(folders: dict[str, Path]) -> None:
    (folders["submission"] / "main.py").write_text("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n")
    request = RunRequest(
        image="ignored",
        command=("python", "main.py"),
        output_dir=folders["output"],
        mounts=(Mount(folders["submission"], "/submission"),),
    )
    timer = threading.Timer(0.7, signal.pthread_kill, args=(threading.get_ident(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ProcessSandbox(work_dir=folders["scratch"]).run(request)
    timer.join()
    assert time.monotonic() - started < 5
    assert os.listdir(folders["scratch"]) == []


def test_close_kills_the_runs_of_other_threads(folders: dict[str, Path]) -> None:
    code = "import os, pathlib, time\npathlib.Path(os.environ['HARNESS_OUTPUT_DIR'], 'up').touch()\ntime.sleep(60)\n"
    (folders["submission"] / "main.py").write_text(code)
    request = RunRequest(
        image="ignored",
        command=("python", "main.py"),
        output_dir=folders["output"],
        mounts=(Mount(folders["submission"], "/submission"),),
        limits=Limits(time_s=60),
    )
    box = ProcessSandbox(work_dir=folders["scratch"])
    outcome: list[BaseException | Any] = []

    def _run() -> None:
        try:
            outcome.append(box.run(request))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=_run)
    started = time.monotonic()
    with box:
        worker.start()
        deadline = time.monotonic() + 10
        while not (folders["output"] / "up").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    worker.join(10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 5
    assert isinstance(outcome[0], SandboxError) and "closed" in str(outcome[0])
    assert os.listdir(folders["scratch"]) == []
    # the sandbox stays usable after close()
    (folders["submission"] / "main.py").write_text("print('again')\n")
    for leftover in folders["output"].iterdir():
        leftover.unlink()
    again = box.run(request)
    assert again.ok and again.log == "again\n"
