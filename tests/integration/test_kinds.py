"""Column kinds end to end: a probability task, checked (validation phase) and judged (test phase) in Docker.

Uses tests/fixtures/tasks/probabilities (three classes, the reference holds the class, the minimal image), copied
to a temporary folder and prepared there. Three script submissions: a good one, all-ones probabilities (refused by
the harness, so it can never rank) and the same probabilities on every row (refused by the evaluator's
``check_predictions``). ``harness check`` and ``harness run`` must agree, and the messages must be the same in both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.images import build_task_image
from harness.scheduling import evaluate_many
from harness.selfcheck import check
from harness.spec import load_spec
from harness.status import Status
from harness.store import Store
from harness.tasks import prepare_task

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "probabilities"

_WRITE = """
import csv, os
inp, out = os.environ["HARNESS_INPUT_DIR"], os.environ["HARNESS_OUTPUT_DIR"]
rows = list(csv.DictReader(open(os.path.join(inp, "test.csv"))))
train = list(csv.DictReader(open(os.path.join(inp, "train.csv"))))
kind_of = {int(r["x"]) % 3: r["kind"] for r in train}
classes = ["graffiti", "noise", "pothole"]
with open(os.path.join(out, "predictions.csv"), "w") as fh:
    fh.write("id," + ",".join("p_" + c for c in classes) + "\\n")
    for r in rows:
        fh.write(r["id"] + "," + ",".join(str(PROBS(kind_of[int(r["x"]) % 3], c)) for c in classes) + "\\n")
"""
SUBMISSIONS = {
    "good": "lambda truth, c: 0.9 if c == truth else 0.05",
    "all-ones": "lambda truth, c: 1.0",
    "constant": "lambda truth, c: 0.2 if c == 'graffiti' else 0.4",
}


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory, docker_api: object) -> Path:
    """A prepared copy of the probability fixture task, with its image."""
    folder = tmp_path_factory.mktemp("kinds") / "probabilities"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    prepare_task(folder, echo=lambda _msg: None)
    build_task_image(load_spec(folder), echo=lambda _msg: None)
    return folder


@pytest.fixture(scope="module")
def submissions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("subs")
    for team, probs in SUBMISSIONS.items():
        (root / team).mkdir()
        (root / team / "main.py").write_text(_WRITE.replace("PROBS", f"({probs})"))
        (root / team / "team.yaml").write_text(f"team: {team}\n")
    return root


def test_check_and_run_agree_on_every_kind_of_refusal(task: Path, submissions: Path, tmp_path: Path) -> None:
    checked = {team: check(task, submissions / team, artifacts_dir=tmp_path / "check" / team) for team in SUBMISSIONS}
    assert checked["good"].ok, str(checked["good"])
    assert checked["good"].metrics.loc["accuracy", "value"] == 1.0
    ones = " ".join(checked["all-ones"].problems)
    assert checked["all-ones"].status is Status.INVALID_OUTPUT
    assert "row id r030: probabilities sum to 3 (p_graffiti..p_pothole)" in ones, ones
    assert "each row must sum to 1 (within 0.001), 12 rows do not" in ones, ones
    constant = " ".join(checked["constant"].problems)
    assert checked["constant"].status is Status.INVALID_OUTPUT
    assert "all 12 rows predict [0.2, 0.4, 0.4]; use the row's x" in constant, constant

    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        summary = evaluate_many(load_spec(task), submissions, store=store, home=home, workers=1)
    finally:
        store.close()
    assert summary.workers == 1 and summary.message().endswith(", 1 at a time")  # the concurrency judges read
    judged = {record.team: record for record in summary.records}
    assert {team: r.status for team, r in judged.items()} == {team: r.status for team, r in checked.items()}
    assert "row id r042: probabilities sum to 3 (p_graffiti..p_pothole)" in " ".join(judged["all-ones"].problems)
    assert "all 18 rows predict [0.2, 0.4, 0.4]; use the row's x" in " ".join(judged["constant"].problems)
    assert judged["good"].scores["private"]["accuracy"] == 1.0
