"""Task authors' tools (harness.tasks) on the toy task: atomic prepare in an isolated environment, and validate
catching unsound tasks (missing files, leaks, degenerate submissions that score, a prepare that is not
deterministic)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from rich.console import Console
from spec_fixtures import TEST_REFERENCE, toy_raw, write_toy_task

from harness.errors import PrepareError, SpecError
from harness.settings import get_settings
from harness.spec import load_spec
from harness.tasks import TaskValidationReport, prepare_environment, prepare_task, summarise_files, validate_task


def leftovers(task: Path) -> list[str]:
    """Half-built or old data folders beside the data root (the prepare lock file is meant to stay)."""
    return sorted(p.name for p in task.iterdir() if p.name.startswith(".data.") and p.name != ".data.prepare.lock")


def rendered(report: TaskValidationReport) -> str:
    console = Console(record=True, width=200)
    console.print(report.render())
    return console.export_text()


def check(report: TaskValidationReport, name: str) -> tuple[str, str]:
    found = [c for c in report.checks if c.name == name]
    assert found, [c.name for c in report.checks]
    return found[0].status, found[0].detail


# -- prepare ---------------------------------------------------------------------------------------------------
def test_prepare_builds_the_data_readable_by_others_and_echoes_the_script(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    lines: list[str] = []
    root = prepare_task(task, echo=lines.append)
    assert root == (task / "data").resolve()
    assert (root / "hidden" / "test_reference.csv").read_text() == TEST_REFERENCE.to_csv(index=False)
    assert os.stat(root).st_mode & 0o777 == 0o755
    assert "  wrote test_input" in lines and "  done" in lines
    assert leftovers(task) == []


def test_prepare_keeps_identical_data_untouched(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    inode = prepare_task(task, echo=lambda _: None).stat().st_ino
    lines: list[str] = []
    assert prepare_task(task, echo=lines.append).stat().st_ino == inode
    assert any("the data is unchanged" in line for line in lines)


def test_prepare_replaces_changed_data(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    (task / "data" / "stale.txt").write_text("from an older prepare")
    root = prepare_task(task, echo=lambda _: None)
    assert not (root / "stale.txt").exists()
    assert (root / "validation_reference.csv").is_file()
    assert leftovers(task) == []


def test_failed_prepare_keeps_the_old_data_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = write_toy_task(tmp_path / "task")
    before = sorted(p.relative_to(task) for p in (task / "data").rglob("*"))
    monkeypatch.setenv("TOY_PREPARE_FAIL", "1")
    with pytest.raises(PrepareError) as info:  # the script failed, not the spec
        prepare_task(task, echo=lambda _: None)
    assert info.value.field == "data.prepare"
    assert info.value.message.startswith("prepare.py failed with exit code 3; its last output:")
    assert "something went wrong halfway" in info.value.message
    assert info.value.file.endswith("prepare.py")
    assert sorted(p.relative_to(task) for p in (task / "data").rglob("*")) == before
    assert leftovers(task) == []


def test_prepare_past_its_timeout_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    monkeypatch.setenv("TOY_PREPARE_SLEEP", "30")
    with pytest.raises(PrepareError, match=r"prepare.py did not finish within 1 s"):
        prepare_task(task, echo=lambda _: None, timeout_s=1)
    assert leftovers(task) == [] and not (task / "data").exists()


def test_prepare_without_a_script(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    (task / "prepare.py").unlink()
    with pytest.raises(SpecError, match="prepare script 'prepare.py' does not exist") as info:
        prepare_task(task, echo=lambda _: None)
    assert info.value.field == "data.prepare"


def test_prepare_removes_leftovers_of_an_interrupted_prepare(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    (task / ".data.building-abc123").mkdir()
    lines: list[str] = []
    prepare_task(task, echo=lines.append)
    assert leftovers(task) == []
    assert "removing .data.building-abc123, left by an interrupted prepare" in lines


def test_prepare_runs_in_an_isolated_cached_environment_without_the_harness(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    with (task / "prepare.py").open("a") as fh:
        fh.write(
            "\nimport importlib.util\n"
            "(out / 'public' / 'env.txt').write_text(f'{sys.prefix}|{importlib.util.find_spec(\"harness\") is None}')\n"
        )
    root = prepare_task(task, echo=lambda _: None)
    prefix, no_harness = (root / "public" / "env.txt").read_text().split("|")
    env_root = get_settings().cache_folder() / "prepare-envs"
    assert Path(prefix).parent == env_root  # one environment per package set, shared by every task that has it
    assert no_harness == "True"  # not the harness's own Python, and PYTHONPATH does not leak in
    assert prepare_environment(load_spec(task), echo=lambda _: None) == Path(prefix) / "bin" / "python"


def test_an_uninstallable_prepare_package_is_named_with_its_spec_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = toy_raw()
    raw["data"]["prepare_packages"] = ["no-such-harness-test-package==9.9"]
    task = write_toy_task(tmp_path / "task", raw, data=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # fail fast, offline: no index, an empty folder of wheels
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(PrepareError) as info:
        prepare_task(task, echo=lambda _: None)
    error = info.value
    assert error.field == "data.prepare_packages" and error.file.endswith("task.yaml")
    assert "cannot install package 'no-such-harness-test-package==9.9' for the prepare script" in error.message
    assert "No matching distribution found for no-such-harness-test-package==9.9" in error.output
    assert "data.prepare_packages" in str(error)
    assert list((tmp_path / "cache" / "prepare-envs").glob("*/bin")) == []  # no half-built environment is kept
    assert not (task / "data").exists()


def test_summaries_count_files_per_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    for i in range(1797):
        (tmp_path / "images" / f"{i}.png").touch()
    (tmp_path / "test.csv").touch()
    assert summarise_files(tmp_path) == "1 file (test.csv); images/: 1,797 files"
    assert summarise_files(tmp_path / "images") == "1,797 files"
    assert summarise_files(tmp_path / "absent") == "missing"


# -- validate --------------------------------------------------------------------------------------------------
BASELINE = """import csv, os
from pathlib import Path

