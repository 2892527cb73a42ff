"""Hostile cases of ``harness leaderboard``'s snapshots: a replay must print what a fresh computation prints now, a
damaged or planted snapshot is a miss (never a crash, never replayed from a folder others can write), and the
snapshot folder's pruning deletes only snapshots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from spec_fixtures import add_scored_team, write_toy_task
from typer.testing import CliRunner

from harness import board_snapshot
from harness.cli import app


def _leaderboard(task: Path, home: Path) -> str:
    result = CliRunner().invoke(app, ["leaderboard", str(task), "--home", str(home), "--no-intervals"])
    assert result.exit_code == 0, result.output
    return result.output


def _snapshots(home: Path) -> list[Path]:
    return sorted((home / "leaderboards").glob("*.json"))


@pytest.fixture
def linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A toy task whose task.yaml, test reference and test input folder are symbolic links into ``elsewhere``
    (big data kept outside the task, a spec shared by two folders), and a home with two current teams."""
    monkeypatch.setattr(board_snapshot, "SETTLE_S", 0.0)
    task = write_toy_task(tmp_path / "task")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("task.yaml", "data/hidden/test_reference.csv", "data/test_input"):
        target = elsewhere / Path(name).name
        shutil.move(task / name, target)
        (task / name).symlink_to(target)
    home = tmp_path / "home"
    home.mkdir()
    for index in range(2):
        add_scored_team(home, task, index, index / 10, current=True)
    time.sleep(0.05)
    return task, home, elsewhere


def test_a_change_behind_a_link_is_seen(linked: tuple[Path, Path, Path]) -> None:
    task, home, elsewhere = linked
    first = _leaderboard(task, home)
    assert "stale" not in first and len(_snapshots(home)) == 1
    assert _leaderboard(task, home) == first  # replayed: the links and their targets are unchanged
    time.sleep(0.05)
    reference = elsewhere / "test_reference.csv"
    reference.write_text(reference.read_text().replace("t01,1.0,", "t01,1.5,"))
    assert "reference data changed" in _leaderboard(task, home)
    time.sleep(0.05)
    (elsewhere / "test_input" / "extra.csv").write_text("id\n")  # a new file in the linked folder
    assert "input data changed" in _leaderboard(task, home)
    time.sleep(0.05)
    spec = elsewhere / "task.yaml"
    spec.write_text(spec.read_text().replace("title: Toy delays", "title: Toy delays, renamed"))
    assert "Toy delays, renamed: public leaderboard" in _leaderboard(task, home)


def test_pruning_leaves_other_json_files(linked: tuple[Path, Path, Path]) -> None:
    """A judge who keeps exports in <home>/leaderboards/ (or beside a --db file) keeps them all."""
    task, home, _ = linked
    folder = home / "leaderboards"
    folder.mkdir(mode=0o700)
    for index in range(board_snapshot.KEEP + 5):
        export = folder / f"round-{index}.json"
        export.write_text("[]")
        os.utime(export, (1_000_000 + index, 1_000_000 + index))
    _leaderboard(task, home)
    assert len(list(folder.glob("round-*.json"))) == board_snapshot.KEEP + 5
    assert len([p for p in folder.iterdir() if not p.name.startswith("round-")]) == 1


def test_a_killed_write_s_partial_file_is_pruned_once_old_and_others_stay(linked: tuple[Path, Path, Path]) -> None:
    task, home, _ = linked
    folder = home / "leaderboards"
    folder.mkdir(mode=0o700)
    key = "a" * 64
    old_partial, fresh_partial = folder / f"{key}.4242.partial", folder / f"{key}.4343.partial"
    judge_file = folder / "notes.4242.partial"  # not a snapshot's name: never ours to delete
    for path in (old_partial, fresh_partial, judge_file):
        path.write_text("{")
    long_ago = time.time() - board_snapshot.PARTIAL_STALE_S - 60
    for path in (old_partial, judge_file):
        os.utime(path, (long_ago, long_ago))
    _leaderboard(task, home)
    assert not old_partial.exists()  # a process killed mid-write an hour ago: a leftover
    assert fresh_partial.exists()  # possibly another terminal's write in progress
    assert judge_file.exists()


@pytest.mark.parametrize(
    "events",
    [[1], [[]], [["out"]], [["out", 5]], [["log", 5, 30, "x"]], [["log", "a", "high", "x"]], [["what", "x"]], {}],
)
def test_damaged_events_are_a_miss_not_a_crash(linked: tuple[Path, Path, Path], events: object) -> None:
    task, home, _ = linked
    first = _leaderboard(task, home)
    snapshot = _snapshots(home)[0]
    data = json.loads(snapshot.read_text())
    snapshot.write_text(json.dumps({**data, "events": events}))
    assert _leaderboard(task, home) == first


