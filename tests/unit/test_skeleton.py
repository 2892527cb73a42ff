"""`harness task new`: the skeleton of each kind loads as a spec, marks its placeholders, runs its prepare and examples
on the host, and never overwrites; the package data (skeleton templates, report notebooks) is found through
importlib.resources. The sandboxed `task validate` of each skeleton is in tests/integration/test_task_new.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report.run import LEADERBOARD_NOTEBOOK, NOTEBOOKS_DIR, REVIEW_NOTEBOOK
from harness.skeleton import KINDS, TODO_MARK, new_task
from harness.spec import load_spec


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_skeleton_of_each_kind_loads_and_its_examples_run(tmp_path: Path, kind: str) -> None:
    task_dir = new_task(f"my-{kind}", kind, tmp_path)
    assert task_dir == tmp_path.resolve() / "task_specs" / f"my-{kind}"
    spec = load_spec(task_dir)
    assert spec.id == f"my-{kind}"
    assert spec.evaluator_path == tmp_path.resolve() / "evaluators" / f"my_{kind}.py"
    assert spec.baseline_path is not None
    assert spec.baseline_path == tmp_path.resolve() / "examples" / "submissions" / f"my-{kind}" / "baseline"
    for name in ("task.yaml", "README.md", "prepare.py"):
        assert TODO_MARK in (task_dir / name).read_text(), name
    assert TODO_MARK in spec.evaluator_path.read_text()
    notebook = json.loads((task_dir / "starter" / "solution.ipynb").read_text())
    assert [c["metadata"].get("tags") for c in notebook["cells"]] == [None, ["parameters"], None]

    data = tmp_path / "data"
    subprocess.run([sys.executable, str(task_dir / "prepare.py"), str(data)], check=True, cwd=task_dir)
    test_ids = [r["id"] for r in csv.DictReader((data / "input" / "test" / "test.csv").open())]
    hidden = list(csv.DictReader((data / "hidden" / "test.csv").open()))
    assert [r["id"] for r in hidden] == test_ids
    assert {r["split"] for r in hidden} == {"public", "private"}
    for example in ("baseline", "good", "broken"):
        out = tmp_path / "out" / example
        env = {**os.environ, "HARNESS_INPUT_DIR": str(data / "input" / "validation"), "HARNESS_OUTPUT_DIR": str(out)}
        main = spec.baseline_path.parent / example / "main.py"
        subprocess.run([sys.executable, str(main)], check=True, env=env, capture_output=True)
        header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
        assert header[0] == "id"
        expected = ["id", *spec.target_columns] if example != "broken" else ["id"]
        assert header == expected, example


def test_new_task_never_overwrites_and_refuses_bad_input(tmp_path: Path) -> None:
    new_task("demand", "forecast", tmp_path)
    before = (tmp_path / "task_specs" / "demand" / "task.yaml").read_text()
    with pytest.raises(HarnessError, match="already exists"):
        new_task("demand", "regression", tmp_path)
    assert (tmp_path / "task_specs" / "demand" / "task.yaml").read_text() == before
    with pytest.raises(HarnessError, match="unknown task kind 'images'; expected one of regression"):
        new_task("other", "images", tmp_path)
    with pytest.raises(HarnessError, match="not a slug"):
        new_task("My Task", "regression", tmp_path)
    with pytest.raises(HarnessError, match="is 300 characters long; use at most 64"):
        new_task("a" * 300, "regression", tmp_path)
    assert not (tmp_path / "task_specs" / "other").exists()


def test_report_notebooks_are_package_data() -> None:
    assert NOTEBOOKS_DIR.parts[-3:] == ("harness", "report", "templates")
    for name in (LEADERBOARD_NOTEBOOK, REVIEW_NOTEBOOK):
        assert json.loads((NOTEBOOKS_DIR / name).read_text())["nbformat"] == 4


def test_own_report_templates_folder_must_hold_the_notebook(tmp_path: Path) -> None:
    from harness.report.errors import ReportError
    from harness.report.run import _template

    assert _template(LEADERBOARD_NOTEBOOK) == NOTEBOOKS_DIR / LEADERBOARD_NOTEBOOK
    (tmp_path / LEADERBOARD_NOTEBOOK).write_text("{}")
    assert _template(LEADERBOARD_NOTEBOOK, tmp_path) == tmp_path / LEADERBOARD_NOTEBOOK
    with pytest.raises(ReportError, match=r"submission_review.ipynb is missing: a templates folder holds .*copy them"):
        _template(REVIEW_NOTEBOOK, tmp_path)
