"""The judging run against the real engine: ranking, idempotence, identical content, SIGKILL and resume.

Uses the minimal fixture task (y = 3x + 1), copied to a temporary folder and prepared there, so each run takes
about a second; submissions are written by the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from harness.ranking import leaderboard
from harness.store import Store

pytestmark = pytest.mark.integration

PERFECT = """
import csv, os
inp, out = os.environ["HARNESS_INPUT_DIR"], os.environ["HARNESS_OUTPUT_DIR"]
rows = list(csv.DictReader(open(os.path.join(inp, "test.csv"))))
with open(os.path.join(out, "predictions.csv"), "w") as fh:
    fh.write("id,y\\n")
    for r in rows:
        fh.write(f"{r['id']},{3 * int(r['x']) + 1}\\n")
"""

MEAN = """
import csv, os
inp, out = os.environ["HARNESS_INPUT_DIR"], os.environ["HARNESS_OUTPUT_DIR"]
train = list(csv.DictReader(open(os.path.join(inp, "train.csv"))))
mean = sum(float(r["y"]) for r in train) / len(train)
rows = list(csv.DictReader(open(os.path.join(inp, "test.csv"))))
with open(os.path.join(out, "predictions.csv"), "w") as fh:
    fh.write("id,y\\n")
    for r in rows:
        fh.write(f"{r['id']},{mean}\\n")
