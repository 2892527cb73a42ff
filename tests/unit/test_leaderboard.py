"""Ranking rules of metric tables: ties, both directions, NaN, failures, best versus latest."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from fakes import finished_record

from harness.ranking import METRIC_TABLE_COLUMNS, export, metric_table, rank_table
from harness.spec import MetricSpec
from harness.store import Store

MAE = MetricSpec(name="mae", goal="minimize", primary=True, precision=2)
RMSE = MetricSpec(name="rmse", goal="minimize", precision=2)
ACC = MetricSpec(name="acc", goal="maximize", primary=True, precision=3)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _table(rows: list[dict[str, object]]) -> pd.DataFrame:
    out = []
    for i, row in enumerate(rows):
        base: dict[str, object] = {"team": f"t{i}", "status": "succeeded", "submitted_at": T0 + dt.timedelta(minutes=i)}
        base.update(row)
        out.append(base)
    return pd.DataFrame(out)


def _ranks(df: pd.DataFrame) -> list[object]:
    return [None if pd.isna(r) else int(r) for r in df["rank"]]


def test_competition_ranking_shares_ranks_and_skips() -> None:
    df = rank_table(_table([{"mae": 3.0}, {"mae": 1.0}, {"mae": 2.0}, {"mae": 2.0}]), [MAE])
    assert list(df["team"]) == ["t1", "t2", "t3", "t0"]
    assert _ranks(df) == [1, 2, 2, 4]


def test_tie_broken_by_next_metric_in_spec_order() -> None:
    df = rank_table(
        _table([{"mae": 2.0, "rmse": 5.0}, {"mae": 2.0, "rmse": 4.0}, {"mae": 1.0, "rmse": 9.0}]), [MAE, RMSE]
    )
    assert list(df["team"]) == ["t2", "t1", "t0"]
    assert _ranks(df) == [1, 2, 3]


def test_full_tie_shares_rank_and_lists_earlier_submission_first() -> None:
    rows = [
        {"mae": 2.0, "team": "late", "submitted_at": T0 + dt.timedelta(hours=2)},
        {"mae": 2.0, "team": "early", "submitted_at": T0},
    ]
    df = rank_table(_table(rows), [MAE])
    assert list(df["team"]) == ["early", "late"]
    assert _ranks(df) == [1, 1]


def test_maximize_direction_ranks_larger_first() -> None:
    df = rank_table(_table([{"acc": 0.5}, {"acc": 0.9}, {"acc": 0.7}]), [ACC])
    assert list(df["acc"]) == [0.9, 0.7, 0.5]
    assert _ranks(df) == [1, 2, 3]


@pytest.mark.parametrize("metric", [MAE, ACC])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_never_rank_above_valid(metric: MetricSpec, bad: float) -> None:
    worst_valid = 1e9 if metric.goal == "minimize" else -1e9
    df = rank_table(_table([{metric.name: bad}, {metric.name: worst_valid}]), [metric])
    assert list(df["team"]) == ["t1", "t0"]
    assert _ranks(df) == [1, None]


@pytest.mark.parametrize("status", ["failed", "timed_out", "invalid_output", "evaluator_error", "rejected"])
def test_failures_never_rank_even_with_a_better_looking_value(status: str) -> None:
    df = rank_table(_table([{"mae": 0.0, "status": status}, {"mae": 50.0}]), [MAE])
    assert list(df["team"]) == ["t1", "t0"]
    assert _ranks(df) == [1, None]
    assert df["rank"].dtype == "Int64"


def test_missing_secondary_metric_sorts_last_within_a_tie() -> None:
    df = rank_table(_table([{"mae": 1.0, "rmse": np.nan}, {"mae": 1.0, "rmse": 3.0}]), [MAE, RMSE])
    assert list(df["team"]) == ["t1", "t0"]


def _record(
    store: Store,
    team: str,
    content: str,
    scores: dict[str, float] | None,
    *,
    status: str = "succeeded",
    minutes: int = 0,
) -> int:
    sub_id, _ = store.register_submission(
        "task",
        team,
        content,
        source=content,
        kind="script",
        entry="main.py",
        submitted_at=T0 + dt.timedelta(minutes=minutes),
    )
    run_id = store.start_run(sub_id, "test")
    split_scores = {"public": scores, "private": {k: v + 1 for k, v in scores.items()}} if scores else None
    store.finish_run(
        run_id, finished_record(status, reason="" if status == "succeeded" else "boom", scores=split_scores)
    )
    return run_id


@pytest.fixture()
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    s.ensure_task("task", "A task", "0" * 64)
    yield s
    s.close()


def test_best_versus_latest_selection(store: Store) -> None:
    _record(store, "a", "a1" * 32, {"mae": 5.0}, minutes=0)
    _record(store, "a", "a2" * 32, {"mae": 9.0}, minutes=10)
    _record(store, "b", "b1" * 32, {"mae": 7.0}, minutes=5)
    best = metric_table(None, store, task_id="task", metrics=[MAE], selection="best")
    assert list(best["team"]) == ["a", "b"]
    assert list(best["mae"]) == [5.0, 7.0]
    latest = metric_table(None, store, task_id="task", metrics=[MAE], selection="latest")
    assert list(latest["team"]) == ["b", "a"]
    assert list(latest["mae"]) == [7.0, 9.0]


def test_best_falls_back_to_latest_failure_and_latest_can_be_a_failure(store: Store) -> None:
    _record(store, "a", "a1" * 32, {"mae": 5.0}, minutes=0)
    _record(store, "a", "a2" * 32, None, status="failed", minutes=10)
    _record(store, "c", "c1" * 32, None, status="timed_out", minutes=3)
    best = metric_table(None, store, task_id="task", metrics=[MAE], selection="best")
    assert list(best["team"]) == ["a", "c"]
    assert list(best["status"]) == ["succeeded", "timed_out"]
    latest = metric_table(None, store, task_id="task", metrics=[MAE], selection="latest")
    assert list(latest["status"]) == ["failed", "timed_out"]
    assert latest["rank"].isna().all()


def test_private_split_keeps_selection_by_public_scores(store: Store) -> None:
    _record(store, "a", "a1" * 32, {"mae": 5.0}, minutes=0)
    private = metric_table(None, store, task_id="task", metrics=[MAE], split="private")
    assert list(private["mae"]) == [6.0]


def test_identical_content_from_two_teams_is_flagged(store: Store) -> None:
    _record(store, "a", "ff" * 32, {"mae": 5.0})
    _record(store, "b", "ff" * 32, {"mae": 5.0}, minutes=1)
    df = metric_table(None, store, task_id="task", metrics=[MAE])
    assert dict(zip(df["team"], df["identical_to"], strict=True)) == {"a": "b", "b": "a"}
    assert _ranks(df) == [1, 1]


def test_columns_and_dtypes_are_the_documented_ones(store: Store) -> None:
    _record(store, "a", "a1" * 32, {"mae": 5.0})
    df = metric_table(None, store, task_id="task", metrics=[MAE])
    assert list(df.columns) == [*METRIC_TABLE_COLUMNS, "mae"]
    for column, dtype in METRIC_TABLE_COLUMNS.items():
        assert str(df[column].dtype) == dtype, column
    assert df["mae"].dtype == np.float64


def test_no_results_is_a_clear_error(store: Store) -> None:
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="no results for task 'other'.*harness run"):
        metric_table(None, store, task_id="other", metrics=[MAE])


def test_exports(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _record(store, "a", "a1" * 32, {"mae": 5.123456})
    df = metric_table(None, store, task_id="task", metrics=[MAE])
    _record(store, "b", "b1" * 32, None, status="failed", minutes=1)
    df = metric_table(None, store, task_id="task", metrics=[MAE])
    markdown = export(df, [MAE], "markdown") or ""
    assert "5.12" in markdown and "failed" in markdown
    assert "<NA>" not in markdown and "nan" not in markdown
    assert "<NA>" not in (export(df, [MAE], "html") or "")
    assert "5.123456" in (export(df, [MAE], "csv") or "")
    export(df, [MAE], "parquet", tmp_path / "lb.parquet")
    assert pd.read_parquet(tmp_path / "lb.parquet")["team"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="unknown format"):
        export(df, [MAE], "xlsx")


def test_only_unfinished_runs_say_so_instead_of_no_results(store: Store) -> None:
    from harness.errors import HarnessError

    sub_id, _ = store.register_submission("task", "a", "a1" * 32, source="x", kind="script", entry="main.py")
    store.start_run(sub_id, "test")  # its coordinator was interrupted
    with pytest.raises(HarnessError, match=r"no finished results for task 'task' yet: 1 run\(s\) were interrupted"):
        metric_table(None, store, task_id="task", metrics=[MAE])


def test_a_metric_no_run_was_scored_with_is_warned_about(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    _record(store, "a", "a1" * 32, {"mae": 5.0})
    renamed = MetricSpec(name="max_err", goal="minimize", precision=2)
    with caplog.at_level("WARNING", logger="harness.ranking"):
        metric_table(None, store, task_id="task", metrics=[MAE, renamed])
    assert "metric(s) max_err" in caplog.text and "--rerun" in caplog.text


def test_markdown_shows_numbers_at_the_metrics_precision_not_six_digits(store: Store) -> None:
    _record(store, "a", "a1" * 32, {"mae": 12346.048})
    markdown = export(metric_table(None, store, task_id="task", metrics=[MAE]), [MAE], "markdown") or ""
    assert "12346.05" in markdown  # tabulate's default would print 12346
