"""One submission and a batch, end to end without Docker: the pipeline and the scheduler against a fake sandbox.

The sandbox is :class:`fakes.FakeSandbox` (it writes scripted outputs); everything else is real: opening and
hashing, validation, scoring in evaluator processes, the SQLite store, planning, hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import FakeSandbox, make_result
from spec_fixtures import perfect_predictions, toy_raw, write_toy_task

from harness.errors import EngineUnavailableError, SandboxError
from harness.pipeline import evaluate_opened
from harness.sandbox import SANDBOXES, RunOutcome
from harness.scheduling import Hooks, evaluate_many
from harness.spec import TaskSpec, load_spec
from harness.status import Status
from harness.store import Store
from harness.submission import open_submission

PERFECT = {"predictions.csv": perfect_predictions()}


@pytest.fixture()
def spec(tmp_path: Path) -> TaskSpec:
    return load_spec(write_toy_task(tmp_path / "task"))


def _script_entry(folder: Path, tag: str, team: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(f"print('team code {tag}')\n")
    if team:
        (folder / "team.yaml").write_text(f"team: {team}\n")
    return folder


def _evaluate(spec: TaskSpec, tmp_path: Path, sandbox: FakeSandbox, phase: str = "test") -> Any:
    opened = open_submission(_script_entry(tmp_path / "entry", "x"), tmp_path / "opened", spec.submission)
    return evaluate_opened(spec, opened, phase=phase, artifacts_dir=tmp_path / "artifacts", sandbox=sandbox)


# --- one submission -------------------------------------------------------------------------------------------


def test_a_run_is_validated_scored_per_split_and_sees_only_its_mounts(spec: TaskSpec, tmp_path: Path) -> None:
    box = FakeSandbox(files=PERFECT)
    record = _evaluate(spec, tmp_path, box)
    assert record.status is Status.SUCCEEDED and record.reason == ""
    assert record.scores == {"public": {"mae": 0.0, "within_1": 1.0}, "private": {"mae": 0.0, "within_1": 1.0}}
    [request] = box.requests
    assert {(m.target, m.read_only) for m in request.mounts} == {("/submission", True), ("/input", True)}
    hidden = (spec.task_dir / "data" / "hidden").resolve()
    assert all(not Path(m.source).resolve().is_relative_to(hidden) for m in request.mounts)
    assert record.provenance["sandbox"] == "fake" and record.provenance["phase"] == "test"
    assert box.closed == 0  # a sandbox passed in is the caller's to close


@pytest.mark.parametrize(
    ("result", "files", "status", "reason"),
    [
        (make_result(outcome=RunOutcome.TIMED_OUT, exit_code=None), {}, Status.TIMED_OUT, "time limit of 60 s"),
        (make_result(outcome=RunOutcome.OUT_OF_MEMORY, exit_code=None), {}, Status.OUT_OF_MEMORY, "512 MB"),
        (make_result(exit_code=1, log="Traceback\nValueError: boom\n"), {}, Status.FAILED, "ValueError: boom"),
        (make_result(), {}, Status.INVALID_OUTPUT, "predictions.csv"),
        (make_result(), {"predictions.csv": "id,y\nt01,1\n"}, Status.INVALID_OUTPUT, "lacks 9 of 10 ids"),
    ],
)
def test_each_sandbox_outcome_becomes_a_status_and_a_reason(
    spec: TaskSpec, tmp_path: Path, result: Any, files: dict[str, str], status: Status, reason: str
) -> None:
    record = _evaluate(spec, tmp_path, FakeSandbox([result], files=files))
    assert record.status is status
    assert reason in record.reason, record.reason
    assert record.scores == {}


def test_a_sandbox_fault_is_a_harness_error_but_a_lost_engine_stops(spec: TaskSpec, tmp_path: Path) -> None:
    record = _evaluate(spec, tmp_path, FakeSandbox([SandboxError("the engine refused the container")]))
    assert record.status is Status.HARNESS_ERROR
    assert record.reason == "the sandbox failed: the engine refused the container"
    with pytest.raises(EngineUnavailableError):
        _evaluate(spec, tmp_path / "again", FakeSandbox([EngineUnavailableError("no engine")]))


def test_the_validation_phase_scores_against_validation_labels(spec: TaskSpec, tmp_path: Path) -> None:
    box = FakeSandbox(files={"predictions.csv": "id,y\nv1,0.5\nv2,-1.5\nv3,2.0\nv4,4.0\n"})
    record = _evaluate(spec, tmp_path, box, phase="validation")
    assert record.status is Status.SUCCEEDED and record.scores["validation"]["mae"] == 0.0
    assert box.requests[0].mounts[1].source == spec.input_dir("validation").resolve()


# --- a batch --------------------------------------------------------------------------------------------------


class _Events:
    """Hooks that record what they were told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.hooks = Hooks(
            on_batch_planned=lambda **kw: self.seen.append(("planned", kw)),
            on_run_started=lambda **kw: self.seen.append(("started", kw["team"])),
            on_run_finished=lambda **kw: self.seen.append(("finished", (kw["record"].team, kw["record"].status))),
        )

    def of(self, kind: str) -> list[Any]:
        return [value for event, value in self.seen if event == kind]


