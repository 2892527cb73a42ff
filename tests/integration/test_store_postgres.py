"""The results store on a real PostgreSQL server, side by side with SQLite.

A throwaway cluster is made with ``initdb`` in a temporary folder and started with ``pg_ctl``: it listens on a unix
socket in that folder only (no TCP port), runs as the ``postgres`` user when the tests run as root, and is stopped
(``pg_ctl stop -m fast -w``) and removed after the module. Each test gets a fresh database. The server's TimeZone is
deliberately not UTC (as on many real servers), so a timestamp that depends on it shows.

The behaviour tests run on both backends (``store`` is parametrised): the same assertions hold for SQLite and
PostgreSQL. ``scripts/ensure-test-tools.sh`` installs Debian's ``postgresql`` package (initdb, pg_ctl) when missing.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.exc import IntegrityError

from harness.errors import StoreError
from harness.ranking import METRIC_TABLE_COLUMNS, metric_table
from harness.record import RunRecord
from harness.spec import MetricSpec
from harness.store import LeaseRow, MetaRow, RunRow, Store

pytestmark = pytest.mark.integration

#: A zone far from UTC with a non-whole-hour offset (+12:45 / +13:45): any timestamp read or written in the
#: server's zone instead of UTC is visibly wrong.
SERVER_TIMEZONE = "Pacific/Chatham"
T0 = dt.datetime(2026, 11, 1, 23, 30, tzinfo=dt.UTC)  # late in the UTC day: the server's date is already the 2nd
MAE = MetricSpec(name="mae", goal="minimize", primary=True, precision=2)


def _pg_program(name: str) -> str:
    """Path of a PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<ver>/bin (newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]), reverse=True
    )
    if not candidates:
        pytest.fail(
            f"PostgreSQL's {name} is missing: run `bash scripts/ensure-test-tools.sh` (as root on Debian it installs "
            "the postgresql package) or install your distribution's PostgreSQL server package",
            pytrace=False,
        )
    return candidates[0]


