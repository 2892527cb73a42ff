"""The Docker sandbox against the real engine: every acceptance bullet of issue 2.

Network isolation is proven by what the container has (only a loopback interface; network mode none in its
inspect data). No test sends traffic anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ImageError
from harness.sandbox.base import Limits, Mount, RunOutcome, RunRequest, RunResult
from harness.sandbox.docker import CONTAINER_LABEL_NAME, DockerSandbox
from harness.sandbox.engine import DockerAPI
from harness.sandbox.logs import LOG_TRUNCATED_MARKER

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture()
def work(tmp_path: Path) -> dict[str, Path]:
    """A submission folder with main.py, an input folder, an empty output folder and a scratch folder."""
    folders = {name: tmp_path / name for name in ("submission", "input", "output", "scratch")}
    for path in folders.values():
        path.mkdir()
    (folders["input"] / "features.csv").write_text("id,x\na,1\nb,2\n")
    return folders


def request(image: str, work: dict[str, Path], code: str, label: str = "", **limits: Any) -> RunRequest:
    """A request that runs ``python main.py`` with ``code`` as main.py, submission and input read-only."""
    (work["submission"] / "main.py").write_text(textwrap.dedent(code))
    return RunRequest(
        image=image,
        command=("python", "main.py"),
        output_dir=work["output"],
        mounts=(Mount(work["submission"], "/submission"), Mount(work["input"], "/input")),
        limits=Limits(**{"time_s": 30, "memory_mb": 256, "pids": 64, "output_mb": 8, "log_kb": 64, **limits}),
        label=label or f"test-{uuid.uuid4().hex[:8]}",
    )


def last_json(result: RunResult) -> Any:
    """The last line of a run's log, parsed as JSON (tests print their findings that way)."""
    lines = [line for line in result.log.splitlines() if line.strip()]
    assert lines, f"no output; log tail: {result.log_tail!r}"
    return json.loads(lines[-1])


