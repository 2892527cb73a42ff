"""The report toolbox without a kernel: exact glued tables, styling, baseline, links, resources, logs, error analysis,
and the checks :func:`harness.report.write_report` makes before any notebook starts."""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.record import RunRecord
from harness.report import (
    GLUE_KEY,
    ReportError,
    artifact_link,
    artifact_links_html,
    default_group_by,
    errors_by_group,
    find_baseline_team,
    log_tail,
    plain_label,
    plain_table,
    prediction_errors,
    read_glued,
    resource_table,
    runs_by_split_table,
    style_metric_table,
    table_records,
    write_report,
)
from harness.spec import MetricSpec, TaskSpec, load_spec
from harness.store import ScoredRun, Store

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
MAE = MetricSpec(name="mae", goal="minimize", primary=True, precision=2, label="MAE (min)")
ACC = MetricSpec(name="acc", goal="maximize", precision=3)

TASK_YAML = """
id: toy-flights
title: Toy flight delays
customer: the test suite
description: Predict the arrival delay of each flight.
predictions:
  id_column: flight_id
  columns: [{name: flight_id, dtype: string}, {name: arr_delay, dtype: float}]
data:
  inputs: {validation: validation_input, test: test_input}
  references: {validation: validation_reference.csv, test: hidden/test_reference.csv}
  predict_file: test.csv
evaluator: {path: evaluator.py, class_name: ToyEvaluator}
metrics:
  - {name: mae, goal: minimize, primary: true, precision: 2}
limits: {time_s: 60, memory_mb: 512}
baseline: submissions/baseline
"""


def _spec(tmp_path: Path, extra: str = "") -> TaskSpec:
    task_dir = tmp_path / "task"
    task_dir.mkdir(exist_ok=True)
    (task_dir / "task.yaml").write_text(TASK_YAML + extra, encoding="utf-8")
    (task_dir / "evaluator.py").write_text("class ToyEvaluator:\n    pass\n", encoding="utf-8")
    return load_spec(task_dir)


def _run(
    run_id: int = 1,
    team: str = "t",
    *,
    status: str = "succeeded",
    source: str = "",
    artifacts_dir: str = "",
    provenance: dict | None = None,
    duration_s: float | None = 3.0,
    peak_memory_mb: float | None = 100.0,
    scores: dict | None = None,
    active: bool = True,
) -> ScoredRun:
    return ScoredRun(
        run_id=run_id,
        task_id="toy-flights",
        team=team,
        submission_id=run_id,
        content_hash=f"{run_id:064x}",
        source=source,
        kind="notebook",
        submitted_at=T0 + dt.timedelta(hours=run_id),
        phase="test",
        status=status,
        reason="" if status == "succeeded" else "it broke",
        problems=[],
        active=active,
        started_at=T0,
        finished_at=T0,
        duration_s=duration_s,
        peak_memory_mb=peak_memory_mb,
        exit_code=0,
        artifacts_dir=artifacts_dir,
        provenance=provenance or {},
        scores=scores or {},
    )


# --- exact tables ----------------------------------------------------------------------------------------------------
def test_table_records_round_trip_json_exactly() -> None:
    df = pd.DataFrame(
        {
            "rank": pd.array([1, pd.NA], dtype="Int64"),
            "team": pd.array(["a", "b"], dtype="string"),
            "mae": [0.1 + 0.2, math.nan],
            "submitted_at": pd.to_datetime([T0, T0 + dt.timedelta(seconds=1)], utc=True),
            "n": np.array([3, 4], dtype="int64"),
            "ok": [True, False],
        }
    )
    records = table_records(df)
    assert json.loads(json.dumps(records)) == records
    assert records[0] == {
        "rank": 1,
        "team": "a",
        "mae": 0.30000000000000004,
        "submitted_at": "2026-11-02T09:00:00+00:00",
        "n": 3,
        "ok": True,
    }
    assert records[1]["rank"] is None and records[1]["mae"] is None
    assert type(records[0]["n"]) is int and type(records[0]["ok"]) is bool


