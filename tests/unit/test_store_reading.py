"""The SQLite read path without SQLAlchemy (harness.store.reading) gives the runs SQLAlchemy's read gives."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import finished_record
from spec_fixtures import write_toy_task

from harness.ranking import export, leaderboard_and_stale
from harness.spec import load_spec
from harness.store import Store
from harness.store.reading import SCHEMA_VERSION, TABLES, SQLiteReader, open_reader, sqlite_runs
from harness.store.schema import _Base

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _fill(store: Store, task_id: str = "task") -> None:
    """Two tasks; teams with several submissions; test and validation runs; every final status, reruns that left
    inactive history, an interrupted and a still-running run; scores on three splits, odd values and text."""
    for task in (task_id, "other"):
        store.ensure_task(task, f"The {task}", "0" * 64)
    statuses = ["succeeded", "failed", "invalid_output", "timed_out", "out_of_memory", "harness_error", "rejected"]
    for index in range(14):
        team = ["a", "b\x00nul", "équipe ✓", "d"][index % 4]
        task = "other" if index % 5 == 4 else task_id
        sub, _ = store.register_submission(
            task, team, f"{index:064x}", source=f"s{index}", kind="unknown" if index == 6 else "script",
            entry="main.py", submitted_at=T0 + dt.timedelta(minutes=index % 3, microseconds=index * 7),
        )  # fmt: skip
        for phase in ("test", "validation") if index % 3 else ("test",):
            for attempt in range(1 + index % 2):  # a rerun: the first run stays as inactive history
                status = statuses[(index + attempt) % len(statuses)]
                scores = {}
                if status == "succeeded":
                    scores = {
                        "public": {"mae": 0.1 + index / 3, "within_1": 1 / 3},
                        "private": {"mae": -0.0, "within_1": 1e-300},
                    }
                    if phase == "validation":
                        scores = {"validation": {"mae": index * 1e-17}}
                run = store.start_run(sub, phase)
                store.finish_run(
                    run,
                    finished_record(
                        status, scores=scores, reason="" if status == "succeeded" else f"why {index}\nline 2",
                        problems=[f"problem {index}"] if status == "invalid_output" else [],
                        duration_s=index / 7 if index % 4 else None, peak_memory_mb=index * 1.5 or None,
                        exit_code=index if index % 2 else None, artifacts_dir=f"/artifacts/{index}",
                        provenance={"inputs": {"spec": "x" * index}, "nested": [1, 2.5, None]} if index % 3 else {},
                        finished_at=T0 + dt.timedelta(hours=index) if index != 5 else None,
                    ),
                )  # fmt: skip
    store.start_run(store.register_submission(task_id, "a", "f" * 64, source="x", kind="script", entry="e")[0], "test")
    sub, _ = store.register_submission(task_id, "d", "e" * 64, source="x", kind="script", entry="e")
    store.start_run(sub, "test")
    store.recover_interrupted("other")  # nothing there; the running run of "task" stays running


def _same(left: list, right: list) -> None:  # type: ignore[type-arg]
    """Equal run lists, NaN scores compared as NaN."""
    assert [r.run_id for r in left] == [r.run_id for r in right]
    for a, b in zip(left, right, strict=True):
        for name in a.__dataclass_fields__:
            x, y = getattr(a, name), getattr(b, name)
            if name == "scores":
                assert x.keys() == y.keys()
                for split in x:
                    assert list(x[split]) == list(y[split])
                    for metric, value in x[split].items():
                        other = y[split][metric]
                        assert value == other or (math.isnan(value) and math.isnan(other)), (name, split, metric)
            else:
                assert x == y and type(x) is type(y), (a.run_id, name, x, y)


@pytest.fixture()
def filled(tmp_path: Path) -> Store:  # type: ignore[misc]
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    _fill(store)
    yield store
    store.close()


@pytest.mark.parametrize("phase", ["test", "validation"])
@pytest.mark.parametrize("active_only", [True, False])
@pytest.mark.parametrize("task", ["task", "other", "missing"])
def test_plain_sqlite_reads_equal_sqlalchemy_reads(filled: Store, phase: str, active_only: bool, task: str) -> None:
    orm = filled._runs_sqlalchemy(task, phase=phase, active_only=active_only)
    _same(filled.runs(task, phase=phase, active_only=active_only), orm)
    reader = open_reader(filled.url)
    assert isinstance(reader, SQLiteReader)
    try:
        _same(reader.runs(task, phase=phase, active_only=active_only), orm)
        assert reader.task_ids() == filled.task_ids()
    finally:
        reader.close()
    if task == "task" and phase == "test":  # the fill made what the comparison is about
        statuses = {r.status for r in orm}
        assert len(orm) >= 8 and {"succeeded", "failed", "rejected"} <= statuses
        assert active_only or {"running", "interrupted"} & statuses or any(not r.active for r in orm)


def test_the_reader_tables_and_version_are_the_schema_ones() -> None:
    from harness.store import schema

    assert set(_Base.metadata.tables) == TABLES
    assert schema.SCHEMA_VERSION == SCHEMA_VERSION


def test_reader_is_only_for_a_store_of_this_schema(tmp_path: Path) -> None:
    """A missing file, a file that is no store, a store of another version or without every table, another
    database or a URL with options: no reader (the caller opens a Store, which says what is wrong)."""
    assert open_reader(f"sqlite:///{tmp_path / 'missing.sqlite'}") is None
    assert not (tmp_path / "missing.sqlite").exists()  # looking did not create it
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    assert open_reader(f"sqlite:///{tmp_path / 'junk.sqlite'}") is None
    assert open_reader("postgresql+psycopg://user@host/db") is None
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    Store(url).close()
    assert open_reader(url + "?mode=ro") is None
    reader = open_reader(url)
    assert reader is not None and reader.runs("task") == [] and reader.task_ids() == []
    reader.close()
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    conn.commit()
    assert open_reader(url) is None
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
    conn.execute("DROP TABLE leases")
    conn.commit()
    conn.close()
    assert open_reader(url) is None


def test_reading_leaves_the_callers_transaction_as_found(filled: Store, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT 1 FROM runs").fetchall()
        assert len(sqlite_runs(conn, "task")) > 0 and conn.in_transaction
        conn.execute("COMMIT")
        assert len(sqlite_runs(conn, "task")) > 0 and not conn.in_transaction
    finally:
        conn.close()


def test_a_leaderboard_import_loads_no_sqlalchemy() -> None:
    """The read path's modules (the board's) stay off SQLAlchemy; ``harness.store``'s other names load it."""
    code = (
        "import sys\nimport harness.ranking, harness.ranking_intervals, harness.store.reading\n"
        "from harness.store import ScoredRun, resolve_db_url\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'\n"
        "from harness.store import Store\nassert 'sqlalchemy' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("split", ["public", "private"])
def test_a_board_read_without_sqlalchemy_is_the_board_read_with_it(tmp_path: Path, split: str) -> None:
    """Every export of the board and its stale lines, from the reader (``db_url``) and from a Store."""
    spec = load_spec(write_toy_task(tmp_path / "task"))
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    store = Store(url)
    try:
        _fill(store, spec.id)
        reader = open_reader(url)
        assert reader is not None  # what leaderboard_and_stale opens for this URL
        reader.close()
        for selection in ("best", "latest"):
            for intervals in (False, True):
                options = {"split": split, "selection": selection, "intervals": intervals}
                plain, plain_stale = leaderboard_and_stale(spec, db_url=url, **options)  # type: ignore[arg-type]
                orm, orm_stale = leaderboard_and_stale(spec, store=store, **options)  # type: ignore[arg-type]
                assert plain_stale == orm_stale and plain_stale
                assert len(plain) == 4 and plain["rank"].isna().any()
                assert selection == "latest" or plain["rank"].notna().any()
                for fmt in ("csv", "json", "markdown", "html"):
                    assert export(plain, spec.metrics, fmt) == export(orm, spec.metrics, fmt), fmt
    finally:
        store.close()
