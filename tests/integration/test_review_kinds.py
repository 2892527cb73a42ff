"""The judges' review page per task kind, end to end: papermill runs the real ``submission_review.ipynb`` in a real
kernel for a classification task with class probabilities and for a quantile forecast, nbconvert writes HTML,
headless Chromium renders it.

Each task (one per kind, built once per module) is a folder with a tiny prepared dataset and a store filled
through :class:`harness.store.Store`'s public methods, each run with its predictions kept as an artifact, the way
the pipeline lays them out (as in ``test_report_notebooks.py``). The reference names its truth columns apart from
the prediction columns (``weather`` for ``p_rain``, ``p_snow``, ``p_sun``; ``rentals`` for ``q10``, ``q50``,
``q90``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, log_loss, mean_pinball_loss, precision_recall_fscore_support
from test_report_notebooks import _render, needs_chromium

from harness.record import RunRecord
from harness.report import ReportPaths, read_glued, write_report
from harness.store import Store

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
CLASSES = ["rain", "snow", "sun"]
LEVELS = [0.1, 0.5, 0.9]

COMMON_YAML = """
customer: the test suite
data:
  inputs: {validation: validation_input, test: test_input}
  references: {validation: validation_reference.csv, test: hidden/test_reference.csv}
  predict_file: test.csv
evaluator: {path: evaluator.py, class_name: ToyEvaluator}
limits: {time_s: 60, memory_mb: 512}
image: {packages: []}
"""

WEATHER_YAML = """
id: toy-weather
title: Toy weather type
description: Give the probability of each weather type of each day.
predictions:
  id_column: date
  columns: [{name: date, dtype: string}]
  probabilities:
    - {target: weather, classes: [rain, snow, sun], tolerance: 0.001}
metrics:
  - {name: log_loss, goal: minimize, primary: true, precision: 3}
report: {group_by: [season, station]}
"""

RENTALS_YAML = """
id: toy-rentals
title: Toy bike rentals
description: Forecast hourly rentals with 10/50/90 % quantiles.
predictions:
  id_column: hour_id
  columns: [{name: hour_id, dtype: string}]
  quantiles:
    - {target: rentals, levels: [0.1, 0.5, 0.9], min: 0}
metrics:
  - {name: pinball, goal: minimize, primary: true, precision: 2}