def test_table_records_tell_tables_apart_in_the_last_bit() -> None:
    a = pd.DataFrame({"mae": [1.0]})
    b = pd.DataFrame({"mae": [np.nextafter(1.0, 2.0)]})
    assert table_records(a) != table_records(b)


def test_read_glued_finds_the_named_output_and_refuses_a_missing_one(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    records = [{"team": "a", "mae": 1.5}]
    output = nbformat.v4.new_output(
        "display_data",
        data={"application/json": {"name": "leaderboard", "records": records}, "text/plain": "copy"},
        metadata={GLUE_KEY: {"name": "leaderboard"}},
    )
    nb.cells = [nbformat.v4.new_code_cell("glue", outputs=[output])]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert read_glued(path, "leaderboard") == records
    with pytest.raises(ReportError, match="no glued table named 'runs'"):
        read_glued(path, "runs")


# --- styling ---------------------------------------------------------------------------------------------------------
def _board() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": pd.array([1, 2, pd.NA], dtype="Int64"),
            "team": ["<b>bold</b>", "b", "broken"],
            "submission": ["abc", "def", "ghi"],
            "submitted_at": pd.to_datetime([T0, T0, T0], utc=True),
            "status": ["succeeded", "succeeded", "failed"],
            "reason": ["", "", "x < y"],
            "duration_s": [1.25, 2.0, math.nan],
            "peak_memory_mb": [10.4, 20.0, math.nan],
            "identical_to": ["", "", ""],
            "run_id": pd.array([1, 2, 3], dtype="Int64"),
            "mae": [1.234, 2.0, 0.5],  # the failed row's 0.5 must not count as best
            "acc": [0.5, 0.875, math.nan],
        }
    )


def test_style_metric_table_marks_best_valid_value_per_direction_with_precision() -> None:
    html = style_metric_table(_board(), [MAE, ACC]).to_html()
    assert "1.23" in html and "1.234" not in html  # precision 2
    assert "0.875" in html  # precision 3
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html
    assert "x &lt; y" in html
    assert "MAE (min)" in html  # the metric's label
    styler = style_metric_table(_board(), [MAE, ACC])
    columns = list(styler.data.columns)
    assert _cells_with(styler.to_html(), "font-weight: bold", columns) == {(0, "mae"), (1, "acc")}
    assert {row for row, _ in _cells_with(styler.to_html(), "color: #8a8a8a", columns)} == {2}


def _cells_with(page: str, prop: str, columns: list[str]) -> set[tuple[int, str]]:
    """(row, column) of every cell whose CSS rule in the Styler's <style> block holds ``prop``."""
    cells = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", page.split("</style>")[0]):
        if prop in body:
            for row, col in re.findall(r"_row(\d+)_col(\d+)", selectors):
                cells.add((int(row), columns[int(col)]))
    return cells


def test_plain_table_escapes_formats_timestamps_and_left_aligns_text() -> None:
    df = pd.DataFrame({"team": ["<script>x</script>"], "when": pd.to_datetime([T0], utc=True), "v": [1.23456]})
    html = plain_table(df, precision=2).to_html()
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert "2026-11-02 09:00 UTC" in html
    assert "1.23" in html and "1.2346" not in html
    assert "text-align: left" in html


def test_plain_label_keeps_dollars_literal_for_matplotlib() -> None:
    assert plain_label("$x$ team") == r"\$x\$ team"