def test_a_damaged_file_path_is_a_miss_not_a_crash(linked: tuple[Path, Path, Path]) -> None:
    task, home, _ = linked
    first = _leaderboard(task, home)
    snapshot = _snapshots(home)[0]
    data = json.loads(snapshot.read_text())
    snapshot.write_text(json.dumps({**data, "files": {**data["files"], "a\0b": None}}))
    assert _leaderboard(task, home) == first


def test_a_folder_others_can_write_is_never_replayed_nor_written(linked: tuple[Path, Path, Path]) -> None:
    task, home, _ = linked
    first = _leaderboard(task, home)
    folder = home / "leaderboards"
    snapshot = _snapshots(home)[0]
    data = json.loads(snapshot.read_text())
    snapshot.write_text(json.dumps({**data, "events": [["out", "a board someone else wrote\n"]]}))
    folder.chmod(0o777)
    try:
        assert _leaderboard(task, home) == first  # computed: the planted board is not shown
        assert "someone else" in snapshot.read_text()  # and nothing written into that folder
    finally:
        folder.chmod(0o700)
    assert "someone else" in _leaderboard(task, home)  # the same file in a private folder is replayed


def test_a_planted_partial_link_is_not_written_through(linked: tuple[Path, Path, Path]) -> None:
    task, home, tmp = linked
    first = _leaderboard(task, home)
    snapshot = _snapshots(home)[0]
    victim = tmp / "victim.txt"
    victim.write_text("precious")
    snapshot.unlink()
    partial = snapshot.with_suffix(f".{os.getpid()}.partial")
    partial.symlink_to(victim)
    assert _leaderboard(task, home) == first
    assert victim.read_text() == "precious"
    assert _snapshots(home) == [snapshot] and not partial.exists()


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)


def test_an_image_retagged_while_the_board_is_computed_saves_no_snapshot(linked: tuple[Path, Path, Path]) -> None:
    """The stale check read the image's id before the retag; a snapshot keyed by the new id would replay a board
    saying the runs are current on an image they did not run in."""
    task, home, _ = linked
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    listed = _docker("image", "ls", "-q")
    if listed.returncode != 0 or not listed.stdout.split():
        pytest.skip("no Docker engine or no local image to tag")
    tag = f"harness-task/snapbreak-{uuid.uuid4().hex[:12]}:latest"
    request = board_snapshot.open_request({"task": str(task)}, db=None, home=home)
    assert request is not None
    try:
        with request.recording() as recording:
            recording.note_image(tag)  # not built yet: the board says nothing of the image
            assert _docker("tag", listed.stdout.split()[0], tag).returncode == 0  # `harness image` meanwhile
        assert not recording.save([task], store_url=request.store_url, image_tag=tag)
        assert not request.path.exists()
        with request.recording() as recording:
            recording.note_image(tag)
        assert recording.save([task], store_url=request.store_url, image_tag=tag)  # unchanged: kept
    finally:
        _docker("rmi", tag)  # removes the tag only: the image keeps its other names


def test_with_intervals_any_task_file_edited_in_place_computes_the_board_again(
    linked: tuple[Path, Path, Path],
) -> None:
    """Intervals run the evaluator, which may read a file beside the reference (row weights, a lookup table):
    editing it in place changes no folder's time, yet the intervals of a fresh board change."""
    task, home, _ = linked
    weights = task / "data" / "hidden" / "weights.txt"
    weights.write_text("1\n")
    time.sleep(0.05)
    args = ["leaderboard", str(task), "--home", str(home)]
    assert CliRunner().invoke(app, args).exit_code == 0
    written = _snapshots(home)[0].stat().st_mtime_ns
    time.sleep(0.05)
    weights.write_text("3\n")
    assert CliRunner().invoke(app, args).exit_code == 0
    assert _snapshots(home)[0].stat().st_mtime_ns != written  # computed again, not replayed


def test_another_import_path_is_another_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHONPATH or another venv gives other libraries (rich draws the table, the evaluator imports its own):
    a snapshot made under one is never replayed under the other."""
    before = board_snapshot.open_request({"task": "t"}, db=None, home=tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "shared-metrics"))
    after = board_snapshot.open_request({"task": "t"}, db=None, home=tmp_path)
    assert before is not None and after is not None and before.key != after.key


def test_with_intervals_a_home_inside_the_task_folder_is_still_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A judge working in the task folder has its default home (.harness) there: the store's sidecar files and the
    snapshots themselves change on every call, and must not make every request a miss."""
    monkeypatch.setattr(board_snapshot, "SETTLE_S", 0.0)
    task = write_toy_task(tmp_path / "task")
    home = task / ".harness"
    home.mkdir()
    for index in range(2):
        add_scored_team(home, task, index, index / 10, current=True)
    time.sleep(0.05)
    args = ["leaderboard", str(task), "--home", str(home)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    written = _snapshots(home)[0].stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.output == first.output
    assert _snapshots(home)[0].stat().st_mtime_ns == written  # replayed