"""

RAISES = "raise RuntimeError('the team forgot something')\n"


def _script(folder: Path, code: str, team: str | None = None, delay_s: float = 0.0) -> Path:
    folder.mkdir(parents=True)
    prefix = f"import time; time.sleep({delay_s})\n" if delay_s else ""
    (folder / "main.py").write_text(prefix + code)
    if team:
        (folder / "team.yaml").write_text(f"team: {team}\n")
    return folder


def _notebook(path: Path, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('input_dir = "data"\noutput_dir = "."')
    params.metadata["tags"] = ["parameters"]
    body = code.replace('os.environ["HARNESS_INPUT_DIR"]', "input_dir").replace(
        'os.environ["HARNESS_OUTPUT_DIR"]', "output_dir"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _harness(*args: str, home: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_run_ranks_flags_identical_and_is_idempotent(minimal_task: Path, test_image: str, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    _script(subs / "alpha", PERFECT)
    _script(subs / "bravo", MEAN)
    _script(subs / "charlie", RAISES)
    _script(subs / "copycat", PERFECT)  # byte-identical to alpha
    _notebook(subs.joinpath("delta.ipynb"), PERFECT)
    home = tmp_path / "home"

    first = _harness("run", str(minimal_task), str(subs), "--workers", "2", home=home)
    assert "5 evaluated" in first.stdout, first.stdout

    board = leaderboard(minimal_task, home=home)
    rows = {r.team: r for r in board.itertuples()}
    assert rows["alpha"].rank == rows["copycat"].rank == rows["delta"].rank == 1
    assert rows["alpha"].mae == 0.0
    assert rows["bravo"].rank == 4 and rows["bravo"].mae > 0
    assert rows["charlie"].status == "failed" and "RuntimeError: the team forgot something" in rows["charlie"].reason
    assert list(board["team"])[-1] == "charlie"
    assert rows["alpha"].identical_to == "copycat" and rows["copycat"].identical_to == "alpha"
    assert rows["delta"].identical_to == ""

    second = _harness("run", str(minimal_task), str(subs), home=home)
    assert "nothing to evaluate" in second.stdout, second.stdout
    assert "5 submission(s) unchanged" in second.stderr

    (subs / "bravo" / "main.py").write_text(PERFECT + "\n# improved\n")
    third = _harness("run", str(minimal_task), str(subs), home=home)
    assert "1 evaluated (1 succeeded), 4 unchanged" in third.stdout, third.stdout
    assert leaderboard(minimal_task, home=home, selection="latest").set_index("team").loc["bravo", "mae"] == 0.0

    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        before = len(store.runs("minimal", active_only=False))
        _harness("run", str(minimal_task), str(subs), "--rerun", home=home)
        runs = store.runs("minimal", active_only=False)
        active = store.runs("minimal")
    finally:
        store.close()
    assert len(runs) == before + 5  # every entry of the folder again
    assert len(active) == 6  # replaced, never added: one active result per submission (bravo has two versions)


def test_leaderboard_cli_exports_and_explains_missing_results(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    subs = tmp_path / "submissions"
    _script(subs / "alpha", PERFECT)
    home = tmp_path / "home"
    missing = _harness("leaderboard", str(minimal_task), home=home, check=False)
    assert missing.returncode != 0
    assert "no results for task 'minimal'" in missing.stderr and "harness run" in missing.stderr
    _harness("run", str(minimal_task), str(subs), home=home)
    exported = _harness("leaderboard", str(minimal_task), "--format", "json", "--split", "private", home=home)
    rows = json.loads(exported.stdout)
    assert [(r["team"], r["rank"], r["mae"]) for r in rows] == [("alpha", 1, 0.0)]


def _finished_runs(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("select count(*) from runs where active = 1").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_sigkill_mid_batch_then_resume_loses_and_duplicates_nothing(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    subs = tmp_path / "submissions"
    for i in range(6):
        _script(subs / f"team-{i}", PERFECT + f"\n# team {i}\n", delay_s=1.5)
    home = tmp_path / "home"
    db = home / "results.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(minimal_task),
        str(subs),
        "--home",
        str(home),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _finished_runs(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the batch finished before it could be killed; make the submissions slower"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = _finished_runs(db)
    assert 2 <= killed_at < 6

    resumed = _harness("run", str(minimal_task), str(subs), home=home)
    assert f"{killed_at} submission(s) unchanged" in resumed.stderr, resumed.stderr
    assert "interrupted run(s) from an earlier call were evaluated again" in resumed.stdout, resumed.stdout

    store = Store(f"sqlite:///{db}")
    try:
        active = store.runs("minimal")
        every = store.runs("minimal", active_only=False)
    finally:
        store.close()
    assert sorted(r.team for r in active) == [f"team-{i}" for i in range(6)]
    assert all(r.status == "succeeded" and r.scores["public"]["mae"] == 0.0 for r in active)
    assert {r.status for r in every} <= {"succeeded", "interrupted"}
    assert sum(r.status == "interrupted" for r in every) == 1  # the run the SIGKILL cut short


@contextlib.contextmanager
def _dask_cluster(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`dask scheduler` and one `dask worker` (2 threads) started as the README says; yields the scheduler's
    address and the worker's process; both are stopped at the end."""
    dask = Path(sys.executable).with_name("dask")
    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", scheduler_file],
        **quiet,  # type: ignore[call-overload]
    )
    worker = subprocess.Popen(
        [dask, "worker", "--scheduler-file", scheduler_file, "--nworkers", "1", "--nthreads", "2", "--no-dashboard"],
        **quiet,  # type: ignore[call-overload]
    )
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield json.loads(scheduler_file.read_text())["address"], worker
    finally:
        for proc in (worker, scheduler):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_dask_cluster_runs_the_batch_and_the_coordinator_writes(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    """`dask scheduler` and `dask worker` started as the README says; the coordinator alone writes the store."""
    from harness.scheduling import evaluate_many
    from harness.spec import load_spec

    with _dask_cluster(tmp_path) as (address, _worker):
        subs = tmp_path / "submissions"
        _script(subs / "alpha", PERFECT)
        _script(subs / "bravo", MEAN)
        home = tmp_path / "home"
        store = Store(f"sqlite:///{home / 'results.sqlite'}")
        try:
            summary = evaluate_many(load_spec(minimal_task), subs, store=store, home=home, scheduler_address=address)
        finally:
            store.close()
    assert summary.statuses == {"succeeded": 2}
    board = leaderboard(minimal_task, home=home)
    assert list(board["team"]) == ["alpha", "bravo"]
    assert board["mae"].iloc[0] == 0.0


def test_a_batch_started_under_nohup_outlives_its_terminal(
    minimal_task: Path, test_image: str, tmp_path: Path, docker_api: object
) -> None:
    from harness.sandbox.docker import CONTAINER_LABEL, CONTAINER_LABEL_SESSION, SESSION_ENV

    subs = tmp_path / "submissions"
    for i in range(2):
        _script(subs / f"team-{i}", PERFECT + f"\n# team {i}\n", delay_s=4)
    home = tmp_path / "home"
    log = tmp_path / "run.log"
    cmd = ["sh", "-c", f'exec "$@" > {log} 2>&1', "sh", sys.executable, "-m", "harness.cli", "run", str(minimal_task)]
    cmd += [str(subs), "--home", str(home), "--workers", "2"]
    labels = {CONTAINER_LABEL: "1", CONTAINER_LABEL_SESSION: os.environ[SESSION_ENV]}
    terminal = _Terminal(cmd, nohup=True)
    try:
        deadline = time.monotonic() + 60
        while not docker_api.list_containers(labels) and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.2)
        terminal.hang_up()  # the terminal goes away; SIGHUP is ignored, as nohup asked
        terminal.proc.wait(timeout=120)
    finally:
        terminal.close()
    out = log.read_text()
    assert terminal.proc.returncode == 0, out
    assert "2 entries: 2 evaluated (2 succeeded)" in out, out


