"""The data-science sandbox through real Docker and real kernels: plots kept in the executed notebook, the package
list from the image, a harmless ``harness.check`` cell, image save/load, and the process sandbox in the task's
own environment agreeing with Docker (or saying what it could not check).

The data-science image is the session's ``ds_task`` image (built once; the NYC task shares it); everything else
uses the tiny image of the minimal fixture task.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from harness.errors import ImageError
from harness.image_io import load_image_file, save_task_image
from harness.images import build_task_image
from harness.pipeline import evaluate_submission
from harness.selfcheck import CAVEAT_NETWORK, check
from harness.spec import load_spec
from harness.stack import NOOP_HARNESS_NOTE
from harness.status import Status

pytestmark = pytest.mark.integration

PLOTS = [
    "%matplotlib inline\nimport os\nimport pandas as pd\nimport matplotlib.pyplot as plt\nimport seaborn as sns\n"
    "import statsmodels.api as sm\nfrom sklearn.linear_model import LinearRegression",
    'train = pd.read_csv(os.path.join(input_dir, "train.csv"))\n'
    'test = pd.read_csv(os.path.join(input_dir, "test.csv"))',
    'fig, ax = plt.subplots()\nax.plot(train["x"], train["y"])\nax.set_title("matplotlib")\nplt.show()',
    'sns.scatterplot(data=train, x="x", y="y")',
    'ols = sm.OLS(train["y"], sm.add_constant(train["x"])).fit()\n'
    'model = LinearRegression().fit(train[["x"]], train["y"])\n'
    'test["y"] = model.predict(test[["x"]])\n'
    'test[["id", "y"]].to_csv(os.path.join(output_dir, "predictions.csv"), index=False)\nprint(ols.params)',
]

CSV_PREDICTIONS = (
    "import csv, os\n"
    'rows = list(csv.DictReader(open(os.path.join(input_dir, "test.csv"))))\n'
    'with open(os.path.join(output_dir, "predictions.csv"), "w") as fh:\n'
    '    fh.write("id,y\\n" + "".join(f"{r[\'id\']},{3 * float(r[\'x\']) + 1}\\n" for r in rows))'
)


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('input_dir = "data"\noutput_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(code) for code in cells)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _png_outputs(executed: Path) -> int:
    nb = json.loads(executed.read_text(encoding="utf-8"))
    return sum(1 for cell in nb["cells"] for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))


# --- plots and packages in the data-science image -------------------------------------------------------------


def test_plots_appear_in_the_executed_notebook_judges_read(ds_task: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "team" / "solution.ipynb", PLOTS)
    result = check(ds_task, notebook, artifacts_dir=tmp_path / "artifacts")
    assert result.ok, str(result)
    assert result.metrics.loc["mae", "value"] < 1e-6
    assert _png_outputs(Path(result.artifacts_dir) / "executed.ipynb") >= 2  # the matplotlib and the seaborn plot

    judged = evaluate_submission(load_spec(ds_task), notebook, phase="test", work_dir=tmp_path / "judged")
    assert judged.status == Status.SUCCEEDED, judged.reason
    assert _png_outputs(Path(judged.artifacts_dir) / "executed.ipynb") >= 2


def test_image_packages_lists_the_versions_installed_in_the_image(ds_task: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "image", "packages", str(ds_task)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split()
    for pin in ("seaborn==0.13.2", "pandas==3.1.1", "numpy==2.4.6", "scikit-learn==1.9.1", "statsmodels==0.15.0"):
        assert pin in listed
    assert any(item.startswith("matplotlib-inline==") for item in listed)  # the inline backend


def test_the_starter_kit_lists_the_sandbox_packages(ds_task: Path, tmp_path: Path) -> None:
    from harness.starter import write_starter_kit

    task = tmp_path / "task"
    shutil.copytree(ds_task, task)  # same id: the same image
    (task / "data" / "public").mkdir(parents=True, exist_ok=True)  # the fixture's prepare writes it too
    (task / "data" / "public" / "train.csv").write_text("id,x,y\nr000,0,1\n")
    _notebook(task / "starter" / "solution.ipynb", [CSV_PREDICTIONS])
    kit = write_starter_kit(task, tmp_path / "kit")
    page = (kit / "SANDBOX_PACKAGES.md").read_text(encoding="utf-8")
    assert "| `seaborn` | 0.13.2 | requested |" in page and "harness-task/minimal-ds:latest" in page
    assert "SANDBOX_PACKAGES.md" in (kit / "README.md").read_text(encoding="utf-8")


# --- a harness.check cell in a submission -----------------------------------------------------------------------


def test_a_harness_check_cell_is_harmless_in_the_judges_run(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    notebook = _notebook(
        tmp_path / "team" / "solution.ipynb",
        [CSV_PREDICTIONS, 'import harness\nharness.check("task", "solution.ipynb")', "print('after the check')"],
    )
    record = evaluate_submission(load_spec(minimal_task), notebook, phase="test", work_dir=tmp_path / "run")
    assert record.status == Status.SUCCEEDED, record.reason
    assert record.scores["public"]["mae"] == pytest.approx(0.0)
    log = (Path(record.artifacts_dir) / "log.txt").read_text(encoding="utf-8")
    assert NOOP_HARNESS_NOTE in log
    executed = (Path(record.artifacts_dir) / "executed.ipynb").read_text(encoding="utf-8")
    assert "after the check" in executed


# --- image save / load ------------------------------------------------------------------------------------------


def test_image_save_and_load_round_trip(minimal_task: Path, test_image: str, docker_api: Any, tmp_path: Path) -> None:
    copy = tmp_path / "roundtrip"
    shutil.copytree(minimal_task, copy)
    raw = yaml.safe_load((copy / "task.yaml").read_text())
    raw["id"] = f"roundtrip-{uuid.uuid4().hex[:8]}"
    (copy / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = load_spec(copy)
    built = build_task_image(spec, api=docker_api, echo=lambda _m: None)  # same package set: tagged, not built
    assert built.reused and built.image_id == docker_api.image_id(test_image)
    try:
        file = tmp_path / "image.tar"
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "image", "save", str(copy), str(file)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert file.stat().st_size > 10_000_000
        docker_api.remove_image(spec.image_tag)  # only this tag: the image stays for the minimal task
        assert docker_api.image_id(spec.image_tag) is None
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "image", "load", str(file)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert spec.image_tag in proc.stdout
        assert docker_api.image_id(spec.image_tag) == built.image_id
        not_an_image = tmp_path / "junk.tar"
        not_an_image.write_bytes(b"not a tar archive")
        with pytest.raises(ImageError, match="could not be loaded"):
            load_image_file(not_an_image, api=docker_api)
        with pytest.raises(ImageError, match="not on this machine"):
            save_task_image(load_spec(copy).model_copy(update={"id": "never-built-task"}), tmp_path / "x.tar")
    finally:
        docker_api.remove_image(spec.image_tag)


# --- the process sandbox: the task's environment, or a plain statement of what it could not check ---------------


def test_an_import_outside_the_task_packages_fails_in_process_as_in_docker(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    import pandas  # noqa: F401  (in the harness's own environment, not in the minimal task's package set)

    notebook = _notebook(tmp_path / "team" / "solution.ipynb", ["import pandas", CSV_PREDICTIONS])
    docker = check(minimal_task, notebook, artifacts_dir=tmp_path / "docker")
    process = check(minimal_task, notebook, sandbox="process", artifacts_dir=tmp_path / "process")
    assert docker.status == Status.FAILED and process.status == Status.FAILED, (str(docker), str(process))
    assert "pandas" in docker.reason and "pandas" in process.reason


def test_a_good_notebook_passes_in_process_with_its_caveats_first(minimal_task: Path, tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "team" / "solution.ipynb", [CSV_PREDICTIONS, 'import harness\nharness.check("task", "x")']
    )
    result = check(minimal_task, notebook, sandbox="process", artifacts_dir=tmp_path / "process")
    assert result.ok, str(result)
    assert result.caveats == [CAVEAT_NETWORK]
    text = str(result)
    assert "PASS: this submission would be scored" not in text
    assert text.index("network use") < text.index("PASS")
    assert NOOP_HARNESS_NOTE in (Path(result.artifacts_dir) / "log.txt").read_text(encoding="utf-8")


def test_without_a_task_environment_the_process_check_says_what_it_cannot_rule_out(
    minimal_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.venvs

    def _cannot(*_a: Any, **_k: Any) -> Path:
        raise ImageError("pip install of the task's packages failed (exit 1): no index reachable")

    monkeypatch.setattr(harness.venvs, "ensure_task_venv", _cannot)
    notebook = _notebook(tmp_path / "team" / "solution.ipynb", ["import pandas", CSV_PREDICTIONS])
    result = check(minimal_task, notebook, sandbox="process", artifacts_dir=tmp_path / "process")
    assert result.ok  # the harness's own Python has pandas: this is exactly what it cannot rule out
    assert any(c.startswith("imports outside the task's packages") for c in result.caveats)
    assert CAVEAT_NETWORK in result.caveats
    lines = str(result).splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("PASS"))
    assert lines[0] == "not checked here (process sandbox):" and verdict > len(result.caveats)
    assert "would be scored" not in lines[verdict]


def test_the_plots_notebook_agrees_in_the_process_sandbox(ds_task: Path, tmp_path: Path) -> None:
    notebook = _notebook(tmp_path / "team" / "solution.ipynb", PLOTS)
    result = check(ds_task, notebook, sandbox="process", artifacts_dir=tmp_path / "process")
    assert result.ok, str(result)
    assert _png_outputs(Path(result.artifacts_dir) / "executed.ipynb") >= 2
