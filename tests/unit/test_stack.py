"""The sandbox's package set (stack, task packages, pins), the stand-in harness module and the teams' package page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.image_io import packages_markdown
from harness.spec import ImageSpec, load_spec
from harness.stack import (
    DATA_SCIENCE_STACK,
    NOOP_HARNESS_NOTE,
    image_packages,
    project_name,
    task_packages,
    write_noop_harness,
)

FIXTURE_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"
NYC_TASK = Path(__file__).resolve().parents[2] / "task_specs" / "nyc-flight-delays"


def test_the_default_stack_is_the_pinned_data_science_set() -> None:
    packages = task_packages(ImageSpec())
    names = {project_name(p) for p in packages}
    assert {"matplotlib", "seaborn", "scipy", "statsmodels", "scikit-learn", "pandas", "numpy", "pyarrow"} <= names
    assert {"ipykernel", "papermill"} <= names
    assert all("==" in p for p in DATA_SCIENCE_STACK)


def test_a_task_opts_out_of_the_stack_and_its_own_pins_win() -> None:
    assert task_packages(ImageSpec(stack="none")) == ("ipykernel", "papermill")
    mine = task_packages(ImageSpec(packages=("Pandas==2.2.3", "lightgbm")))
    assert "Pandas==2.2.3" in mine and "pandas==3.1.1" not in mine and "lightgbm" in mine
    assert image_packages(["numpy", "numpy==2.0"]) == ("ipykernel", "numpy==2.0", "papermill")


def test_the_fixture_task_keeps_a_tiny_image_and_nyc_matches_the_stack() -> None:
    assert task_packages(load_spec(FIXTURE_TASK).image) == ("ipykernel", "papermill")
    # the NYC pins are the stack's where they overlap, plus Pillow (which every task lists: meter-digits reads PNGs)
    assert task_packages(load_spec(NYC_TASK).image) == task_packages(ImageSpec(packages=("pillow==13.0.0",)))


def test_project_names_are_normalised() -> None:
    assert project_name("Scikit_Learn>=1.5") == "scikit-learn"
    assert project_name(" zope.interface ") == "zope-interface"


def test_the_stand_in_harness_check_only_says_it_does_nothing(tmp_path: Path) -> None:
    write_noop_harness(tmp_path)
    code = "import harness; r = harness.check('task', 'solution.ipynb', sandbox='docker'); print(r)"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert NOOP_HARNESS_NOTE in proc.stdout and proc.stdout.rstrip().endswith("None")


def test_the_package_page_lists_versions_and_marks_requested_ones() -> None:
    spec = load_spec(NYC_TASK)
    page = packages_markdown(spec, ("matplotlib==3.11.2", "pyparsing==3.2.0"))
    assert "| `matplotlib` | 3.11.2 | requested |" in page
    assert "| `pyparsing` | 3.2.0 |  |" in page
    assert "no network" in page
    unbuilt = packages_markdown(spec, None)
    assert "`seaborn==0.13.2`" in unbuilt and "not built" in unbuilt


# --- the process sandbox in a task environment, and the verdict it may give -------------------------------------


def test_a_task_environment_runs_python_with_only_its_own_paths(tmp_path: Path, monkeypatch: Any) -> None:
    from harness.sandbox import Limits, RunRequest
    from harness.sandbox.process import ProcessSandbox

    monkeypatch.setenv("PYTHONPATH", "/somewhere/harness")
    monkeypatch.setenv("JUPYTER_PATH", "/somewhere/kernels")
    venv_python = tmp_path / "venv" / "bin" / "python"
    request = RunRequest(
        image="ignored",
        command=("python", "-c", "pass"),
        output_dir=tmp_path / "out",
        mounts=(),
        limits=Limits(time_s=5, memory_mb=64, cpus=1, pids=16, output_mb=1, log_kb=4),
    )
    box = ProcessSandbox(python=venv_python)
    assert box.command(request)[0] == str(venv_python)
    env = box.environment(request, tmp_path / "scratch")
    assert "PYTHONPATH" not in env and "JUPYTER_PATH" not in env
    assert env["PYTHONNOUSERSITE"] == "1" and env["PATH"].startswith(str(venv_python.parent))
    plain = ProcessSandbox().environment(request, tmp_path / "scratch")
    # the harness's own Python keeps its environment, after the folder of the kernel's packer (in the scratch)
    assert plain["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "scratch" / "kernel-site"), "/somewhere/harness"]
    assert ProcessSandbox().command(request)[0] == sys.executable


def test_a_check_with_caveats_never_says_the_plain_pass() -> None:
    import pandas as pd

    from harness.selfcheck import CAVEAT_NETWORK, CheckResult
    from harness.status import Status

    metrics = pd.DataFrame({"value": [1.5], "goal": ["minimize"], "primary": [True]}, index=["mae"])
    plain = CheckResult(task_id="t", submission="s", status=Status.SUCCEEDED, metrics=metrics)
    assert plain.verdict.startswith("PASS: this submission would be scored")
    hedged = CheckResult(
        task_id="t", submission="s", status=Status.SUCCEEDED, metrics=metrics, caveats=[CAVEAT_NETWORK]
    )
    text = str(hedged)
    assert "would be scored" not in text and text.index("network use") < text.index("PASS here")
    assert "network use" in hedged._repr_html_() and "would be scored" not in hedged._repr_html_()
