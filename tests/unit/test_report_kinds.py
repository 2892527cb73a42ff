"""The review page's analysis per task kind, on small frames: labels and probabilities (confusion matrix, precision
and recall, reliability), quantile forecasts (error by horizon, interval coverage), truth columns named apart from
the prediction columns, and grouping declared in the spec's ``report:``."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from harness.report import (
    ReviewTarget,
    class_scores_table,
    confusion_table,
    default_group_by,
    errors_by_group,
    interval_coverage,
    prediction_errors,
    reliability_table,
    review_targets,
)
from harness.report.plots import confusion_figure, coverage_figure, horizon_figure, reliability_figure
from harness.spec import TaskSpec, load_spec

matplotlib.use("Agg")

HEAD = """
id: toy-kinds
title: Toy
customer: the test suite
description: A task of some kind.
data:
  inputs: {validation: validation_input, test: test_input}
  references: {validation: validation_reference.csv, test: hidden/test_reference.csv}
  predict_file: test.csv
evaluator: {path: evaluator.py, class_name: ToyEvaluator}
limits: {time_s: 60, memory_mb: 512}
"""

WEATHER = """
predictions:
  id_column: date
  columns: [{name: date, dtype: string}]
  probabilities:
    - {target: weather, classes: [rain, snow, sun], tolerance: 0.001}
metrics:
  - {name: log_loss, goal: minimize, primary: true, precision: 3}
report: {group_by: [season, station]}
"""

DIGITS = """
predictions:
  id_column: image
  columns:
    - {name: image, dtype: string}
    - {name: digit, dtype: int, values: [0, 1, 2], reference: label}
metrics:
  - {name: accuracy, goal: maximize, primary: true, precision: 3}
"""

RENTALS = """
predictions:
  id_column: hour
  columns: [{name: hour, dtype: string}]
  quantiles:
    - {target: rentals, levels: [0.1, 0.25, 0.5, 0.75, 0.9], min: 0}
metrics:
  - {name: pinball, goal: minimize, primary: true, precision: 2}
