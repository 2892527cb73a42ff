"""Prediction validation, the Evaluator lifecycle and the evaluator's own process (harness.scoring).

Every invalid-output case of issue 3 is here, each asserting the facts a team needs (counts, first offending id,
column name). The evaluator-process tests use the toy task of tests/fixtures/specs/toy with tiny time limits.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from spec_fixtures import (
    TEST_REFERENCE,
    VALIDATION_REFERENCE,
    perfect_predictions,
    toy_raw,
    toy_spec,
    write_predictions,
    write_toy_task,
)

from harness.errors import EvaluatorError, InvalidOutputError
from harness.scoring import (
    Evaluator,
    EvaluatorPool,
    check_metrics,
    evaluate_outputs,
    load_evaluator,
    load_reference,
    process,
    score_outputs,
    validate_predictions,
)
from harness.spec import TaskSpec, load_spec

TEST_IDS = TEST_REFERENCE["id"]


@pytest.fixture
def spec(tmp_path: Path) -> TaskSpec:
    return toy_spec(tmp_path / "task")


def invalid(spec: TaskSpec, path: Path, expected_ids: pd.Series | None = TEST_IDS) -> InvalidOutputError:
    """Validate ``path`` expecting InvalidOutputError; return it."""
    with pytest.raises(InvalidOutputError) as info:
        validate_predictions(spec, path, expected_ids=expected_ids)
    return info.value


def only_problem(error: InvalidOutputError) -> str:
    assert len(error.problems) == 1, error.problems
    return error.problems[0]


# -- valid files -------------------------------------------------------------------------------------------
def test_valid_predictions_are_parsed_with_spec_dtypes(spec: TaskSpec, tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "out", perfect_predictions())
    frame = validate_predictions(spec, path, expected_ids=TEST_IDS)
    assert list(frame.columns) == ["id", "y"]
    assert frame["y"].dtype == np.float64
    assert frame["id"].tolist() == TEST_IDS.tolist()
    assert frame["y"].tolist() == TEST_REFERENCE["y"].tolist()


def test_bom_crlf_extra_columns_and_any_row_order_are_tolerated(spec: TaskSpec, tmp_path: Path) -> None:
    shuffled = TEST_REFERENCE.sample(frac=1, random_state=1)
    text = shuffled.assign(note="x")[["note", "y", "id"]].to_csv(index=False, lineterminator="\r\n")
    path = write_predictions(tmp_path / "out", b"\xef\xbb\xbf" + text.encode())
    frame = validate_predictions(spec, path, expected_ids=TEST_IDS)
    assert list(frame.columns) == ["id", "y"]
    assert frame.set_index("id")["y"].to_dict() == TEST_REFERENCE.set_index("id")["y"].to_dict()


def test_negative_zero_and_exponents_are_numbers(spec: TaskSpec, tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{v}" for i, v in zip(TEST_IDS, ["-0", "1e2", "-1.5E-3", " 4 ", "5"] * 2, strict=True))
    frame = validate_predictions(spec, write_predictions(tmp_path, "id,y\n" + rows + "\n"), expected_ids=TEST_IDS)
    assert frame["y"].tolist()[:4] == [0.0, 100.0, -0.0015, 4.0]


def test_phase_reads_expected_ids_from_the_reference(spec: TaskSpec, tmp_path: Path) -> None:
    path = write_predictions(tmp_path, perfect_predictions(VALIDATION_REFERENCE))
    assert len(validate_predictions(spec, path, phase="validation")) == 4
    with pytest.raises(InvalidOutputError, match="lacks 4 of 4 ids; first missing: v1") as info:
        validate_predictions(spec, write_predictions(tmp_path, perfect_predictions()), phase="validation")
    assert "first: t01" in " ".join(info.value.problems)


# -- each invalid case of issue 3 ----------------------------------------------------------------------------
def test_missing_ids_give_count_total_and_first_missing(spec: TaskSpec, tmp_path: Path) -> None:
    text = TEST_REFERENCE.drop(index=[2, 6])[["id", "y"]].to_csv(index=False)
    problem = only_problem(invalid(spec, write_predictions(tmp_path, text)))
    assert "predictions.csv lacks 2 of 10 ids; first missing: t03" in problem


def test_duplicate_ids_give_count_first_id_and_lines(spec: TaskSpec, tmp_path: Path) -> None:
    frame = pd.concat([TEST_REFERENCE, TEST_REFERENCE.iloc[[4]]])[["id", "y"]]
    problem = only_problem(invalid(spec, write_predictions(tmp_path, frame.to_csv(index=False))))
    assert "1 id appears more than once (2 rows in all); first: t05 (lines 6, 12)" in problem


def test_extra_ids_give_count_and_first_unknown_id(spec: TaskSpec, tmp_path: Path) -> None:
    text = perfect_predictions() + "x99,1\nx98,2\n"
    problem = only_problem(invalid(spec, write_predictions(tmp_path, text)))
    assert "has 2 ids that are not among the rows to predict; first: x99" in problem


def test_wrong_dtype_names_column_count_first_value_and_id(spec: TaskSpec, tmp_path: Path) -> None:
    frame = TEST_REFERENCE[["id", "y"]].astype({"y": object})
    frame.loc[3, "y"] = "late"
    frame.loc[8, "y"] = "early"
    problem = only_problem(invalid(spec, write_predictions(tmp_path, frame.to_csv(index=False))))
    assert "column 'y' must hold numbers (float); 2 values are not, first: 'late' at id t04" in problem


@pytest.mark.parametrize("token", ["", "NaN", "nan", "NA", "null"])
def test_nan_gives_count_column_and_first_id(spec: TaskSpec, tmp_path: Path, token: str) -> None:
    frame = TEST_REFERENCE[["id", "y"]].astype({"y": object})
    frame.loc[[5, 7], "y"] = token
    problem = only_problem(invalid(spec, write_predictions(tmp_path, frame.to_csv(index=False))))
    assert "column 'y' has 2 missing or NaN values; first at id t06" in problem


@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity", "1e400"])
def test_inf_gives_count_column_and_first_id(spec: TaskSpec, tmp_path: Path, token: str) -> None:
    frame = TEST_REFERENCE[["id", "y"]].astype({"y": object})
    frame.loc[6, "y"] = token
    problem = only_problem(invalid(spec, write_predictions(tmp_path, frame.to_csv(index=False))))
    assert "column 'y' has 1 infinite value (inf); first at id t07" in problem


def test_value_outside_declared_bounds_is_refused(spec: TaskSpec, tmp_path: Path) -> None:
    frame = TEST_REFERENCE[["id", "y"]].copy()
    frame.loc[1, "y"] = 1e308
    problem = only_problem(invalid(spec, write_predictions(tmp_path, frame.to_csv(index=False))))
    assert "column 'y' has 1 value outside the accepted range [-1000, 1000]; first: 1e+308 at id t02" in problem


def test_missing_column_is_named_with_a_rename_hint(spec: TaskSpec, tmp_path: Path) -> None:
    text = TEST_REFERENCE.rename(columns={"y": "prediction_y"})[["id", "prediction_y"]].to_csv(index=False)
    problem = only_problem(invalid(spec, write_predictions(tmp_path, text)))
    assert problem.startswith("missing column 'y' (rename 'prediction_y' to 'y'?)")
    assert "found columns: id, prediction_y" in problem


def test_wrong_column_names_name_every_missing_column(spec: TaskSpec, tmp_path: Path) -> None:
    text = TEST_REFERENCE.rename(columns={"id": "row", "y": "value"})[["row", "value"]].to_csv(index=False)
    error = invalid(spec, write_predictions(tmp_path, text))
    assert any("missing column 'id'" in p for p in error.problems)
    assert any("missing column 'y'" in p for p in error.problems)


def test_headerless_file_says_a_header_row_is_needed(spec: TaskSpec, tmp_path: Path) -> None:
    text = perfect_predictions().split("\n", 1)[1]  # drop the header
    error = invalid(spec, write_predictions(tmp_path, text))
    assert any("needs a CSV header row" in p and "t01" in p for p in error.problems)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_file(spec: TaskSpec, tmp_path: Path, content: bytes) -> None:
    error = invalid(spec, write_predictions(tmp_path, content))
    assert error.message == "predictions.csv is empty"
    assert f"({len(content)} bytes)" in only_problem(error)


def test_header_only(spec: TaskSpec, tmp_path: Path) -> None:
    error = invalid(spec, write_predictions(tmp_path, "id,y\n"))
    assert "predictions.csv has a header but no rows; expected 10 rows, one per id" in only_problem(error)


def test_binary_file_is_not_csv(spec: TaskSpec, tmp_path: Path) -> None:
    error = invalid(spec, write_predictions(tmp_path, b"id,y\n" + bytes(range(256)) * 4))
    assert error.message == "predictions.csv is not a CSV file"
    assert "binary data (a NUL byte at offset 5)" in only_problem(error)


def test_parquet_file_is_recognised(spec: TaskSpec, tmp_path: Path) -> None:
    path = tmp_path / "out" / "predictions.csv"
    path.parent.mkdir()
    TEST_REFERENCE[["id", "y"]].to_parquet(path)
    error = invalid(spec, path)
    assert "looks like a Parquet file, not a CSV text file" in only_problem(error)
    assert "to_csv(Path(output_dir) / 'predictions.csv', index=False)" in only_problem(error)  # issue 18: a str


def test_json_file_is_not_a_csv_table(spec: TaskSpec, tmp_path: Path) -> None:
    text = json.dumps({"t01": 1.0, "t02": 2.0, "t03": 3.0}) + "\n"
    error = invalid(spec, write_predictions(tmp_path, text))
    assert any("needs a CSV header row" in p or "missing column 'id'" in p for p in error.problems)


def test_not_utf8(spec: TaskSpec, tmp_path: Path) -> None:
    error = invalid(spec, write_predictions(tmp_path, "id,y\nt01,1\ncafé,2\n".encode("latin-1")))
    assert "not UTF-8 text (invalid byte at offset 14)" in only_problem(error)


def test_quoted_thousands_separators_get_a_hint(spec: TaskSpec, tmp_path: Path) -> None:
    rows = "".join(f'{i},"{v}"\n' for i, v in zip(TEST_IDS, ["1,234.5"] + ["1"] * 9, strict=True))
    problem = only_problem(invalid(spec, write_predictions(tmp_path, "id,y\n" + rows)))
    assert "first: '1,234.5' at id t01" in problem
    assert "without thousands separators" in problem


def test_unquoted_thousands_separators_break_the_row_with_a_hint(spec: TaskSpec, tmp_path: Path) -> None:
    text = perfect_predictions().replace("t04,4.0", "t04,1,234.0")
    problem = only_problem(invalid(spec, write_predictions(tmp_path, text)))
    assert "line 5 has 3 fields but the header has 2" in problem
    assert "without thousands separators" in problem


def test_duplicate_column_names(spec: TaskSpec, tmp_path: Path) -> None:
    error = invalid(spec, write_predictions(tmp_path, "id,y,y\nt01,1,2\n"))
    assert "'y' more than once" in only_problem(error)


def test_every_problem_is_reported_not_only_the_first(spec: TaskSpec, tmp_path: Path) -> None:
    frame = TEST_REFERENCE[["id", "y"]].drop(index=[0]).astype({"y": object})
    frame.loc[4, "y"] = "nan"
    frame.loc[5, "y"] = "inf"
    error = invalid(spec, write_predictions(tmp_path, frame.to_csv(index=False)))
    assert error.message == "predictions.csv is invalid (3 problems)"
    joined = "\n".join(error.problems)
    assert "lacks 1 of 10 ids; first missing: t01" in joined
    assert "1 missing or NaN value; first at id t05" in joined
    assert "1 infinite value (inf); first at id t06" in joined


def test_missing_file_lists_what_the_output_folder_holds(spec: TaskSpec, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "preds.csv").write_text("id,y\n")
    error = invalid(spec, tmp_path / "out" / "predictions.csv")
    assert "predictions.csv was not written" in only_problem(error)
    assert "preds.csv" in only_problem(error)


def test_symbolic_link_is_not_followed(spec: TaskSpec, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.csv").symlink_to(spec.reference_path("test"))
    error = invalid(spec, tmp_path / "out" / "predictions.csv")
    assert only_problem(error).startswith("predictions.csv is a symbolic link; write a regular file")


def test_oversized_file_is_refused_without_reading_it(spec: TaskSpec, tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    with path.open("wb") as fh:  # a sparse 1 GiB file: no disk is used
        fh.write(b"id,y\n")
        fh.truncate(1024**3)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = invalid(spec, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5 * 1024**2  # bytes; the file was never loaded
    assert error.message == "predictions.csv is too large"
    assert "is 1,024.0 MiB, above the task's limit of 1 MiB" in only_problem(error)


def test_invalid_output_error_pickles_with_its_problems(spec: TaskSpec, tmp_path: Path) -> None:
    error = invalid(spec, write_predictions(tmp_path, "id,y\n"))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is InvalidOutputError
    assert (copy.message, copy.problems, str(copy)) == (error.message, error.problems, str(error))


# -- reference -----------------------------------------------------------------------------------------------
def test_load_reference_types_and_splits(spec: TaskSpec) -> None:
    reference = load_reference(spec, "test")
    assert list(reference.columns) == ["id", "y", "split"]
    assert reference["y"].dtype == np.float64
    assert reference["split"].value_counts().to_dict() == {"private": 7, "public": 3}


def test_reference_with_an_undeclared_split_is_an_evaluator_error(spec: TaskSpec) -> None:
    TEST_REFERENCE.assign(split="secret").to_csv(spec.reference_path("test"), index=False)
    with pytest.raises(EvaluatorError, match=r"split\(s\) \['secret'\] that data.splits.test"):
        load_reference(spec, "test")


def test_missing_reference_says_to_prepare(spec: TaskSpec) -> None:
    spec.reference_path("validation").unlink()
    with pytest.raises(EvaluatorError, match="run `harness task prepare"):
        load_reference(spec, "validation")


def test_unknown_phase_is_a_value_error(spec: TaskSpec, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown phase 'train'"):
        score_outputs(spec, tmp_path, "train")


# -- metric checks -------------------------------------------------------------------------------------------
def test_check_metrics_accepts_numpy_numbers_in_spec_order(spec: TaskSpec) -> None:
    checked = check_metrics(spec, {"within_1": np.float32(0.5), "mae": np.int64(2)})
    assert list(checked) == ["mae", "within_1"]
    assert checked == {"mae": 2.0, "within_1": 0.5}
    assert all(type(v) is float for v in checked.values())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mae": 1.0, "within_1": 1.0, "r2": 0.5}, r"metric\(s\) \['r2'\] on split 'public' that task.yaml does not"),
        ({"mae": 1.0}, r"no value for metric\(s\) \['within_1'\] on split 'public'"),
        ({"mae": float("nan"), "within_1": 1.0}, "metric 'mae' on split 'public' is nan"),
        ({"mae": float("inf"), "within_1": 1.0}, "metric 'mae' on split 'public' is inf"),
        ({"mae": True, "within_1": 1.0}, "metric 'mae' on split 'public' is bool"),
        ({"mae": np.array([1.0]), "within_1": 1.0}, "metric 'mae' on split 'public' is ndarray"),
        ([("mae", 1.0)], "returned list on split 'public'; expected a dict"),
    ],
)
def test_check_metrics_refuses_malformed_answers(spec: TaskSpec, raw: object, message: str) -> None:
    with pytest.raises(EvaluatorError, match=message):
        check_metrics(spec, raw, split="public")


# -- the lifecycle in this process -----------------------------------------------------------------------------
def test_evaluate_outputs_scores_each_split_on_its_own_rows(spec: TaskSpec, tmp_path: Path) -> None:
    predicted = TEST_REFERENCE[["id", "y"]].assign(y=TEST_REFERENCE["y"] + [0, 0, 3, 0, 0, 0, 0, 0, 0, 0.5])
    write_predictions(tmp_path / "out", predicted.sample(frac=1, random_state=0).to_csv(index=False))
    scores = evaluate_outputs(spec, tmp_path / "out", "test")
    assert list(scores) == ["public", "private"]
    assert scores["public"] == pytest.approx({"mae": 1.0, "within_1": 2 / 3})
    assert scores["private"] == pytest.approx({"mae": 0.5 / 7, "within_1": 1.0})


def test_load_evaluator_refuses_a_class_that_is_not_an_evaluator(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task", class_name="NotAnEvaluator")
    with pytest.raises(EvaluatorError, match="must define class NotAnEvaluator as a subclass of"):
        load_evaluator(spec)


def test_load_evaluator_refuses_a_class_without_the_modes_method(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task", class_name="NoMethodEvaluator")
    with pytest.raises(EvaluatorError, match=r"does not implement score\(\), which evaluator.mode 'predictions'"):
        load_evaluator(spec)
    spec = toy_spec(tmp_path / "task2", class_name="ToyEvaluator", mode="output_dir")
    with pytest.raises(EvaluatorError, match=r"does not implement score_output_dir\(\)"):
        load_evaluator(spec)


def test_load_evaluator_reports_an_import_failure(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task")
    spec.evaluator_path.write_text("import no_such_module_anywhere\n\nclass ToyEvaluator:\n    pass\n")
    with pytest.raises(EvaluatorError, match="importing the evaluator .* failed: ModuleNotFoundError") as info:
        load_evaluator(spec)
    assert "no_such_module_anywhere" in info.value.detail


def test_base_class_methods_say_what_to_implement(spec: TaskSpec, tmp_path: Path) -> None:
    evaluator = Evaluator(spec, "test", tmp_path)
    with pytest.raises(NotImplementedError, match=r"must implement score\(predictions, reference\)"):
        evaluator.score(pd.DataFrame(), pd.DataFrame())


# -- the evaluator's own process -----------------------------------------------------------------------------
def test_score_outputs_runs_in_a_separate_process_and_returns_floats(spec: TaskSpec, tmp_path: Path) -> None:
    write_predictions(tmp_path / "out", perfect_predictions())
    scores = score_outputs(spec, tmp_path / "out", "test")
    assert scores == {"public": {"mae": 0.0, "within_1": 1.0}, "private": {"mae": 0.0, "within_1": 1.0}}
    write_predictions(tmp_path / "val", perfect_predictions(VALIDATION_REFERENCE.assign(y=0.0)))
    assert score_outputs(spec, tmp_path / "val", "validation") == {
        "validation": pytest.approx({"mae": 2.0, "within_1": 0.25})
    }


def test_invalid_output_crosses_the_process_boundary_intact(spec: TaskSpec, tmp_path: Path) -> None:
    text = TEST_REFERENCE.drop(index=[0])[["id", "y"]].to_csv(index=False)
    write_predictions(tmp_path / "out", text)
    with pytest.raises(InvalidOutputError) as info:
        score_outputs(spec, tmp_path / "out", "test")
    assert info.value.message == "predictions.csv is invalid (1 problem)"
    assert info.value.problems == [
        "predictions.csv lacks 1 of 10 ids; first missing: t01; predict every one of the rows of test.csv in input_dir"
    ]


def test_raising_evaluator_is_an_evaluator_error_with_its_traceback(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task", class_name="RaisingEvaluator")
    write_predictions(tmp_path / "out", perfect_predictions())
    with pytest.raises(EvaluatorError) as info:
        score_outputs(spec, tmp_path / "out", "test")
    assert info.value.message == (
        "evaluator RaisingEvaluator raised ZeroDivisionError on split 'public': boom in the author's code"
    )
    assert "Traceback" in info.value.detail
    assert "boom in the author's code" in info.value.detail


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie not ours to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


def test_hanging_evaluator_is_stopped_at_its_time_limit_with_its_children(tmp_path: Path) -> None:
    # 8 s: the evaluator must start Python and pandas and write pids.json before the limit, also on a loaded machine
    spec = toy_spec(tmp_path / "task", class_name="HangingEvaluator", time_s=8)
    write_predictions(tmp_path / "out", perfect_predictions())
    started = time.monotonic()
    with pytest.raises(EvaluatorError) as info:
        score_outputs(spec, tmp_path / "out", "test")
    took = time.monotonic() - started
    assert 8 <= took < 13
    assert info.value.message == (
        "the evaluator did not finish within its time limit of 8 s (evaluator.time_s in task.yaml) and was stopped"
    )
    pids = json.loads((tmp_path / "out" / "pids.json").read_text())
    with pytest.raises(ChildProcessError):  # the evaluator process was reaped: no zombie of ours is left
        os.waitpid(pids["evaluator"], os.WNOHANG)
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pids["evaluator"])
    assert _gone(pids["grandchild"])


@pytest.mark.parametrize(
    ("class_name", "message"),
    [
        ("ExtraMetricEvaluator", r"returned metric\(s\) \['r2'\] on split 'public' that task.yaml does not declare"),
        ("MissingMetricEvaluator", r"no value for metric\(s\) \['within_1'\] on split 'public'"),
        ("NaNEvaluator", "metric 'mae' on split 'public' is nan; metrics must be finite floats"),
        ("StringMetricEvaluator", "metric 'mae' on split 'public' is str '0.5'; expected a float"),
    ],
)
def test_malformed_metrics_are_evaluator_errors(tmp_path: Path, class_name: str, message: str) -> None:
    spec = toy_spec(tmp_path / "task", class_name=class_name)
    write_predictions(tmp_path / "out", perfect_predictions())
    with pytest.raises(EvaluatorError, match=message):
        score_outputs(spec, tmp_path / "out", "test")


def test_evaluator_past_its_memory_limit_is_an_evaluator_error(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task", class_name="MemoryHogEvaluator", memory_mb=1024)
    write_predictions(tmp_path / "out", perfect_predictions())
    with pytest.raises(EvaluatorError, match=r"ran out of memory \(limit 1024 MiB, evaluator.memory_mb"):
        score_outputs(spec, tmp_path / "out", "test")


def test_output_dir_mode_scores_the_folder_and_may_refuse_it(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task", class_name="AnswerFileEvaluator", mode="output_dir")
    out = tmp_path / "out"
    out.mkdir()
    (out / "answers.json").write_text(json.dumps(dict(zip(TEST_IDS, TEST_REFERENCE["y"] + 2, strict=True))))
    assert score_outputs(spec, out, "test") == {
        "public": {"mae": 2.0, "within_1": 0.0},
        "private": {"mae": 2.0, "within_1": 0.0},
    }
    (out / "answers.json").unlink()
    with pytest.raises(InvalidOutputError) as info:
        score_outputs(spec, out, "test")
    assert info.value.problems == ["write answers.json: a JSON object {id: y}"]


def test_int_ids_are_compared_as_numbers(tmp_path: Path) -> None:
    raw = toy_raw()
    raw["predictions"]["columns"][0]["dtype"] = "int"
    task = write_toy_task(tmp_path / "task", raw)
    reference = TEST_REFERENCE.assign(id=range(1, 11))
    reference.to_csv(task / "data" / "hidden" / "test_reference.csv", index=False)
    spec = load_spec(task)
    out = tmp_path / "out"
    write_predictions(out, "id,y\n" + "".join(f"{i:03d},{i}\n" for i in range(10, 0, -1)))
    assert score_outputs(spec, out, "test")["private"] == {"mae": 0.0, "within_1": 1.0}
    write_predictions(out, "id,y\n" + "".join(f"{i},{i}\n" for i in range(2, 12)))
    with pytest.raises(InvalidOutputError) as info:
        score_outputs(spec, out, "test")
    assert "lacks 1 of 10 ids; first missing: 1" in info.value.problems[0]
    assert "first: 11" in info.value.problems[1]
    write_predictions(out, "id,y\n" + "".join(f"{i},{i}\n" for i in ["1.5", "inf", "x", *range(3, 11)]))
    with pytest.raises(InvalidOutputError) as info:
        score_outputs(spec, out, "test")
    assert "column 'id' must hold whole numbers; 3 ids are not, first: '1.5'" in info.value.problems[0]
    assert "lacks 2 of 10 ids; first missing: 1" in info.value.problems[1]


def _our_children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                out.add(int(entry.name))
    return out


def test_warm_evaluators_score_the_same_keep_limits_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # this test's scratch folders only
    before = _our_children()
    spec = toy_spec(tmp_path / "task")
    hanging = toy_spec(tmp_path / "hang", class_name="HangingEvaluator", time_s=3)
    write_predictions(tmp_path / "out", perfect_predictions())
    cold = score_outputs(spec, tmp_path / "out", "test")
    with EvaluatorPool(2) as pool:
        warm = [score_outputs(spec, tmp_path / "out", "test", pool=pool) for _ in range(3)]
        assert len(_our_children() - before) == 1  # one warm process serves every scoring (issue 13)
        started = time.monotonic()
        with pytest.raises(EvaluatorError, match="time limit of 3 s"):
            score_outputs(hanging, tmp_path / "out", "test", pool=pool)
        assert 3 <= time.monotonic() - started < 6
    assert warm == [cold] * 3
    deadline = time.monotonic() + 5
    while _our_children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _our_children() - before
    assert not list(scratch.iterdir())


@pytest.fixture
def started_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The evaluator processes score_outputs starts, in order: ``cold`` or ``standby``; scratch folders kept apart."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    started: list[str] = []
    popen = subprocess.Popen

    def spy(args: list[str], *rest: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append("standby" if "_standby_main" in args[2] else "cold")
        return popen(args, *rest, **kwargs)

    monkeypatch.setattr(process.subprocess, "Popen", spy)
    return started


def _wait_until_no_children(before: set[int]) -> set[int]:
    deadline = time.monotonic() + 5
    while _our_children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    return _our_children() - before


def test_a_pool_serves_each_scoring_from_its_warm_process_which_stays_for_the_next(
    tmp_path: Path, started_processes: list[str]
) -> None:
    before = _our_children()
    spec = toy_spec(tmp_path / "task")
    write_predictions(tmp_path / "out", perfect_predictions())
    with EvaluatorPool(1) as pool:
        first = score_outputs(spec, tmp_path / "out", "test", pool=pool)
        assert started_processes == ["standby"]  # the pool was empty: its warm process started and served
        (standby,) = _our_children() - before
        started_processes.clear()
        second = score_outputs(spec, tmp_path / "out", "test", pool=pool)
        third = score_outputs(spec, tmp_path / "out", "test", pool=pool)
        # No process started: the warm one forked a fresh child for each scoring and waits for the next (issue 13).
        assert started_processes == []
        assert _our_children() - before == {standby}
    assert second == first == third
    assert not _wait_until_no_children(before)
    assert not list((tmp_path / "scratch").iterdir())


def test_without_a_pool_only_a_cold_process_is_started_and_none_is_left(
    tmp_path: Path, started_processes: list[str]
) -> None:
    before = _our_children()
    spec = toy_spec(tmp_path / "task")
    write_predictions(tmp_path / "out", perfect_predictions())
    with EvaluatorPool(2):  # a pool not passed is not used
        score_outputs(spec, tmp_path / "out", "test")
        score_outputs(spec, tmp_path / "out", "test", pool=None)
        assert started_processes == ["cold", "cold"]
        assert not _wait_until_no_children(before)


def test_close_leaves_no_child_process_and_a_closed_pool_scores_cold(
    tmp_path: Path, started_processes: list[str]
) -> None:
    before = _our_children()
    spec = toy_spec(tmp_path / "task")
    write_predictions(tmp_path / "out", perfect_predictions())
    pool = EvaluatorPool(2)
    expected = score_outputs(spec, tmp_path / "out", "test", pool=pool)
    assert len(_our_children() - before) == 1
    pool.close()
    assert not _wait_until_no_children(before)
    assert not list((tmp_path / "scratch").iterdir())
    pool.close()  # idempotent
    started_processes.clear()
    assert score_outputs(spec, tmp_path / "out", "test", pool=pool) == expected
    assert started_processes == ["cold"]
    assert not _wait_until_no_children(before)


def test_a_standby_that_died_waiting_is_replaced(tmp_path: Path, started_processes: list[str]) -> None:
    before = _our_children()
    spec = toy_spec(tmp_path / "task")
    write_predictions(tmp_path / "out", perfect_predictions())
    with EvaluatorPool(1) as pool:
        expected = score_outputs(spec, tmp_path / "out", "test", pool=pool)
        (standby,) = _our_children() - before
        os.killpg(standby, signal.SIGKILL)  # e.g. the machine's OOM killer
        # Wait until its death is reportable to waitpid (Popen.poll), without reaping it: /proc shows the leader
        # as a zombie while its other threads still exit.
        deadline = time.monotonic() + 5
        while os.waitid(os.P_PID, standby, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started_processes.clear()
        assert score_outputs(spec, tmp_path / "out", "test", pool=pool) == expected
        assert started_processes == ["standby"]  # the dead one was replaced, and the replacement served
        (replacement,) = _our_children() - before
        started_processes.clear()
        assert score_outputs(spec, tmp_path / "out", "test", pool=pool) == expected
        assert started_processes == []  # the replacement served
        assert _our_children() - before == {replacement}
    assert not _wait_until_no_children(before)
    assert not list((tmp_path / "scratch").iterdir())


# -- the shape of a prediction file, counted in linear time (issue 11) ---------------------------------------------
def test_row_widths_ignore_quoted_commas_and_line_breaks_and_number_physical_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.scoring import shape

    monkeypatch.setattr(shape, "_CHUNK", 3)  # chunk boundaries everywhere, even inside quotes and CRLF
    data = b'id,y\r\nt01,"a,\r\nb"\r\n\r\nt02,1\r\nt03,1,2\r\nt04,"x""y",3\r\nt05,1'
    header = shape.read_header(data, "predictions.csv")
    assert header.names == ["id", "y"]
    assert shape.scan_rows(data, header) == shape.RowShape(
        rows=5, wider=2, one_wider=2, first_row_fields=2, first_wider_line=6, first_wider_fields=3
    )


def test_a_file_with_old_mac_line_ends_is_read(spec: TaskSpec, tmp_path: Path) -> None:
    path = write_predictions(tmp_path / "out", perfect_predictions().replace("\n", "\r"))
    assert validate_predictions(spec, path, expected_ids=TEST_IDS)["id"].tolist() == TEST_IDS.tolist()


@pytest.mark.parametrize(
    "line",
    ['id,"y"', '"id","y,z",w', 'a,"b""c",', '"open,quote', 'x"y,"z"w', '"","",""'],
)
def test_header_names_split_like_the_csv_module(line: str) -> None:
    import csv

    from harness.scoring import shape

    assert shape.read_header(line.encode() + b"\n", "p.csv").names == next(csv.reader([line]))


def test_plain_and_spelled_out_numbers_parse_alike_on_both_paths(spec: TaskSpec, tmp_path: Path) -> None:
    values = ["1.5", "+.5", "5.", "-0", "1e-3", "2E2"]
    fast = validate_predictions(  # every value plain: Arrow's parser
        spec,
        write_predictions(tmp_path / "a", "id,y\n" + "".join(f"t{i:02d},{v}\n" for i, v in enumerate(values, 1))),
        expected_ids=[f"t{i:02d}" for i in range(1, 7)],
    )
    slow = validate_predictions(  # one padded value: pandas.to_numeric for the column
        spec,
        write_predictions(tmp_path / "b", "id,y\n" + "".join(f"t{i:02d}, {v}\n" for i, v in enumerate(values, 1))),
        expected_ids=[f"t{i:02d}" for i in range(1, 7)],
    )
    assert fast["y"].tolist() == slow["y"].tolist() == [1.5, 0.5, 5.0, 0.0, 0.001, 200.0]


_LEAKY_EVALUATOR = '''

_SEEN: list[int] = []


class LeakyEvaluator(Evaluator):
    """Counts its scorings in a module global: more than one means a process served two of them."""

    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        _SEEN.append(os.getpid())
        time.sleep(0.3)
        return {"mae": float(len(_SEEN)), "within_1": float(os.getpid() % 1000)}
'''


def test_a_warm_process_forks_a_fresh_child_for_each_of_several_scorings_at_once(
    tmp_path: Path, started_processes: list[str]
) -> None:
    # Issue 13: one warm process serves a batch, yet nothing a scoring leaves in memory reaches the next one.
    import concurrent.futures as cf

    before = _our_children()
    raw = toy_raw()
    raw["evaluator"]["class_name"] = "LeakyEvaluator"
    task = write_toy_task(tmp_path / "task", raw)
    with (task / "evaluator.py").open("a", encoding="utf-8") as fh:
        fh.write(_LEAKY_EVALUATOR)
    spec = load_spec(task)
    write_predictions(tmp_path / "out", perfect_predictions())
    with EvaluatorPool(3) as pool:
        pool.start(spec.evaluator.memory_mb)
        with cf.ThreadPoolExecutor(3) as threads:
            scores = list(threads.map(lambda _: score_outputs(spec, tmp_path / "out", "test", pool=pool), range(6)))
        assert started_processes == ["standby"]
        assert len(_our_children() - before) == 1
    assert {s["public"]["mae"] for s in scores} == {1.0}  # each scoring saw an empty module: a fresh process
    assert len({s["public"]["within_1"] for s in scores}) == 6  # six different processes
    assert not _wait_until_no_children(before)
    assert not list((tmp_path / "scratch").iterdir())


_SERVER_KILLER = '''

class ServerKillerEvaluator(Evaluator):
    """Kills the warm server (its parent) when it scores the output folder named ``killer``; others are slow."""

    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        if self.output_dir.name == "killer":
            time.sleep(0.3)
            os.kill(os.getppid(), 9)
            raise RuntimeError("this evaluator killed its server")
        time.sleep(1.5)
        return {"mae": 0.0, "within_1": 1.0}
'''


def test_a_scoring_in_flight_outlives_the_warm_server_another_scoring_killed(
    tmp_path: Path, started_processes: list[str]
) -> None:
    # A hostile tester's evaluator killed the warm server on one team's predictions: the other team's scoring in
    # flight must end with its own result, not "killed by signal 9".
    import concurrent.futures as cf

    before = _our_children()
    raw = toy_raw()
    raw["evaluator"]["class_name"] = "ServerKillerEvaluator"
    task = write_toy_task(tmp_path / "task", raw)
    with (task / "evaluator.py").open("a", encoding="utf-8") as fh:
        fh.write(_SERVER_KILLER)
    spec = load_spec(task)
    for name in ("honest", "killer"):
        write_predictions(tmp_path / name, perfect_predictions())
    with EvaluatorPool(2) as pool:
        pool.start(spec.evaluator.memory_mb)
        with cf.ThreadPoolExecutor(2) as threads:
            honest = threads.submit(score_outputs, spec, tmp_path / "honest", "test", pool=pool)
            time.sleep(0.2)
            killer = threads.submit(score_outputs, spec, tmp_path / "killer", "test", pool=pool)
            assert honest.result()["public"]["mae"] == 0.0
            with pytest.raises(EvaluatorError, match="killed its server"):
                killer.result()
    assert not _wait_until_no_children(before)
