"""The shipped evaluators' ``row_scores``: per-row values whose mean (transformed) is exactly what ``score`` gives,
and the shake-up table of the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report.intervals import shakeup_table
from harness.scoring import load_evaluator
from harness.scoring.rows import row_score_parts
from harness.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
N = 500


def _frames(task: str, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"r{i}" for i in range(N)]
    if task == "nyc-flight-delays":
        y = rng.normal(5, 40, N)
        return pd.DataFrame({"id": ids, "arr_delay": y + rng.normal(0, 20, N)}), pd.DataFrame(
            {"id": ids, "arr_delay": y}
        )
    if task == "dc-bikeshare":
        y = rng.poisson(200, N).astype(float)
        q50 = y + rng.normal(0, 30, N)
        preds = pd.DataFrame({"id": ids, "q10": q50 - 40, "q50": q50, "q90": q50 + 40})
        return preds, pd.DataFrame({"id": ids, "bikers": y})
    if task == "meter-digits":
        y = rng.integers(0, 10, N)
        p = np.where(rng.random(N) < 0.7, y, rng.integers(0, 10, N))
        return pd.DataFrame({"id": ids, "digit": p}), pd.DataFrame({"id": ids, "digit": y})
    classes = ["drizzle", "fog", "rain", "snow", "sun"]
    probs = rng.dirichlet(np.ones(5), N)
    probs[0] = [1, 0, 0, 0, 0]  # a zero probability of the observed class: clipped as scikit-learn does
    preds = pd.DataFrame(probs, columns=[f"p_{c}" for c in classes])
    preds.insert(0, "id", ids)
    truth = rng.choice(classes, N)
    truth[0] = "fog"
    return preds, pd.DataFrame({"id": ids, "weather": truth})


@pytest.mark.parametrize("task", ["nyc-flight-delays", "dc-bikeshare", "meter-digits", "seattle-weather"])
def test_row_scores_mean_is_the_metric(task: str) -> None:
    spec = load_spec(ROOT / "task_specs" / task)
    evaluator = load_evaluator(spec)(spec, "test", Path("."))
    predictions, reference = _frames(task, np.random.default_rng(0))
    scores = evaluator.score(predictions, reference)
    rows = evaluator.row_scores(predictions, reference)
    assert rows, "every shipped evaluator gives at least its primary metric per row"
    assert spec.primary_metric.name in rows
    for metric, answer in rows.items():
        values, transform = row_score_parts(answer)
        assert values.shape == (N,)
        mean = values.mean()
        value = float(transform(np.asarray([mean]))[0]) if transform is not None else mean
        assert value == pytest.approx(scores[metric], rel=1e-9, abs=1e-12), metric


def test_shakeup_table() -> None:
    def board(order: list[str], best: list[int], worst: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "team": order,
                "rank": pd.array(range(1, len(order) + 1), dtype="Int64"),
                "rank_best": pd.array(best, dtype="Int64"),
                "rank_worst": pd.array(worst, dtype="Int64"),
            }
        )

    public = board(["a", "b", "c"], [1, 1, 3], [2, 2, 3])
    private = board(["b", "a", "c"], [1, 1, 2], [2, 3, 3])
    shake = shakeup_table(public, private).set_index("team")
    assert shake.loc["b", "moved"] == 1 and bool(shake.loc["b", "within_intervals"])
    assert shake.loc["a", "moved"] == -1 and bool(shake.loc["a", "within_intervals"])
    assert shake.loc["c", "public_ranks"] == "3" and shake.loc["a", "private_ranks"] == "1-3"
    moved = shakeup_table(board(["a", "b", "c"], [1, 2, 3], [1, 2, 3]), private).set_index("team")
    assert not bool(moved.loc["b", "within_intervals"])  # public rank 2 was certain, private rank is 1
