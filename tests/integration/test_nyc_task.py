"""The NYC flight delays task: deterministic data with the decided layout, a sound evaluator, and example
submissions that behave as documented (the model beats the baseline; each broken one fails for its reason).

The examples run here as local processes (``python main.py``; papermill with the venv's kernel) on the prepared
validation input, not in a sandbox: these are unit-level proofs of the task, the pipeline has its own tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from harness.errors import InvalidOutputError
from harness.scoring import score_outputs, validate_predictions
from harness.spec import TaskSpec, load_spec
from harness.tasks import prepare_task, validate_task

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration  # starts Jupyter kernels and runs the examples as real processes

TASK = REPO / "task_specs" / "nyc-flight-delays"
EXAMPLES = REPO / "examples" / "submissions" / "nyc-flight-delays"

FEATURES = [
    "id", "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum", "origin",
    "dest", "distance", "hour", "minute", "time_hour",
]  # fmt: skip
LEAKY = {"dep_time", "dep_delay", "arr_time", "air_time"}
EXTRAS = ["airlines.csv", "airports.csv", "planes.csv", "weather.csv"]
#: Flights with an arrival delay (336,776 in 2013 minus 9,430 cancelled or diverted).
LABELLED_FLIGHTS = 327_346
BASELINE_VALIDATION_MAE = 22.164  # medians per carrier, origin and scheduled hour


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    """The real spec, its data prepared (once; prepare keeps identical data in place)."""
    spec = load_spec(TASK)
    if not (spec.data_root / "manifest.json").is_file():
        prepare_task(TASK, echo=lambda _: None)
    return spec


def read(spec: TaskSpec, relative: str) -> pd.DataFrame:
    return pd.read_csv(spec.data_root / relative, dtype={"id": str})


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- prepare.py ------------------------------------------------------------------------------------------------
def test_prepare_is_deterministic(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        subprocess.run([sys.executable, str(TASK / "prepare.py"), str(tmp_path / name)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        runs.append(sha256_tree(tmp_path / name))
    assert runs[0] == runs[1]
    manifest = json.loads((tmp_path / "first" / "manifest.json").read_text())
    assert {name: info["sha256"] for name, info in manifest["files"].items()} == {
        name: digest for name, digest in runs[0].items() if name != "manifest.json"
    }


def test_prepare_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = subprocess.run([sys.executable, str(TASK / "prepare.py"), str(tmp_path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "is not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_layout_files_and_row_counts(spec: TaskSpec) -> None:
    files = json.loads((spec.data_root / "manifest.json").read_text())["files"]
    rows = {name: info["rows"] for name, info in files.items()}
    for folder in ("public", "validation_input", "test_input"):
        assert {n.split("/")[1] for n in rows if n.startswith(folder + "/")} >= {"train.csv", "test.csv", *EXTRAS}
    assert {n for n in rows if n.startswith("public/")} == {
        f"public/{f}" for f in ["train.csv", "test.csv", "validation.csv", *EXTRAS]
    }
    assert rows["validation_input/train.csv"] == rows["public/train.csv"] == 217_727
    assert rows["validation_input/test.csv"] == rows["public/validation.csv"] == 27_010
    assert rows["validation_reference.csv"] == 27_010
    assert rows["test_input/train.csv"] == 244_737
    assert rows["test_input/test.csv"] == rows["hidden/test_reference.csv"] == 82_609
    assert rows["test_input/train.csv"] + rows["test_input/test.csv"] == LABELLED_FLIGHTS
    assert (rows["public/weather.csv"], rows["public/planes.csv"], rows["public/airports.csv"]) == (
        26_115, 3_322, 1_458,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("folder", "train_months", "test_months"),
    [("validation_input", range(1, 9), [9]), ("test_input", range(1, 10), [10, 11, 12]), ("public", range(1, 9), [9])],
)
def test_input_folders_hold_features_only_and_split_by_month(
    spec: TaskSpec, folder: str, train_months: range, test_months: list[int]
) -> None:
    train, test = read(spec, f"{folder}/train.csv"), read(spec, f"{folder}/test.csv")
    assert list(train.columns) == [*FEATURES, "arr_delay"]
    assert list(test.columns) == FEATURES
    assert sorted(train["month"].unique()) == list(train_months)
    assert sorted(test["month"].unique()) == test_months
    assert train["arr_delay"].notna().all() and train["arr_delay"].dtype == np.int64
    for table in EXTRAS:
        assert not LEAKY & set(read(spec, f"{folder}/{table}").columns)


def test_references_match_the_rows_to_predict(spec: TaskSpec) -> None:
    for phase, folder in (("validation", "validation_input"), ("test", "test_input")):
        reference = read(spec, spec.data.references[phase])
        assert list(reference.columns) == ["id", "arr_delay", "split"]
        assert reference["id"].tolist() == read(spec, f"{folder}/test.csv")["id"].tolist()
        assert reference["arr_delay"].notna().all()
    validation = read(spec, "public/validation.csv")
    reference = read(spec, "validation_reference.csv")
    assert validation[["id", "arr_delay"]].equals(reference[["id", "arr_delay"]])
    assert set(reference["split"]) == {"validation"}


def test_public_private_split_is_about_thirty_percent(spec: TaskSpec) -> None:
    share = read(spec, "hidden/test_reference.csv")["split"].value_counts(normalize=True)
    assert set(share.index) == {"public", "private"}
    assert 0.29 < share["public"] < 0.31


def test_ids_follow_the_schedule_not_the_actual_departure(spec: TaskSpec) -> None:
    flights = read(spec, "test_input/train.csv")
    assert flights["id"].is_unique and flights["id"].is_monotonic_increasing
    assert (flights["id"].str[:8] == flights["year"].astype(str) + flights["month"].map("{:02d}".format)
            + flights["day"].map("{:02d}".format)).all()  # fmt: skip
    # Within a day, ids never go back in scheduled departure time (the package order follows dep_time).
    assert (flights.groupby(["month", "day"])["sched_dep_time"].diff().dropna() >= 0).all()


def test_hidden_reference_is_not_among_the_files_teams_see(spec: TaskSpec) -> None:
    hidden = hashlib.sha256(spec.reference_path("test").read_bytes()).hexdigest()
    for folder in (spec.public_dir, spec.input_dir("validation"), spec.input_dir("test")):
        assert hidden not in sha256_tree(folder).values()
        assert not spec.reference_path("test").resolve().is_relative_to(folder.resolve())


# -- evaluator -------------------------------------------------------------------------------------------------
def test_evaluator_metrics_by_hand(spec: TaskSpec, tmp_path: Path) -> None:
    from harness.scoring import load_evaluator

    evaluator = load_evaluator(spec)(spec, "validation", tmp_path)
    reference = pd.DataFrame({"id": ["a", "b", "c", "d"], "arr_delay": [0.0, 10.0, -5.0, 100.0],
                              "split": ["validation"] * 4})  # fmt: skip
    predictions = pd.DataFrame({"id": ["a", "b", "c", "d"], "arr_delay": [0.0, 25.0, 11.0, 40.0]})
    # errors 0, 15, 16, 60 minutes
    assert evaluator.score(predictions, reference) == pytest.approx(
        {"mae": 91 / 4, "rmse": np.sqrt((0 + 225 + 256 + 3600) / 4), "within_15": 0.5}
    )


@pytest.mark.parametrize("phase", ["validation", "test"])
def test_reference_against_itself_scores_best(spec: TaskSpec, tmp_path: Path, phase: str) -> None:
    read(spec, spec.data.references[phase])[["id", "arr_delay"]].to_csv(tmp_path / "predictions.csv", index=False)
    scores = score_outputs(spec, tmp_path, phase)
    assert list(scores) == list(spec.splits(phase))
    for values in scores.values():
        assert values == {"mae": 0.0, "rmse": 0.0, "within_15": 1.0}


# -- example submissions ---------------------------------------------------------------------------------------
def run_script(submission: Path, input_dir: Path, output_dir: Path) -> subprocess.CompletedProcess[str]:
    """``python main.py`` in the submission folder, with the harness's environment variables."""
    output_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HARNESS_INPUT_DIR": str(input_dir), "HARNESS_OUTPUT_DIR": str(output_dir)}
    return subprocess.run([sys.executable, "main.py"], cwd=submission, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def run_notebook(notebook: Path, input_dir: Path, output_dir: Path) -> None:
    """Execute a notebook with papermill and the venv's ``python3`` kernel, injecting the folders."""
    import papermill

    output_dir.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook), str(output_dir.parent / f"{output_dir.name}-executed.ipynb"), kernel_name="python3",
        parameters={"input_dir": str(input_dir), "output_dir": str(output_dir)}, cwd=str(notebook.parent),
        progress_bar=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def baseline_scores(spec: TaskSpec, tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    out = tmp_path_factory.mktemp("baseline")
    result = run_script(EXAMPLES / "baseline", spec.input_dir("validation"), out)
    assert result.returncode == 0, result.stderr
    return score_outputs(spec, out, "validation")["validation"]


def test_baseline_scores_as_documented(baseline_scores: dict[str, float]) -> None:
    assert baseline_scores["mae"] == pytest.approx(BASELINE_VALIDATION_MAE, abs=0.001)


def test_ridge_script_scores_but_a_least_squares_model_loses_to_medians_on_mae(
    spec: TaskSpec, tmp_path: Path, baseline_scores: dict[str, float]
) -> None:
    """The ridge script is scored (about 23.6); squared error is not what MAE rewards, so the medians win."""
    result = run_script(EXAMPLES / "ridge-script", spec.input_dir("validation"), tmp_path / "out")
    assert result.returncode == 0, result.stderr
    scores = score_outputs(spec, tmp_path / "out", "validation")["validation"]
    assert baseline_scores["mae"] < scores["mae"] < 25


def test_gbm_notebook_beats_the_baseline(spec: TaskSpec, tmp_path: Path, baseline_scores: dict[str, float]) -> None:
    run_notebook(EXAMPLES / "gbm-notebook" / "solution.ipynb", spec.input_dir("validation"), tmp_path / "out")
    scores = score_outputs(spec, tmp_path / "out", "validation")["validation"]
    assert scores["mae"] < baseline_scores["mae"] - 1  # about 20.8 against 22.2


def test_starter_notebook_runs_on_the_public_folder(spec: TaskSpec, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_notebook(TASK / "starter" / "solution.ipynb", spec.public_dir, out)
    frame = validate_predictions(spec, out / "predictions.csv", phase="validation")
    assert len(frame) == 27_010
    executed = nbformat.read(tmp_path / "out-executed.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "September MAE: " in printed


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("wrong-columns", ["missing column 'id' (rename 'flight_id' to 'id'?)",
                           "missing column 'arr_delay' (rename 'delay' to 'arr_delay'?)"]),
        ("missing-ids", ["predictions.csv lacks 844 of 27,010 ids; first missing: 20130901-0121"]),
        ("writes-nan", ["column 'arr_delay' has 37 missing or NaN values; first at id 20130903-0760"]),
    ],
)  # fmt: skip
def test_broken_scripts_give_their_reasons(spec: TaskSpec, tmp_path: Path, name: str, facts: list[str]) -> None:
    result = run_script(EXAMPLES / name, spec.input_dir("validation"), tmp_path / "out")
    assert result.returncode == 0, result.stderr  # the bug is in the output, not a crash
    with pytest.raises(InvalidOutputError) as info:
        score_outputs(spec, tmp_path / "out", "validation")
    joined = "\n".join(info.value.problems)
    for fact in facts:
        assert fact in joined


def test_raising_notebook_fails_in_its_cell(spec: TaskSpec, tmp_path: Path) -> None:
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as info:
        run_notebook(EXAMPLES / "raises" / "solution.ipynb", spec.input_dir("validation"), tmp_path / "out")
    assert info.value.ename == "KeyError" and "dep_delay" in info.value.evalue
    assert not (tmp_path / "out" / "predictions.csv").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_every_example_names_its_team_and_has_one_entry_point(name: str) -> None:
    folder = EXAMPLES / name
    assert yaml.safe_load((folder / "team.yaml").read_text()) == {"team": name}
    entries = [p.name for p in folder.iterdir() if p.name in ("main.py", "solution.ipynb")]
    assert len(entries) == 1
    if entries == ["solution.ipynb"]:
        notebook = nbformat.read(folder / "solution.ipynb", as_version=4)
        nbformat.validate(notebook)
        tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "input_dir = " in tagged[0].source and "output_dir = " in tagged[0].source


def test_validate_task_end_to_end_with_the_process_sandbox(spec: TaskSpec) -> None:
    report = validate_task(TASK, sandbox="process", echo=lambda _: None)
    assert report.ok, str(report)
    assert report.scores["reference (validation)"] == {"validation": {"mae": 0.0, "rmse": 0.0, "within_15": 1.0}}
    assert report.scores["baseline (validation)"]["validation"]["mae"] == pytest.approx(
        BASELINE_VALIDATION_MAE, abs=0.001
    )
