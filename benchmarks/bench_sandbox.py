"""Overhead of the Docker sandbox: ``python -c pass`` through DockerSandbox against a bare ``docker run --rm``.

Prints a markdown table (median of N runs each, runs interleaved so machine load hits all variants alike).
Measured, not asserted; the target is a sandboxed run within 1.25x of the bare one.

Variants:

* ``docker run --rm IMAGE python -c pass``: the docker CLI, no limits (the reference).
* ``docker run --rm`` with the sandbox's flags: the same policy through the CLI (what the policy itself costs).
* ``DockerSandbox.run``: the harness (policy, attach, memory sampling, loop-mounted output file system, cleanup).

Usage: ``python benchmarks/bench_sandbox.py [--runs 20] [--image harness-task/minimal:latest]``. The image is built
from ``tests/fixtures/tasks/minimal`` when missing (offline).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.sandbox.base import Limits, RunRequest
from harness.sandbox.docker import DockerAPI, DockerSandbox

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_TASK = ROOT / "tests" / "fixtures" / "tasks" / "minimal"
LIMITS = Limits(time_s=60, memory_mb=512, cpus=1.0, pids=64, output_mb=64, log_kb=256)


def ensure_image(image: str) -> None:
    """Build the fixture task's image when ``image`` is missing (only for the default tag)."""
    if DockerAPI().image_id(image):
        return
    if image != "harness-task/minimal:latest":
        sys.exit(f"image {image} is missing; build it with `harness image build TASK_DIR`")
    from harness.images import build_task_image
    from harness.spec import load_spec

    build_task_image(load_spec(FIXTURE_TASK), echo=lambda m: print(m, file=sys.stderr))


def bare_run(image: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["docker", "run", "--rm", image, "python", "-c", "pass"], check=True, capture_output=True)

    return run


def policy_cli_run(image: str, scratch: Path) -> Callable[[], None]:
    out = scratch / "cli-output"
    out.mkdir()
    shutil.chown(out, 1000, 1000)
    mib = LIMITS.memory_mb * 1024 * 1024
    argv = [
        "docker", "run", "--rm", "--network", "none", "--user", "1000:1000", "--read-only",
        "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=128m", "--tmpfs", "/home/team:rw,nosuid,nodev,size=32m,uid=1000",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--init", "--pids-limit", str(LIMITS.pids),
        "--memory", str(mib), "--memory-swap", str(mib), "--cpus", str(LIMITS.cpus), "--log-driver", "none",
        "-v", f"{out}:/output", "-w", "/home/team", image, "python", "-c", "pass",
    ]  # fmt: skip

    def run() -> None:
        subprocess.run(argv, check=True, capture_output=True)

    return run


def sandbox_run(image: str, scratch: Path) -> Callable[[], None]:
    sandbox = DockerSandbox(work_dir=scratch)
    counter = [0]

    def run() -> None:
        counter[0] += 1
        out = scratch / f"out-{counter[0]}"
        out.mkdir()
        result = sandbox.run(
            RunRequest(
                image=image, command=("python", "-c", "pass"), output_dir=out, limits=LIMITS, workdir="/home/team"
            )
        )
        if not result.ok:
            raise SystemExit(f"sandboxed run failed: {result}")
        shutil.rmtree(out)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per variant (default 20)")
    parser.add_argument("--image", default="harness-task/minimal:latest", help="image to run")
    args = parser.parse_args()
    ensure_image(args.image)
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        scratch = Path(tmp)
        variants = {
            "`docker run --rm IMAGE python -c pass` (bare)": bare_run(args.image),
            "`docker run --rm` + sandbox policy flags": policy_cli_run(args.image, scratch),
            "`DockerSandbox.run` (harness)": sandbox_run(args.image, scratch),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for run in variants.values():  # warm-up: page cache, image layers
            run()
        for _ in range(args.runs):
            for name, run in variants.items():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
    bare = statistics.median(next(iter(times.values())))
    print(f"Median of {args.runs} runs each, interleaved; image {args.image}.\n")
    print("| variant | median (s) | min (s) | max (s) | ratio to bare |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {min(values):.3f} | {max(values):.3f} | {median / bare:.2f}x |")


if __name__ == "__main__":
    main()