@dataclass(frozen=True)
class Cluster:
    """A running throwaway PostgreSQL cluster reached through a unix socket in ``folder``."""

    folder: Path
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.folder}"


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    """Start a cluster for this module; stop it and remove its folder afterwards (no server process is left).

    As root the cluster runs as the ``postgres`` user (initdb and the server refuse root). The folder is made with
    ``tempfile`` rather than pytest's ``tmp_path``: root's pytest folders are private (0700) to other users, and a
    unix socket's path must stay under ~100 bytes.
    """
    initdb, pg_ctl = _pg_program("initdb"), _pg_program("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.fail("running as root needs a `postgres` user to own the test cluster", pytrace=False)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "server.log"

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tail = log.read_text()[-3000:] if log.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed:\n{proc.stdout}{proc.stderr}\n{tail}", pytrace=False)

    try:
        run(initdb, "-D", str(data), "-U", "harness", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{folder}'\n"
                f"timezone = '{SERVER_TIMEZONE}'\n"
                "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n"
            )
        run(pg_ctl, "start", "-D", str(data), "-l", str(log), "-w", "-t", "60")
        yield Cluster(folder=folder, user="harness")
    finally:
        try:
            if (data / "postmaster.pid").exists():  # also after a start that timed out
                run(pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """URL of a fresh, empty database in the cluster (dropped after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield pg_cluster.url(name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.ensure_task("task", "A task", "0" * 64)
    yield s
    s.close()


def _submission(store: Store, team: str = "a", content: str = "c" * 64, minutes: int = 0) -> int:
    sub_id, _ = store.register_submission(
        "task",
        team,
        content,
        source=content[:8],
        kind="script",
        entry="main.py",
        submitted_at=T0 + dt.timedelta(minutes=minutes),
    )
    return sub_id


def _finished(status: str, scores: dict[str, dict[str, float]] | None = None, **fields: Any) -> RunRecord:
    """A finished run's record with only the fields a test cares about."""
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


def _record(
    store: Store, team: str, content: str, mae: float | None, *, status: str = "succeeded", minutes: int = 0
) -> int:
    """One finished run of a new submission: ``mae`` on public, ``mae + 1`` on private."""
    run_id = store.start_run(_submission(store, team, content, minutes), "test")
    scores = {"public": {"mae": mae}, "private": {"mae": mae + 1}} if mae is not None else None
    store.finish_run(run_id, _finished(status, reason="" if status == "succeeded" else "boom", scores=scores))
    return run_id


# --- the store's contract, on both backends -------------------------------------------------------------------


def test_same_content_same_team_is_one_submission(store: Store) -> None:
    first, created = store.register_submission("task", "a", "c" * 64, source="x", kind="script", entry="main.py")
    again, created_again = store.register_submission("task", "a", "c" * 64, source="y", kind="script", entry="main.py")
    other, created_other = store.register_submission("task", "b", "c" * 64, source="x", kind="script", entry="main.py")
    assert first == again and created and not created_again
    assert other != first and created_other


def test_rerun_replaces_the_active_result_and_keeps_history(store: Store) -> None:
    sub = _submission(store)
    first = store.start_run(sub, "test")
    store.finish_run(first, _finished("succeeded", scores={"public": {"mae": 3.0}}, provenance={"image": "x"}))
    second = store.start_run(sub, "test")
    store.finish_run(
        second,
        _finished(
            "succeeded",
            scores={"public": {"mae": 2.0}, "private": {"mae": 2.5}},
            problems=["p1", "p2"],
            provenance={"image": "y", "limits": {"memory_mb": 256}},
        ),
    )
    [active] = store.runs("task")
    assert (active.run_id, active.scores) == (second, {"public": {"mae": 2.0}, "private": {"mae": 2.5}})
    assert active.problems == ["p1", "p2"] and active.provenance == {"image": "y", "limits": {"memory_mb": 256}}
    history = store.runs("task", active_only=False)
    assert [(r.run_id, r.active) for r in history] == [(first, False), (second, True)]


def test_partial_unique_index_refuses_two_active_runs(store: Store) -> None:
    sub = _submission(store)
    for _ in range(2):
        store.finish_run(store.start_run(sub, "test"), _finished("failed", reason="x"))
    assert len(store.runs("task", active_only=False)) == 2  # inactive rows do not collide: the index is partial
    with pytest.raises(IntegrityError, match=r"one_active_run|runs.submission_id, runs.phase"), store.session() as sess:
        sess.execute(update(RunRow).values(active=True))
        sess.flush()
    assert [r.active for r in store.runs("task", active_only=False)] == [False, True]  # rolled back


def test_recover_marks_running_rows_interrupted_and_counts_them(store: Store) -> None:
    sub = _submission(store)
    done = store.start_run(sub, "test")
    store.finish_run(done, _finished("succeeded", scores={"public": {"mae": 1.0}}))
    store.start_run(sub, "test")
    store.start_run(_submission(store, "b", "d" * 64), "test")
    assert store.recover_interrupted("task") == 2
    assert store.recover_interrupted("task") == 0
    runs = store.runs("task", active_only=False)
    assert [(r.status, r.active) for r in runs] == [("succeeded", True), ("interrupted", False), ("interrupted", False)]
    assert store.active_run(sub, "test") is not None


def test_second_coordinator_refused_while_first_lives(store: Store) -> None:
    store.acquire_lease("task")
    other = Store(store.url)
    try:
        with pytest.raises(StoreError, match="another `harness run`"):
            other.acquire_lease("task")
        store.release_lease("task")
        other.acquire_lease("task")
    finally:
        other.release_lease("task")
        other.close()


def test_lease_of_a_dead_process_is_taken_over(store: Store) -> None:
    code = "import os, sys; from harness.store import Store; Store(sys.argv[1]).acquire_lease('task'); os._exit(0)"
    subprocess.run([sys.executable, "-c", code, store.url], check=True, timeout=60)
    store.acquire_lease("task")  # the holder's pid is gone: taken over, no error
    store.release_lease("task")


def test_runs_give_back_utc_timestamps_and_scores(store: Store) -> None:
    run_id = _record(store, "a", "a" * 64, 1.5)
    [run] = store.runs("task")
    assert run.submitted_at == T0 and run.submitted_at.utcoffset() == dt.timedelta(0)
    assert run.started_at.utcoffset() == dt.timedelta(0)
    assert run.finished_at is not None and run.finished_at.utcoffset() == dt.timedelta(0)
    assert abs(run.finished_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert (run.run_id, run.scores) == (run_id, {"public": {"mae": 1.5}, "private": {"mae": 2.5}})
    assert store.run_counts("task") == {"succeeded": 1}


def test_daily_count_follows_the_utc_day(store: Store) -> None:
    _submission(store, "a", "1" * 64)
    _submission(store, "a", "2" * 64)
    _submission(store, "b", "3" * 64)
    now = dt.datetime.now(dt.UTC)
    assert store.registered_today("task", "a", now=now) == 2
    assert store.registered_today("task", "a", now=now + dt.timedelta(days=1)) == 0
    assert store.is_known("task", "a", "1" * 64) and not store.is_known("task", "b", "1" * 64)


def test_store_of_another_schema_version_is_refused(store: Store) -> None:
    with store.session() as sess:
        sess.execute(update(MetaRow).values(value="0"))
    with pytest.raises(StoreError, match="schema version 0"):
        Store(store.url)


def test_metric_table_best_latest_failures_and_dtypes(store: Store) -> None:
    _record(store, "a", "a1" * 32, 5.0, minutes=0)
    _record(store, "a", "a2" * 32, 9.0, minutes=10)
    _record(store, "b", "b1" * 32, 7.0, minutes=5)
    _record(store, "c", "c1" * 32, None, status="timed_out", minutes=3)
    best = metric_table(None, store, task_id="task", metrics=[MAE], selection="best")
    assert list(zip(best["team"], best["mae"].fillna(-1), best["rank"].fillna(0), strict=True)) == [
        ("a", 5.0, 1),
        ("b", 7.0, 2),
        ("c", -1, 0),
    ]
    latest = metric_table(None, store, task_id="task", metrics=[MAE], selection="latest")
    assert list(latest["team"]) == ["b", "a", "c"] and list(latest["mae"].fillna(-1)) == [7.0, 9.0, -1]
    private = metric_table(None, store, task_id="task", metrics=[MAE], split="private")
    assert list(private["mae"].dropna()) == [6.0, 8.0]
    assert list(best.columns) == [*METRIC_TABLE_COLUMNS, "mae"]
    for column, dtype in METRIC_TABLE_COLUMNS.items():
        assert str(best[column].dtype) == dtype, column
    assert best.set_index("team").loc["a", "submitted_at"] == T0


# --- what PostgreSQL showed (each failed there before its fix in harness/store.py) -----------------------------


def test_team_text_with_nul_bytes_and_long_folder_names_is_stored(store: Store) -> None:
    team = "t" * 200  # a folder name (the default team name) may have up to 255 characters
    run_id = store.start_run(_submission(store, team), "test")
    store.finish_run(
        run_id,
        _finished(
            "failed",
            reason="exited with code 1: boom\x00boom",  # the tail of the team's stderr, as the team wrote it
            problems=["id 'a\x00b' is unknown"],
            provenance={"notes": ["x\x00y"]},
        ),
    )
    [run] = store.runs("task")
    assert run.team == team
    assert run.reason == "exited with code 1: boom\ufffdboom"  # PostgreSQL's text cannot hold NUL
    assert run.problems == ["id 'a\x00b' is unknown"] and run.provenance == {"notes": ["x\x00y"]}  # JSON: \u0000


def test_coordinators_opening_a_new_store_at_once_all_succeed(store_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        barrier.wait()
        try:
            Store(store_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_a_dead_lease_taken_over_by_two_at_once_has_one_winner(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two coordinators judge the same holder dead; the second to write must lose, not hold the lease as well."""
    store.acquire_lease("task")  # the holder, about to be judged gone
    first, second = Store(store.url), Store(store.url)
    calls = 0

    def pid_alive(_pid: int) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:  # `second` judges the holder; before it writes, `first` takes over (asking as call 2)
            first.acquire_lease("task")
        return calls > 2  # the old holder is gone; the new one (call 3, when `second` looks again) lives

    monkeypatch.setattr("harness.store.results.pid_alive", pid_alive)
    try:
        with pytest.raises(StoreError, match="another `harness run`"):
            second.acquire_lease("task")
        with first.session() as sess:
            lease = sess.get(LeaseRow, "task")
            assert lease is not None and lease.owner == first.owner
    finally:
        first.close()
        second.close()


# --- a judging run with --db: the CLI, the sandbox and the scorer write to PostgreSQL -------------------------

PERFECT = """
import csv, os
rows = list(csv.DictReader(open(os.path.join(os.environ["HARNESS_INPUT_DIR"], "test.csv"))))
with open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], "predictions.csv"), "w") as fh:
    fh.write("id,y\\n" + "".join(f"{r['id']},{3 * int(r['x']) + 1}\\n" for r in rows))
"""
#: Fails and leaves a NUL byte in the log tail the run's reason quotes.
NUL_IN_LOG = "import sys\nsys.stderr.write('bad\\x00byte\\n')\nsys.exit(3)\n"


@pytest.fixture(scope="module")
def minimal_task(tmp_path_factory: pytest.TempPathFactory, minimal_task_dir: Path) -> Path:
    """A prepared copy of the minimal fixture task (its data built by its prepare.py)."""
    from harness.tasks import prepare_task

    folder = tmp_path_factory.mktemp("task") / "minimal"
    shutil.copytree(minimal_task_dir, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    prepare_task(folder, echo=lambda _msg: None)
    return folder


def test_harness_run_and_leaderboard_with_a_postgresql_url(
    minimal_task: Path, test_image: str, pg_url: str, tmp_path: Path
) -> None:
    subs = tmp_path / "submissions"
    for team, code in {"alpha": PERFECT, "bravo": PERFECT + "\n# same predictions, other bytes\n"}.items():
        (subs / team).mkdir(parents=True)
        (subs / team / "main.py").write_text(code)
    (subs / "charlie").mkdir()
    (subs / "charlie" / "main.py").write_text(NUL_IN_LOG)
    home = tmp_path / "home"

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "harness.cli", *args, "--db", pg_url, "--home", str(home)]
        env = {**os.environ, "COLUMNS": "200"}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    first = harness("run", str(minimal_task), str(subs), "--workers", "2")
    assert "3 evaluated" in first.stdout, first.stdout
    assert "nothing to evaluate" in harness("run", str(minimal_task), str(subs)).stdout
    board = harness("leaderboard", str(minimal_task), "--format", "csv").stdout
    assert "alpha" in board and "charlie" in board
    assert not (home / "results.sqlite").exists()  # --db wins over --home's SQLite file

    store = Store(pg_url)
    try:
        runs = {r.team: r for r in store.runs("minimal")}
        table = metric_table(None, store, task_id="minimal", metrics=[MetricSpec(name="mae", goal="minimize")])
    finally:
        store.close()
    assert {t: r.status for t, r in runs.items()} == {"alpha": "succeeded", "bravo": "succeeded", "charlie": "failed"}
    assert runs["alpha"].scores["public"]["mae"] == 0.0 and runs["alpha"].provenance["image_id"]
    assert "bad\ufffdbyte" in runs["charlie"].reason, runs["charlie"].reason
    assert list(zip(table["team"], table["rank"].fillna(0), strict=True)) == [
        ("alpha", 1),
        ("bravo", 1),
        ("charlie", 0),
    ]
