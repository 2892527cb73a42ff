"""The three new real tasks (seattle-weather, dc-bikeshare, meter-digits) judged as the demo judges them.

For each task: its data prepared once per session (in place, as ``make demo`` does; an unchanged prepare keeps the
data), its example submissions judged once with ``evaluate_many`` (test phase, process sandbox: these prove the
task, the sandboxes have their own tests), then: the good example ranks above the baseline on every test split,
the broken one is ``invalid_output``, the degenerate one is ``invalid_output`` or worse than the baseline, and
``harness check`` (validation phase) reaches the same status as the judges' run for every example. The
evaluators' metrics are checked by hand on small tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.record import RunRecord
from harness.scoring import load_evaluator
from harness.spec import TaskSpec, load_spec

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration  # prepares real data and runs the examples as real processes and kernels


@dataclass(frozen=True)
class Examples:
    """The roles of a task's example submissions (folder names under examples/submissions/<task>/)."""

    good: str
    baseline: str
    broken: str
    degenerate: str


TASKS = {
    "seattle-weather": Examples("gbm-notebook", "baseline", "label-only", "all-ones"),
    "dc-bikeshare": Examples("gbm-notebook", "baseline", "crossing", "constant"),
    "meter-digits": Examples("svm-notebook", "baseline", "file-names", "one-digit"),
}

_PREPARED: dict[str, TaskSpec] = {}
_JUDGED: dict[str, dict[str, RunRecord]] = {}


def prepared(task_id: str) -> TaskSpec:
    """The task's spec with its data prepared (once per session)."""
    if task_id not in _PREPARED:
        from harness.tasks import prepare_task

        task_dir = REPO / "task_specs" / task_id
        prepare_task(task_dir, echo=lambda _msg: None)
        _PREPARED[task_id] = load_spec(task_dir)
    return _PREPARED[task_id]


@pytest.fixture(scope="session")
def judging_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One harness home (store and artifacts) for every task judged in this session."""
    return tmp_path_factory.mktemp("tasks-home")


def judged(task_id: str, home: Path) -> dict[str, RunRecord]:
    """Run record per example folder name, from one judging of the task's examples (once per session)."""
    if task_id not in _JUDGED:
        from harness.scheduling import evaluate_many
        from harness.store import Store

        spec = prepared(task_id)
        store = Store(f"sqlite:///{home / 'results.sqlite'}")
        try:
            summary = evaluate_many(spec, REPO / "examples" / "submissions" / task_id, store=store, home=home,
                                    workers=2, sandbox="process")  # fmt: skip
        finally:
            store.close()
        # keyed by team: each example's team.yaml names its folder
        _JUDGED[task_id] = {r.team: r for r in summary.records}
    return _JUDGED[task_id]


def primary_better(spec: TaskSpec, a: RunRecord, b: RunRecord, split: str) -> bool:
    metric = spec.primary_metric
    va, vb = a.scores[split][metric.name], b.scores[split][metric.name]
    return va < vb if metric.goal == "minimize" else va > vb


@pytest.mark.parametrize("task_id", list(TASKS))
def test_examples_rank_as_documented(task_id: str, judging_home: Path) -> None:
    spec, roles, records = prepared(task_id), TASKS[task_id], judged(task_id, judging_home)
    assert set(records) == {roles.good, roles.baseline, roles.broken, roles.degenerate}
    good, baseline = records[roles.good], records[roles.baseline]
    assert (good.status, baseline.status) == ("succeeded", "succeeded"), (good.reason, baseline.reason)
    for split in spec.splits("test"):
        assert primary_better(spec, good, baseline, split), (split, good.scores, baseline.scores)
    broken = records[roles.broken]
    assert broken.status == "invalid_output", (broken.status, broken.reason)
    degenerate = records[roles.degenerate]
    if degenerate.status != "invalid_output":
        assert degenerate.status == "succeeded", degenerate.reason
        for split in spec.splits("test"):
            assert primary_better(spec, baseline, degenerate, split), (split, degenerate.scores)


@pytest.mark.parametrize("task_id", list(TASKS))
def test_check_agrees_with_run_on_every_example(task_id: str, judging_home: Path, tmp_path: Path) -> None:
    from harness.selfcheck import check

    spec, records = prepared(task_id), judged(task_id, judging_home)
    for name, record in sorted(records.items()):
        result = check(spec.task_dir, REPO / "examples" / "submissions" / task_id / name, sandbox="process",
                       artifacts_dir=tmp_path / name)  # fmt: skip
        assert result.status == record.status, (name, result.status, result.reason, record.status, record.reason)
        if record.status == "succeeded":
            assert set(result.metrics.index) == set(spec.metric_names), name


