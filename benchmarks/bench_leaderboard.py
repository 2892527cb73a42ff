"""The first ``harness leaderboard`` call after a change (issue 13), timed on its own. Measured, never asserted.

Builds the minimal task and a store of ``--runs`` succeeded runs (10 per team, two splits, two metrics: the store
of ``bench_throughput.py --only large``), then runs ``harness leaderboard`` ``--repeats`` times per format, each
time after deleting the request snapshots (``<home>/leaderboards/``), so every call ranks every run as the first
call after a batch or a rescore does. With ``--against DIR`` (another checkout of the harness, e.g. the main
branch) the same calls of that checkout are interleaved with these (same store, same task), their medians printed
side by side, and every output compared byte for byte.

Usage: ``python benchmarks/bench_leaderboard.py [--runs 10000] [--repeats 5] [--formats table,csv]
[--against /path/to/other/checkout]``. Prints a markdown table and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import MINIMAL  # noqa: E402
from bench_throughput import _fill_runs, load_line  # noqa: E402  (the same store as the large-batch figures)

_LOG_TIME = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)
FORMATS = {
    "table": [],
    "wide": ["--wide"],
    "csv": ["--format", "csv"],
    "json": ["--format", "json"],
    "markdown": ["--format", "markdown"],
    "html": ["--format", "html"],
}


def _call(checkout: Path, task: Path, home: Path, extra: list[str]) -> tuple[float, bytes]:
    """(wall seconds, stdout + stderr bytes) of one first call of ``harness leaderboard`` from ``checkout``."""
    shutil.rmtree(home / "leaderboards", ignore_errors=True)  # no snapshot: the call ranks every run
    env = dict(os.environ, PYTHONPATH=str(checkout), COLUMNS="120")
    argv = [sys.executable, "-m", "harness.cli", "leaderboard", str(task), "--home", str(home), *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, cwd=checkout, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    stderr = _LOG_TIME.sub(b"", done.stderr)  # a log record's time differs from call to call
    return wall, done.stdout + b"\n--stderr--\n" + stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--formats", default="table", help=f"comma-separated among {', '.join(FORMATS)}")
    parser.add_argument("--against", type=Path, help="another checkout of the harness, timed interleaved")
    args = parser.parse_args()
    formats = args.formats.split(",")
    if unknown := [f for f in formats if f not in FORMATS]:
        raise SystemExit(f"unknown format(s) {', '.join(unknown)}; expected among {', '.join(FORMATS)}")
    from harness.spec import load_spec
    from harness.tasks import prepare_task

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-leaderboard-"))
    try:
        task = work / "minimal"
        shutil.copytree(MINIMAL, task, ignore=shutil.ignore_patterns("data", "__pycache__"))
        prepare_task(task, echo=lambda _msg: None)
        home = work / "home"
        home.mkdir()
        _fill_runs(f"sqlite:///{home}/results.sqlite", load_spec(task).id, args.runs)
        checkouts = {"this": REPO} | ({"against": args.against.resolve()} if args.against else {})
        print(f"\n`harness leaderboard` over {args.runs:,} runs, first call (no snapshot), {args.repeats} repeats\n")
        print("| format | " + " | ".join(f"{name}: median (s)" for name in checkouts) + " | all (s) | same output |")
        print("| --- | " + " | ".join("---:" for _ in checkouts) + " | --- | --- |")
        for fmt in formats:
            times: dict[str, list[float]] = {name: [] for name in checkouts}
            outputs: dict[str, set[bytes]] = {name: set() for name in checkouts}
            for _ in range(args.repeats):
                for name, checkout in checkouts.items():
                    wall, out = _call(checkout, task, home, FORMATS[fmt])
                    times[name].append(wall)
                    outputs[name].add(out)
            medians = " | ".join(f"{statistics.median(t):.2f}" for t in times.values())
            every = "; ".join(f"{name} " + ", ".join(f"{t:.2f}" for t in ts) for name, ts in times.items())
            same = len(set().union(*outputs.values())) == 1
            print(f"| {fmt} | {medians} | {every} | {'yes' if same else 'NO'} |")
        print(load_line(load_before))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
