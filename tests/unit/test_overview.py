"""The hackathon overview: finding the tasks of a folder and the table's cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.overview import TaskOverview, find_tasks, format_overview

REPO = Path(__file__).resolve().parents[2]


def test_find_tasks_lists_every_task_folder_sorted() -> None:
    names = [p.name for p in find_tasks(REPO / "task_specs")]
    assert names == sorted(names)
    assert {"nyc-flight-delays", "seattle-weather", "dc-bikeshare", "meter-digits"} <= set(names)


def test_find_tasks_refuses_a_folder_without_tasks(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no task under"):
        find_tasks(tmp_path)
    with pytest.raises(HarnessError, match="not a folder"):
        find_tasks(tmp_path / "absent")


def test_format_overview_shows_the_leader_with_the_metric_precision(tmp_path: Path) -> None:
    page = tmp_path / "reports" / "t" / "leaderboard.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    rows = [
        TaskOverview("t", "regression", 3, 5, 4, "gbm", "mae", 20.51234, 2, page),
        TaskOverview("u", "forecast", 0, 0, 0, "", "pinball", None, 3, None),
    ]
    header, first, second = format_overview(rows, base=tmp_path)
    assert header == ["task", "kind", "teams", "valid runs", "leader (public)", "report"]
    assert first == ["t", "regression", "3", "4/5", "gbm (mae 20.51)", "reports/t/leaderboard.html"]
    assert second == ["u", "forecast", "0", "0/0", "-", "(no report)"]
