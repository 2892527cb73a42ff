"""Paired bootstrap intervals at hackathon scale: 200 teams x 82,609 rows x 1,000 resamples.

Prints the wall time and peak memory (numpy's allocations, via tracemalloc; and the process's maximum resident
size) of the harness's intervals for one split and one decomposable metric (per-row absolute errors): resampling
with :func:`harness.intervals.bootstrap_means` (``counts @ values`` by chunks of resamples) and the paired
comparisons, rank ranges and tie groups of :func:`harness.intervals.compare`; beside it, the bare numpy baseline
of the same resampling (one ``integers`` draw, ``bincount`` and matrix product for all resamples at once, and the
per-team percentiles, no comparisons). Target: under 30 s and 2 GiB for the harness. Measured, not asserted.

Usage: ``python benchmarks/bench_intervals.py [--teams 200] [--rows 82609] [--resamples 1000]``.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from harness.intervals import bootstrap_means, compare, split_rng

GIB = 1024**3


def _measure(label: str, work: Callable[[], object]) -> tuple[float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"| {label} | {seconds:.2f} | {peak / GIB:.3f} |")
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--rows", type=int, default=82_609)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 40, args.rows)
    skill = np.linspace(20, 30, args.teams)
    values = np.abs(truth[:, None] - (truth[:, None] + rng.normal(0, 1, (args.rows, args.teams)) * skill))
    order = np.argsort(values.mean(axis=0))
    values = np.ascontiguousarray(values[:, order])

    def harness() -> object:
        samples = bootstrap_means(values, args.resamples, split_rng(20150101, "private"))
        return compare(samples, higher_is_better=False)

    def baseline() -> object:
        indices = np.random.default_rng(1).integers(0, args.rows, size=(args.resamples, args.rows))
        flat = (indices + (np.arange(args.resamples) * args.rows)[:, None]).ravel()
        counts = np.bincount(flat, minlength=args.resamples * args.rows).reshape(args.resamples, args.rows)
        means = counts.astype(np.float64) @ values / args.rows
        return np.quantile(means, [0.025, 0.975], axis=0)

    print(
        f"{args.teams} teams x {args.rows:,} rows x {args.resamples:,} resamples "
        f"(values: {values.nbytes / GIB:.3f} GiB)"
    )
    print("| what | seconds | peak numpy GiB |")
    print("| --- | ---: | ---: |")
    seconds, peak = _measure("harness: bootstrap_means + compare", harness)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _measure("bare numpy baseline: one draw, bincount, matmul, percentiles", baseline)
    print(f"process peak resident size after the harness (data included): {rss / GIB:.3f} GiB")
    verdict = "meets" if seconds < 30 and peak < 2 * GIB else "MISSES"
    print(f"harness {verdict} the target (< 30 s, < 2 GiB): {seconds:.1f} s, {peak / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