report: {horizon: horizon}
"""


def _spec(tmp_path: Path, body: str) -> TaskSpec:
    task_dir = tmp_path / "task"
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "task.yaml").write_text(HEAD + body, encoding="utf-8")
    (task_dir / "evaluator.py").write_text("class ToyEvaluator:\n    pass\n", encoding="utf-8")
    return load_spec(task_dir)


# --- classification with probabilities ------------------------------------------------------------------------------
WEATHER_TRUE = ["rain", "rain", "sun", "snow", "sun", "sun"]
WEATHER_P = [  # p_rain, p_snow, p_sun per day
    [0.7, 0.1, 0.2],
    [0.2, 0.1, 0.7],
    [0.1, 0.1, 0.8],
    [0.3, 0.6, 0.1],
    [0.5, 0.0, 0.5],  # a tie: the first class in spec order (rain) is the one predicted
    [0.0, 0.0, 1.0],
]


def _weather(tmp_path: Path) -> tuple[TaskSpec, pd.DataFrame]:
    spec = _spec(tmp_path, WEATHER)
    dates = [f"2012-01-0{i + 1}" for i in range(6)]
    reference = pd.DataFrame({"date": dates, "weather": WEATHER_TRUE, "split": ["public", "private"] * 3})
    probs = np.array(WEATHER_P)
    predictions = pd.DataFrame(
        {"date": dates[::-1], **{f"p_{c}": probs[::-1, i] for i, c in enumerate(["rain", "snow", "sun"])}}
    )
    test_input = pd.DataFrame({"date": dates, "season": ["winter"] * 3 + ["spring"] * 3})
    reference["station"] = ["A", "B", "A", "B", "A", "B"]  # a reference column may group too
    errors = prediction_errors(spec, predictions, reference, test_input, default_group_by(spec, test_input))
    return spec, errors


def test_probability_groups_pair_with_the_label_held_by_the_reference(tmp_path: Path) -> None:
    spec, errors = _weather(tmp_path)
    (target,) = review_targets(spec)
    assert target == ReviewTarget(
        "weather", "probabilities", "weather", ("p_rain", "p_snow", "p_sun"), ("rain", "snow", "sun")
    )
    assert list(errors.columns[:4]) == ["date", "split", "season", "station"]
    assert list(errors["weather_true"]) == WEATHER_TRUE  # joined by id, whatever the predictions' order
    assert list(errors["weather_pred"]) == ["rain", "sun", "sun", "snow", "rain", "sun"]
    assert list(errors["weather_wrong"]) == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert list(errors["weather_p_true"]) == pytest.approx([0.7, 0.2, 0.8, 0.6, 0.5, 1.0])
    assert not [c for c in errors.columns if c.endswith(("_error", "_abs_error"))]  # no mean error of a probability


def test_a_probability_groups_errors_per_group_have_error_rate_and_log_loss_but_no_bias(tmp_path: Path) -> None:
    _, errors = _weather(tmp_path)
    by_season = errors_by_group(errors, "weather", "season")
    assert list(by_season.columns) == ["season", "rows", "missing", "error_rate", "log_loss"]
    winter = by_season[by_season["season"] == "winter"].iloc[0]
    assert winter["error_rate"] == pytest.approx(1 / 3)
    assert winter["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.2, 0.8])))
    by_station = errors_by_group(errors, "weather", "station")
    assert list(by_station["station"]) == ["A", "B"] and list(by_station["rows"]) == [3, 3]


def test_confusion_matrix_and_class_scores_equal_scikit_learns(tmp_path: Path) -> None:
    spec, errors = _weather(tmp_path)
    (target,) = review_targets(spec)
    table = confusion_table(errors, target)
    pred = ["rain", "sun", "sun", "snow", "rain", "sun"]
    expected = confusion_matrix(WEATHER_TRUE, pred, labels=["rain", "snow", "sun"])
    assert table.to_numpy().tolist() == expected.tolist()
    assert list(table.index) == ["rain", "snow", "sun"] and table.index.name == "true"
    assert table.loc["sun", "rain"] == 1  # the tie went to rain
    scores = class_scores_table(errors, target)
    precision, recall, f1, _support = precision_recall_fscore_support(
        WEATHER_TRUE, pred, labels=["rain", "snow", "sun"], zero_division=0.0
    )
    assert list(scores["class"]) == ["rain", "snow", "sun"]
    assert list(scores["support"]) == [2, 1, 3] and list(scores["predicted"]) == [2, 1, 3]
    assert list(scores["precision"]) == pytest.approx(precision) and list(scores["recall"]) == pytest.approx(recall)
    assert list(scores["f1"]) == pytest.approx(f1)
    assert list(scores["recall"]) == pytest.approx([0.5, 1.0, 2 / 3])


def test_reliability_curves_of_the_top_class_and_one_vs_rest(tmp_path: Path) -> None:
    spec, errors = _weather(tmp_path)
    (target,) = review_targets(spec)
    table = reliability_table(errors, target, n_bins=5)
    assert list(dict.fromkeys(table["curve"])) == ["top class", "rain", "snow", "sun"]
    top = table[table["curve"] == "top class"]
    hits = [1, 0, 1, 1, 0, 1]
    confidence = [0.7, 0.7, 0.8, 0.6, 0.5, 1.0]
    observed, predicted = calibration_curve(hits, confidence, n_bins=5)
    assert list(top["observed"]) == pytest.approx(observed) and list(top["mean_predicted"]) == pytest.approx(predicted)
    assert top["rows"].sum() == 6
    sun = table[table["curve"] == "sun"]
    observed, predicted = calibration_curve([0, 0, 1, 0, 1, 1], [0.2, 0.7, 0.8, 0.1, 0.5, 1.0], n_bins=5)
    assert list(sun["observed"]) == pytest.approx(observed) and list(sun["mean_predicted"]) == pytest.approx(predicted)
    assert (sun["bin_low"] < sun["mean_predicted"] + 1e-12).all() and (sun["mean_predicted"] <= sun["bin_high"]).all()
    assert set(reliability_table(errors, target, per_class=False)["curve"]) == {"top class"}
    with pytest.raises(ValueError, match="n_bins"):
        reliability_table(errors, target, n_bins=0)


def test_a_missing_prediction_is_counted_apart_not_as_a_class(tmp_path: Path) -> None:
    spec = _spec(tmp_path, WEATHER)
    (target,) = review_targets(spec)
    reference = pd.DataFrame({"date": ["a", "b", "c"], "weather": ["rain", "sun", "fog"], "split": "public"})
    predictions = pd.DataFrame({"date": ["a", "c"], "p_rain": [0.9, 0.2], "p_snow": [0.05, 0.3], "p_sun": [0.05, 0.5]})
    errors = prediction_errors(spec, predictions, reference)
    assert errors["weather_pred"].isna().tolist() == [False, True, False]
    assert np.isnan(errors["weather_p_true"].iloc[2])  # "fog" is no declared class
    summary = errors_by_group(errors, "weather", "split")
    assert summary.loc[0, "missing"] == 1 and summary.loc[0, "error_rate"] == pytest.approx(0.5)
    assert confusion_table(errors, target).to_numpy().sum() == 1  # the fog row is outside the classes
    assert reliability_table(errors, target)["rows"].sum() == 4  # a: top class + 3 one-vs-rest


# --- a label column whose truth has another name -------------------------------------------------------------------
def test_an_int_label_is_paired_with_its_reference_column_and_compared_by_value(tmp_path: Path) -> None:
    spec = _spec(tmp_path, DIGITS)
    (target,) = review_targets(spec)
    assert (target.kind, target.truth, target.classes, target.int_classes) == ("label", "label", ("0", "1", "2"), True)
    reference = pd.DataFrame({"image": ["i1", "i2", "i3", "i4"], "label": [0, 1, 2, 2], "split": "public"})
    predictions = pd.DataFrame({"image": ["i1", "i2", "i3", "i4"], "digit": [0.0, 2.0, 2.0, 2.0]})
    errors = prediction_errors(spec, predictions, reference)
    assert list(errors["digit_true"]) == ["0", "1", "2", "2"] and list(errors["digit_pred"]) == ["0", "2", "2", "2"]
    assert "digit_error" not in errors and "digit_abs_error" not in errors  # a label has no mean error or bias
    summary = errors_by_group(errors, "digit", "split")
    assert list(summary.columns) == ["split", "rows", "missing", "error_rate"]
    assert summary.loc[0, "error_rate"] == pytest.approx(0.25)
    table = confusion_table(errors, target)
    assert table.loc["1", "2"] == 1 and int(np.trace(table.to_numpy())) == 3
    scores = class_scores_table(errors, target).set_index("class")
    assert scores.loc["2", "precision"] == pytest.approx(2 / 3) and scores.loc["1", "recall"] == 0.0
    with pytest.raises(ValueError, match="probabilities"):
        reliability_table(errors, target)


def test_a_label_reference_missing_its_truth_column_is_named(tmp_path: Path) -> None:
    from harness.errors import HarnessError

    spec = _spec(tmp_path, DIGITS)
    reference = pd.DataFrame({"image": ["i1"], "digit": [0], "split": "public"})  # truth must be in "label"
    with pytest.raises(HarnessError, match=r"the reference lack column\(s\) \['label'\]"):
        prediction_errors(spec, pd.DataFrame({"image": ["i1"], "digit": [0]}), reference)


# --- quantile forecasts --------------------------------------------------------------------------------------------
def _rentals(tmp_path: Path) -> tuple[TaskSpec, pd.DataFrame]:
    spec = _spec(tmp_path, RENTALS)
    hours = [f"h{i}" for i in range(8)]
    truth = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0])
    median = truth + np.array([1, -2, 3, -4, 5, -6, 7, -8])
    spread = np.array([5.0, 5.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0])
    predictions = pd.DataFrame(
        {
            "hour": hours,
            "q10": median - 2 * spread,
            "q25": median - spread,
            "q50": median,
            "q75": median + spread,
            "q90": median + 2 * spread,
        }
    )
    reference = pd.DataFrame({"hour": hours, "rentals": truth, "split": "public", "horizon": [1, 2, 1, 2, 1, 2, 1, 2]})
    return spec, prediction_errors(spec, predictions, reference)


def test_quantile_forecasts_give_the_error_of_the_median_and_the_pinball_loss(tmp_path: Path) -> None:
    from sklearn.metrics import mean_pinball_loss

    spec, errors = _rentals(tmp_path)
    (target,) = review_targets(spec)
    assert target.median_column == "q50" and target.central_intervals == [(0, 4), (1, 3)]
    assert "horizon" in errors.columns  # the spec's report.horizon, found in the reference
    assert list(errors["rentals_error"]) == [1, -2, 3, -4, 5, -6, 7, -8]
    truth = errors["rentals_true"]
    expected = np.mean(
        [mean_pinball_loss(truth, errors[c], alpha=a) for c, a in zip(target.columns, target.levels, strict=True)]
    )
    assert errors["rentals_pinball"].mean() == pytest.approx(expected)
    by_horizon = errors_by_group(errors, "rentals", "horizon")
    assert list(by_horizon.columns) == [
        "horizon",
        "rows",
        "missing",
        "mean_abs_error",
        "median_abs_error",
        "mean_error",
        "pinball_loss",
        "coverage",
    ]
    assert list(by_horizon["horizon"]) == [1, 2]
    assert list(by_horizon["mean_abs_error"]) == pytest.approx([4.0, 5.0])
    assert list(by_horizon["mean_error"]) == pytest.approx([4.0, -5.0])


def test_interval_coverage_is_the_observed_share_inside_against_the_nominal_level(tmp_path: Path) -> None:
    spec, errors = _rentals(tmp_path)
    (target,) = review_targets(spec)
    coverage = interval_coverage(errors, target)
    assert list(coverage["interval"]) == ["q10-q90", "q25-q75"]
    assert list(coverage["nominal"]) == pytest.approx([0.8, 0.5])
    # |error| 1..4 with spread 5 lie inside both; 5..8 with spread 2 lie outside both (inside q10-q90 needs <= 4).
    assert list(coverage["observed"]) == pytest.approx([0.5, 0.5])
    assert list(coverage["below"] + coverage["above"]) == pytest.approx([0.5, 0.5])
    assert list(coverage["rows"]) == [8, 8]
    by_horizon = interval_coverage(errors, target, by="horizon")
    assert list(by_horizon.columns[:2]) == ["horizon", "interval"] and len(by_horizon) == 4
    with pytest.raises(KeyError, match="no column 'lead'"):
        interval_coverage(errors, target, by="lead")
    with pytest.raises(ValueError, match="quantiles"):
        confusion_table(errors, target)


def test_bounds_of_an_interval_count_as_inside(tmp_path: Path) -> None:
    spec = _spec(tmp_path, RENTALS)
    (target,) = review_targets(spec)
    reference = pd.DataFrame({"hour": ["a", "b"], "rentals": [5.0, 9.0], "split": "public", "horizon": 1})
    predictions = pd.DataFrame(
        {"hour": ["a", "b"], "q10": [5.0, 1.0], "q25": [6.0, 2], "q50": [7.0, 3], "q75": [8.0, 4], "q90": [9.0, 5]}
    )
    coverage = interval_coverage(prediction_errors(spec, predictions, reference), target)
    assert coverage.set_index("interval").loc["q10-q90", "observed"] == 0.5
    assert coverage.set_index("interval").loc["q10-q90", "above"] == 0.5


# --- grouping ------------------------------------------------------------------------------------------------------
def test_group_by_comes_from_the_spec_report_section_then_the_old_parameter(tmp_path: Path) -> None:
    test_input = pd.DataFrame({"date": ["a", "b", "c"], "city": ["x", "y", "x"], "weather": ["rain", "sun", "sun"]})
    assert default_group_by(_spec(tmp_path, WEATHER), test_input) == ["season", "station"]
    without = WEATHER.replace("report: {group_by: [season, station]}\n", "parameters: {report_group_by: 'city'}\n")
    assert default_group_by(_spec(tmp_path, without), test_input) == ["city"]
    automatic = WEATHER.replace("report: {group_by: [season, station]}\n", "")
    assert default_group_by(_spec(tmp_path, automatic), test_input) == ["city"]  # the truth column is never chosen


# --- plots ---------------------------------------------------------------------------------------------------------
def test_each_kind_has_a_plot_that_draws(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    spec, errors = _weather(tmp_path / "w")
    (weather,) = review_targets(spec)
    spec_q, errors_q = _rentals(tmp_path / "q")
    (rentals,) = review_targets(spec_q)
    figures = [
        confusion_figure(confusion_table(errors, weather), "weather $x$"),
        reliability_figure(reliability_table(errors, weather), "weather"),
        coverage_figure(interval_coverage(errors_q, rentals), "rentals"),
        horizon_figure(errors_by_group(errors_q, "rentals", "horizon"), "horizon", "rentals", nominal=0.8),
    ]
    for figure in figures:
        figure.savefig(tmp_path / "plot.png")
        assert (tmp_path / "plot.png").stat().st_size > 5_000
        plt.close(figure)
