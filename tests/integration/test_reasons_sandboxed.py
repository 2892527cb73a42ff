"""Reasons a student can act on (issue 18), from real runs in the minimal task's image: the same from
``harness run`` and ``harness check``.

One batch (``harness run`` over four submissions) is shared by the tests; each submission is then self-checked
in the same image. The minimal image has no pandas: the pandas idioms (``df.append``, ``pd.read_csv("https://...")``)
run in the NYC task's image, in tests/integration/test_selfcheck.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile import corpus

from harness.store import ScoredRun, Store

pytestmark = pytest.mark.integration

#: Submission name -> how it is written (notebook cells, or a script's source).
NOTEBOOKS = {
    "missing-module": ["import xgboost\nmodel = xgboost.XGBRegressor()"],
    "input-column": [
        "import csv\nwith open(f'{input_dir}/test.csv') as fh:\n    rows = list(csv.DictReader(fh))",
        "ys = [float(row['y']) for row in rows]",
    ],
    # a laptop's relative path: the code runs in the submission folder, the data is in input_dir
    "relative-path": ["import csv\nwith open('train.csv') as fh:\n    rows = list(csv.DictReader(fh))"],
}
SCRIPT_NETWORK = """\
import urllib.request

data = urllib.request.urlopen("https://example.org/flights.csv", timeout=10).read()
"""


@dataclass
class Judged:
    """The shared batch: the task, the submissions folder and each team's run."""

    task: Path
    subs: Path
    runs: dict[str, ScoredRun]


@pytest.fixture(scope="module")
def judged(minimal_task: Path, test_image: str, tmp_path_factory: pytest.TempPathFactory) -> Judged:
    """``harness run`` over the four submissions, once for the module."""
    root = tmp_path_factory.mktemp("reasons")
    subs = root / "submissions"
    subs.mkdir()
    for name, cells in NOTEBOOKS.items():
        corpus.write_notebook(corpus.notebook(cells))(subs / f"{name}.ipynb")
    corpus.write_script(SCRIPT_NETWORK)(subs / "network-read")
    home = root / "home"
    argv = [sys.executable, "-m", "harness.cli", "run", str(minimal_task), str(subs), "--home", str(home)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        runs = {run.team: run for run in store.runs("minimal", active_only=False)}
    finally:
        store.close()
    return Judged(minimal_task, subs, runs)


def _checked(judged: Judged, name: str, tmp_path: Path) -> tuple[str, str]:
    """``harness check`` (the API the CLI calls) of one submission of the batch: its status and reason."""
    from harness.selfcheck import check

    entry = judged.subs / name if (judged.subs / name).is_dir() else judged.subs / f"{name}.ipynb"
    result = check(judged.task, entry, sandbox="docker", artifacts_dir=tmp_path / "check")
    return result.status, result.reason


def test_a_missing_module_says_it_is_not_in_the_sandbox_and_cannot_be_installed(judged: Judged, tmp_path: Path) -> None:
    run = judged.runs["missing-module"]
    assert run.status == "failed"
    assert run.reason.startswith(
        "In [3] of the executed notebook (Cell 3 in papermill's log) raised ModuleNotFoundError: No module named "
        "'xgboost'; 'xgboost' is not in the sandbox"
    ), run.reason
    assert "SANDBOX_PACKAGES.md" in run.reason and "!pip install does nothing" in run.reason
    assert _checked(judged, "missing-module", tmp_path) == ("failed", run.reason)


def test_a_keyerror_on_an_input_column_names_the_file_and_its_columns(judged: Judged, tmp_path: Path) -> None:
    run = judged.runs["input-column"]
    assert run.status == "failed"
    assert run.reason == (
        "In [4] of the executed notebook (Cell 4 in papermill's log) raised KeyError: 'y'; 'y' is not a column of "
        "test.csv in input_dir (its columns: id, x); train.csv has it; see the inputs in the task's README.md"
    )
    assert _checked(judged, "input-column", tmp_path) == ("failed", run.reason)


def test_a_network_read_says_the_sandbox_has_no_network_and_keeps_the_exception_line(
    judged: Judged, tmp_path: Path
) -> None:
    run = judged.runs["network-read"]
    assert run.status == "failed"
    assert run.reason.startswith("exited with code 1: URLError: <urlopen error"), run.reason
    assert run.reason.endswith(
        "; the sandbox has no network, by design: read the task's data from input_dir (test.csv, train.csv) "
        "instead of downloading it"
    ), run.reason
    assert _checked(judged, "network-read", tmp_path) == ("failed", run.reason)


def test_a_relative_path_to_an_input_file_says_to_read_it_from_input_dir(judged: Judged, tmp_path: Path) -> None:
    run = judged.runs["relative-path"]
    assert run.status == "failed"
    assert run.reason.startswith(
        "In [3] of the executed notebook (Cell 3 in papermill's log) raised FileNotFoundError: [Errno 2] No such "
        "file or directory: 'train.csv'; train.csv is in input_dir, not in the folder your code runs in"
    ), run.reason
    assert _checked(judged, "relative-path", tmp_path) == ("failed", run.reason)
