"""`harness task validate` on the minimal fixture task, end to end: the real CLI, the Docker sandbox for the
baseline and the starter notebook, degenerate submissions scored, prepare run twice in its isolated environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_validate_proves_the_minimal_task_sound(minimal_task: Path, test_image: str) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "task", "validate", str(minimal_task)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "task is sound" in out
    for line in (
        "│ README, starter, baseline        │ pass",
        "│ baseline (validation)            │ pass",
        "│ starter notebook (validation)    │ pass",
        # scored on the judges' test phase with constants from the validation reference
        "│ degenerate submissions           │ pass   │ constant median (mae 60.000 on public); constant median "
        "(mae 60.000 on private); shuffled reference",
        "│ prepare is deterministic         │ pass   │ two runs wrote the same 7 files, byte for byte",
        "│ input folder (test)              │ pass   │ 2 files (test.csv, train.csv)",
    ):
        assert line in out, out
    assert "│ degenerate: constant median    │ public     │ 60.000 │" in out
    assert "│ baseline (test)                  │ pass" in out
