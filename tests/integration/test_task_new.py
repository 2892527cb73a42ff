"""`harness task new` for each kind, then `task prepare`, `image build` and `task validate` through the real CLI: each
skeleton is sound as written. The skeletons' image (`stack: none`, no packages) is the minimal fixture's, built once
per session (``test_image``), so no build happens here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.skeleton import KINDS

pytestmark = pytest.mark.integration


def _harness(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        cwd=cwd,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"harness {' '.join(args)} failed (exit {proc.returncode}):\n{out}"
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_new_task_of_each_kind_validates(tmp_path: Path, test_image: str, kind: str) -> None:
    task_id = f"new-{kind}"
    _harness("task", "new", task_id, "--kind", kind, cwd=tmp_path)
    task = f"task_specs/{task_id}"
    _harness("task", "prepare", task, cwd=tmp_path)
    built = _harness("image", "build", task, cwd=tmp_path)
    assert "reused image" in built, built  # the minimal fixture's image: same (empty) package list, stack none
    out = _harness("task", "validate", task, cwd=tmp_path)
    assert "task is sound" in out
    for check in ("baseline (validation)", "starter notebook (validation)", "degenerate submissions"):
        assert any(line.startswith(f"│ {check}") and "│ pass" in line for line in out.splitlines()), (check, out)
