"""Prediction validation per MB across file shapes: 10 to 200,000 columns, 10 to 5,000,000 rows, long fields.

Prints a markdown table: for each shape, the file's size and the time per MB of ``validate_predictions`` (the
harness: bounded read, encoding sniff, header, row widths, the spec's columns parsed and checked, every id
checked against the expected ids), side by side in the same run with two bare baselines on the same file: reading
its bytes, and a plain ``pandas.read_csv(path, dtype=str)`` of every column (what validation did before). Each
time is taken over ``--runs`` rounds, a round timing every shape once in turn, so that load from elsewhere on a
shared machine falls on every shape alike (the plain pandas read runs once: on wide files it takes tens of
seconds).
Measured, not asserted; the target is a per-MB validation time flat within a factor of 3 over all shapes. The
fastest of the runs is the cost of the work itself (other processes only ever add to it); the median is printed
beside it, since the machine these numbers come from is shared.

Shapes (the minimal fixture task: an ``id`` string column and a ``y`` float column are required):

* columns: ``id,y`` plus extra columns of ``0`` up to the column count, about ``--mb`` MB of rows. 200,000
  columns is above the harness's cap of 100,000 columns: that file is refused from its header, and says so.
* rows: ``id,y`` rows, each padded with a ``note`` column so the file holds about ``--mb`` MB (10 rows: fields
  of about 1 MB each); 1,000,000 and 5,000,000 rows are larger (about 13 and 66 MB), without padding.
* ids shuffled: 1,000,000 rows written in a random order, so the ids are compared as a set (one sort of their
  64-bit keys, ``ExpectedIds.same_set``; the other files list the ids in the reference's order, as a team writing
  ``test.csv``'s rows does, which validation compares in one pass).

The expected ids are prepared once per file (``ExpectedIds``, as ``load_phase_reference`` does once per phase for
rescoring, intervals and similarity) before the timed calls; the time of that preparation is printed apart.

Usage: ``python benchmarks/bench_validation.py [--runs 5] [--mb 8]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from harness.errors import InvalidOutputError
from harness.scoring import validate_predictions
from harness.scoring.expected import ExpectedIds
from harness.spec import TaskSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_TASK = ROOT / "tests" / "fixtures" / "tasks" / "minimal"
MB = 1024 * 1024


def wide_file(path: Path, columns: int, target_mb: float) -> list[str]:
    """``id,y`` and ``columns - 2`` columns of ``0``, rows until about ``target_mb``; returns the ids."""
    extra = columns - 2
    header = ",".join(["id", "y", *(f"c{i}" for i in range(extra))]) + "\n"
    tail = ",0" * extra + "\n"
    rows = max(2, int(target_mb * MB) // (len(tail) + 16))
    ids = [f"r{i:07d}" for i in range(rows)]
    with path.open("w") as fh:
        fh.write(header)
        for i, rid in enumerate(ids):
            fh.write(f"{rid},{i % 97}.5{tail}")
    return ids


def long_file(path: Path, rows: int, target_mb: float, *, shuffled: bool = False) -> list[str]:
    """``id,y,note`` with ``rows`` rows; ``note`` pads each row so the file holds about ``target_mb``.
    ``shuffled``: the rows are written in a seeded random order (the returned ids keep theirs)."""
    ids = [f"r{i:07d}" for i in range(rows)]
    order = random.Random(7).sample(range(rows), rows) if shuffled else range(rows)
    pad = max(0, int(target_mb * MB) // rows - 16)
    note = "x" * pad
    with path.open("w") as fh:
        fh.write("id,y,note\n" if pad else "id,y\n")
        for i in order:
            fh.write(f"{ids[i]},{i % 97}.5,{note}\n" if pad else f"{ids[i]},{i % 97}.5\n")
    return ids


def timed(run: Callable[[], object], runs: int) -> tuple[float, float]:
    """The fastest and the median wall time of ``runs`` calls, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def validate(spec: TaskSpec, path: Path, ids: ExpectedIds) -> Callable[[], str]:
    def run() -> str:
        try:
            validate_predictions(spec, path, expected_ids=ids)
        except InvalidOutputError as exc:
            return f"invalid_output: {exc.message}"
        return "valid"

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of validation and of the byte read")
    parser.add_argument("--mb", type=float, default=8.0, help="about how large each file is, in MB (default 8)")
    args = parser.parse_args()
    spec = load_spec(FIXTURE_TASK)
    shapes: list[tuple[str, Callable[[Path], list[str]]]] = [
        *((f"{c:,} columns", lambda p, c=c: wide_file(p, c, args.mb)) for c in (10, 100, 1_000, 10_000, 100_000)),
        ("200,000 columns", lambda p: wide_file(p, 200_000, args.mb)),
        *((f"{r:,} rows", lambda p, r=r: long_file(p, r, args.mb)) for r in (10, 1_000, 100_000, 1_000_000)),
        ("5,000,000 rows", lambda p: long_file(p, 5_000_000, 0)),
        ("1,000,000 rows, ids shuffled", lambda p: long_file(p, 1_000_000, 0, shuffled=True)),
    ]
    table = []
    prepares: list[tuple[str, int, float]] = []
    started_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        ready = []  # every file made and its expected ids prepared first, then timed round by round (below)
        for label, make in shapes:
            path = Path(tmp) / label.replace(" ", "_").replace(",", "") / "predictions.csv"
            path.parent.mkdir()
            reference_ids = pd.Series(make(path), dtype=object)  # as load_reference returns them
            prepared = time.perf_counter()
            check = validate(spec, path, ExpectedIds(reference_ids))
            outcome = check()  # warm-up: page cache, and the expected ids' Arrow text and key table; the outcome
            prepares.append((label, len(reference_ids), time.perf_counter() - prepared))
            ready.append((label, path, check, outcome))
        # Round-robin: each round times every shape once, so a burst of load on this shared machine slows one
        # round of every shape rather than all the runs of one shape (the ratios are what is compared).
        times: dict[str, list[float]] = {label: [] for label, *_ in ready}
        reads: dict[str, list[float]] = {label: [] for label, *_ in ready}
        for _ in range(args.runs):
            for label, path, check, _outcome in ready:
                times[label].append(timed(check, 1)[0])
                reads[label].append(timed(path.read_bytes, 1)[0])
        for label, path, _check, outcome in ready:
            plain = timed(lambda path=path: pd.read_csv(path, dtype=str, keep_default_na=False), 1)[0]
            size = path.stat().st_size / MB
            seconds, median = min(times[label]), statistics.median(times[label])
            table.append((label, size, seconds, median, min(reads[label]), plain, outcome))
    before = os.getloadavg()[0]
    print(
        f"Fastest and median of {args.runs} rounds, each timing every shape once (plain pandas: 1 run); "
        "per MB = seconds / file size in MiB. "
        f"Load average (1 min) {started_load:.2f} at the start, {before:.2f} at the end, on {os.cpu_count()} CPUs.\n"
    )
    print(
        "| shape | MiB | validate_predictions, fastest (s/MB) | median (s/MB) | read bytes (s/MB) | "
        "plain pandas.read_csv (s/MB) | validation / plain read | outcome |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, size, seconds, median, read, plain, outcome in table:
        print(
            f"| {label} | {size:.1f} | {seconds / size:.4f} | {median / size:.4f} | {read / size:.4f} | "
            f"{plain / size:.4f} | {seconds / plain:.2f}x | {outcome} |"
        )
    print()
    for label, count, prepare in prepares:
        if count >= 1_000_000:
            print(f"{label}: preparing {count:,} expected ids plus the first validation took {prepare:.2f} s (once)")
    valid_rows = [row for row in table if row[-1] == "valid"]
    per_mb = {
        "fastest": [(label, fast / size) for label, size, fast, *_ in valid_rows],
        "median": [(label, median / size) for label, size, _, median, *_ in valid_rows],
    }
    for which, valid in per_mb.items():
        in_order = [(per_mb, label) for label, per_mb in valid if "shuffled" not in label]
        every = [(per_mb, label) for label, per_mb in valid]
        for name, rows in (("ids in reference order", in_order), ("shuffled ids too", every)):
            (low, fast), (high, slow) = min(rows), max(rows)
            print(
                f"{which}, valid files with {name}: slowest / fastest per MB = {high / low:.1f}x "
                f"({slow} {high:.4f} / {fast} {low:.4f})"
            )


if __name__ == "__main__":
    main()
