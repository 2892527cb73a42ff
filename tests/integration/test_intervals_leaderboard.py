"""Intervals, tie groups and the Ladder through the real leaderboard: runs judged in Docker on the minimal fixture
task, kept predictions read back from the store's artifacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_run import MEAN, PERFECT, _harness, _script

from harness.ranking import leaderboard

pytestmark = pytest.mark.integration

#: y + 1 on every row: MAE 1.
PLUS_ONE = PERFECT.replace("3 * int(r['x']) + 1}", "3 * int(r['x']) + 2}")
#: y + 1.3 on even x, y - 0.6 on odd x: public MAE 0.911, better than PLUS_ONE by less than the paired standard
#: error of the difference on the 9 public rows, so the Ladder keeps showing PLUS_ONE.
WOBBLE = PERFECT.replace("3 * int(r['x']) + 1}", "3 * int(r['x']) + 1 + (1.3 if int(r['x']) % 2 == 0 else -0.6)}")


def test_intervals_tie_groups_and_the_ladder(minimal_task: Path, test_image: str, tmp_path: Path) -> None:
    subs = tmp_path / "submissions"
    _script(subs / "alpha", PERFECT)
    _script(subs / "copycat", PERFECT)
    _script(subs / "bravo", MEAN)
    _script(subs / "echo-a", PLUS_ONE, team="echo")
    home = tmp_path / "home"
    _harness("run", str(minimal_task), str(subs), "--workers", "2", home=home)
    _script(subs / "echo-b", WOBBLE, team="echo")
    _harness("run", str(minimal_task), str(subs), home=home)

    rows = json.loads(
        _harness("leaderboard", str(minimal_task), "--format", "json", "--split", "private", home=home).stdout
    )
    by_team = {r["team"]: r for r in rows}
    assert by_team["alpha"]["tie_group"] == by_team["copycat"]["tie_group"] == 1  # identical predictions: tied
    assert by_team["alpha"]["tied_with_leader"] and by_team["copycat"]["tied_with_leader"]
    assert (by_team["alpha"]["rank_best"], by_team["alpha"]["rank_worst"]) == (1, 2)
    for team in ("bravo", "echo"):  # clearly worse: separated from the leader
        assert not by_team[team]["tied_with_leader"] and by_team[team]["rank_best"] >= 3
        assert by_team[team]["mae_low"] <= by_team[team]["mae"] <= by_team[team]["mae_high"]
    assert "seed 20150101" in by_team["alpha"]["intervals"]
    again = json.loads(
        _harness("leaderboard", str(minimal_task), "--format", "json", "--split", "private", home=home).stdout
    )
    assert again == rows  # reproducible from the recorded seed

    table = _harness("leaderboard", str(minimal_task), "--split", "private", home=home).stdout
    assert "ranks" in table and "are NOT separable" in table and "seed 20150101" in table
    markdown = _harness("leaderboard", str(minimal_task), "--format", "markdown", home=home).stdout
    assert "| ci" in markdown and "paired bootstrap" in markdown
    plain = json.loads(
        _harness("leaderboard", str(minimal_task), "--format", "json", "--no-intervals", home=home).stdout
    )
    assert "tie_group" not in plain[0]

    # the Ladder: the same store, the spec opting in; echo's second submission is better by less than the
    # paired standard error, so its public score stays that of the first; the private board does not change
    laddered = tmp_path / "laddered"
    shutil.copytree(minimal_task, laddered)
    with (laddered / "task.yaml").open("a", encoding="utf-8") as fh:
        fh.write("leaderboard: {public_rule: ladder}\n")
    best = leaderboard(minimal_task, home=home).set_index("team")
    ladder = leaderboard(laddered, home=home).set_index("team")
    assert best.loc["echo", "mae"] == pytest.approx(8.2 / 9)
    assert ladder.loc["echo", "mae"] == pytest.approx(1.0)
    assert ladder.loc["alpha", "mae"] == 0.0
    private_best = leaderboard(minimal_task, home=home, split="private")
    private_ladder = leaderboard(laddered, home=home, split="private")
    # (the copy's task.yaml differs, so its runs are rightly "stale": task.yaml changed; the rest is the same)
    assert set(private_ladder["stale"]) == {"task.yaml changed"}
    unchanged = ["submitted_at", "stale"]
    assert private_best.drop(columns=unchanged).equals(private_ladder.drop(columns=unchanged))

    # a kept predictions file changed on disk after scoring (here: bravo's replaced by alpha's) is not what was
    # ranked: no team gets intervals, and the board says why instead of mixing the file into tie groups
    bravo = next(r for r in rows if r["team"] == "bravo")
    alpha = next(r for r in rows if r["team"] == "alpha")
    kept = {r["team"]: Path(_artifacts(home, r["run_id"])) / "output" / "predictions.csv" for r in (alpha, bravo)}
    shutil.copyfile(kept["alpha"], kept["bravo"])
    tampered = leaderboard(minimal_task, home=home, split="private", intervals=True)
    assert tampered["tie_group"].isna().all()
    assert "bravo" in tampered.attrs["intervals"]["unavailable"]
    assert "changed since it was scored" in tampered.attrs["intervals"]["unavailable"]


def _artifacts(home: Path, run_id: int) -> str:
    """The artifacts folder a run recorded."""
    from harness.store import Store

    store = Store(f"sqlite:///{home}/results.sqlite")
    try:
        return next(r.artifacts_dir for r in store.runs("minimal", phase="test") if r.run_id == run_id)
    finally:
        store.close()