def test_meter_digits_inputs_are_one_png_per_id() -> None:
    from PIL import Image

    spec = prepared("meter-digits")
    for phase in ("validation", "test"):
        folder = spec.input_dir(phase)
        ids = pd.concat([pd.read_csv(folder / "train.csv")["id"], pd.read_csv(folder / "test.csv")["id"]])
        assert sorted(p.stem for p in (folder / "images").glob("*.png")) == sorted(ids)
    image = np.asarray(Image.open(next((spec.input_dir("test") / "images").glob("*.png"))))
    assert image.shape == (8, 8) and image.dtype == np.uint8


def test_dc_bikeshare_forecasts_only_after_the_history() -> None:
    spec = prepared("dc-bikeshare")
    for phase in ("validation", "test"):
        folder = spec.input_dir(phase)
        train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
        assert train["id"].max() < test["id"].min()  # ids are YYYY-MM-DDTHH: text order is time order
        assert not {"bikers", "casual", "registered", "temp", "weathersit"} & set(test.columns)
        assert test["horizon"].min() == 1 and test["horizon"].is_monotonic_increasing


# -- evaluators by hand ----------------------------------------------------------------------------------------
def test_seattle_weather_metrics_by_hand(tmp_path: Path) -> None:
    spec = load_spec(REPO / "task_specs" / "seattle-weather")
    evaluator = load_evaluator(spec)(spec, "validation", tmp_path)
    reference = pd.DataFrame({"id": ["a", "b"], "weather": ["rain", "sun"], "split": ["validation"] * 2})
    predictions = pd.DataFrame({"id": ["a", "b"], "p_drizzle": [0.1, 0.0], "p_fog": [0.1, 0.5],
                                "p_rain": [0.5, 0.0], "p_snow": [0.1, 0.0], "p_sun": [0.2, 0.5]})  # fmt: skip
    # day b: fog and sun tie at 0.5; the tie goes to the first class in the spec's order (fog): a miss
    scores = evaluator.score(predictions, reference)
    assert scores["log_loss"] == pytest.approx(-(math.log(0.5) + math.log(0.5)) / 2)
    assert scores["accuracy"] == 0.5
    assert scores["macro_f1"] == pytest.approx(1 / 5)  # rain: F1 1; fog, sun: 0; drizzle, snow: 0 (absent)


def test_dc_bikeshare_metrics_by_hand(tmp_path: Path) -> None:
    spec = load_spec(REPO / "task_specs" / "dc-bikeshare")
    evaluator = load_evaluator(spec)(spec, "validation", tmp_path)
    reference = pd.DataFrame({"id": ["a", "b"], "bikers": [10.0, 100.0], "split": ["validation"] * 2})
    predictions = pd.DataFrame({"id": ["a", "b"], "q10": [5.0, 20.0], "q50": [10.0, 50.0], "q90": [20.0, 80.0]})
    scores = evaluator.score(predictions, reference)
    # a: losses 0.1*5, 0, 0.1*10; b: 0.1*80, 0.5*50, 0.9*20 -> per level means 4.25, 12.5, 9.5
    assert scores["pinball"] == pytest.approx((4.25 + 12.5 + 9.5) / 3)
    assert scores["mae_q50"] == pytest.approx(25.0)
    assert scores["coverage_gap"] == pytest.approx(abs(0.5 - 0.8))


def test_meter_digits_metrics_by_hand(tmp_path: Path) -> None:
    spec = load_spec(REPO / "task_specs" / "meter-digits")
    evaluator = load_evaluator(spec)(spec, "validation", tmp_path)
    reference = pd.DataFrame({"id": list("abcd"), "digit": [1, 1, 2, 3], "split": ["validation"] * 4})
    predictions = pd.DataFrame({"id": list("abcd"), "digit": [1, 2, 2, 3]})
    scores = evaluator.score(predictions, reference)
    assert scores["accuracy"] == 0.75
    # digit 1: P 1, R 0.5 -> 2/3; digit 2: P 0.5, R 1 -> 2/3; digit 3: 1; the other seven digits: 0
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 10)