def test_a_stopped_dask_worker_removes_the_sandboxes_it_started(
    minimal_task: Path, test_image: str, tmp_path: Path, docker_api: object
) -> None:
    from harness.sandbox.docker import CONTAINER_LABEL, CONTAINER_LABEL_SESSION, SESSION_ENV

    labels = {CONTAINER_LABEL: "1", CONTAINER_LABEL_SESSION: os.environ[SESSION_ENV]}
    coordinator = None
    with _dask_cluster(tmp_path) as (address, worker):
        try:
            subs = tmp_path / "submissions"
            for i in range(2):
                _script(subs / f"team-{i}", PERFECT + f"\n# team {i}\n", delay_s=60)
            home = tmp_path / "home"
            coordinator = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "run", str(minimal_task), str(subs), "--home", str(home),
                 "--scheduler", address],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            deadline = time.monotonic() + 90
            while len(docker_api.list_containers(labels)) < 2 and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.2)
            assert len(docker_api.list_containers(labels)) == 2, "the worker never started both sandboxes"  # type: ignore[attr-defined]
            worker.terminate()  # as a host's operator stops `dask worker` (its nanny closes the worker)
            worker.wait(timeout=60)
            assert docker_api.list_containers(labels) == []  # type: ignore[attr-defined]
            marker = f"harness-output-{os.environ[SESSION_ENV]}-"
            with open("/proc/self/mounts") as fh:
                assert [line for line in fh if marker in line] == []
            coordinator.send_signal(signal.SIGINT)  # no worker is left to run the batch: the judge stops it
            _out, err = coordinator.communicate(timeout=60)
            assert coordinator.returncode == 130, err
        finally:
            if coordinator is not None and coordinator.poll() is None:
                coordinator.kill()
                coordinator.wait()


def test_daily_limit_defers_a_teams_extra_submission(minimal_task: Path, test_image: str, tmp_path: Path) -> None:
    import shutil

    import yaml

    task = tmp_path / "limited"
    shutil.copytree(minimal_task, task)
    raw = yaml.safe_load((task / "task.yaml").read_text())
    raw["leaderboard"] = {"daily_limit": 1}
    (task / "task.yaml").write_text(yaml.safe_dump(raw))
    subs = tmp_path / "submissions"
    _script(subs / "first", PERFECT, team="eager")
    _script(subs / "second", MEAN, team="eager")
    _script(subs / "other", MEAN, team="calm")
    home = tmp_path / "home"
    proc = _harness("run", str(task), str(subs), home=home)
    assert "2 evaluated" in proc.stdout and "1 over their daily limit, not evaluated today: eager" in proc.stdout
    again = _harness("run", str(task), str(subs), home=home)
    assert "over their daily limit" in again.stdout  # still waiting, never recorded, never lost
    assert sorted(leaderboard(task, home=home)["team"]) == ["calm", "eager"]


def test_ctrl_c_stops_the_batch_removes_its_containers_and_resumes(
    minimal_task: Path, test_image: str, tmp_path: Path, docker_api: object
) -> None:
    from harness.sandbox.docker import CONTAINER_LABEL, CONTAINER_LABEL_SESSION, SESSION_ENV

    subs = tmp_path / "submissions"
    for i in range(3):
        _script(subs / f"team-{i}", PERFECT + f"\n# team {i}\n", delay_s=20)
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(minimal_task), str(subs), "--home", str(home)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    labels = {CONTAINER_LABEL: "1", CONTAINER_LABEL_SESSION: os.environ[SESSION_ENV]}
    try:
        deadline = time.monotonic() + 60
        while not docker_api.list_containers(labels) and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.2)
        assert docker_api.list_containers(labels), "no sandbox started"  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err
    assert docker_api.list_containers(labels) == []  # type: ignore[attr-defined]

    for folder in subs.iterdir():  # the teams fix their slow code; the batch resumes
        (folder / "main.py").write_text(PERFECT + f"\n# {folder.name}\n")
    resumed = _harness("run", str(minimal_task), str(subs), home=home)
    assert "3 evaluated (3 succeeded)" in resumed.stdout, resumed.stdout


