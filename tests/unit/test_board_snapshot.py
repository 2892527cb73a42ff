"""``harness leaderboard`` answers an unchanged request from its last output, and never when anything it reads
changed: the store, the spec, the evaluator, the references, the inputs, the options, the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from spec_fixtures import add_scored_team, write_toy_task
from typer.testing import CliRunner

from harness import board_snapshot
from harness.cli import app
from harness.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A toy task and a home with three ranked teams; snapshots trust files written just now (in-process)."""
    monkeypatch.setattr(board_snapshot, "SETTLE_S", 0.0)
    task = write_toy_task(tmp_path / "task")
    home = tmp_path / "home"
    home.mkdir()
    for index in range(3):
        add_scored_team(home, task, index, index / 10)
    time.sleep(0.05)  # past the file system's timestamp granularity
    return task, home


def _leaderboard(task: Path, home: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["leaderboard", str(task), "--home", str(home), "--no-intervals", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _snapshots(home: Path) -> list[Path]:
    return sorted((home / "leaderboards").glob("*.json"))


def test_the_same_request_is_answered_from_its_snapshot(board: tuple[Path, Path]) -> None:
    task, home = board
    first = _leaderboard(task, home)
    assert len(_snapshots(home)) == 1 and "team-02" in first
    snapshot = _snapshots(home)[0]
    assert snapshot.stat().st_mode & 0o077 == 0  # private scores stay the store owner's
    written = snapshot.stat().st_mtime_ns
    assert _leaderboard(task, home) == first
    assert snapshot.stat().st_mtime_ns == written  # replayed, not computed and written again


def test_a_new_run_in_the_store_is_ranked(board: tuple[Path, Path]) -> None:
    task, home = board
    assert "team-07" not in _leaderboard(task, home)
    add_scored_team(home, task, 7, 0.01)
    again = _leaderboard(task, home)
    assert "team-07" in again
    assert again.index("team-00") < again.index("team-07") < again.index("team-01")  # ranked by its mae


@pytest.mark.parametrize("changed", ["task.yaml", "evaluator.py", "data/hidden/test_reference.csv"])
def test_a_changed_task_file_computes_the_board_again(board: tuple[Path, Path], changed: str) -> None:
    task, home = board
    _leaderboard(task, home)
    written = _snapshots(home)[0].stat().st_mtime_ns
    time.sleep(0.05)
    with (task / changed).open("a") as fh:
        fh.write("\n")
    _leaderboard(task, home)
    assert _snapshots(home)[0].stat().st_mtime_ns != written  # computed again (and a new snapshot saved)


def test_a_new_input_file_computes_the_board_again(board: tuple[Path, Path]) -> None:
    task, home = board
    _leaderboard(task, home)
    written = _snapshots(home)[0].stat().st_mtime_ns
    time.sleep(0.05)
    (task / "data" / "test_input" / "extra.csv").write_text("id\n")
    _leaderboard(task, home)
    assert _snapshots(home)[0].stat().st_mtime_ns != written


def test_other_options_and_terminal_sizes_are_other_requests(
    board: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    task, home = board
    whole = _leaderboard(task, home)
    top = _leaderboard(task, home, "--top", "1")
    assert top != whole and "2 more team(s) not shown" in top
    monkeypatch.setenv("COLUMNS", "200")
    _leaderboard(task, home)
    exported = _leaderboard(task, home, "--format", "csv")
    assert exported.startswith("rank,") or "team-00" in exported
    assert len(_snapshots(home)) == 4
    monkeypatch.delenv("COLUMNS")
    assert _leaderboard(task, home) == whole


def test_a_damaged_snapshot_is_a_miss(board: tuple[Path, Path]) -> None:
    task, home = board
    first = _leaderboard(task, home)
    _snapshots(home)[0].write_text("{not json")
    assert _leaderboard(task, home) == first


def test_a_store_written_while_the_board_is_computed_saves_no_snapshot(board: tuple[Path, Path]) -> None:
    task, home = board
    request = board_snapshot.open_request({"task": str(task)}, db=None, home=home)
    assert request is not None
    with request.recording() as recording:
        print("a board")
    add_scored_team(home, task, 9, 0.5)  # a batch finished a run meanwhile
    assert not recording.save([task], store_url=request.store_url, image_tag="harness-task/none:latest")
    assert not request.path.exists()


def test_a_file_changed_just_before_saves_no_snapshot(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")  # written now: inside SETTLE_S
    home = tmp_path / "home"
    home.mkdir()
    add_scored_team(home, task, 0, 0.1)
    result = CliRunner().invoke(app, ["leaderboard", str(task), "--home", str(home), "--no-intervals"])
    assert result.exit_code == 0, result.output
    assert not (home / "leaderboards").exists()


def test_other_stores_and_similar_are_never_snapshotted(tmp_path: Path) -> None:
    assert board_snapshot.open_request({}, db="postgresql+psycopg://u@h/db", home=None) is None
    assert board_snapshot.open_request({}, db=None, home=tmp_path, environ={"DOCKER_HOST": "tcp://h:2375"}) is None
    url = board_snapshot.open_request({}, db=None, home=tmp_path)
    assert url is not None and url.store_url == f"sqlite:///{tmp_path.resolve() / 'results.sqlite'}"


def test_a_replay_imports_no_pandas_and_logs_its_warnings_again(tmp_path: Path) -> None:
    """In a fresh process, as a judge runs it: the second call prints what the first printed (the interval
    warning logged again, at its own time) without importing pandas, SQLAlchemy or pydantic's models; the first
    call reads the SQLite store without SQLAlchemy too."""
    task = write_toy_task(tmp_path / "task")
    home = tmp_path / "home"
    home.mkdir()
    for index in range(3):
        add_scored_team(home, task, index, index / 10)  # no kept predictions: the board warns that intervals are off
    time.sleep(board_snapshot.SETTLE_S + 0.1)
    code = (
        "import sys\nfrom harness.cli import main\n"
        f"sys.argv = ['harness', 'leaderboard', {str(task)!r}, '--home', {str(home)!r}]\n"
        "try:\n    main()\nfinally:\n"
        "    print('imported:', sorted(m for m in ('pandas', 'sqlalchemy', 'harness.spec') if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    first, second = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        for _ in range(2)
    )
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert second.stdout == first.stdout and "team-00" in first.stdout
    assert "imported: ['harness.spec', 'pandas']" in first.stderr  # the SQLite store read without SQLAlchemy
    assert "imported: []" in second.stderr
    warning = "WARNING harness.ranking_intervals: no intervals for task"
    assert warning in first.stderr and warning in second.stderr
    assert len(list((home / "leaderboards").glob("*.json"))) == 1


def test_bytecode_written_by_importing_the_evaluator_is_not_a_dependency(board: tuple[Path, Path]) -> None:
    """Intervals import the evaluator, which writes ``__pycache__`` into the task folder: not a change of the task."""
    task, _home = board
    cache = task / "__pycache__"
    cache.mkdir()
    (cache / "evaluator.cpython-311.pyc").write_bytes(b"\0")
    files = board_snapshot.board_files(load_spec(task), [], kept=True)
    assert task / "evaluator.py" in files and not any("__pycache__" in f.parts for f in files)
