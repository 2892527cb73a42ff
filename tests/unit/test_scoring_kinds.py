"""Column kinds (harness.scoring.kinds): labels, probability groups, quantile groups, the truth, the author's hook.

One small "city" task holds every kind: an int label ``digit`` (truth in the reference's ``label``), a string label
``kind``, probabilities of ``weather`` (three classes, columns ``p_drizzle``, ``p_rain``, ``p_sun``) and quantiles of
``rentals`` (``q10``, ``q50``, ``q90``). Each test breaks one cell of a perfect table and asserts the message a
team reads: the first id, the value, and the allowed set or tolerance.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from spec_fixtures import toy_raw, write_predictions

from harness.errors import EvaluatorError, InvalidOutputError
from harness.scoring import InvalidOutputError as ExportedInvalidOutputError
from harness.scoring import evaluate_outputs, load_reference, perfect_predictions, validate_predictions
from harness.scoring.kinds import truth_columns
from harness.spec import TaskSpec, load_spec

IDS = [f"t{i:02d}" for i in range(1, 11)]
CLASSES = ["drizzle", "rain", "sun"]

#: The test reference of the city task: t01-t03 public, the rest private.
REFERENCE = pd.DataFrame(
    {
        "id": IDS,
        "label": [7, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        "kind": ["pothole", "noise", "graffiti", "noise", "pothole", "noise", "graffiti", "noise", "pothole", "noise"],
        "weather": ["sun", "rain", "drizzle", "sun", "sun", "rain", "sun", "drizzle", "rain", "sun"],
        "rentals": [10.0, 20.0, 0.0, 5.5, 7.0, 100.0, 3.0, 8.0, 9.0, 11.0],
        "split": ["public"] * 3 + ["private"] * 7,
    }
)
VALIDATION = REFERENCE.iloc[:4].assign(id=["v1", "v2", "v3", "v4"], split="validation")

PREDICTIONS: dict[str, Any] = {
    "file": "predictions.csv",
    "id_column": "id",
    "columns": [
        {"name": "id", "dtype": "string"},
        {"name": "digit", "dtype": "int", "values": list(range(10)), "reference": "label"},
        {"name": "kind", "dtype": "string", "values": ["pothole", "graffiti", "noise"]},
    ],
    "probabilities": [{"target": "weather", "classes": CLASSES, "tolerance": 0.01}],
    "quantiles": [{"target": "rentals", "levels": [0.1, 0.5, 0.9], "min": 0}],
}

EVALUATOR = '''
"""Evaluators of the city task used by tests/unit/test_scoring_kinds.py."""

import numpy as np

from harness.scoring import Evaluator, InvalidOutputError


class CityEvaluator(Evaluator):
    def score(self, predictions, reference):
        truth = reference["weather"].to_numpy()
        probs = predictions[["p_drizzle", "p_rain", "p_sun"]].to_numpy()
        onehot = np.stack([truth == c for c in ["drizzle", "rain", "sun"]], axis=1)
        q = predictions[["q10", "q50", "q90"]].to_numpy()
        y = reference["rentals"].to_numpy()[:, None]
        levels = np.array([0.1, 0.5, 0.9])
        pinball = np.maximum(levels * (y - q), (levels - 1) * (y - q)).mean()
        return {
            "accuracy": float((predictions["digit"].to_numpy() == reference["label"].to_numpy()).mean()),
            "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
            "pinball": float(pinball),
        }


class NoZeroEvaluator(CityEvaluator):
    """Refuses a table predicting the digit 0 anywhere (counted over the whole table)."""

    def check_predictions(self, predictions):
        zeros = predictions["digit"] == 0
        if zeros.any():
            raise InvalidOutputError(
                "predictions.csv predicts the digit 0",
                [f"{int(zeros.sum())} of {len(predictions)} rows predict 0; first at id "
                 f"{predictions['id'][zeros].iloc[0]}"],
            )


class BrokenHookEvaluator(CityEvaluator):
    def check_predictions(self, predictions):
        raise KeyError("no_such_column")


class RecordingEvaluator(CityEvaluator):
    """Writes the number of rows check_predictions saw and the splits scored into the output folder."""

    def check_predictions(self, predictions):
        (self.output_dir / "hook.txt").write_text(f"{len(predictions)} {list(predictions.columns)}")

    def score(self, predictions, reference):
        with (self.output_dir / "splits.txt").open("a") as fh:
            fh.write(str(reference["split"].iloc[0]) + "\\n")
        return super().score(predictions, reference)
'''


def write_city_task(
    dest: Path,
    *,
    predictions: dict[str, Any] | None = None,
    reference: pd.DataFrame = REFERENCE,
    class_name: str = "CityEvaluator",
) -> TaskSpec:
    """Write the city task (toy task layout, the city's predictions, evaluator and references) and load it."""
    raw = toy_raw()
    raw["predictions"] = predictions or PREDICTIONS
    raw["evaluator"].update(path="evaluator.py", class_name=class_name)
    raw["metrics"] = [
        {"name": "accuracy", "goal": "maximize", "primary": True, "best": 1},
        {"name": "brier", "goal": "minimize", "best": 0},
        {"name": "pinball", "goal": "minimize", "best": 0},
    ]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (dest / "evaluator.py").write_text(textwrap.dedent(EVALUATOR))
    (dest / "prepare.py").write_text("")
    root = dest / "data"
    for folder in ("validation_input", "test_input", "public", "hidden"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    VALIDATION.to_csv(root / "validation_reference.csv", index=False)
    reference.to_csv(root / "hidden" / "test_reference.csv", index=False)
    return load_spec(dest)


@pytest.fixture
def city(tmp_path: Path) -> TaskSpec:
    return write_city_task(tmp_path / "city")


def perfect(spec: TaskSpec) -> pd.DataFrame:
    """The exactly right prediction table, as objects so a test can write any text into a cell."""
    return perfect_predictions(spec, load_reference(spec, "test")).astype(object)


def refusal(spec: TaskSpec, frame: pd.DataFrame, tmp_path: Path) -> str:
    """Validate ``frame`` written as CSV; expect one problem and return it."""
    path = write_predictions(tmp_path / "out", frame.to_csv(index=False))
    with pytest.raises(InvalidOutputError) as info:
        validate_predictions(spec, path, expected_ids=IDS)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def validate(spec: TaskSpec, frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    return validate_predictions(spec, write_predictions(tmp_path / "out", frame.to_csv(index=False)), expected_ids=IDS)


# -- valid tables and dtypes ---------------------------------------------------------------------------------
def test_a_perfect_table_of_every_kind_is_valid_with_label_dtypes(city: TaskSpec, tmp_path: Path) -> None:
    frame = validate(city, perfect(city), tmp_path)
    assert list(frame.columns) == ["id", "digit", "kind", "p_drizzle", "p_rain", "p_sun", "q10", "q50", "q90"]
    assert frame["digit"].dtype == np.int64
    assert frame["digit"].tolist() == REFERENCE["label"].tolist()
    assert frame["kind"].dtype == object and frame["kind"].tolist() == REFERENCE["kind"].tolist()
    assert frame["p_sun"].tolist() == [float(w == "sun") for w in REFERENCE["weather"]]
    assert frame["q10"].tolist() == frame["q90"].tolist() == REFERENCE["rentals"].tolist()


def test_the_reference_is_read_by_its_truth_columns_with_their_kinds(city: TaskSpec) -> None:
    reference = load_reference(city, "test")
    assert list(reference.columns) == ["id", "label", "kind", "weather", "rentals", "split"]
    assert reference["label"].dtype == np.int64
    assert reference["weather"].dtype == object and reference["weather"].tolist() == REFERENCE["weather"].tolist()
    assert reference["rentals"].dtype == np.float64
    specs = truth_columns(city.predictions)
    assert (specs["weather"].dtype, specs["weather"].values) == ("string", tuple(CLASSES))


def test_the_reference_scored_against_itself_reaches_every_best(city: TaskSpec, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    perfect_predictions(city, load_reference(city, "test")).to_csv(out / "predictions.csv", index=False)
    scores = evaluate_outputs(city, out, "test")
    assert scores == {s: {"accuracy": 1.0, "brier": 0.0, "pinball": 0.0} for s in ("public", "private")}


def test_int_classes_make_an_int_target_and_one_hot_columns(tmp_path: Path) -> None:
    raw = {**PREDICTIONS, "probabilities": [{"target": "label", "classes": list(range(10)), "prefix": "p"}]}
    raw["quantiles"] = []
    spec = write_city_task(tmp_path / "city", predictions=raw)
    reference = load_reference(spec, "test")
    assert reference["label"].dtype == np.int64
    table = perfect_predictions(spec, reference)
    assert table.loc[0, "p7"] == 1.0 and table.loc[0, "p1"] == 0.0 and table.loc[1, "p1"] == 1.0


# -- labels ------------------------------------------------------------------------------------------------
def test_a_string_label_outside_the_allowed_set_names_id_value_and_set(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[3, "kind"] = "streetlight"
    problem = refusal(city, frame, tmp_path)
    assert problem == (
        "column 'kind' must hold one of the labels ['pothole', 'graffiti', 'noise']; 1 value is not, first: "
        "'streetlight' at id t04"
    )


def test_a_string_label_is_exact_text(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[1, "kind"] = " Noise"
    problem = refusal(city, frame, tmp_path)
    assert "first: ' Noise' at id t02" in problem
    assert "labels are exact text (case and blanks count): write 'noise'" in problem


def test_the_word_seven_is_not_the_digit_seven(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[0, "digit"] = "seven"
    problem = refusal(city, frame, tmp_path)
    assert problem == (
        "column 'digit' must hold one of the labels [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; 1 value is not, first: "
        "'seven' at id t01"
    )


def test_a_number_outside_the_allowed_set_is_refused(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[[4, 6], "digit"] = 10
    problem = refusal(city, frame, tmp_path)
    assert "2 values are not, first: '10' at id t05" in problem


@pytest.mark.parametrize("spelling", ["7.0", "07", "+7", " 7"])
def test_other_spellings_of_an_int_label_are_refused(city: TaskSpec, tmp_path: Path, spelling: str) -> None:
    frame = perfect(city)
    frame.loc[0, "digit"] = spelling
    problem = refusal(city, frame, tmp_path)
    assert f"first: {spelling!r} at id t01" in problem
    assert f"write each label exactly as listed (7, not {spelling!r})" in problem


@pytest.mark.parametrize("spelling", ["7.0", "07", "+7", " 7 ", "7e0"])
def test_coerce_accepts_other_spellings_of_an_allowed_int(tmp_path: Path, spelling: str) -> None:
    raw = {**PREDICTIONS, "columns": [dict(c) for c in PREDICTIONS["columns"]]}
    raw["columns"][1]["coerce"] = True
    spec = write_city_task(tmp_path / "city", predictions=raw)
    frame = perfect(spec)
    frame.loc[0, "digit"] = spelling
    parsed = validate(spec, frame, tmp_path)
    assert parsed["digit"].dtype == np.int64 and parsed["digit"].iloc[0] == 7
    frame.loc[0, "digit"] = "7.5"
    assert "first: '7.5' at id t01" in refusal(spec, frame, tmp_path)


def test_a_reference_label_outside_the_allowed_set_is_the_tasks_problem(tmp_path: Path) -> None:
    spec = write_city_task(tmp_path / "city", reference=REFERENCE.assign(label=[11] + [1] * 9))
    with pytest.raises(
        EvaluatorError, match=r"malformed: column 'label' must hold one of the labels .* '11' at id t01"
    ):
        load_reference(spec, "test")


def test_a_reference_class_the_group_does_not_list_is_the_tasks_problem(tmp_path: Path) -> None:
    spec = write_city_task(tmp_path / "city", reference=REFERENCE.assign(weather=["snow"] + ["sun"] * 9))
    with pytest.raises(EvaluatorError, match=r"'weather' must hold one of the labels \['drizzle', 'rain', 'sun'\]"):
        load_reference(spec, "test")


def test_a_class_unlisted_by_a_group_sharing_a_label_columns_truth_is_refused(tmp_path: Path) -> None:
    raw = {**PREDICTIONS, "columns": [*PREDICTIONS["columns"]]}
    raw["columns"].append({"name": "sky", "dtype": "string", "values": [*CLASSES, "snow"], "reference": "weather"})
    spec = write_city_task(
        tmp_path / "city", predictions=raw, reference=REFERENCE.assign(weather=["snow"] + ["sun"] * 9)
    )
    with pytest.raises(EvaluatorError, match=r"holds class 'snow' in 'weather' at id t01, which the probabilities"):
        load_reference(spec, "test")


def test_a_reference_lacking_a_truth_column_names_it(tmp_path: Path) -> None:
    spec = write_city_task(tmp_path / "city", reference=REFERENCE.drop(columns=["weather"]))
    with pytest.raises(EvaluatorError, match=r"lacks column\(s\) \['weather'\]"):
        load_reference(spec, "test")


# -- probabilities -----------------------------------------------------------------------------------------
def test_a_probability_row_summing_to_0_9_names_the_id_and_its_sum(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[2, ["p_drizzle", "p_rain", "p_sun"]] = [0.3, 0.3, 0.3]
    problem = refusal(city, frame, tmp_path)
    assert problem.startswith(
        "row id t03: probabilities sum to 0.9 (p_drizzle..p_sun); each row must sum to 1 (within 0.01), 1 row does not"
    )


def test_a_row_within_the_tolerance_is_accepted(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[2, ["p_drizzle", "p_rain", "p_sun"]] = [0.1, 0.2, 0.705]
    assert validate(city, frame, tmp_path)["p_sun"].iloc[2] == 0.705


def test_all_ones_probabilities_are_refused_so_they_can_never_rank(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame[["p_drizzle", "p_rain", "p_sun"]] = 1.0
    problem = refusal(city, frame, tmp_path)
    assert problem.startswith("row id t01: probabilities sum to 3 (p_drizzle..p_sun)")
    assert "10 rows do not" in problem


def test_a_probability_outside_0_1_is_refused_by_its_bounds(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[5, ["p_drizzle", "p_rain", "p_sun"]] = [-0.5, 0.5, 1.0]
    problem = refusal(city, frame, tmp_path)
    assert problem == "column 'p_drizzle' has 1 value outside the accepted range [0, 1]; first: -0.5 at id t06"


def test_a_missing_probability_column_is_named(city: TaskSpec, tmp_path: Path) -> None:
    problem = refusal(city, perfect(city).drop(columns=["p_rain"]), tmp_path)
    assert problem.startswith("missing column 'p_rain'")


# -- quantiles ---------------------------------------------------------------------------------------------
def test_crossing_quantiles_name_the_id_and_the_two_values(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[4, ["q10", "q50", "q90"]] = [5.0, 9.0, 8.0]
    frame.loc[6, ["q10", "q50", "q90"]] = [4.0, 3.0, 5.0]
    problem = refusal(city, frame, tmp_path)
    assert problem.startswith("row id t05: quantiles cross (q50 = 9 is above q90 = 8)")
    assert "2 rows cross" in problem


def test_crossing_quantiles_are_accepted_when_not_monotone(tmp_path: Path) -> None:
    raw = {**PREDICTIONS, "quantiles": [{**PREDICTIONS["quantiles"][0], "monotone": False}]}
    spec = write_city_task(tmp_path / "city", predictions=raw)
    frame = perfect(spec)
    frame.loc[4, ["q10", "q50", "q90"]] = [5.0, 9.0, 8.0]
    assert validate(spec, frame, tmp_path)["q50"].iloc[4] == 9.0


def test_a_quantile_below_the_groups_minimum_is_refused(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[0, ["q10", "q50", "q90"]] = [-1.0, 9.0, 12.0]
    problem = refusal(city, frame, tmp_path)
    assert problem == "column 'q10' has 1 value outside the accepted range [0, inf]; first: -1 at id t01"


def test_every_kind_of_problem_is_reported_at_once(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[0, "digit"] = "seven"
    frame.loc[1, ["p_drizzle", "p_rain", "p_sun"]] = [0.3, 0.3, 0.3]
    frame.loc[2, ["q10", "q50", "q90"]] = [3.0, 2.0, 1.0]
    path = write_predictions(tmp_path / "out", frame.to_csv(index=False))
    with pytest.raises(InvalidOutputError, match="3 problems") as info:
        validate_predictions(city, path, expected_ids=IDS)
    assert [p.split(":")[0] for p in info.value.problems] == [
        "column 'digit' must hold one of the labels [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; 1 value is not, first",
        "row id t02",
        "row id t03",
    ]


# -- the author's whole-file hook --------------------------------------------------------------------------
def hook_refusal(tmp_path: Path, reference: pd.DataFrame, phase: str = "test") -> InvalidOutputError:
    spec = write_city_task(tmp_path / "city", reference=reference, class_name="NoZeroEvaluator")
    truth = load_reference(spec, phase)
    table = perfect_predictions(spec, truth)
    table.loc[[1, 3], "digit"] = 0
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    table.to_csv(out / "predictions.csv", index=False)
    with pytest.raises(InvalidOutputError) as info:
        evaluate_outputs(spec, out, phase)
    return info.value


def test_the_hook_refuses_the_whole_table_once(tmp_path: Path) -> None:
    error = hook_refusal(tmp_path, REFERENCE)
    assert isinstance(error, ExportedInvalidOutputError)
    assert error.message == "predictions.csv predicts the digit 0"
    assert error.problems == ["2 of 10 rows predict 0; first at id t02"]


def test_hook_messages_are_the_same_whatever_the_split(tmp_path: Path) -> None:
    errors = [
        hook_refusal(tmp_path / str(i), REFERENCE.assign(split=splits))
        for i, splits in enumerate(
            [["public"] * 3 + ["private"] * 7, ["private"] * 8 + ["public"] * 2, ["public", "private"] * 5]
        )
    ]
    assert len({(e.message, tuple(e.problems)) for e in errors}) == 1


def test_the_hook_sees_every_row_of_the_phase_before_any_split(tmp_path: Path) -> None:
    spec = write_city_task(tmp_path / "city", class_name="RecordingEvaluator")
    out = tmp_path / "out"
    out.mkdir()
    perfect_predictions(spec, load_reference(spec, "test")).to_csv(out / "predictions.csv", index=False)
    evaluate_outputs(spec, out, "test")
    assert (out / "hook.txt").read_text() == f"10 {[c.name for c in spec.predictions.all_columns]}"
    assert (out / "splits.txt").read_text().split() == ["public", "private"]


def test_a_hook_raising_anything_else_is_the_evaluators_fault(tmp_path: Path) -> None:
    spec = write_city_task(tmp_path / "city", class_name="BrokenHookEvaluator")
    out = tmp_path / "out"
    out.mkdir()
    perfect_predictions(spec, load_reference(spec, "test")).to_csv(out / "predictions.csv", index=False)
    with pytest.raises(EvaluatorError, match="BrokenHookEvaluator raised KeyError in check_predictions"):
        evaluate_outputs(spec, out, "test")


def test_the_hook_runs_after_the_harness_validation(tmp_path: Path) -> None:
    spec = write_city_task(tmp_path / "city", class_name="NoZeroEvaluator")
    table = perfect(spec)
    table.loc[1, "digit"] = 0
    table.loc[2, "digit"] = "seven"
    out = write_predictions(tmp_path / "out", table.to_csv(index=False)).parent
    with pytest.raises(InvalidOutputError, match="'seven' at id t03"):
        evaluate_outputs(spec, out, "test")


# -- float rounding and exact numbers (found by a hostile tester) ------------------------------------------------
def test_probabilities_a_rounding_error_outside_0_1_are_accepted_and_clipped(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[0, ["p_drizzle", "p_rain", "p_sun"]] = [0.8, 0.2, 1 - (0.8 + 0.2)]
    frame.loc[1, ["p_drizzle", "p_rain", "p_sun"]] = [1.0000000000000002, 0.0, 0.0]
    frame.loc[2, ["p_drizzle", "p_rain", "p_sun"]] = [0.8, 0.2, -2.220446049250313e-16]
    table = validate(city, frame, tmp_path)
    assert table["p_drizzle"].iloc[1] == 1.0 and table["p_sun"].iloc[2] == 0.0  # clipped to the bounds


def test_a_value_just_outside_its_bound_is_shown_exactly(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[5, ["p_drizzle", "p_rain", "p_sun"]] = [1.0000001, 0.0, 0.0]
    problem = refusal(city, frame, tmp_path)
    assert "first: 1.0000001 at id t06" in problem


def test_crossing_by_a_tiny_amount_shows_both_values_exactly(city: TaskSpec, tmp_path: Path) -> None:
    frame = perfect(city)
    frame.loc[4, ["q10", "q50", "q90"]] = [50.000000000001, 50.0, 90.0]
    assert refusal(city, frame, tmp_path).startswith(
        "row id t05: quantiles cross (q10 = 50.000000000001 is above q50 = 50)"
    )


@pytest.mark.parametrize("where", ["values", "classes"])
def test_yaml_booleans_among_labels_are_refused_with_the_fix(where: str) -> None:
    from harness.spec import ColumnSpec, ProbabilityGroup

    with pytest.raises(ValueError, match="quote each label"):
        if where == "values":
            ColumnSpec(name="ok", dtype="string", values=[True, False])  # type: ignore[list-item]
        else:
            ProbabilityGroup(target="ok", classes=[True, False])  # type: ignore[list-item]


def test_a_label_column_takes_no_bounds() -> None:
    from harness.spec import ColumnSpec

    with pytest.raises(ValueError, match="give the allowed labels, not min/max"):
        ColumnSpec(name="digit", dtype="int", values=[0, 1, 2], max=1)
