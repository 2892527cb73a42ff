"""Task specs (harness.spec): the real NYC spec loads, and each author mistake gives one clear error naming the
file, the field path, what was expected and what was found."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from spec_fixtures import toy_raw, write_toy_task

from harness.errors import SpecError
from harness.sandbox.base import Limits
from harness.spec import TaskSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
NYC = REPO / "task_specs" / "nyc-flight-delays"


def spec_error(tmp_path: Path, mutate: Callable[[dict[str, Any]], object]) -> SpecError:
    """Write the toy task with ``mutate`` applied to its task.yaml; return the SpecError that loading raises."""
    raw = toy_raw()
    mutate(raw)
    task = write_toy_task(tmp_path / "task", raw, data=False)
    with pytest.raises(SpecError) as info:
        load_spec(task)
    error = info.value
    assert error.file.endswith("task.yaml")
    assert Path(error.file).resolve() == (task / "task.yaml").resolve()
    return error


# -- valid specs ---------------------------------------------------------------------------------------------
def test_nyc_spec_loads_with_its_derived_values() -> None:
    spec = load_spec(NYC)
    assert spec.id == "nyc-flight-delays"
    assert spec.customer == "the city's transport department"
    assert spec.metric_names == ("mae", "rmse", "within_15")
    assert spec.primary_metric.name == "mae" and spec.primary_metric.goal == "minimize"
    assert [m.best for m in spec.metrics] == [0.0, 0.0, 1.0]
    assert spec.metrics[2].goal == "maximize"
    assert spec.target_columns == ("arr_delay",)
    assert spec.input_dir("validation") == NYC / "data" / "validation_input"
    assert spec.input_dir("test") == NYC / "data" / "test_input"
    assert spec.reference_path("test") == NYC / "data" / "hidden" / "test_reference.csv"
    assert spec.public_dir == NYC / "data" / "public"
    assert spec.splits("test") == ("public", "private") and spec.splits("validation") == ("validation",)
    assert spec.evaluator_path == REPO / "evaluators" / "nyc_flight_delays.py"
    assert spec.baseline_path == REPO / "examples" / "submissions" / "nyc-flight-delays" / "baseline"
    assert spec.sandbox_limits() == Limits(time_s=600, memory_mb=3072, cpus=1, pids=128, output_mb=64, log_kb=256)
    assert spec.image_tag == "harness-task/nyc-flight-delays:latest"
    assert len(spec.spec_hash) == 64


def test_nyc_image_pins_match_the_development_environment() -> None:
    from importlib.metadata import version

    pins = dict(p.split("==") for p in load_spec(NYC).image.packages)
    assert pins == {name: version(name) for name in ("pandas", "numpy", "scikit-learn", "pyarrow", "pillow")}
    # every task of the hackathon declares the same list, so they all share one image's wheels and layers
    for task in sorted(NYC.parent.glob("*/task.yaml")):
        assert load_spec(task).image.packages == load_spec(NYC).image.packages, task.parent.name


def test_load_spec_accepts_the_yaml_file_itself(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    assert load_spec(task / "task.yaml").task_dir == task.resolve()


def test_spec_survives_pickle_with_its_folder_and_hash(tmp_path: Path) -> None:
    spec = load_spec(write_toy_task(tmp_path / "task", data=False))
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec
    assert (copy.task_dir, copy.spec_hash) == (spec.task_dir, spec.spec_hash)


def test_spec_hash_covers_the_evaluator(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    before = load_spec(task).spec_hash
    (task / "evaluator.py").write_text((task / "evaluator.py").read_text() + "\n# changed\n")
    assert load_spec(task).spec_hash != before


def test_spec_is_frozen(tmp_path: Path) -> None:
    spec = load_spec(write_toy_task(tmp_path / "task", data=False))
    with pytest.raises(ValueError, match="frozen"):
        spec.id = "other"  # type: ignore[misc]


# -- the mistakes of issue 3 -----------------------------------------------------------------------------------
def test_unknown_top_level_key_names_it_and_suggests_the_right_one(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw.update(titel="x"))
    assert error.field == "titel"
    assert error.message.startswith("unknown key 'titel' (did you mean 'title'?); allowed keys here: baseline, ")


def test_unknown_nested_key_names_its_path(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["limits"].update(memroy_mb=100))
    assert error.field == "limits.memroy_mb"
    assert "unknown key 'memroy_mb' (did you mean 'memory_mb'?)" in error.message
    assert "allowed keys here: cpus, log_kb, memory_mb, output_mb, pids, time_s" in error.message


def test_unknown_key_inside_a_list_item(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["metrics"][1].update(higher_is_better=True))
    assert error.field == "metrics[1].higher_is_better"
    assert "allowed keys here: best, description, goal, label, name, precision, primary" in error.message


def test_bad_goal_gives_the_issue_example_message(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["metrics"][1].update(goal="lower"))
    assert error.field == "metrics[1].goal"
    assert str(error).endswith("task.yaml: metrics[1].goal: expected 'minimize' or 'maximize', got 'lower'")


def test_two_primary_metrics_name_both(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["metrics"][1].update(primary=True))
    assert error.field == "metrics"
    assert error.message.startswith(
        "exactly one metric must have 'primary: true', found 2: metrics[0] (mae), metrics[1] (within_1)"
    )


def test_no_primary_metric(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["metrics"][0].update(primary=False))
    assert error.field == "metrics"
    assert "exactly one metric must have 'primary: true', found 0" in error.message


def test_duplicate_metric_names(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["metrics"][1].update(name="mae"))
    assert (error.field, error.message) == ("metrics", "each metric name must be unique; repeated: mae")


def test_missing_evaluator_file(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["evaluator"].update(path="evaluators/nope.py"))
    assert error.field == "evaluator.path"
    assert error.message.startswith("evaluator file 'evaluators/nope.py' does not exist (resolved to ")


def test_missing_evaluator_class_lists_the_classes_found(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["evaluator"].update(class_name="ToyEvaluatr"))
    assert error.field == "evaluator.class_name"
    assert error.message.startswith("no class 'ToyEvaluatr' in evaluator.py; classes defined there: ToyEvaluator,")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("limits", "memory_mb", -5), ("limits", "time_s", 0), ("limits", "pids", -1), ("evaluator", "time_s", -1.5)],
)
def test_negative_limit(tmp_path: Path, section: str, key: str, value: float) -> None:
    error = spec_error(tmp_path, lambda raw: raw[section].update({key: value}))
    assert error.field == f"{section}.{key}"
    assert error.message == f"expected a number greater than 0, got {value!r}"


def test_wrong_type_says_expected_and_found(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["limits"].update(memory_mb="lots"))
    assert (error.field, error.message) == ("limits.memory_mb", "expected an integer, got 'lots'")


def test_missing_required_key(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["predictions"].pop("id_column"))
    assert (error.field, error.message) == ("predictions.id_column", "required key is missing")


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    spec_file = task / "task.yaml"
    spec_file.write_text(spec_file.read_text() + "title: Second title\n")
    with pytest.raises(SpecError, match=r"key 'title' appears twice in one mapping \(lines 2 and \d+\)"):
        load_spec(task)


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    (task / "task.yaml").write_text("id: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(task)
    (task / "task.yaml").write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="expected a mapping of keys at the top level, got list"):
        load_spec(task)


def test_missing_task_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no task.yaml in"):
        load_spec(tmp_path)


def test_hidden_reference_inside_an_input_folder_is_refused(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["data"]["references"].update(test="test_input/truth.csv"))
    assert error.field == "data"
    assert "references.test (test_input/truth.csv) lies inside inputs.test (test_input)" in error.message


@pytest.mark.parametrize("path", ["/abs/input", "../outside", ""])
def test_data_paths_must_stay_inside_the_data_folder(tmp_path: Path, path: str) -> None:
    error = spec_error(tmp_path, lambda raw: raw["data"]["inputs"].update(test=path))
    assert error.field == "data.inputs"
    assert f"expected a relative path inside the task's data folder (no '/' at the start, no '..'), got {path!r}" in (
        error.message
    )


def test_missing_phase(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["data"]["inputs"].pop("validation"))
    assert error.field == "data"
    assert "inputs lacks phase(s) ['validation']" in error.message


def test_unknown_phase_key(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["data"]["inputs"].update(tset="x"))
    assert error.field.startswith("data.inputs.tset")
    assert "expected 'validation' or 'test', got 'tset'" in error.message


def test_leaderboard_split_must_be_declared(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw.update(leaderboard={"splits": ["public", "final"]}))
    assert "leaderboard.splits names ['final'], which data.splits.test (['public', 'private'])" in error.message


def test_id_column_must_be_a_column(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["predictions"].update(id_column="flight"))
    assert error.field == "predictions"
    assert "id_column 'flight' is not among columns ['id', 'y']" in error.message


def test_bounds_only_on_numeric_columns(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["predictions"]["columns"][0].update(min=0))
    assert error.field == "predictions.columns[0]"
    assert "min/max apply to int and float columns only" in error.message


def test_reserved_parameters(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw.update(parameters={"input_dir": "/x", "seed": 1}))
    assert error.field == "parameters"
    assert "['input_dir'] are set by the harness" in error.message


def test_spec_error_pickles_with_file_and_field(tmp_path: Path) -> None:
    error = spec_error(tmp_path, lambda raw: raw["metrics"][1].update(goal="lower"))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.file, copy.field, str(copy)) == (error.message, error.file, error.field, str(error))


def test_direct_model_validation_checks_the_same_rules() -> None:
    raw = toy_raw()
    raw["metrics"][1]["primary"] = True
    with pytest.raises(ValueError, match="exactly one metric"):
        TaskSpec.model_validate(raw)


def test_a_misspelt_required_key_is_named_as_unknown_with_the_right_spelling(tmp_path: Path) -> None:
    raw = toy_raw()
    raw["evaluator"]["clas_name"] = raw["evaluator"].pop("class_name")
    task = write_toy_task(tmp_path / "task", raw, data=False)
    with pytest.raises(SpecError) as info:
        load_spec(task)
    assert info.value.field == "evaluator.clas_name"
    assert "did you mean 'class_name'?" in info.value.message


@pytest.mark.parametrize("root", [".", "./", "..", "../other-task", "/srv/data", "data/../.."])
def test_a_data_root_that_is_not_a_subfolder_is_refused(tmp_path: Path, root: str) -> None:
    raw = toy_raw()
    raw["data"]["root"] = root  # `harness task prepare` replaces this folder: '.' would delete the task itself
    with pytest.raises(SpecError, match=r"data.root: expected a folder of its own inside the task folder"):
        load_spec(write_toy_task(tmp_path / "t", raw, data=False))
