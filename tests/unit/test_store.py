"""Results store: one active result per submission, atomic finish, recovery, one coordinator per task."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fakes import finished_record
from sqlalchemy import update

from harness.errors import StoreError
from harness.store import MetaRow, RunRow, Store


@pytest.fixture()
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    s.ensure_task("task", "A task", "0" * 64)
    yield s
    s.close()


def _submission(store: Store, team: str = "a", content: str = "c" * 64) -> int:
    sub_id, _ = store.register_submission("task", team, content, source="x", kind="script", entry="main.py")
    return sub_id


def test_same_content_same_team_is_one_submission(store: Store) -> None:
    first, created = store.register_submission("task", "a", "c" * 64, source="x", kind="script", entry="main.py")
    again, created_again = store.register_submission("task", "a", "c" * 64, source="y", kind="script", entry="main.py")
    assert first == again and created and not created_again


def test_rerun_replaces_the_active_result(store: Store) -> None:
    sub = _submission(store)
    first = store.start_run(sub, "test")
    store.finish_run(first, finished_record("succeeded", scores={"public": {"mae": 3.0}}))
    second = store.start_run(sub, "test")
    store.finish_run(second, finished_record("succeeded", scores={"public": {"mae": 2.0}}))
    active = store.runs("task")
    assert [(r.run_id, r.scores) for r in active] == [(second, {"public": {"mae": 2.0}})]
    assert len(store.runs("task", active_only=False)) == 2


def test_two_active_runs_are_impossible(store: Store) -> None:
    sub = _submission(store)
    for _ in range(2):
        store.finish_run(store.start_run(sub, "test"), finished_record("failed", reason="x"))
    with store.session() as sess, pytest.raises(Exception, match="UNIQUE|unique"):
        sess.execute(update(RunRow).values(active=True))
        sess.flush()


def test_succeeded_needs_scores_and_a_final_status(store: Store) -> None:
    run = store.start_run(_submission(store), "test")
    with pytest.raises(StoreError, match="without scores"):
        store.finish_run(run, finished_record("succeeded", scores={}))
    with pytest.raises(StoreError, match="cannot finish"):
        store.finish_run(run, finished_record("running"))
    assert store.active_run(_submission(store), "test") is None


def test_recover_marks_running_rows_interrupted_and_inactive(store: Store) -> None:
    sub = _submission(store)
    store.start_run(sub, "test")
    assert store.recover_interrupted("task") == 1
    runs = store.runs("task", active_only=False)
    assert [(r.status, r.active) for r in runs] == [("interrupted", False)]
    assert store.active_run(sub, "test") is None


def test_second_coordinator_refused_while_first_lives(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
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
    code = (
        "import sys; from harness.store import Store; s = Store(sys.argv[1]); s.acquire_lease('task'); "
        "import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, store.url], check=True, env={**os.environ})
    store.acquire_lease("task")  # the holder's pid is gone: taken over, no error
    store.release_lease("task")


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open the results store"):
        Store("nosuchdialect://x")


def test_daily_count_and_known_content(store: Store) -> None:
    assert store.registered_today("task", "a") == 0
    _submission(store, "a", "1" * 64)
    _submission(store, "a", "2" * 64)
    _submission(store, "b", "3" * 64)
    assert store.registered_today("task", "a") == 2
    assert store.is_known("task", "a", "1" * 64) and not store.is_known("task", "b", "1" * 64)
    import datetime as dt

    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert store.registered_today("task", "a", now=tomorrow) == 0


def test_store_of_another_schema_version_is_refused(store: Store) -> None:
    with store.session() as sess:
        sess.execute(update(MetaRow).values(value="0"))
    with pytest.raises(StoreError, match="schema version 0"):
        Store(store.url)