report: {group_by: [origin], horizon: horizon}
"""


@dataclass(frozen=True)
class KindTask:
    """A task folder, a harness home with a filled store, and the frames that went into it."""

    task_dir: Path
    home: Path
    db_url: str
    reference: pd.DataFrame
    test_input: pd.DataFrame
    predictions: dict[str, pd.DataFrame]


def _build(root: Path, yaml: str, test_input: pd.DataFrame, reference: pd.DataFrame, scorer, predictions) -> KindTask:  # type: ignore[no-untyped-def]
    """Write the task and its data, then one scored run per team (teams in ``predictions`` order)."""
    task_dir = root / "task"
    for folder in ("data/test_input", "data/validation_input", "data/hidden"):
        (task_dir / folder).mkdir(parents=True)
    (task_dir / "task.yaml").write_text(yaml + COMMON_YAML, encoding="utf-8")
    (task_dir / "evaluator.py").write_text("class ToyEvaluator:\n    pass\n", encoding="utf-8")
    test_input.to_csv(task_dir / "data" / "test_input" / "test.csv", index=False)
    reference.to_csv(task_dir / "data" / "hidden" / "test_reference.csv", index=False)
    id_column = test_input.columns[0]
    (task_dir / "data" / "validation_input" / "validation.csv").write_text(f"{id_column}\n", encoding="utf-8")
    header = ",".join(reference.columns)
    (task_dir / "data" / "validation_reference.csv").write_text(f"{header}\n", encoding="utf-8")
    task_id = yaml.split("id: ", 1)[1].split("\n", 1)[0].strip()
    home = root / "home"
    db_url = f"sqlite:///{home / 'results.sqlite'}"
    store = Store(db_url)
    try:
        store.ensure_task(task_id, task_id, "0" * 64)
        for index, (team, frame) in enumerate(predictions.items()):
            submitted = T0 + dt.timedelta(hours=index)
            content_hash = (team.encode().hex() * 32)[:64]
            submission_id, _created = store.register_submission(
                task_id,
                team,
                content_hash,
                source=str(root / "incoming" / team),
                kind="script",
                entry="main.py",
                submitted_at=submitted,
            )
            run_id = store.start_run(submission_id, "test")
            artifacts = home / "artifacts" / task_id / f"run-{run_id}"
            (artifacts / "output").mkdir(parents=True)
            (artifacts / "log.txt").write_text(f"[harness] run {run_id} of {team}\n", encoding="utf-8")
            frame.to_csv(artifacts / "output" / "predictions.csv", index=False)
            joined = reference.merge(frame, on=id_column)
            scores = {str(s): scorer(part) for s, part in joined.groupby("split")}
            record = RunRecord(
                task_id=task_id,
                phase="test",
                team=team,
                content_hash=content_hash,
                kind="script",
                status="succeeded",
                scores=scores,
                duration_s=3.0,
                peak_memory_mb=120.0,
                exit_code=0,
                artifacts_dir=str(artifacts),
                provenance={"limits": {"time_s": 60.0, "memory_mb": 512.0}},
                started_at=submitted + dt.timedelta(minutes=1),
                finished_at=submitted + dt.timedelta(minutes=2),
            )
            store.finish_run(run_id, record)
    finally:
        store.close()
    return KindTask(task_dir, home, db_url, reference, test_input, predictions)


def _weather_task(root: Path) -> KindTask:
    rng = np.random.default_rng(3)
    n = 90
    dates = pd.date_range("2012-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    truth = np.array(CLASSES)[rng.choice(3, n, p=[0.4, 0.15, 0.45])]
    test_input = pd.DataFrame(
        {"date": dates, "season": np.where(np.arange(n) < 45, "winter", "spring"), "temp_max": rng.normal(10, 5, n)}
    )
    reference = pd.DataFrame(
        {"date": dates, "weather": truth, "split": np.where(np.arange(n) % 3, "public", "private")}
    )
    reference["station"] = np.where(np.arange(n) % 2, "north", "south")  # a grouping column only the reference has
    onehot = (truth[:, None] == np.array(CLASSES)[None, :]).astype(float)
    noisy = 0.3 * onehot + 0.7 * rng.dirichlet([1, 1, 1], n)  # right about two days in three
    good = pd.DataFrame({"date": dates, **{f"p_{c}": noisy[:, i] for i, c in enumerate(CLASSES)}})
    uniform = pd.DataFrame({"date": dates, **{f"p_{c}": 1 / 3 for c in CLASSES}})

    def score(part: pd.DataFrame) -> dict[str, float]:
        probs = part[[f"p_{c}" for c in CLASSES]].to_numpy()
        return {"log_loss": float(log_loss(part["weather"], probs, labels=CLASSES))}

    return _build(root, WEATHER_YAML, test_input, reference, score, {"baseline": uniform, "forecaster": good})


def _rentals_task(root: Path) -> KindTask:
    rng = np.random.default_rng(5)
    origins, horizons = 4, 12
    rows = [(o, h) for o in range(1, origins + 1) for h in range(1, horizons + 1)]
    ids = [f"o{o}-h{h:02d}" for o, h in rows]
    test_input = pd.DataFrame(
        {"hour_id": ids, "origin": [f"day {o}" for o, _h in rows], "horizon": [h for _o, h in rows]}
    )
    level = 50 + 30 * np.sin(np.arange(len(rows)) / 3)
    truth = np.maximum(0, level + rng.normal(0, 8, len(rows))).round()
    reference = pd.DataFrame(
        {"hour_id": ids, "rentals": truth, "split": [("public", "private")[o % 2] for o, _h in rows]}
    )
    spread = 4 + 0.8 * test_input["horizon"].to_numpy()  # wider intervals further ahead
    good = pd.DataFrame(
        {"hour_id": ids, "q10": np.maximum(0, level - 1.28 * spread), "q50": level, "q90": level + 1.28 * spread}
    )
    constant = pd.DataFrame({"hour_id": ids, "q10": 30.0, "q50": 50.0, "q90": 70.0})

    def score(part: pd.DataFrame) -> dict[str, float]:
        losses = [mean_pinball_loss(part["rentals"], part[f"q{int(a * 100)}"], alpha=a) for a in LEVELS]
        return {"pinball": float(np.mean(losses))}

    return _build(root, RENTALS_YAML, test_input, reference, score, {"baseline": constant, "forecaster": good})


@pytest.fixture(scope="module")
def weather(tmp_path_factory: pytest.TempPathFactory) -> tuple[KindTask, ReportPaths]:
    task = _weather_task(tmp_path_factory.mktemp("weather"))
    out = tmp_path_factory.mktemp("weather-report")
    return task, write_report(task.task_dir, db_url=task.db_url, home=task.home, team="forecaster", out_dir=out)


@pytest.fixture(scope="module")
def rentals(tmp_path_factory: pytest.TempPathFactory) -> tuple[KindTask, ReportPaths]:
    task = _rentals_task(tmp_path_factory.mktemp("rentals"))
    out = tmp_path_factory.mktemp("rentals-report")
    return task, write_report(task.task_dir, db_url=task.db_url, home=task.home, team="forecaster", out_dir=out)


@pytest.fixture
def chromium_tmp() -> Iterator[Path]:
    """A short temporary folder for Chromium's own files (its singleton socket path must stay short)."""
    with tempfile.TemporaryDirectory(prefix="hc-") as folder:
        yield Path(folder)


def _assert_cells_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        assert cell.execution_count is not None, f"code cell {index} did not run"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"code cell {index} raised {errors[0].ename}: {errors[0].evalue}"
        stderr = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, f"code cell {index} wrote to stderr: {stderr}"


