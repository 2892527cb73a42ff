"""Rescoring time: ``harness rescore`` of 200 runs whose kept predictions are NYC files of 82,609 rows each.

Builds a temporary store with ``--runs`` active runs of the NYC flight-delays task, each with a kept
``output/predictions.csv`` (the test reference's ids, ``arr_delay`` = the truth plus seeded noise, so every file
differs) and recorded inputs, then times :func:`harness.rescoring.rescore_task` (validation, alignment and scoring
of every kept file in a few evaluator processes, the reference read once per process, one store transaction per
run). Printed beside it, in the same run, are the baselines: scoring one file as ``harness run`` does
(:func:`harness.scoring.score_outputs`, a fresh evaluator process per run) and the bare in-process lifecycle
(:func:`harness.scoring.evaluate_outputs` on one file, no process, no store). Measured, not asserted; the target is
under 0.2 s per run on this machine.

The task's data must be prepared (``harness task prepare task_specs/nyc-flight-delays``).

Usage: ``python benchmarks/bench_rescore.py [--runs 200] [--workers N] [--task task_specs/nyc-flight-delays]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.provenance import file_sha256, task_inputs
from harness.record import RunRecord
from harness.rescoring import rescore_task
from harness.scoring import evaluate_outputs, load_reference, score_outputs
from harness.spec import load_spec
from harness.status import Status
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=None, help="evaluator processes (default: cores)")
    parser.add_argument("--task", type=Path, default=ROOT / "task_specs" / "nyc-flight-delays")
    args = parser.parse_args()
    spec = load_spec(args.task)
    if not spec.reference_path("test").is_file():
        raise SystemExit(f"prepare the task first: harness task prepare {args.task}")
    reference = load_reference(spec, "test")
    ids, truth = reference["id"].to_numpy(), reference["arr_delay"].to_numpy(dtype="float64")
    inputs = task_inputs(spec, "test")
    with tempfile.TemporaryDirectory(prefix="bench-rescore-") as tmp:
        work = Path(tmp)
        store = Store(f"sqlite:///{work / 'results.sqlite'}")
        store.ensure_task(spec.id, spec.title, spec.spec_hash)
        started = time.perf_counter()
        for i in range(args.runs):
            artifacts = work / "artifacts" / f"run-{i}"
            (artifacts / "output").mkdir(parents=True)
            noise = np.random.default_rng(i).normal(0, 20, len(truth)).round(1)
            predictions = artifacts / "output" / "predictions.csv"
            pd.DataFrame({"id": ids, "arr_delay": np.clip(truth + noise, -1440, 10080)}).to_csv(
                predictions, index=False
            )
            sub_id, _ = store.register_submission(
                spec.id, f"team-{i:03d}", f"{i:064x}", source=f"team-{i:03d}", kind="script", entry="main.py"
            )
            run_id = store.start_run(sub_id, "test")
            record = RunRecord(
                task_id=spec.id, phase="test", team=f"team-{i:03d}", content_hash=f"{i:064x}", kind="script",
                status=Status.SUCCEEDED, scores={"public": {"mae": 0.0}}, artifacts_dir=str(artifacts),
                provenance={"inputs": {**inputs, "image_id": "", "predictions": file_sha256(predictions)}},
            )  # fmt: skip
            store.finish_run(run_id, record)
        setup_s = time.perf_counter() - started
        rows = len(truth)
        size_mb = (work / "artifacts" / "run-0" / "output" / "predictions.csv").stat().st_size / 1e6

        started = time.perf_counter()
        summary = rescore_task(spec, store, workers=args.workers)
        rescore_s = time.perf_counter() - started
        assert len(summary.rescored) == args.runs and not summary.skipped, summary.lines()[-3:]
        assert all(item.status is Status.SUCCEEDED for item in summary.rescored)

        one = work / "artifacts" / "run-0" / "output"
        cold = []
        for _ in range(3):
            started = time.perf_counter()
            score_outputs(spec, one, "test")
            cold.append(time.perf_counter() - started)
        bare = []
        for _ in range(3):
            started = time.perf_counter()
            evaluate_outputs(spec, one, "test")
            bare.append(time.perf_counter() - started)
        store.close()

    workers = args.workers or os.cpu_count() or 1
    print(f"rescoring {args.runs} kept NYC prediction files ({rows:,} rows, {size_mb:.1f} MB each) on {workers} "
          f"evaluator process(es); store built in {setup_s:.1f} s\n")  # fmt: skip
    print("| what | total s | s per run |")
    print("| --- | ---: | ---: |")
    per_run = rescore_s / args.runs
    print(f"| `harness rescore` ({args.runs} runs, store writes included) | {rescore_s:.2f} | {per_run:.3f} |")
    print(f"| baseline: `score_outputs`, a fresh evaluator process per run (median of 3) | - | {np.median(cold):.3f} |")
    print(f"| bare: `evaluate_outputs` in this process, one file (median of 3) | - | {np.median(bare):.3f} |")
    verdict = "met" if rescore_s / args.runs < 0.2 else "NOT met"
    print(f"\ntarget under 0.2 s per run: {verdict}")


if __name__ == "__main__":
    main()