inp, out = Path(os.environ["HARNESS_INPUT_DIR"]), Path(os.environ["HARNESS_OUTPUT_DIR"])
rows = list(csv.DictReader((inp / "test.csv").open()))
with (out / "predictions.csv").open("w") as fh:
    fh.write("id,y\\n" + "".join(f"{r['id']},{float(r['x']) * SLOPE + 1}\\n" for r in rows))
"""


def complete_toy(task: Path, *, slope: float = 1.0) -> Path:
    """Give the toy task what validate asks of every task: a README, a starter notebook and a baseline script
    (predicting ``y = slope * x + 1``: with slope 1 exact on the test phase, MAE 1.25 on validation). Script
    submissions only, so no kernel is needed."""
    (task / "README.md").write_text("# Toy delays\n\nPredict y.\n")
    (task / "starter").mkdir()
    (task / "starter" / "solution.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    (task / "baseline").mkdir()
    (task / "baseline" / "main.py").write_text(BASELINE.replace("SLOPE", repr(slope)))
    raw = yaml.safe_load((task / "task.yaml").read_text())
    raw["baseline"] = "baseline"
    raw["submission"] = {"kinds": ["script"]}
    (task / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return task


def test_validate_a_sound_task(tmp_path: Path) -> None:
    task = complete_toy(write_toy_task(tmp_path / "task"))
    lines: list[str] = []
    report = validate_task(task, sandbox="process", echo=lines.append)
    assert report.ok, str(report)
    assert check(report, "reference vs itself (test)")[0] == "pass"
    assert report.scores["reference (test)"] == {
        "public": {"mae": 0.0, "within_1": 1.0},
        "private": {"mae": 0.0, "within_1": 1.0},
    }
    assert check(report, "reference (test)") == (
        "pass",
        "10 rows; columns id, y, split; splits: public 3 (30%), private 7 (70%)",
    )
    assert check(report, "input folder (test)") == ("pass", "2 files (test.csv, train.csv)")
    assert check(report, "README, starter, baseline")[0] == "pass"
    assert report.scores["baseline (validation)"] == {"validation": {"mae": 1.25, "within_1": 0.75}}
    assert report.scores["baseline (test)"] == {
        "public": {"mae": 0.0, "within_1": 1.0},
        "private": {"mae": 0.0, "within_1": 1.0},
    }
    assert check(report, "starter notebook (validation)") == ("skip", "submission.kinds does not accept notebooks")
    status, detail = check(report, "degenerate submissions")
    assert status == "pass" and "constant median (mae 0.917 on public)" in detail
    assert "shuffled reference (mae" in detail
    # the validation reference's median (1.25) scored on the test phase
    assert report.scores["degenerate: constant median"] == {
        "public": {"mae": pytest.approx(2.75 / 3), "within_1": pytest.approx(2 / 3)},
        "private": {"mae": 5.75, "within_1": 0.0},
    }
    assert check(report, "prepare is deterministic") == ("pass", "two runs wrote the same 6 files, byte for byte")
    text = rendered(report)
    assert "task is sound" in text and "reference (test)" in text and "degenerate: constant median" in text


def test_validate_names_a_missing_readme_starter_and_baseline(tmp_path: Path) -> None:
    report = validate_task(write_toy_task(tmp_path / "task"), sandbox="process", echo=lambda _: None)
    assert not report.ok
    status, detail = check(report, "README, starter, baseline")
    assert status == "fail"
    assert "no README.md for teams" in detail
    assert "no starter notebook starter/solution.ipynb" in detail
    assert "task.yaml names no baseline submission" in detail
    assert check(report, "baseline (validation)")[0] == "skip"
    assert check(report, "degenerate submissions")[0] == "skip"  # nothing to compare with


def test_validate_fails_a_task_whose_baseline_loses_to_a_constant(tmp_path: Path) -> None:
    task = complete_toy(write_toy_task(tmp_path / "task"), slope=50.0)  # far off: MAE 74
    report = validate_task(task, sandbox="process", echo=lambda _: None)
    assert not report.ok
    status, detail = check(report, "degenerate submissions")
    assert status == "fail"
    assert (
        "the degenerate submission 'constant median' scores mae 0.917 on public, not worse than the "
        "baseline's 49.000" in detail
    )


def test_validate_catches_a_prepare_that_is_not_deterministic(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    with (task / "prepare.py").open("a") as fh:
        fh.write("\nimport random\n(out / 'public' / 'noise.txt').write_text(str(random.random()))\n")
    status, detail = check(validate_task(task, sandbox="process", echo=lambda _: None), "prepare is deterministic")
    assert status == "fail"
    assert detail.startswith("1 of 7 files differ between two runs, first: public/noise.txt (differs)")


def test_validate_reports_an_invalid_spec_as_a_failed_check(tmp_path: Path) -> None:
    raw = toy_raw()
    raw["metrics"][1]["goal"] = "lower"
    report = validate_task(write_toy_task(tmp_path / "task", raw), sandbox="process", echo=lambda _: None)
    assert not report.ok
    status, detail = check(report, "spec loads")
    assert status == "fail" and "metrics[1].goal: expected 'minimize' or 'maximize', got 'lower'" in detail
    assert "task has problems" in rendered(report)


def test_validate_without_prepared_data_says_to_prepare(tmp_path: Path) -> None:
    report = validate_task(write_toy_task(tmp_path / "task", data=False), sandbox="process", echo=lambda _: None)
    status, detail = check(report, "data prepared")
    assert status == "fail" and "run `harness task prepare" in detail


def test_validate_catches_labels_of_test_rows_in_an_input_folder(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    TEST_REFERENCE[["id", "y"]].to_csv(task / "data" / "test_input" / "train.csv", index=False)
    report = validate_task(task, sandbox="process", echo=lambda _: None)
    status, detail = check(report, "hidden reference isolated")
    assert status == "fail"
    assert "holds labels of 10 hidden test rows, e.g. t01" in detail


def test_validate_catches_a_copy_of_the_hidden_reference(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    (task / "data" / "public" / "answers.bin").write_bytes((task / "data/hidden/test_reference.csv").read_bytes())
    status, detail = check(validate_task(task, sandbox="process", echo=lambda _: None), "hidden reference isolated")
    assert status == "fail" and "answers.bin is a copy of the hidden reference" in detail


def test_validate_catches_targets_in_the_rows_to_predict(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    pd.DataFrame({"id": ["v1", "v2", "v3"], "y": [1, 2, 3]}).to_csv(
        task / "data" / "validation_input" / "test.csv", index=False
    )
    status, detail = check(validate_task(task, sandbox="process", echo=lambda _: None), "input folder (validation)")
    assert status == "fail"
    assert "test.csv holds target column(s) ['y']" in detail
    assert "test.csv has 3 ids, the reference 4; 1 missing, 0 extra" in detail


def test_validate_catches_an_evaluator_that_misses_its_best_value(tmp_path: Path) -> None:
    raw = toy_raw()
    raw["metrics"][0]["best"] = 1.0  # wrong: a perfect prediction has MAE 0
    report = validate_task(write_toy_task(tmp_path / "task", raw), sandbox="process", echo=lambda _: None)
    status, detail = check(report, "reference vs itself (validation)")
    assert status == "fail" and "mae on validation is 0.0, best is 1.0" in detail


def test_validate_catches_an_evaluator_returning_an_undeclared_metric(tmp_path: Path) -> None:
    raw = toy_raw()
    raw["evaluator"]["class_name"] = "ExtraMetricEvaluator"
    report = validate_task(write_toy_task(tmp_path / "task", raw), sandbox="process", echo=lambda _: None)
    status, detail = check(report, "reference vs itself (test)")
    assert status == "fail" and "returned metric(s) ['r2']" in detail


def test_validate_reports_a_missing_baseline(tmp_path: Path) -> None:
    raw = toy_raw()
    raw["baseline"] = "no-such-baseline"
    report = validate_task(write_toy_task(tmp_path / "task", raw), sandbox="process", echo=lambda _: None)
    status, detail = check(report, "README, starter, baseline")
    assert status == "fail" and "no-such-baseline does not exist" in detail
    assert check(report, "baseline (validation)")[0] == "skip"