# --- classification with probabilities -----------------------------------------------------------------------------
def test_classification_review_shows_confusion_matrix_class_scores_and_reliability(
    weather: tuple[KindTask, ReportPaths],
) -> None:
    task, paths = weather
    assert paths.review_notebook is not None and paths.review_html is not None
    _assert_cells_clean(paths.review_notebook)
    # Recomputed independently: the most probable class of each public day against the reference's label.
    joined = task.reference.merge(task.predictions["forecaster"], on="date")
    public = joined[joined["split"] == "public"]
    predicted = np.array(CLASSES)[public[[f"p_{c}" for c in CLASSES]].to_numpy().argmax(axis=1)]
    expected = confusion_matrix(public["weather"], predicted, labels=CLASSES)
    glued = read_glued(paths.review_notebook, "confusion_weather")
    assert [row["true"] for row in glued] == CLASSES
    assert [[row[c] for c in CLASSES] for row in glued] == expected.tolist()
    precision, recall, _f1, support = precision_recall_fscore_support(
        public["weather"], predicted, labels=CLASSES, zero_division=0.0
    )
    scores = read_glued(paths.review_notebook, "class_scores_weather")
    assert [row["class"] for row in scores] == CLASSES and [row["support"] for row in scores] == list(support)
    assert [row["precision"] for row in scores] == pytest.approx(list(precision), rel=1e-12)
    assert [row["recall"] for row in scores] == pytest.approx(list(recall), rel=1e-12)
    reliability = read_glued(paths.review_notebook, "reliability_weather")
    assert reliability[0]["curve"] == "top class"
    assert {row["curve"] for row in reliability} == {"top class", *CLASSES}
    assert sum(row["rows"] for row in reliability if row["curve"] == "top class") == len(public)
    by_station = read_glued(paths.review_notebook, "errors_weather_by_station")  # a reference column groups too
    assert [row["station"] for row in by_station] == ["north", "south"]
    assert set(by_station[0]) == {"station", "rows", "missing", "error_rate", "log_loss"}  # no mean error or bias
    assert read_glued(paths.review_notebook, "errors_weather_by_season")
    page = paths.review_html.read_text(encoding="utf-8")
    for heading in ("Confusion matrix", "Precision and recall per class", "Reliability of the probabilities"):
        assert heading in page
    assert "mean_error" not in page and "p_rain_error" not in page
    assert page.count('src="data:image/png;base64,') == 5  # metrics, resources, confusion, reliability, groups


# --- quantile forecasts --------------------------------------------------------------------------------------------
def test_forecast_review_shows_interval_coverage_and_error_by_horizon(rentals: tuple[KindTask, ReportPaths]) -> None:
    task, paths = rentals
    assert paths.review_notebook is not None and paths.review_html is not None
    _assert_cells_clean(paths.review_notebook)
    joined = task.reference.merge(task.predictions["forecaster"], on="hour_id").merge(task.test_input, on="hour_id")
    public = joined[joined["split"] == "public"]
    inside = (public["q10"] <= public["rentals"]) & (public["rentals"] <= public["q90"])
    coverage = read_glued(paths.review_notebook, "coverage_rentals")
    assert [row["interval"] for row in coverage] == ["q10-q90"]
    assert coverage[0]["nominal"] == pytest.approx(0.8) and coverage[0]["rows"] == len(public)
    assert coverage[0]["observed"] == pytest.approx(float(inside.mean()), rel=1e-12)
    by_horizon = read_glued(paths.review_notebook, "errors_rentals_by_horizon")
    error = (public["q50"] - public["rentals"]).abs()
    expected = error.groupby(public["horizon"]).mean()
    assert [row["horizon"] for row in by_horizon] == list(expected.index)
    assert [row["mean_abs_error"] for row in by_horizon] == pytest.approx(list(expected), rel=1e-12)
    assert {"pinball_loss", "coverage"} <= set(by_horizon[0])
    assert len(read_glued(paths.review_notebook, "coverage_rentals_by_horizon")) == public["horizon"].nunique()
    assert read_glued(paths.review_notebook, "errors_rentals_by_origin")
    page = paths.review_html.read_text(encoding="utf-8")
    assert "Coverage of the quantile intervals" in page and "Error by horizon" in page
    assert page.count('src="data:image/png;base64,') == 5  # metrics, resources, coverage, horizon, groups


# --- the pages in a browser ----------------------------------------------------------------------------------------
@needs_chromium
@pytest.mark.parametrize("fixture", ["weather", "rentals"])
def test_review_pages_of_each_kind_render_in_chromium_without_console_errors(
    request: pytest.FixtureRequest, tmp_path: Path, chromium_tmp: Path, fixture: str
) -> None:
    _task, paths = request.getfixturevalue(fixture)
    assert paths.review_html is not None
    problems, (images, all_decoded, tables, text_chars), png = _render(
        paths.review_html, tmp_path / "profile", chromium_tmp
    )
    assert problems == []
    assert images >= 5 and all_decoded
    assert tables >= 4 and text_chars > 800
    assert png.startswith(b"\x89PNG")
