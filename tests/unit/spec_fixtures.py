"""Helpers that build the toy task of tests/fixtures/specs/toy in a temporary folder, with its data."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness.spec import TaskSpec, load_spec

TOY_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "toy"

#: Test reference: ten rows, t01-t03 public, the rest private.
TEST_REFERENCE = pd.DataFrame(
    {
        "id": [f"t{i:02d}" for i in range(1, 11)],
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        "split": ["public"] * 3 + ["private"] * 7,
    }
)
#: Validation reference: four rows, all of split validation.
VALIDATION_REFERENCE = pd.DataFrame(
    {"id": ["v1", "v2", "v3", "v4"], "y": [0.5, -1.5, 2.0, 4.0], "split": ["validation"] * 4}
)


def toy_raw() -> dict[str, Any]:
    """The toy task.yaml as a dict (a fresh copy to mutate)."""
    return copy.deepcopy(yaml.safe_load((TOY_DIR / "task.yaml").read_text()))


def write_toy_task(dest: Path, raw: dict[str, Any] | None = None, *, data: bool = True) -> Path:
    """Write the toy task into ``dest`` (task.yaml from ``raw``, the evaluator and prepare script, and the data
    that prepare.py would write unless ``data`` is False); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("evaluator.py", "prepare.py"):
        shutil.copy(TOY_DIR / name, dest / name)
    (dest / "task.yaml").write_text(yaml.safe_dump(raw if raw is not None else toy_raw(), sort_keys=False))
    if data:
        root = dest / "data"
        for phase, ref in (("validation", VALIDATION_REFERENCE), ("test", TEST_REFERENCE)):
            folder = root / f"{phase}_input"
            folder.mkdir(parents=True)
            ref[["id"]].assign(x=range(len(ref))).to_csv(folder / "test.csv", index=False)
            pd.DataFrame({"id": ["a1", "a2"], "x": [0, 1], "y": [0.0, 1.0]}).to_csv(folder / "train.csv", index=False)
        (root / "public").mkdir()
        (root / "hidden").mkdir()
        VALIDATION_REFERENCE.to_csv(root / "validation_reference.csv", index=False)
        TEST_REFERENCE.to_csv(root / "hidden" / "test_reference.csv", index=False)
    return dest


def toy_spec(dest: Path, **evaluator: Any) -> TaskSpec:
    """Write the toy task with ``evaluator`` keys overridden (e.g. ``class_name=...``, ``time_s=...``); load it."""
    raw = toy_raw()
    raw["evaluator"].update(evaluator)
    return load_spec(write_toy_task(dest, raw))


def write_predictions(folder: Path, text: str | bytes, name: str = "predictions.csv") -> Path:
    """Write a predictions file (text as UTF-8, bytes as given) into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def perfect_predictions(reference: pd.DataFrame = TEST_REFERENCE) -> str:
    """CSV text predicting every reference row exactly."""
    return reference[["id", "y"]].to_csv(index=False)


def add_scored_team(home: Path, task: Path, index: int, mae: float, *, current: bool = False) -> None:
    """Register and finish one succeeded test run of team ``team-<index>`` (public ``mae``, ``within_1`` 1.0) in
    the SQLite store of ``home``; ``current``: record the task's inputs as they are now (the run is not stale)."""
    from harness.provenance import task_inputs
    from harness.record import RunRecord
    from harness.status import Status
    from harness.store import Store

    spec = load_spec(task)
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        store.ensure_task(spec.id, spec.title, spec.spec_hash)
        team = f"team-{index:02d}"
        sub_id, _ = store.register_submission(spec.id, team, f"{index:064x}", source=team, kind="script", entry="m.py")
        run_id = store.start_run(sub_id, "test")
        inputs = {**task_inputs(spec, "test"), "image_id": "", "predictions": ""} if current else None
        record = RunRecord(
            task_id=spec.id, phase="test", team=team, content_hash=f"{index:064x}", kind="script",
            status=Status.SUCCEEDED, scores={"public": {"mae": mae, "within_1": 1.0}},
            provenance={"inputs": inputs} if inputs else {},
        )  # fmt: skip
        store.finish_run(run_id, record)
    finally:
        store.close()