def run_in_thread(sandbox: DockerSandbox, req: RunRequest) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = sandbox.run(req)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def wait_for_container(api: DockerAPI, label: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = api.list_containers({CONTAINER_LABEL_NAME: label})
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no container labelled {label} appeared")


# --- the happy path and the policy --------------------------------------------------------------------------


def test_policy_non_root_loopback_only_and_inspect(
    test_image: str, work: dict[str, Path], docker_api: DockerAPI, tmp_path: Path
) -> None:
    code = """
        import json, os, time
        time.sleep(2)  # the test inspects the running container meanwhile
        with open("/proc/self/status") as fh:
            caps = [line.split()[1] for line in fh if line.startswith(("CapEff", "CapBnd"))]
        with open("/output/result.txt", "w") as fh:
            fh.write("ok")
        print(json.dumps({
            "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(),
            "interfaces": sorted(os.listdir("/sys/class/net")),
            "net_dev": [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]],
            "caps": caps, "home": os.environ["HOME"], "home_writable": os.access(os.environ["HOME"], os.W_OK),
            "cwd": os.getcwd(), "path0": os.environ["PATH"].split(":")[0],
            "pids1": open("/proc/1/cmdline").read().split("\\0")[0],
        }))
    """
    req = request(test_image, work, code)
    thread, box = run_in_thread(DockerSandbox(work_dir=work["scratch"]), req)
    try:
        info = docker_api.inspect(wait_for_container(docker_api, req.label))
    finally:
        thread.join(60)
    result = box["result"]
    assert result.ok, result.log
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Init"] is True
    assert host["PidsLimit"] == 64
    assert host["Memory"] == host["MemorySwap"] == 256 * MiB
    assert host["NanoCpus"] == 1_000_000_000
    assert set(host["Tmpfs"]) == {"/tmp", "/home/team"}
    assert info["Config"]["User"] == "1000:1000"
    assert info["Config"]["Labels"]["org.hackathon-harness"] == "1"
    assert info["Config"]["Labels"][CONTAINER_LABEL_NAME] == req.label
    assert not info["NetworkSettings"]["Networks"] or list(info["NetworkSettings"]["Networks"]) == ["none"]
    seen = last_json(result)
    assert seen["uid"] == seen["euid"] == 1000 and seen["gid"] == 1000
    assert seen["interfaces"] == ["lo"]
    assert seen["net_dev"] == ["lo"]
    assert seen["caps"] == ["0000000000000000", "0000000000000000"]
    assert seen["home"] == "/home/team" and seen["home_writable"]
    assert seen["cwd"] == "/submission"
    assert seen["path0"] == "/opt/venv/bin"
    assert seen["pids1"].endswith("docker-init")
    assert (work["output"] / "result.txt").read_text() == "ok"
    assert result.output_bytes == 2
    assert result.image_id.startswith("sha256:")
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 0


def test_timeout_is_killed_within_two_seconds(test_image: str, work: dict[str, Path]) -> None:
    req = request(test_image, work, "import time\nprint('started', flush=True)\ntime.sleep(120)\n", time_s=2)
    started = time.monotonic()
    result = DockerSandbox(work_dir=work["scratch"]).run(req)
    elapsed = time.monotonic() - started
    assert result.outcome is RunOutcome.TIMED_OUT
    assert result.exit_code is None
    assert 2.0 <= result.duration_s <= 2.0 + 2.0
    assert elapsed < 2.0 + 2.0 + 2.0  # including container creation and removal
    assert "started" in result.log


def test_twice_the_memory_limit_is_out_of_memory(test_image: str, work: dict[str, Path]) -> None:
    code = """
        print("allocating", flush=True)
        block = b"x" * (256 * 1024 * 1024)  # twice memory_mb, every page touched
        print("survived", len(block))
    """
    result = DockerSandbox(work_dir=work["scratch"]).run(request(test_image, work, code, memory_mb=128))
    assert result.outcome is RunOutcome.OUT_OF_MEMORY, result
    assert "survived" not in result.log
    assert result.peak_memory_mb is not None and result.peak_memory_mb >= 100


def test_fork_bomb_is_contained_and_the_machine_stays_responsive(
    test_image: str, work: dict[str, Path], docker_api: DockerAPI
) -> None:
    code = """
        import os, time
        print("bombing", flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.001)
    """
    req = request(test_image, work, code, pids=32, time_s=6, memory_mb=512)
    thread, box = run_in_thread(DockerSandbox(work_dir=work["scratch"]), req)
    try:
        container = wait_for_container(docker_api, req.label)
        time.sleep(2.0)  # let the bomb saturate the pids limit
        pids_seen = int((docker_api.stats(container).get("pids_stats") or {}).get("current") or 0)
        latencies = []
        for _ in range(5):
            t0 = time.monotonic()
            subprocess.run(["true"], check=True)
            latencies.append(time.monotonic() - t0)
    finally:
        thread.join(60)
    result = box["result"]
    assert result.outcome is RunOutcome.TIMED_OUT
    assert 0 < pids_seen <= 32
    assert max(latencies) < 1.0, latencies
    assert "bombing" in result.log


def test_root_submission_and_input_are_read_only(test_image: str, work: dict[str, Path]) -> None:
    code = """
        import json, os
        found = {}
        for path in ["/x", "/submission/x", "/submission/main.py", "/input/x", "/input/features.csv",
                     "/usr/x", "/etc/passwd", "/opt/venv/x", "/tmp/x", "/home/team/x", "/output/x"]:
            try:
                with open(path, "a") as fh:
                    fh.write("x")
                found[path] = "written"
            except OSError as exc:
                found[path] = exc.strerror
        print(json.dumps(found))
    """
    result = DockerSandbox(work_dir=work["scratch"]).run(request(test_image, work, code))
    assert result.ok, result.log
    found = last_json(result)
    for path in [
        "/x",
        "/submission/x",
        "/submission/main.py",
        "/input/x",
        "/input/features.csv",
        "/usr/x",
        "/etc/passwd",
        "/opt/venv/x",
    ]:
        assert found[path] != "written", path
    assert found["/tmp/x"] == found["/home/team/x"] == found["/output/x"] == "written"
    assert sorted(os.listdir(work["submission"])) == ["main.py"]
    assert sorted(os.listdir(work["input"])) == ["features.csv"]


def _disk_use(folder: Path) -> int:
    """Bytes the files under ``folder`` take on ``folder``'s own file system (mounted file systems excluded)."""
    device = os.stat(folder).st_dev
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if st.st_dev == device:
                total += st.st_blocks * 512
    return total


def test_writing_past_output_mb_is_stopped_and_host_disk_bounded(test_image: str, work: dict[str, Path]) -> None:
    code = """
        import json
        written = 0
        error = ""
        try:
            with open("/output/big.bin", "wb") as fh:
                for _ in range(24):  # three times the cap
                    fh.write(b"y" * (1024 * 1024))
                    fh.flush()
                    written += 1024 * 1024
        except OSError as exc:
            error = exc.strerror
        print(json.dumps({"written": written, "error": error}))
    """
    peak_disk = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak_disk[0] = max(peak_disk[0], _disk_use(work["scratch"]))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = DockerSandbox(work_dir=work["scratch"]).run(request(test_image, work, code, output_mb=8))
    finally:
        stop.set()
        watcher.join()
    assert result.outcome is RunOutcome.OUTPUT_LIMIT
    seen = last_json(result)
    assert seen["error"] == "No space left on device"
    assert seen["written"] < 8 * MiB
    assert 0 < result.output_bytes <= 8 * MiB
    assert _disk_use(work["output"]) <= 8 * MiB
    assert 0 < peak_disk[0] <= 8 * MiB


def test_output_cannot_smuggle_links_or_sparse_giants(test_image: str, work: dict[str, Path]) -> None:
    code = """
        import os
        os.symlink("/etc/passwd", "/output/passwd-link")
        with open("/output/sparse.bin", "wb") as fh:
            fh.truncate(1 << 40)  # 1 TiB apparent size, no blocks
        for i in range(50):
            os.link("/output/sparse.bin", f"/output/hard{i}.bin")
        with open("/output/predictions.csv", "w") as fh:
            fh.write("id,y\\n")
    """
    result = DockerSandbox(work_dir=work["scratch"]).run(request(test_image, work, code, output_mb=8))
    assert result.exit_code == 0, result.log
    assert result.outcome is RunOutcome.OUTPUT_LIMIT
    assert sorted(os.listdir(work["output"])) == ["predictions.csv"]
    assert _disk_use(work["output"]) <= 8 * MiB


def test_polling_fallback_kills_at_the_cap_and_warns(test_image: str, work: dict[str, Path]) -> None:
    code = """
        import time
        with open("/output/big.bin", "wb") as fh:
            while True:
                fh.write(b"z" * (1024 * 1024))
                fh.flush()
                time.sleep(0.02)
    """
    sandbox = DockerSandbox(work_dir=work["scratch"], enforce_output="poll")
    result = sandbox.run(request(test_image, work, code, output_mb=4, time_s=20))
    assert result.outcome is RunOutcome.OUTPUT_LIMIT
    assert result.duration_s < 10
    assert any("polled" in w for w in result.warnings)


def test_100_mb_of_stdout_is_capped_and_harness_memory_bounded(test_image: str, work: dict[str, Path]) -> None:
    code = """
        import sys
        line = "x" * 1023 + "\\n"
        chunk = line * 1024  # 1 MiB
        for _ in range(100):
            sys.stdout.write(chunk)
        sys.stdout.flush()
        print("THE END")
    """

    def vm_kib(key: str) -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM (peak RSS) to the current RSS
        fh.write("5")
    baseline_kib = vm_kib("VmRSS:")
    result = DockerSandbox(work_dir=work["scratch"]).run(request(test_image, work, code, log_kb=64))
    growth_mib = (vm_kib("VmHWM:") - baseline_kib) / 1024
    assert result.ok
    assert result.log_truncated
    assert len(result.log.encode()) <= 64 * 1024
    assert LOG_TRUNCATED_MARKER in result.log.splitlines()[-1]
    dropped = 100 * MiB + len("THE END\n") - (len(result.log.encode()) - len(result.log.splitlines()[-1]) - 2)
    assert f"{dropped} bytes dropped" in result.log
    assert result.log_tail.endswith("THE END\n")
    assert growth_mib < 32, f"harness RSS grew by {growth_mib:.1f} MiB while reading 100 MiB of logs"


def test_hidden_reference_is_nowhere_in_the_container(test_image: str, tmp_path: Path) -> None:
    # A task's data layout: public inputs and a hidden reference side by side, as prepare.py makes it.
    data = tmp_path / "task" / "data"
    (data / "input" / "test").mkdir(parents=True)
    (data / "reference").mkdir(parents=True)
    (data / "input" / "test" / "features.csv").write_text("id,x\na,1\n")
    secret = uuid.uuid4().hex
    marker = data / "reference" / f"marker-{secret}.csv"
    marker.write_text(f"id,y\na,{secret}\n")
    submission, output, scratch = tmp_path / "submission", tmp_path / "output", tmp_path / "scratch"
    for folder in (submission, output, scratch):
        folder.mkdir()
    # The container lists every file with the sha256 of its content; the secret never enters the container.
    (submission / "main.py").write_text(
        textwrap.dedent("""
        import hashlib, os
        with open("/output/inventory.txt", "w") as out:
            for root, dirs, files in os.walk("/"):
                if root in ("/proc", "/sys"):
                    dirs[:] = []
                for name in dirs + files:
                    path = os.path.join(root, name)
                    digest = "-"
                    try:
                        if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) < 1 << 20:
                            with open(path, "rb") as fh:
                                digest = hashlib.sha256(fh.read()).hexdigest()
                    except OSError:
                        digest = "unreadable"
                    out.write(f"{digest} {path}\\n")
            for special in ("/proc/self/mountinfo", "/proc/mounts", "/proc/1/environ", "/proc/self/environ"):
                with open(special, "rb") as fh:
                    out.write(f"{hashlib.sha256(fh.read()).hexdigest()} {special}\\n")
                    fh.seek(0)
                    out.write(fh.read().decode(errors="replace").replace("\\n", " | ") + "\\n")
    """)
    )
    req = RunRequest(
        image=test_image,
        command=("python", "main.py"),
        output_dir=output,
        mounts=(Mount(submission, "/submission"), Mount(data / "input" / "test", "/input")),
        limits=Limits(time_s=60, memory_mb=256, output_mb=16, log_kb=64),
    )
    result = DockerSandbox(work_dir=scratch).run(req)
    assert result.ok, result.log
    inventory = (output / "inventory.txt").read_text()
    assert inventory.count("\n") > 1000  # the walk saw the whole image
    assert secret not in inventory
    assert str(data / "reference") not in inventory  # not even the folder's path leaks via mount tables
    assert hashlib.sha256(marker.read_bytes()).hexdigest() not in inventory


def test_notebook_runs_with_papermill_inside(test_image: str, work: dict[str, Path]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("input_dir = ''\noutput_dir = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, pathlib\n"
            "rows = open(os.path.join(input_dir, 'features.csv')).read().splitlines()[1:]\n"
            "ids = [r.split(',')[0] for r in rows]\n"
            "pathlib.Path(output_dir, 'predictions.csv').write_text('id,y\\n' + ''.join(i + ',0\\n' for i in ids))"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, work["submission"] / "solution.ipynb")
    req = RunRequest(
        image=test_image,
        command=(
            "python",
            "-m",
            "papermill",
            "--no-progress-bar",
            "-k",
            "python3",
            "/submission/solution.ipynb",
            "/output/executed.ipynb",
            "-p",
            "input_dir",
            "/input",
            "-p",
            "output_dir",
            "/output",
        ),
        output_dir=work["output"],
        mounts=(Mount(work["submission"], "/submission"), Mount(work["input"], "/input")),
        limits=Limits(time_s=60, memory_mb=512, output_mb=8, log_kb=64),
        workdir="/submission",
    )
    result = DockerSandbox(work_dir=work["scratch"]).run(req)
    assert result.ok, result.log
    assert (work["output"] / "predictions.csv").read_text() == "id,y\na,0\nb,0\n"
    assert (work["output"] / "executed.ipynb").is_file()


# --- errors and cleanup -------------------------------------------------------------------------------------


def test_missing_image_is_never_pulled(docker_api: DockerAPI, work: dict[str, Path]) -> None:
    req = request("harness-task/does-not-exist:latest", work, "print(1)")
    with pytest.raises(ImageError, match="harness image build"):
        DockerSandbox(work_dir=work["scratch"]).run(req)
    assert docker_api.image_id("harness-task/does-not-exist:latest") is None


def test_ctrl_c_removes_the_container(test_image: str, work: dict[str, Path], docker_api: DockerAPI) -> None:
    req = request(test_image, work, "import time\ntime.sleep(60)\n")
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt() -> None:
        wait_for_container(docker_api, req.label)
        time.sleep(0.5)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        DockerSandbox(work_dir=work["scratch"]).run(req)
    assert time.monotonic() - started < 15
    assert docker_api.list_containers({CONTAINER_LABEL_NAME: req.label}) == []
    assert os.listdir(work["scratch"]) == []


def test_sigterm_to_the_harness_removes_the_container(
    test_image: str, work: dict[str, Path], docker_api: DockerAPI
) -> None:
    label = f"sigterm-{uuid.uuid4().hex[:8]}"
    (work["submission"] / "main.py").write_text("import time\ntime.sleep(60)\n")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from harness.sandbox.base import Limits, Mount, RunRequest
        from harness.sandbox.docker import DockerSandbox
        DockerSandbox(work_dir=Path({str(work["scratch"])!r})).run(RunRequest(
            image={test_image!r}, command=("python", "main.py"), output_dir=Path({str(work["output"])!r}),
            mounts=(Mount(Path({str(work["submission"])!r}), "/submission"),),
            limits=Limits(time_s=60), label={label!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_for_container(docker_api, label, timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert docker_api.list_containers({CONTAINER_LABEL_NAME: label}) == []
    assert os.listdir(work["scratch"]) == []
