"""Benchmark of the judging run (issue 4): measured and printed, never asserted.

Twenty copies of a trivial notebook submission of the minimal fixture task are judged with ``harness run``:

* wall time of the whole batch with ``--workers 1`` and ``--workers 2`` (fresh store each time);
* the harness's time per submission (batch wall time / 20) against a bare ``docker run --rm`` of papermill on the
  same notebook in the same image (median of the same count), i.e. what the sandbox policy, the output cap,
  opening, validation, scoring and the store add to executing the notebook.

Usage: ``python benchmarks/bench_run.py [--copies 20]`` (needs a Docker engine; builds the minimal task's image
if missing). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
MINIMAL = REPO / "tests" / "fixtures" / "tasks" / "minimal"

CODE = """
import csv, os
rows = list(csv.DictReader(open(os.path.join(input_dir, "test.csv"))))
with open(os.path.join(output_dir, "predictions.csv"), "w") as fh:
    fh.write("id,y\\n")
    for r in rows:
        fh.write(f"{r['id']},{3 * int(r['x']) + 1}\\n")
"""


def _notebook(path: Path, salt: int) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('input_dir = "data"\noutput_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(CODE + f"\n# copy {salt}\n")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _batch(task: Path, submissions: Path, workers: int) -> float:
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    try:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "run",
                str(task),
                str(submissions),
                "--home",
                str(home),
                "--workers",
                str(workers),
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _bare(image: str, notebook: Path, input_dir: Path, copies: int) -> list[float]:
    times = []
    for _ in range(copies):
        out = Path(tempfile.mkdtemp(prefix="bench-out-"))
        out.chmod(0o777)
        try:
            started = time.perf_counter()
            subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "-v",
                    f"{notebook.parent}:/submission:ro",
                    "-v",
                    f"{input_dir}:/input:ro",
                    "-v",
                    f"{out}:/output",
                    image,
                    "python",
                    "-m",
                    "papermill",
                    f"/submission/{notebook.name}",
                    "/output/executed.ipynb",
                    "-p",
                    "input_dir",
                    "/input",
                    "-p",
                    "output_dir",
                    "/output",
                    "--no-progress-bar",
                ],
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()

    from harness.images import build_task_image
    from harness.spec import load_spec
    from harness.tasks import prepare_task

    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        task = work / "minimal"
        shutil.copytree(MINIMAL, task, ignore=shutil.ignore_patterns("data", "__pycache__"))
        prepare_task(task, echo=lambda _msg: None)
        spec = load_spec(task)
        image = build_task_image(spec, echo=lambda _msg: None).tag
        submissions = work / "submissions"
        submissions.mkdir()
        for i in range(args.copies):
            _notebook(submissions / f"team-{i:02d}.ipynb", i)

        rows = []
        for workers in (1, 2):
            wall = _batch(task, submissions, workers)
            rows.append((f"`harness run --workers {workers}`", wall, wall / args.copies))
        bare = _bare(image, submissions / "team-00.ipynb", spec.input_dir("test"), args.copies)
        bare_median = statistics.median(bare)
        print(f"{args.copies} trivial notebook submissions of the minimal task; {shutil.which('docker')} engine\n")
        print("| what | wall time (s) | per submission (s) | vs bare papermill run |")
        print("| --- | ---: | ---: | ---: |")
        for name, wall, per in rows:
            print(f"| {name} | {wall:.1f} | {per:.2f} | {per / bare_median:.2f}x |")
        print(
            f"| bare `docker run --rm IMAGE python -m papermill ...` (median of {len(bare)}) | "
            f"{sum(bare):.1f} | {bare_median:.2f} | 1.00x |"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
