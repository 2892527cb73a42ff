"""Throughput benchmark (issue 13): the harness side by side with bare Docker + papermill. Measured, never asserted.

In one run, on copies of a trivial notebook submission of the minimal fixture task:

* bare ``docker run --rm --network none ... python -m papermill`` of each copy, at concurrency 1, 2 and 4 (the
  floor: one container per notebook, no limits, no output cap, no scoring);
* ``harness run`` of the same copies at its defaults and with ``--workers 1/2/4`` (fresh home each time), with
  the harness's own CPU seconds per submission (user + system time of the ``harness`` process tree: the
  coordinator, its evaluator processes, mkfs/mount; the teams' containers run under the engine, not in it);
* the stage table: median seconds per stage from the runs' ``provenance["stages"]`` (default settings);
* large batches: registering N entries (1,000 by default), a no-op re-run of them (``harness run`` that finds
  every entry unchanged), the coordinator's peak memory, and ``harness leaderboard`` over 10,000 runs (the first
  call, which ranks every run, then the same request again, answered from its snapshot).

* with ``--nyc`` (optional: minutes, and the NYC task must be prepared and its image built first, ``harness task
  prepare task_specs/nyc-flight-delays`` and ``harness image build task_specs/nyc-flight-delays``): the harness's
  overhead on a real run, the gradient-boosting notebook of ``examples/submissions/nyc-flight-delays/gbm-notebook``
  run by a bare ``docker run ... papermill`` and by ``harness run`` (one submission, defaults), ``--nyc-repeats``
  times each, interleaved, and the share ``(harness wall - bare wall) / harness wall`` of the medians.

* the machine's CPU idle share over each batch (from /proc/stat): near 0% means the batch is CPU-bound, so no
  overlapping of waits (a sandbox prepared ahead of its turn) can shorten it, only less CPU work;
* with ``--rounds K`` (K > 1): K more interleaved pairs of the bare floor's concurrency and ``harness run`` at its
  defaults, each pair's ratio and their median.

Usage: ``python benchmarks/bench_throughput.py [--copies 16] [--rounds K] [--quick] [--nyc] [--only-nyc]
[--only large]``
(needs a Docker engine; builds the minimal task's image if missing; ``--quick``: 8 copies, concurrency 1 and 2
skipped for the harness, 200 entries, 2,000 runs; ``--only large``: only the large batches, which need no
Docker). Prints markdown tables and the load average before and after (other work on the machine skews them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import MINIMAL, _notebook  # noqa: E402  (the same trivial notebook as bench_run)

from harness.concurrency import cpu_ticks  # noqa: E402

T = TypeVar("T")

HARNESS = [sys.executable, "-m", "harness.cli"]
NYC_TASK = REPO / "task_specs" / "nyc-flight-delays"
NYC_GBM = REPO / "examples" / "submissions" / "nyc-flight-delays" / "gbm-notebook"
STAGES = ("open_hash", "store", "sandbox_start", "command", "collect", "score")


def _timed(argv: list[str], stdout: str = os.devnull) -> tuple[float, float, float]:
    """(wall s, CPU s of the process tree, peak RSS MiB of its largest process) of one command (``os.wait4``);
    its standard output goes to the file ``stdout`` (default: discarded)."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        pid = os.posix_spawn(
            argv[0], argv, dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT, 0o644),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ],
        )  # fmt: skip
        _pid, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status):
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} failed: {err.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _bare(image: str, notebooks: list[Path], input_dir: Path, concurrency: int, lean: bool = False) -> float:
    """Wall seconds to run every notebook with a bare ``docker run`` of papermill, ``concurrency`` at a time
    (``lean``: its kernel started as the harness's runner starts it, without the debugger, ``HARNESS_BATCH_KERNEL``)."""

    def one(notebook: Path) -> None:
        out = Path(tempfile.mkdtemp(prefix="bench-out-"))
        out.chmod(0o777)
        try:
            subprocess.run(
                ["docker", "run", "--rm", "--network", "none", *(["-e", "HARNESS_BATCH_KERNEL=1"] if lean else []),
                 "-v", f"{notebook.parent}:/submission:ro",
                 "-v", f"{input_dir}:/input:ro", "-v", f"{out}:/output", image, "python", "-m", "papermill",
                 f"/submission/{notebook.name}", "/output/executed.ipynb", "-p", "input_dir", "/input",
                 "-p", "output_dir", "/output", "--no-progress-bar"],
                check=True, capture_output=True,
            )  # fmt: skip
        finally:
            shutil.rmtree(out, ignore_errors=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, notebooks))
    return time.perf_counter() - started


