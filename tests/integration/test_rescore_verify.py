"""Stale scores, `harness rescore` and `harness verify` against the real Docker sandbox (issue 14).

One batch of the minimal fixture task (a copy in tmp, its evaluator then edited) is judged in Docker; the tests ask
the CLI what a judge would: `harness run`, `harness leaderboard` and `harness report` say the scores are stale,
`harness rescore` makes the leaderboard right without starting a container, the history keeps both versions, and
`harness verify` tells a deterministic submission from one using an unseeded random generator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.spec import load_spec
from harness.store import Store

# Standard library only: the fixture image holds no pandas.
DETERMINISTIC = """
import csv, os
inp, out = os.environ["HARNESS_INPUT_DIR"], os.environ["HARNESS_OUTPUT_DIR"]
rows = list(csv.DictReader(open(os.path.join(inp, "test.csv"))))
with open(os.path.join(out, "predictions.csv"), "w") as fh:
    fh.write("id,y\\n")
    for r in rows:
        fh.write(f"{r['id']},{3 * float(r['x']) + 1.5}\\n")
"""
UNSEEDED = DETERMINISTIC.replace("import csv, os", "import csv, os, random").replace("+ 1.5}", "+ 1 + random.random()}")


def _harness(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def judged(minimal_task: Path, test_image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(task folder copy, submissions folder, home) after one Docker batch of two teams."""
    root = tmp_path_factory.mktemp("rescore")
    task = root / "task"
    shutil.copytree(minimal_task, task)
    subs = root / "submissions"
    for team, code in (("steady", DETERMINISTIC), ("dice", UNSEEDED)):
        (subs / team).mkdir(parents=True)
        (subs / team / "main.py").write_text(code)
    home = root / "home"
    first = _harness("run", str(task), str(subs), home=home)
    assert "2 evaluated (2 succeeded)" in first.stdout, first.stdout
    assert "stale" not in first.stderr, first.stderr
    return task, subs, home


def _board(task: Path, home: Path) -> dict[str, dict[str, object]]:
    proc = _harness("leaderboard", str(task), "--format", "json", home=home)
    return {row["team"]: row for row in json.loads(proc.stdout)}


def test_an_edited_evaluator_makes_scores_stale_and_rescore_fixes_them_without_a_container(
    judged: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    task, subs, home = judged
    before = _board(task, home)
    assert before["steady"]["mae"] == pytest.approx(0.5) and before["steady"]["stale"] == ""
    inputs = before["steady"]["inputs"]
    assert isinstance(inputs, dict)
    assert set(inputs) == {"evaluator", "spec", "reference", "input", "image_id", "harness_version", "predictions"}
    assert str(inputs["image_id"]).startswith("sha256:") and len(str(inputs["predictions"])) == 64

    # The author fixes the evaluator after the batch: the mean absolute error is now reported doubled.
    evaluator = task / "evaluator.py"
    evaluator.write_text(evaluator.read_text().replace('"mae": float(', '"mae": 2 * float('))

    run = _harness("run", str(task), str(subs), home=home)
    assert "2 submission(s) unchanged" in run.stderr
    assert "evaluator changed since 2 run(s) were scored" in run.stderr and "harness rescore" in run.stderr
    board = _harness("leaderboard", str(task), home=home)
    assert "evaluator changed since 2 run(s) were scored" in board.stderr
    assert "evaluator changed" in board.stdout  # the table's stale column
    assert _board(task, home)["steady"]["stale"] == "evaluator changed"
    report = _harness("report", str(task), "--out", str(home.parent / "report"), home=home)
    assert "evaluator changed since 2 run(s) were scored" in report.stderr
    from harness.report import read_glued

    shown = read_glued(home.parent / "report" / "leaderboard.ipynb", "provenance")
    assert {row["stale"] for row in shown} == {"evaluator changed"}

    # Rescoring runs no team code: any container created here fails the test.
    from harness.rescoring import rescore_task
    from harness.sandbox.engine import DockerAPI

    def no_container(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("rescoring started a container")

    monkeypatch.setattr(DockerAPI, "create_container", no_container)
    monkeypatch.setattr("harness.pipeline.evaluate_opened", no_container)
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        old = {run.team: run for run in store.runs("minimal")}
        summary = rescore_task(load_spec(task), store)
        assert len(summary.rescored) == 2 and not summary.skipped and summary.needs_rerun == 0
        history = store.runs("minimal", active_only=False)
        active = {run.team: run for run in store.runs("minimal")}
        again = rescore_task(load_spec(task), store)  # nothing stale now: no new runs, no history added
        assert again.rescored == [] and again.current == 2
        assert len(store.runs("minimal", active_only=False)) == len(history)
    finally:
        store.close()
    monkeypatch.undo()

    after = _board(task, home)
    assert after["steady"]["mae"] == pytest.approx(1.0) and after["steady"]["stale"] == ""
    assert after["dice"]["mae"] == pytest.approx(2 * float(before["dice"]["mae"]))  # type: ignore[arg-type]
    # History keeps both versions: the old run, inactive, with its scores and provenance; the new one names it.
    by_id = {run.run_id: run for run in history}
    for team in ("steady", "dice"):
        new, replaced = active[team], by_id[old[team].run_id]
        assert new.provenance["rescored_from"] == replaced.run_id and not replaced.active
        assert replaced.scores == old[team].scores and replaced.provenance["inputs"] == old[team].provenance["inputs"]
        assert new.provenance["inputs"]["predictions"] == replaced.provenance["inputs"]["predictions"]
        assert new.provenance["inputs"]["evaluator"] != replaced.provenance["inputs"]["evaluator"]
        assert new.artifacts_dir == replaced.artifacts_dir
    board = _harness("leaderboard", str(task), home=home)
    assert "stale" not in board.stderr, board.stderr


def test_verify_tells_a_deterministic_submission_from_an_unseeded_random_one(
    judged: tuple[Path, Path, Path],
) -> None:
    task, _subs, home = judged
    board = _board(task, home)
    before = _board(task, home)

    steady = _harness("verify", str(board["steady"]["run_id"]), "--task", str(task), home=home)
    assert "reproduced" in steady.stdout and "predictions: byte-identical" in steady.stdout
    assert "scores: equal" in steady.stdout

    dice = _harness("verify", str(board["dice"]["run_id"]), "--task", str(task), home=home, check=False)
    assert dice.returncode == 1, dice.stdout + dice.stderr
    assert "did NOT reproduce" in dice.stdout and "predictions: differ" in dice.stdout
    assert "public mae:" in dice.stdout and " now (" in dice.stdout  # the score difference, signed
    assert "not deterministic" in dice.stdout
    assert _board(task, home) == before  # verify never changes the leaderboard
