"""Degenerate submissions (harness.tasks_degenerate) derived from small specs of each column kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from spec_fixtures import VALIDATION_REFERENCE, toy_raw, write_toy_task

from harness.spec import TaskSpec, load_spec
from harness.tasks import degenerate_submissions, perfect_predictions


def spec_with(tmp_path: Path, **predictions: Any) -> TaskSpec:
    raw = toy_raw()
    raw["predictions"].update(predictions)
    return load_spec(write_toy_task(tmp_path / "task", raw, data=False))


def by_name(spec: TaskSpec, reference: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {d.name: d.predictions for d in degenerate_submissions(spec, reference)}


def test_numeric_column_gets_the_median_the_mean_and_the_shuffle(tmp_path: Path) -> None:
    spec = load_spec(write_toy_task(tmp_path / "task", data=False))
    reference = VALIDATION_REFERENCE.assign(y=[0.5, -1.5, 2.0, 10.0])
    made = by_name(spec, reference)
    assert list(made) == ["constant median", "training mean", "shuffled reference"]
    assert made["constant median"]["y"].tolist() == [1.25] * 4
    assert made["training mean"]["y"].tolist() == [2.75] * 4
    shuffled = made["shuffled reference"]
    assert shuffled["id"].tolist() == ["v1", "v2", "v3", "v4"]  # ids stay, the truth moves
    assert sorted(shuffled["y"]) == sorted(reference["y"]) and shuffled["y"].tolist() != reference["y"].tolist()
    assert list(shuffled.columns) == ["id", "y"]


def test_a_constant_respects_the_columns_bounds(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, columns=[{"name": "id", "dtype": "string"}, {"name": "y", "dtype": "int", "max": 1}])
    made = by_name(spec, VALIDATION_REFERENCE.assign(y=[3, 4, 5, 6]))
    assert made["constant median"]["y"].tolist() == [1] * 4  # 4.5, clipped to max 1, an int


def test_label_column_gets_the_majority_class_from_its_reference_column(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        columns=[
            {"name": "id", "dtype": "string"},
            {"name": "digit", "dtype": "int", "values": [0, 7, 9], "reference": "label"},
        ],
    )
    reference = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [7, 9, 7, 0], "split": ["validation"] * 4})
    made = by_name(spec, reference)
    assert list(made) == ["majority class", "shuffled reference"]
    assert made["majority class"]["digit"].tolist() == [7, 7, 7, 7]
    assert perfect_predictions(spec, reference)["digit"].tolist() == [7, 9, 7, 0]
    assert made["majority class"].to_csv(index=False).splitlines()[1] == "a,7"


def test_probability_group_gets_uniform_ones_zeros_and_one_hot(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        columns=[{"name": "id", "dtype": "string"}],
        probabilities=[{"target": "weather", "classes": ["rain", "sun", "fog"]}],
    )
    reference = pd.DataFrame({"id": list("abcd"), "weather": ["sun", "rain", "sun", "fog"], "split": ["v"] * 4})
    made = by_name(spec, reference)
    assert list(made) == [
        "uniform probabilities",
        "all-ones probabilities",
        "all-zeros probabilities",
        "one-hot of class 'sun'",
        "shuffled reference",
    ]
    columns = ["p_rain", "p_sun", "p_fog"]
    assert np.allclose(made["uniform probabilities"][columns].to_numpy(), 1 / 3)
    assert (made["all-ones probabilities"][columns].to_numpy() == 1.0).all()
    assert (made["all-zeros probabilities"][columns].to_numpy() == 0.0).all()
    assert made["one-hot of class 'sun'"][columns].iloc[0].tolist() == [0.0, 1.0, 0.0]
    perfect = perfect_predictions(spec, reference)
    assert perfect[columns].to_numpy().tolist() == [[0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert (made["shuffled reference"][columns].sum(axis=1) == 1).all()


def test_quantile_group_gets_constants_at_every_level(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        columns=[{"name": "id", "dtype": "string"}],
        quantiles=[{"target": "rentals", "levels": [0.1, 0.5, 0.9], "min": 0}],
    )
    reference = pd.DataFrame({"id": list("abc"), "rentals": ["1", "2", "9"], "split": ["v"] * 3})
    made = by_name(spec, reference)
    assert list(made) == ["constant median", "training mean", "shuffled reference"]
    assert made["constant median"][["q10", "q50", "q90"]].iloc[0].tolist() == [2.0, 2.0, 2.0]
    assert made["training mean"]["q90"].tolist() == [4.0] * 3
    assert perfect_predictions(spec, reference)["q10"].tolist() == [1.0, 2.0, 9.0]
