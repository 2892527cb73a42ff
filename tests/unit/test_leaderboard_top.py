"""The terminal leaderboard draws its first ``--top`` rows and says how many more there are; exports keep them all."""

from __future__ import annotations

from pathlib import Path

from spec_fixtures import write_toy_task
from typer.testing import CliRunner

from harness.cli import app
from harness.record import RunRecord
from harness.spec import load_spec
from harness.status import Status
from harness.store import Store


def _board(tmp_path: Path, teams: int) -> tuple[Path, Path]:
    """A toy task and a home whose store holds ``teams`` ranked teams (``team-00`` best) and one failed team."""
    task = write_toy_task(tmp_path / "task")
    spec = load_spec(task)
    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    store.ensure_task(spec.id, spec.title, spec.spec_hash)
    for index in range(teams + 1):
        failed = index == teams
        team = "broken-team" if failed else f"team-{index:02d}"
        sub_id, _ = store.register_submission(
            spec.id, team, f"{index:064x}", source=team, kind="script", entry="main.py"
        )
        run_id = store.start_run(sub_id, "test")
        scores = {} if failed else {"public": {"mae": index / 10, "within_1": 1.0}}
        record = RunRecord(
            task_id=spec.id, phase="test", team=team, content_hash=f"{index:064x}", kind="script",
            status=Status.FAILED if failed else Status.SUCCEEDED, reason="ValueError: no model" if failed else "",
            scores=scores,
        )  # fmt: skip
        store.finish_run(run_id, record)
    store.close()
    return task, home


def test_top_rows_then_how_many_more_and_every_unranked_reason(tmp_path: Path) -> None:
    task, home = _board(tmp_path, 12)
    args = ["leaderboard", str(task), "--home", str(home), "--no-intervals"]
    result = CliRunner().invoke(app, [*args, "--top", "5"])
    assert result.exit_code == 0, result.output
    shown = [f"team-{i:02d}" for i in range(12) if f"team-{i:02d}" in result.output]
    assert shown == [f"team-{i:02d}" for i in range(5)], result.output  # the best five, in rank order
    assert "(13 teams)" in result.output  # the title counts the whole board
    assert "8 more team(s) not shown: --top 0 shows every row" in result.output
    assert "broken-team: failed: ValueError: no model" in result.output  # reasons of every unranked row

    every = CliRunner().invoke(app, [*args, "--top", "0"])
    assert every.exit_code == 0, every.output
    assert all(f"team-{i:02d}" in every.output for i in range(12)) and "not shown" not in every.output

    exported = CliRunner().invoke(app, [*args, "--top", "5", "--format", "csv"])
    assert exported.exit_code == 0, exported.output
    assert all(f"team-{i:02d}" in exported.output for i in range(12))  # exports are never cut


def test_a_board_smaller_than_the_default_is_drawn_whole(tmp_path: Path) -> None:
    task, home = _board(tmp_path, 3)
    result = CliRunner().invoke(app, ["leaderboard", str(task), "--home", str(home), "--no-intervals"])
    assert result.exit_code == 0, result.output
    assert all(f"team-{i:02d}" in result.output for i in range(3)) and "not shown" not in result.output


def test_a_negative_top_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["leaderboard", "some-task", "--home", str(tmp_path), "--top", "-1"])
    assert result.exit_code == 2 and "--top" in result.output