class _Terminal:
    """A command started as a session leader whose controlling terminal is a new pseudo-terminal, as a shell over
    SSH starts it (with ``nohup``: ignoring SIGHUP, as ``nohup`` starts it). A thread drains the terminal (a full
    pty buffer would block the command's writes); :meth:`hang_up` closes it as a dropped connection does."""

    def __init__(self, cmd: list[str], *, nohup: bool = False) -> None:
        self.master, slave = os.openpty()

        def _take_terminal() -> None:  # runs after setsid(): the pty becomes the new session's controlling terminal
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # a login shell's command starts with SIGHUP at its default, whatever this test run inherited (pytest
            # itself may run under nohup, whose ignored SIGHUP every child would keep)
            signal.signal(signal.SIGHUP, signal.SIG_IGN if nohup else signal.SIG_DFL)

        self.proc = subprocess.Popen(
            cmd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
            env={**os.environ, "COLUMNS": "120", "HARNESS_PROGRESS": "1"},  # a live progress bar on the terminal
        )
        os.close(slave)
        self.output: list[bytes] = []
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _w, _x = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output.append(os.read(self.master, 65536))
                except OSError:
                    return

    def hang_up(self) -> None:
        """Close the terminal's master side: the kernel hangs up the session (SIGHUP to its leader)."""
        if self.master < 0:
            return
        self._stop.set()
        self._reader.join()
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        """Hang up if not done yet, and make sure the command is gone."""
        self.hang_up()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_a_closed_terminal_stops_the_batch_cleanly_and_it_resumes(
    minimal_task: Path, test_image: str, tmp_path: Path, docker_api: object
) -> None:
    from harness.sandbox.docker import CONTAINER_LABEL, CONTAINER_LABEL_SESSION, SESSION_ENV

    subs = tmp_path / "submissions"
    for i in range(3):
        _script(subs / f"team-{i}", PERFECT + f"\n# team {i}\n", delay_s=30)
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(minimal_task), str(subs), "--home", str(home)]
    cmd += ["--workers", "2"]
    labels = {CONTAINER_LABEL: "1", CONTAINER_LABEL_SESSION: os.environ[SESSION_ENV]}
    terminal = _Terminal(cmd)
    try:
        deadline = time.monotonic() + 60
        while len(docker_api.list_containers(labels)) < 2 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.2)
        assert len(docker_api.list_containers(labels)) == 2, "the two sandboxes never started"  # type: ignore[attr-defined]
        time.sleep(1.0)  # the progress bar is drawing on the terminal
        terminal.hang_up()  # the terminal goes away
        terminal.proc.wait(timeout=90)
    finally:
        terminal.close()
    assert terminal.proc.returncode == 128 + signal.SIGHUP, b"".join(terminal.output)[-2000:]
    assert docker_api.list_containers(labels) == []  # type: ignore[attr-defined]
    marker = f"harness-output-{os.environ[SESSION_ENV]}-"
    with open("/proc/self/mounts") as fh:
        assert [line for line in fh if marker in line] == []
    with sqlite3.connect(home / "results.sqlite") as db:
        rows = db.execute("SELECT status, reason, active FROM runs ORDER BY id").fetchall()
        lease = db.execute("SELECT count(*) FROM leases").fetchone()[0]
    assert [(status, active) for status, _reason, active in rows] == [("interrupted", 0), ("interrupted", 0)], rows
    assert all("stopped (SIGHUP)" in reason for _status, reason, _active in rows), rows
    assert lease == 0  # given back: the next call need not wait for a stale lease

    for folder in subs.iterdir():  # the teams fix their slow code; the same command again
        (folder / "main.py").write_text(PERFECT + f"\n# {folder.name}\n")
    resumed = _harness("run", str(minimal_task), str(subs), home=home)
    assert "3 evaluated (3 succeeded)" in resumed.stdout, resumed.stdout
    with sqlite3.connect(home / "results.sqlite") as db:
        finished = db.execute("SELECT submission_id, status FROM runs WHERE active = 1").fetchall()
    assert sorted(status for _sub, status in finished) == ["succeeded"] * 3 and len({s for s, _ in finished}) == 3


def test_two_entries_naming_one_team_are_both_its_submissions_and_said_so(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    subs = tmp_path / "submissions"
    _script(subs / "first-try", MEAN, team="solo")
    _script(subs / "second-try", PERFECT, team="solo")
    home = tmp_path / "home"
    proc = _harness("run", str(minimal_task), str(subs), home=home)
    assert "team solo is named by 2 entries (first-try, second-try)" in proc.stdout, proc.stdout
    board = leaderboard(minimal_task, home=home)
    assert list(board["team"]) == ["solo"] and board["mae"].iloc[0] == 0.0  # best of its two submissions