# --- baseline, links, resources, logs --------------------------------------------------------------------------------
def test_find_baseline_team_by_override_source_and_name(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    baseline_dir = spec.task_dir / "submissions" / "baseline"
    runs = [
        _run(1, "alpha", source=str(tmp_path / "incoming" / "alpha")),
        _run(2, "the-organisers", source=str(baseline_dir)),
    ]
    assert find_baseline_team(spec, runs) == "the-organisers"
    assert find_baseline_team(spec, runs, override="alpha") == "alpha"
    assert find_baseline_team(spec, runs, override="nobody") is None
    archived = [_run(3, "org", source="/elsewhere/submissions/baseline.zip")]
    assert find_baseline_team(spec, archived) == "org"
    named = [_run(4, "Baseline", source="/x/y"), _run(5, "z", source="/x/z")]
    assert find_baseline_team(spec, named) == "Baseline"
    assert find_baseline_team(spec, [_run(6, "z", source="/x/z")]) is None


def test_artifact_link_relative_published_and_absolute(tmp_path: Path) -> None:
    home = tmp_path / "home"
    artifact = home / "artifacts" / "toy" / "run 1" / "log.txt"
    reports = tmp_path / "reports" / "toy"
    assert artifact_link(artifact, reports_dir=reports) == "../../home/artifacts/toy/run%201/log.txt"
    assert (
        artifact_link(artifact, reports_dir=reports, link_base="https://judges.example/a/", home=home)
        == "https://judges.example/a/artifacts/toy/run%201/log.txt"
    )
    assert artifact_link(artifact) == artifact.as_uri()


def test_artifact_links_html_escapes_and_marks_missing_files(tmp_path: Path) -> None:
    artifacts = tmp_path / "run-1"
    (artifacts / "output").mkdir(parents=True)
    (artifacts / "log.txt").write_text("x", encoding="utf-8")
    (artifacts / "executed.ipynb").write_text("{}", encoding="utf-8")
    page = artifact_links_html(
        [_run(1, '<img src=x onerror="alert(1)">', artifacts_dir=str(artifacts))], reports_dir=tmp_path
    )
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page and "<img" not in page
    assert '<a href="run-1/executed.ipynb">executed.ipynb</a>' in page
    assert '<a href="run-1/log.txt">log.txt</a>' in page
    assert page.count(">—<") == 1  # no predictions.csv


def test_resource_table_uses_recorded_limits_else_the_spec(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    runs = [
        _run(1, provenance={"limits": {"time_s": 10.0, "memory_mb": 200.0}}, duration_s=5.0, peak_memory_mb=150.0),
        _run(2, duration_s=None, peak_memory_mb=None),
    ]
    table = resource_table(runs, spec)
    assert list(table["time_limit_s"]) == [10.0, 60.0]
    assert list(table["memory_limit_mb"]) == [200.0, 512.0]
    assert table.loc[0, "time_used_pct"] == 50.0 and table.loc[0, "memory_used_pct"] == 75.0
    assert math.isnan(table.loc[1, "duration_s"]) and math.isnan(table.loc[1, "time_used_pct"])
    assert str(table["submitted_at"].dtype) == "datetime64[ns, UTC]"


def test_runs_by_split_table_has_every_metric_on_every_split() -> None:
    runs = [
        _run(1, scores={"public": {"mae": 2.0}, "private": {"mae": 3.0}}),
        _run(2, status="failed", active=False),
    ]
    table = runs_by_split_table(runs, [MAE], ["public", "private"])
    assert list(table.columns[-4:]) == ["mae (public)", "mae (private)", "duration_s", "peak_memory_mb"]
    assert table.loc[0, "mae (private)"] == 3.0 and math.isnan(table.loc[1, "mae (public)"])
    assert list(table["active"]) == [True, False]


def test_log_tail_keeps_last_lines_with_escapes_made_visible_and_reads_little(tmp_path: Path) -> None:
    # Issue 11 (kind 3): ANSI codes are no longer stripped but shown, like every other control character.
    log = tmp_path / "log.txt"
    log.write_text("".join(f"line {i}\n" for i in range(1000)) + "\x1b[31mred\x1b[0m end\n", encoding="utf-8")
    assert log_tail(log, 3) == "line 998\nline 999\n\\x1b[31mred\\x1b[0m end"
    assert log_tail(log, 5, max_bytes=20).splitlines()[-1] == "\\x1b[31mred\\x1b[0m end"
    assert len(log_tail(log, 1000, max_bytes=100)) <= 100 + 3 * 2  # two ESC (1 char each) shown as 4 characters
    assert log_tail(tmp_path / "missing.txt") == ""


# --- error analysis --------------------------------------------------------------------------------------------------
def _flights() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    test_input = pd.DataFrame(
        {
            "flight_id": ["f1", "f2", "f3", "f4"],
            "year": [2013] * 4,
            "month": [10, 10, 11, 12],
            "day": [1, 2, 3, 4],
            "carrier": ["AA", "B6", "AA", "B6"],
            "tailnum": ["N1", "N2", "N3", "N4"],
            "origin": ["JFK", "EWR", "JFK", "LGA"],
            "hour": [5, 6, 7, 8],
        }
    )
    reference = pd.DataFrame(
        {
            "flight_id": ["f1", "f2", "f3", "f4"],
            "arr_delay": [10.0, -5.0, 0.0, 30.0],
            "split": ["public"] * 2 + ["private"] * 2,
        }
    )
    predictions = pd.DataFrame({"flight_id": ["f1", "f2", "f4"], "arr_delay": [12.0, -5.0, 20.0]})  # f3 missing
    return test_input, reference, predictions


def test_default_group_by_prefers_the_spec_parameter_then_low_cardinality_columns(tmp_path: Path) -> None:
    test_input, _reference, _predictions = _flights()
    assert default_group_by(_spec(tmp_path), test_input) == ["month", "day", "carrier"]
    assert default_group_by(_spec(tmp_path), test_input, max_distinct=3) == ["month", "carrier", "origin"]
    declared = _spec(tmp_path, "parameters: {report_group_by: 'carrier, origin ,month'}\n")
    assert default_group_by(declared, test_input) == ["carrier", "origin", "month"]
    assert default_group_by(_spec(tmp_path), None) == []


def test_prediction_errors_join_reference_input_and_count_missing(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    test_input, reference, predictions = _flights()
    errors = prediction_errors(spec, predictions, reference, test_input, ["carrier", "origin", "absent"])
    assert list(errors.columns[:4]) == ["flight_id", "split", "carrier", "origin"]
    assert list(errors["arr_delay_error"].fillna(-1)) == [2.0, 0.0, -1, -10.0]
    by_carrier = errors_by_group(errors, "arr_delay", "carrier")
    assert by_carrier.to_dict("records") == [
        {"carrier": "AA", "rows": 2, "missing": 1, "mean_abs_error": 2.0, "median_abs_error": 2.0, "mean_error": 2.0},
        {"carrier": "B6", "rows": 2, "missing": 0, "mean_abs_error": 5.0, "median_abs_error": 5.0, "mean_error": -5.0},
    ]
    by_split = errors_by_group(errors, "arr_delay", "split")
    assert list(by_split["split"]) == ["private", "public"] and list(by_split["mean_abs_error"]) == [10.0, 1.0]
    with pytest.raises(KeyError, match="no column 'absent'"):
        errors_by_group(errors, "arr_delay", "absent")


def test_prediction_errors_for_a_label_target_give_an_error_rate(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    reference = pd.DataFrame(
        {"flight_id": ["a", "b", "c"], "arr_delay": ["late", "on_time", "late"], "split": "public"}
    )
    predictions = pd.DataFrame({"flight_id": ["a", "b", "c"], "arr_delay": ["late", "late", "late"]})
    errors = prediction_errors(spec, predictions, reference)
    summary = errors_by_group(errors, "arr_delay", "split")
    assert summary.loc[0, "error_rate"] == pytest.approx(1 / 3)


def test_prediction_errors_name_a_missing_column(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    _input, reference, _predictions = _flights()
    with pytest.raises(HarnessError, match=r"the predictions lack column\(s\) \['arr_delay'\]"):
        prediction_errors(spec, pd.DataFrame({"flight_id": ["f1"], "delay": [1.0]}), reference)


# --- before any notebook starts --------------------------------------------------------------------------------------
@pytest.fixture
def no_papermill(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("papermill must not start")

    monkeypatch.setattr("papermill.execute_notebook", refuse)


def test_no_store_file_is_a_clear_error_and_creates_nothing(tmp_path: Path, no_papermill: None) -> None:
    spec = _spec(tmp_path)
    home = tmp_path / "home"
    with pytest.raises(HarnessError, match=r"no results store at .*results.sqlite, so no results for task 'toy-flig"):
        write_report(spec.task_dir, home=home, out_dir=tmp_path / "out")
    assert not home.exists() and not (tmp_path / "out").exists()


def test_a_store_without_runs_of_the_task_is_a_clear_error(tmp_path: Path, no_papermill: None) -> None:
    spec = _spec(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    store = Store(db_url)
    store.ensure_task("other-task", "Other", "0" * 64)
    store.close()
    with pytest.raises(
        HarnessError,
        match=r"no results for task 'toy-flights' in the store at .*; tasks with results there: other-task\. Run `ha",
    ):
        write_report(spec.task_dir, db_url=db_url, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_no_results_exits_non_zero_with_the_message(tmp_path: Path, no_papermill: None) -> None:
    spec = _spec(tmp_path)
    result = CliRunner().invoke(app, ["report", str(spec.task_dir), "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert "no results for task 'toy-flights'" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_unknown_team_and_split_are_refused_before_papermill(tmp_path: Path, no_papermill: None) -> None:
    spec = _spec(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    store = Store(db_url)
    try:
        store.ensure_task("toy-flights", "Toy flight delays", "0" * 64)
        sub, _ = store.register_submission("toy-flights", "alpha", "a" * 64, source="x", kind="script", entry="main.py")
        failed = RunRecord(
            task_id="toy-flights", phase="test", team="alpha", content_hash="a" * 64, kind="script", status="failed",
            reason="boom",
        )  # fmt: skip
        store.finish_run(store.start_run(sub, "test"), failed)
    finally:
        store.close()
    with pytest.raises(HarnessError, match=r"team 'beta' has no runs of task 'toy-flights'; teams with runs: alpha"):
        write_report(spec.task_dir, db_url=db_url, team="beta", out_dir=tmp_path / "out")
    with pytest.raises(
        HarnessError, match="unknown split 'hidden' for task 'toy-flights'; expected one of public, private"
    ):
        write_report(spec.task_dir, db_url=db_url, split="hidden", out_dir=tmp_path / "out")


# --- plumbing --------------------------------------------------------------------------------------------------------
def test_report_error_pickles_with_its_fields() -> None:
    error = ReportError("leaderboard.ipynb failed at In [3]", "/r/leaderboard.ipynb", 4)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.notebook, copy.cell_index) == (str(error), "/r/leaderboard.ipynb", 4)
    assert isinstance(copy, HarnessError)


def test_file_safe_team_names_never_collide() -> None:
    from harness.report.run import _file_safe

    assert _file_safe("team-1.v2") == "team-1.v2"
    assert _file_safe("a b") != _file_safe("a-b")
    assert _file_safe("../../etc").startswith("etc-")
    assert "/" not in _file_safe("a/b") and _file_safe("ü") != ""


def test_db_password_goes_through_the_environment_not_the_notebook() -> None:
    from harness.report.run import _split_secret

    assert _split_secret("sqlite:////x/results.sqlite") == ("sqlite:////x/results.sqlite", None)
    assert _split_secret("postgresql+psycopg://judge:s3cret@db/h") == (None, "postgresql+psycopg://judge:s3cret@db/h")


def test_kernel_manager_class_resolves_python3_to_this_interpreter() -> None:
    from harness.report.run import KERNEL_NAME, _kernel_manager_class, _runs_this_python

    with _kernel_manager_class() as manager_class:
        manager = manager_class(kernel_name=KERNEL_NAME)
        assert _runs_this_python(manager.kernel_spec.argv[0])
        assert manager.transport == "ipc"
        assert Path(manager.kernel_spec.resource_dir).is_relative_to(Path(sys.prefix))
    assert _runs_this_python(sys.executable) and not _runs_this_python("/usr/bin/some-other-python")