@pytest.fixture()
def fake_box(monkeypatch: pytest.MonkeyPatch) -> FakeSandbox:
    box = FakeSandbox(files=PERFECT)
    monkeypatch.setitem(SANDBOXES, "fake", lambda: box)
    return box


def _batch(spec: TaskSpec, subs: Path, home: Path, events: _Events | None = None, **options: Any) -> Any:
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        return evaluate_many(
            spec, subs, store=store, home=home, sandbox="fake", workers=2, hooks=events.hooks if events else None,
            **options,
        )  # fmt: skip
    finally:
        store.close()


def test_a_batch_plans_runs_writes_once_and_calls_its_hooks(
    spec: TaskSpec, tmp_path: Path, fake_box: FakeSandbox
) -> None:
    subs = tmp_path / "subs"
    _script_entry(subs / "alpha", "a")
    _script_entry(subs / "bravo", "b")
    (subs / "empty").mkdir()  # refused at the door
    home = tmp_path / "home"
    events = _Events()
    summary = _batch(spec, subs, home, events)
    assert summary.entries == 3 and summary.evaluated == 3
    assert summary.statuses == {"succeeded": 2, "rejected": 1}
    assert events.of("planned") == [{"total": 3, "skipped": 0}]
    assert sorted(events.of("started")) == ["alpha", "bravo"]  # the rejected entry never reaches a sandbox
    assert sorted(events.of("finished")) == [
        ("alpha", Status.SUCCEEDED),
        ("bravo", Status.SUCCEEDED),
        ("empty", Status.REJECTED),
    ]
    assert len(fake_box.requests) == 2 and fake_box.closed == 1  # the shared sandbox is closed after the batch

    again = _Events()
    unchanged = _batch(spec, subs, home, again)
    assert unchanged.evaluated == 0 and unchanged.unchanged == 3 and again.of("planned") == [{"total": 0, "skipped": 3}]
    rerun = _batch(spec, subs, home, rerun=True)
    assert rerun.evaluated == 3
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        active = store.runs(spec.id)
        every = store.runs(spec.id, active_only=False)
    finally:
        store.close()
    assert len(active) == 3 and len(every) == 6  # a re-run replaces, never adds
    assert {r.status for r in active} == {Status.SUCCEEDED, Status.REJECTED}


def test_a_harness_error_is_retried_by_the_next_call(spec: TaskSpec, tmp_path: Path, fake_box: FakeSandbox) -> None:
    subs = tmp_path / "subs"
    _script_entry(subs / "alpha", "a")
    home = tmp_path / "home"
    fake_box._results = [SandboxError("disk full"), make_result()]
    first = _batch(spec, subs, home)
    assert first.statuses == {"harness_error": 1}
    second = _batch(spec, subs, home)
    assert second.retried == 1 and second.statuses == {"succeeded": 1}


def test_the_daily_limit_defers_a_teams_extra_submission_without_recording_it(
    tmp_path: Path, fake_box: FakeSandbox
) -> None:
    raw = toy_raw()
    raw["leaderboard"] = {"daily_limit": 1}
    spec = load_spec(write_toy_task(tmp_path / "task", raw))
    subs = tmp_path / "subs"
    _script_entry(subs / "first", "1", team="solo")
    _script_entry(subs / "second", "2", team="solo")
    home = tmp_path / "home"
    summary = _batch(spec, subs, home)
    assert summary.evaluated == 1 and summary.over_limit == ["solo"]
    assert summary.shared_teams == {"solo": ["first", "second"]}
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    try:
        assert len(store.runs(spec.id, active_only=False)) == 1
    finally:
        store.close()
