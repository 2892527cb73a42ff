"""The harness as installed from its wheel, outside this repository, for every role.

The wheel is built from a copy of the source (``pip wheel --no-deps --no-build-isolation``: offline, with the dev
venv's setuptools) and installed into a fresh virtual environment made in a temporary folder. The new venv has no pip
and no dependencies of its own: a ``.pth`` file adds the running interpreter's site-packages *after* its own, so the
dependencies come from the dev venv (as ``make test`` installed them), while ``harness`` itself can only come from the
wheel (the dev venv's editable install is a ``.pth`` hook, which a path added this way does not run). Every command
runs with the venv's ``harness`` script, no ``PYTHONPATH``, and an organiser's folder elsewhere as its working folder,
holding a copy of the minimal fixture task under ``task_specs/``:

* an author prepares, builds the image (the session's, reused) and validates the task;
* a judge runs two submissions, prints the leaderboard and writes the report (package-data notebooks);
* a team writes a starter kit and self-checks the kit's notebook in it;
* ``harness task new`` writes a skeleton from the package-data templates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False)
    print(f"{time.monotonic() - started:5.1f} s  {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(argv)} failed (exit {proc.returncode}) in {cwd}:\n{out}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin/`` folder of a fresh venv holding the harness wheel (dependencies from the running venv)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO / "harness", source / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)], cwd=work, env=env)
    (wheel,) = (work / "dist").glob("hackathon_harness-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work, env=env)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work, env=env)
    (Path(purelib.strip()) / "dev-venv-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], cwd=work, env=env)
    return venv / "bin"


def test_wheel_ships_the_package_data(installed: Path) -> None:
    code = (
        "import harness, harness.report.run as r, harness.skeleton as s, importlib.resources as ir; "
        "print(harness.__file__); print(harness.__version__); "
        "print(sorted(p.name for p in r.NOTEBOOKS_DIR.iterdir())); "
        "print(ir.files(s).joinpath('templates', 'forecast', 'evaluator.py.tmpl').is_file())"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = _run([str(installed / "python"), "-c", code], cwd=installed, env=env).splitlines()
    assert out[0].startswith(str(installed.parent)), out  # the wheel's copy, not the source tree's
    assert out[1] != "0+unknown" and out[1][0].isdigit(), out
    assert out[2] == "['leaderboard.ipynb', 'submission_review.ipynb']", out
    assert out[3] == "True", out


def test_every_role_with_the_installed_wheel(installed: Path, tmp_path: Path, test_image: str) -> None:
    org = tmp_path / "our-hackathon"
    shutil.copytree(
        REPO / "tests" / "fixtures" / "tasks" / "minimal",
        org / "task_specs" / "minimal",
        ignore=shutil.ignore_patterns("data", "__pycache__"),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLUMNS"] = "200"
    # nbconvert's HTML templates are data files of the dev venv (share/jupyter), which a real install of the wheel's
    # dependencies puts into the new venv's prefix; point Jupyter at them, as the .pth file does for the modules.
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    harness = str(installed / "harness")
    task = "task_specs/minimal"

    # author
    _run([harness, "task", "prepare", task], cwd=org, env=env)
    assert "reused image" in _run([harness, "image", "build", task], cwd=org, env=env)
    assert "task is sound" in _run([harness, "task", "validate", task], cwd=org, env=env)

    # judge: a good and a broken submission, the leaderboard by task id (looked up in ./task_specs), the report
    submissions = org / "submissions"
    shutil.copytree(org / task / "baseline", submissions / "team-a")
    (submissions / "team-b").mkdir()
    (submissions / "team-b" / "main.py").write_text("raise SystemExit('no predictions')\n")
    _run([harness, "run", task, str(submissions), "--home", "judging"], cwd=org, env=env)
    board = _run([harness, "leaderboard", "minimal", "--home", "judging", "--split", "public"], cwd=org, env=env)
    assert "team-a" in board and "team-b" in board
    report = _run([harness, "report", "minimal", "--home", "judging"], cwd=org, env=env)
    assert (org / "reports" / "minimal" / "leaderboard.html").is_file(), report
    own = org / "our-notebooks"  # an organiser's own template, run with the same parameters
    own.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("task = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('our own page for', task)"),
    ]
    nbformat.write(notebook, own / "leaderboard.ipynb")
    argv = [harness, "report", "minimal", "--home", "judging", "--templates", str(own), "--out", "own-report"]
    _run(argv, cwd=org, env=env)
    executed = nbformat.read(org / "own-report" / "leaderboard.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0].text.startswith("our own page for "), executed.cells[-1]

    # team: a starter kit, then a self-check of its notebook from inside the kit
    _run([harness, "starter", task, "kit"], cwd=org, env=env)
    checked = _run([harness, "check", "task", "solution.ipynb"], cwd=org / "kit", env=env)
    assert "mae" in checked

    # a new task from the package-data templates
    _run([harness, "task", "new", "parking-demand", "--kind", "forecast"], cwd=org, env=env)
    assert (org / "task_specs" / "parking-demand" / "task.yaml").is_file()
    assert (org / "evaluators" / "parking_demand.py").is_file()