def _nyc(repeats: int) -> list[tuple[str, float, float | None]]:
    """Rows (what, median wall s, median harness CPU s) of the NYC gradient-boosting notebook, bare and harness.

    Raises:
        SystemExit: the NYC task is not prepared or its image is not built.
    """
    from harness.spec import load_spec

    spec = load_spec(NYC_TASK)
    built = subprocess.run(["docker", "image", "inspect", spec.image_tag], capture_output=True).returncode == 0
    if not spec.input_dir("test").is_dir() or not built:
        raise SystemExit(
            f"--nyc needs the NYC task prepared and built: harness task prepare {NYC_TASK}; "
            f"harness image build {NYC_TASK}"
        )
    work = Path(tempfile.mkdtemp(prefix="bench-nyc-"))
    try:
        submissions = work / "submissions"
        shutil.copytree(NYC_GBM, submissions / "gbm")
        notebook = submissions / "gbm" / spec.submission.notebook
        bare, harness, cpu = [], [], []
        for _ in range(repeats):  # interleaved: drifting load touches both alike
            bare.append(_bare(spec.image_tag, [notebook], spec.input_dir("test"), 1))
            wall, used, _stages, _at_once = _harness(NYC_TASK, submissions, None)
            harness.append(wall)
            cpu.append(used)
        return [
            ("bare `docker run --rm --network none ... papermill`", statistics.median(bare), None),
            ("`harness run` (defaults, one submission)", statistics.median(harness), statistics.median(cpu)),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_nyc(rows: list[tuple[str, float, float | None]], repeats: int) -> None:
    print(
        "\nNYC gradient-boosting notebook (examples/submissions/nyc-flight-delays/gbm-notebook), "
        f"median of {repeats}:\n"
    )
    print("| what | wall (s) | harness CPU (s) |")
    print("| --- | ---: | ---: |")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {'-' if cpu is None else f'{cpu:.2f}'} |")
    bare, harness = rows[0][1], rows[1][1]
    print(f"\nharness overhead as a share of its run: (harness - bare) / harness = {(harness - bare) / harness:.1%}")


def _harness(task: Path, submissions: Path, workers: int | None) -> tuple[float, float, list[dict[str, float]], int]:
    """(wall s, CPU s of the harness's process tree, each run's stages, sandboxes at once) of one ``harness run``
    in a fresh home (the concurrency as the run's summary line reports it: what ``default_workers`` chose then)."""
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    try:
        argv = [*HARNESS, "run", str(task), str(submissions), "--home", str(home)]
        out = home / "stdout.txt"
        wall, cpu, _rss = _timed(argv + (["--workers", str(workers)] if workers else []), stdout=str(out))
        with sqlite3.connect(home / "results.sqlite") as db:
            stages = [json.loads(p).get("stages", {}) for (p,) in db.execute("select provenance from runs")]
        at_once = re.search(r"(\d+) at a time", out.read_text())
        return wall, cpu, stages, int(at_once.group(1)) if at_once else 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _idle_during(call: Callable[[], T]) -> tuple[T, float | None]:
    """``call()``'s result and the share of the machine's CPUs left idle while it ran (``None``: no /proc/stat)."""
    before = cpu_ticks()
    result = call()
    after = cpu_ticks()
    if before is None or after is None or after[1] <= before[1]:
        return result, None
    return result, (after[0] - before[0]) / (after[1] - before[1])


def _print_rounds(
    task: Path, submissions: Path, image: str, notebooks: list[Path], input_dir: Path, floor_c: int, rounds: int
) -> None:
    """``rounds`` more pairs, interleaved: the bare floor's concurrency, then ``harness run`` at its defaults;
    a lean bare batch between them (the kernel as the harness starts it); each ratio and their medians (one
    16-copy batch is too short to tell 1.25x from 1.3x here)."""
    print(f"Interleaved rounds: bare {floor_c} at a time, the same with the kernel the harness starts (no debugger:")
    print("`lean`), then `harness run` (defaults):\n")
    print("| round | bare floor (s) | lean bare (s) | harness (s) | ratio | ratio to lean | harness CPU/sub (s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios, lean_ratios = [], []
    for index in range(1, rounds + 1):
        bare = _bare(image, notebooks, input_dir, floor_c)
        lean = _bare(image, notebooks, input_dir, floor_c, lean=True)
        wall, cpu, _stages, _at_once = _harness(task, submissions, None)
        ratios.append(wall / bare)
        lean_ratios.append(wall / lean)
        print(f"| {index} | {bare:.1f} | {lean:.1f} | {wall:.1f} | {wall / bare:.2f}x | {wall / lean:.2f}x "
              f"| {cpu / len(notebooks):.2f} |")  # fmt: skip
    print(f"\nmedian ratio to the lean bare floor: {statistics.median(lean_ratios):.2f}x (the harness's own overhead)")
    print(f"\nmedian ratio of {rounds} rounds: {statistics.median(ratios):.2f}x (target <= 1.25x)\n")


def _fill_runs(url: str, task_id: str, n_runs: int, per_team: int = 10) -> None:
    """Write ``n_runs`` succeeded runs (``per_team`` submissions per team) straight into a store."""
    from harness.store import Store
    from harness.store.schema import RunRow, ScoreRow, SubmissionRow, TeamRow

    store = Store(url)
    store.ensure_task(task_id, "bench", "0" * 64)
    now = dt.datetime.now(dt.UTC)
    with store.session() as sess:
        for t in range(n_runs // per_team):
            team = TeamRow(task_id=task_id, name=f"team-{t:05d}")
            sess.add(team)
            sess.flush()
            for k in range(per_team):
                sub = SubmissionRow(task_id=task_id, team_id=team.id, content_hash=f"{t:032x}{k:032x}",
                                    source=f"team-{t}-{k}", kind="notebook", entry="solution.ipynb",
                                    submitted_at=now - dt.timedelta(minutes=k))  # fmt: skip
                sess.add(sub)
                sess.flush()
                run = RunRow(submission_id=sub.id, phase="test", status="succeeded", active=True, finished_at=now,
                             duration_s=1.0, provenance={"stages": {"command": 1.0}})  # fmt: skip
                sess.add(run)
                sess.flush()
                value = (t * 7 + k) % 97 / 10
                for split in ("public", "private"):
                    for metric in ("mae", "max_error"):
                        sess.add(ScoreRow(run_id=run.id, split=split, metric=metric, value=value))
    store.close()


def _large(task: Path, work: Path, entries: int, runs: int) -> list[tuple[str, float, str]]:
    """Rows (what, seconds, note) of the large-batch figures."""
    from harness.pipeline import RunRecord
    from harness.spec import load_spec
    from harness.status import Status
    from harness.store import Store

    spec = load_spec(task)
    subs = work / "many"
    subs.mkdir()
    for i in range(entries):
        _notebook(subs / f"team-{i:05d}.ipynb", i)
    old = time.time() - 60  # settled: written a minute ago (the fingerprint trusts only settled times)
    for path in subs.iterdir():
        os.utime(path, (old, old))
    home = work / "many-home"
    # Register: plan every entry (opened, hashed, recorded) with the process sandbox but no run, by letting the
    # batch find every run already finished: register once through the store, then time `harness run`.
    code = (
        "import sys, time; from pathlib import Path; from harness.spec import load_spec; "
        "from harness.store import Store; from harness.scheduling import BatchSummary, plan_batch, "
        "_without_iri_grammar; _without_iri_grammar(); "
        f"spec = load_spec(Path({str(task)!r})); store = Store('sqlite:///{home}/results.sqlite'); "
        "store.ensure_task(spec.id, spec.title, spec.spec_hash); t = time.perf_counter(); "
        f"jobs = plan_batch(spec, Path({str(subs)!r}), store=store, submissions_root=Path({str(home)!r}) / "
        "'submissions' / spec.id, phase='test', rerun=False, summary=BatchSummary(spec.id)); "
        "print(len(jobs), time.perf_counter() - t)"
    )
    home.mkdir()
    wall, _cpu, _rss = _timed([sys.executable, "-c", code])
    store = Store(f"sqlite:///{home}/results.sqlite")
    with store.session() as sess:
        from harness.store.schema import SubmissionRow

        ids = [row.id for row in sess.query(SubmissionRow).all()]
    for submission_id in ids:
        run_id = store.start_run(submission_id, "test")
        scores = {s: {"mae": 1.0, "max_error": 1.0} for s in ("public", "private")}
        store.finish_run(run_id, RunRecord(task_id=spec.id, phase="test", team="", content_hash="", kind="notebook",
                                           status=Status.SUCCEEDED, scores=scores,
                                           finished_at=dt.datetime.now(dt.UTC)))  # fmt: skip
    store.close()
    argv = [*HARNESS, "run", str(task), str(subs), "--home", str(home), "--sandbox", "process"]
    first_wall, _c, _r = _timed(argv)  # the first no-op call writes the fingerprints
    noop_wall, _c, rss = _timed(argv)
    lb_home = work / "lb-home"
    lb_home.mkdir()
    _fill_runs(f"sqlite:///{lb_home}/results.sqlite", spec.id, runs)
    lb_argv = [*HARNESS, "leaderboard", str(task), "--home", str(lb_home)]
    lb_first, _c, _r = _timed(lb_argv)  # ranks every run and writes the request's snapshot
    lb_again, _c, _r = _timed(lb_argv)  # nothing changed: answered from the snapshot (harness.board_snapshot)
    return [
        (f"register {entries:,} entries (open, hash, record)", wall, "target < 10 s"),
        (f"no-op re-run of {entries:,} entries, first call (fingerprints written)", first_wall, ""),
        (f"no-op re-run of {entries:,} entries (`harness run`, nothing evaluated)", noop_wall, "target < 10 s"),
        (
            f"`harness leaderboard` over {runs:,} runs ({runs // 10:,} teams), first call (ranks every run)",
            lb_first,
            "after any change to the store or the task",
        ),
        (f"`harness leaderboard` over {runs:,} runs, same request again (its snapshot)", lb_again, "target < 1 s"),
        ("coordinator peak memory in these calls (MiB)", rss, "target < 500 MiB"),
    ]


def load_line(before: tuple[float, float, float]) -> str:
    """The benchmark's closing line: the load average (1, 5, 15 min) at its start (``before``) and now."""
    now = os.getloadavg()
    return f"\nload average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in before)}; after: " + ", ".join(
        f"{v:.2f}" for v in now
    )


def _print_large(
    task: Path, work: Path, entries: int, runs: int, load_before: tuple[float, float, float] | None
) -> None:
    """Print the large-batch table, then the load average before (given; ``None``: not printed here) and after."""
    print("\nLarge batches:\n")
    print("| what | seconds | |")
    print("| --- | ---: | --- |")
    for name, value, note in _large(task, work, entries, runs):
        print(f"| {name} | {value:.2f} | {note} |")
    if load_before is None:
        return
    print(load_line(load_before))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="8 copies, fewer settings, 200 entries, 2,000 runs")
    parser.add_argument("--rounds", type=int, default=1, help="K > 1: K more interleaved bare/harness pairs")
    parser.add_argument("--nyc", action="store_true", help="also the NYC gradient-boosting notebook (minutes)")
    parser.add_argument("--only-nyc", action="store_true", help="only the NYC gradient-boosting notebook")
    parser.add_argument("--nyc-repeats", type=int, default=3)
    parser.add_argument(
        "--only", choices=("large",), help="large: only the large-batch part (no Docker: process sandbox, no image)"
    )
    args = parser.parse_args()
    if args.only_nyc:
        load_before = os.getloadavg()
        _print_nyc(_nyc(args.nyc_repeats), args.nyc_repeats)
        print(f"\nload average before: {', '.join(f'{v:.2f}' for v in load_before)}; after: "
              f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
        return
    if args.quick:
        args.copies, args.entries, args.runs = 8, 200, 2000
    from harness.images import build_task_image
    from harness.spec import load_spec
    from harness.tasks import prepare_task

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        task = work / "minimal"
        shutil.copytree(MINIMAL, task, ignore=shutil.ignore_patterns("data", "__pycache__"))
        prepare_task(task, echo=lambda _msg: None)
        spec = load_spec(task)
        if args.only == "large":
            _print_large(task, work, args.entries, args.runs, load_before)
            return
        image = build_task_image(spec, echo=lambda _msg: None).tag
        submissions = work / "submissions"
        submissions.mkdir()
        for i in range(args.copies):
            _notebook(submissions / f"team-{i:02d}.ipynb", i)
        notebooks = sorted(submissions.iterdir())
        n = args.copies

        input_dir = spec.input_dir("test")
        bare, bare_idle = {}, {}
        for c in (1, 2, 4):
            bare[c], bare_idle[c] = _idle_during(lambda c=c: _bare(image, notebooks, input_dir, c))
        floor_c = min(bare, key=lambda c: bare[c])
        floor = bare[floor_c]
        bare_name = "bare `docker run --rm --network none ... papermill`, {} at a time"
        rows = [(bare_name.format(c), w, None, bare_idle[c]) for c, w in bare.items()]
        (default_wall, default_cpu, stages, chosen), idle = _idle_during(lambda: _harness(task, submissions, None))
        rows.append((f"`harness run` (defaults: chose {chosen} workers)", default_wall, default_cpu, idle))
        for c in (4,) if args.quick else (1, 2, 4):
            (wall, cpu, _stages, _at_once), idle = _idle_during(lambda c=c: _harness(task, submissions, c))
            rows.append((f"`harness run --workers {c}`", wall, cpu, idle))

        print(f"\n{n} trivial notebook submissions of the minimal task; {os.cpu_count()} cores\n")
        print("| what | wall (s) | per submission (s) | vs bare floor | harness CPU per submission (s) | CPUs idle |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, wall, cpu, idle in rows:
            cpu_text = f"{cpu / n:.2f}" if cpu is not None else "-"
            idle_text = "-" if idle is None else f"{idle:.0%}"
            print(f"| {name} | {wall:.1f} | {wall / n:.2f} | {wall / floor:.2f}x | {cpu_text} | {idle_text} |")
        print(f"\nbare floor: concurrency {floor_c}; target: `harness run` defaults <= 1.25x, CPU <= 0.25 s")
        print("CPUs idle: the machine's idle share over the batch (/proc/stat; near 0%: the batch is CPU-bound, and")
        print("no overlapping of waits, such as sandboxes prepared ahead, can make it faster)\n")
        if args.rounds > 1:
            _print_rounds(task, submissions, image, notebooks, input_dir, floor_c, args.rounds)

        print("Stages of the default run (seconds per run, from provenance['stages']):\n")
        print("| stage | median | max |")
        print("| --- | ---: | ---: |")
        for stage in STAGES:
            values = [s[stage] for s in stages if stage in s]
            if values:
                print(f"| {stage} | {statistics.median(values):.3f} | {max(values):.3f} |")

        _print_large(task, work, args.entries, args.runs, None if args.nyc else load_before)
        if args.nyc:
            _print_nyc(_nyc(args.nyc_repeats), args.nyc_repeats)
            print(load_line(load_before))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
