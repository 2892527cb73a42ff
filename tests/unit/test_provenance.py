"""Provenance of scores (issue 14): the evaluator's local imports found by ast, stale runs named, the rescored run
replacing the active one in one transaction, a guarded prepare, and many kept folders scored in few processes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes import finished_record
from spec_fixtures import perfect_predictions, toy_spec, write_predictions, write_toy_task

from harness.errors import EvaluatorError, InvalidOutputError, PrepareError, StoreError
from harness.provenance import (
    evaluator_files,
    file_sha256,
    prepare_guard,
    stale_summary,
    staleness,
    task_inputs,
)
from harness.scoring.batch import score_many
from harness.spec import load_spec
from harness.status import Status
from harness.store import Store, record_rescored, run_by_id
from harness.tasks_prepare import manifest_path, prepare_task


def test_evaluator_files_follow_local_imports_read_with_ast_and_skip_installed_ones(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task")
    evaluator = spec.evaluator_path
    evaluator.write_text(
        "import pandas as pd\nfrom helpers import scale\nfrom metrics_pkg.core import mae\n" + evaluator.read_text()
    )
    (tmp_path / "task" / "helpers.py").write_text("import secondary\nscale = 1\n")
    (tmp_path / "task" / "secondary.py").write_text("X = 1\n")
    (tmp_path / "task" / "metrics_pkg").mkdir()
    (tmp_path / "task" / "metrics_pkg" / "__init__.py").write_text("")
    (tmp_path / "task" / "metrics_pkg" / "core.py").write_text("def mae(): ...\n")
    (tmp_path / "task" / "unused.py").write_text("never imported\n")
    names = [p.relative_to((tmp_path / "task").resolve()).as_posix() for p in evaluator_files(spec)]
    assert names == ["evaluator.py", "helpers.py", "metrics_pkg/__init__.py", "metrics_pkg/core.py", "secondary.py"]

    before = task_inputs(spec, "test")
    (tmp_path / "task" / "secondary.py").write_text("X = 2\n")  # two imports away
    after = task_inputs(load_spec(tmp_path / "task"), "test")
    assert before["evaluator"] != after["evaluator"]
    assert before["reference"] == after["reference"] and before["input"] == after["input"]
    assert set(before["reference"]) == {"validation", "test"}


def test_staleness_names_what_changed_and_what_fixes_it(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task")
    now = {**task_inputs(spec, "test"), "image_id": "sha256:new"}
    recorded = {**now, "image_id": "sha256:new", "predictions": "ab" * 32}
    assert not staleness(recorded, now, phase="test").stale
    assert staleness(None, now, phase="test").describe() == "provenance unknown"
    evaluator = staleness({**recorded, "evaluator": "0" * 64}, now, phase="test")
    assert evaluator.describe() == "evaluator changed" and not evaluator.needs_rerun
    rebuilt = staleness({**recorded, "image_id": "sha256:old", "reference": {"test": "x"}}, now, phase="test")
    assert rebuilt.describe() == "reference data changed, image rebuilt" and rebuilt.needs_rerun
    only_validation = staleness({**recorded, "reference": {**now["reference"], "validation": "x"}}, now, phase="test")
    assert not only_validation.stale  # another phase's reference does not make a test run stale
    lines = stale_summary([evaluator] * 14 + [rebuilt, staleness({}, now, phase="test")])
    assert lines[0].startswith("evaluator changed since 14 run(s) were scored: `harness rescore TASK`")
    assert any(line.startswith("reference data changed since 1 run(s)") for line in lines)
    assert any("image rebuilt since 1 run(s)" in line and "--rerun" in line for line in lines)
    assert any("1 run(s) have unknown provenance" in line for line in lines)


@pytest.fixture()
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    s.ensure_task("task", "A task", "0" * 64)
    yield s
    s.close()


def test_a_rescored_run_replaces_the_active_one_and_the_history_keeps_both(store: Store) -> None:
    sub_id, _ = store.register_submission("task", "alpha", "c" * 64, source="alpha", kind="script", entry="main.py")
    old_id = store.start_run(sub_id, "test")
    old_scores = {"public": {"mae": 1.0}, "private": {"mae": 2.0}}
    store.finish_run(
        old_id,
        finished_record(
            "succeeded", scores=old_scores, duration_s=3.5, artifacts_dir="/a", provenance={"inputs": {"x": "1"}}
        ),
    )
    new_scores = {"public": {"mae": 0.5}, "private": {"mae": 0.7}}
    new_id = record_rescored(store, old_id, finished_record("succeeded", scores=new_scores, provenance={"y": 2}))
    active = store.runs("task")
    assert [run.run_id for run in active] == [new_id]
    assert active[0].scores == new_scores and active[0].duration_s == 3.5 and active[0].artifacts_dir == "/a"
    assert active[0].provenance["rescored_from"] == old_id and active[0].provenance["y"] == 2
    old = run_by_id(store, old_id)
    assert old is not None and not old.active and old.scores == old_scores and old.provenance["inputs"] == {"x": "1"}
    with pytest.raises(StoreError, match="no longer its submission's active run"):
        record_rescored(store, old_id, finished_record("succeeded", scores=new_scores))
    with pytest.raises(StoreError, match="cannot succeed without scores"):
        record_rescored(store, new_id, finished_record("succeeded"))
    invalid = record_rescored(store, new_id, finished_record("invalid_output", reason="bad column"))
    assert [(r.run_id, r.status) for r in store.runs("task")] == [(invalid, Status.INVALID_OUTPUT)]
    assert len(store.runs("task", active_only=False)) == 3
    assert run_by_id(store, 999) is None


def test_prepare_records_a_manifest_and_refuses_new_data_under_scored_runs_without_force(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task", data=False)
    root = prepare_task(task, echo=lambda _: None)
    spec = load_spec(task)
    manifest = manifest_path(spec).read_text()
    assert '"hidden/test_reference.csv"' in manifest and manifest_path(spec).parent == root

    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    try:
        guard = prepare_guard(store, force=False)
        script = task / "prepare.py"
        script.write_text(script.read_text().replace("{n + 1.0}", "{n + 2.0}"))  # the reference changes
        prepare_task(task, echo=lambda _: None, guard=guard)  # no scored runs yet: replaced
        reference = (root / "hidden" / "test_reference.csv").read_text()

        store.ensure_task(spec.id, spec.title, spec.spec_hash)
        sub_id, _ = store.register_submission(spec.id, "alpha", "c" * 64, source="a", kind="script", entry="main.py")
        store.finish_run(store.start_run(sub_id, "test"), finished_record("failed"))
        script.write_text(script.read_text().replace("{n + 2.0}", "{n + 3.0}"))
        with pytest.raises(PrepareError, match=r"would change 1 file\(s\).*under 1 scored run.*--force") as refused:
            prepare_task(task, echo=lambda _: None, guard=guard)
        assert "reference data" in str(refused.value) and "harness rescore" in str(refused.value)
        assert (root / "hidden" / "test_reference.csv").read_text() == reference  # the old data is kept
        said: list[str] = []
        prepare_task(task, echo=lambda _: None, guard=prepare_guard(store, force=True, echo=said.append))
        assert (root / "hidden" / "test_reference.csv").read_text() != reference
        assert said and said[0].startswith("--force: this prepare would change")
        assert [p.name for p in task.iterdir() if p.name.startswith(".data.") and "lock" not in p.name] == []
    finally:
        store.close()


def test_score_many_scores_each_folder_as_score_outputs_would(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task")
    good = write_predictions(tmp_path / "good", perfect_predictions()).parent
    broken = write_predictions(tmp_path / "broken", "id,y\nt01,1.0\n").parent
    missing = tmp_path / "missing"
    missing.mkdir()
    outcomes = score_many(spec, [good, broken, missing, good], "test", workers=2)
    assert (
        outcomes[0]
        == outcomes[3]
        == {"public": {"mae": 0.0, "within_1": 1.0}, "private": {"mae": 0.0, "within_1": 1.0}}
    )
    assert isinstance(outcomes[1], InvalidOutputError) and "missing" in str(outcomes[1])
    assert isinstance(outcomes[2], InvalidOutputError)
    assert score_many(spec, [], "test") == []


def test_score_many_reports_a_broken_evaluator_for_every_folder(tmp_path: Path) -> None:
    spec = toy_spec(tmp_path / "task")
    spec.evaluator_path.write_text(spec.evaluator_path.read_text() + "\nraise RuntimeError('broken import')\n")
    good = write_predictions(tmp_path / "good", perfect_predictions()).parent
    outcomes = score_many(spec, [good, good], "test", workers=1)
    assert all(isinstance(o, EvaluatorError) and "broken import" in str(o) for o in outcomes)


def test_rescore_task_scores_kept_predictions_again_and_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    from harness.record import RunRecord
    from harness.rescoring import rescore_task

    spec = toy_spec(tmp_path / "task")
    inputs = task_inputs(spec, "test")
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    store.ensure_task(spec.id, spec.title, spec.spec_hash)
    kept = {
        "good": perfect_predictions(),
        "shrunk": perfect_predictions(),  # valid when scored; then the evaluator's check refuses it (see below)
        "tampered": perfect_predictions(),
        "crashed": None,
    }
    for team, text in kept.items():
        artifacts = tmp_path / "artifacts" / team
        predictions = write_predictions(artifacts / "output", text or "")
        sub_id, _ = store.register_submission(spec.id, team, team * 8, source=team, kind="script", entry="main.py")
        status = Status.FAILED if text is None else Status.SUCCEEDED
        scores = {} if text is None else {"public": {"mae": 9.0, "within_1": 0.0}, "private": {"mae": 9.0}}
        recorded = {**inputs, "image_id": "", "predictions": file_sha256(predictions)}
        store.finish_run(
            store.start_run(sub_id, "test"),
            RunRecord(
                task_id=spec.id, phase="test", team=team, content_hash=team * 8, kind="script", status=status,
                scores=scores, artifacts_dir=str(artifacts), provenance={"inputs": recorded},
            ),
        )  # fmt: skip
    (tmp_path / "artifacts" / "tampered" / "output" / "predictions.csv").write_text("id,y\nt01,0\n")
    # The evaluator now refuses the "shrunk" team's file (standing in for a stricter check).
    spec.evaluator_path.write_text(
        spec.evaluator_path.read_text() + "\n\ndef _refuse(self, predictions):\n"
        "    if self.output_dir.parent.name == 'shrunk':\n"
        "        from harness.scoring import InvalidOutputError\n"
        "        raise InvalidOutputError('refused', ['shrunk predictions are not accepted any more'])\n"
        f"\n{spec.evaluator.class_name}.check_predictions = _refuse\n"
    )
    try:
        summary = rescore_task(load_spec(tmp_path / "task"), store, workers=1)
        active = {run.team: run for run in store.runs(spec.id)}
        history = store.runs(spec.id, active_only=False)
    finally:
        store.close()
    assert sorted(item.team for item in summary.rescored) == ["good", "shrunk"]
    assert {team for team, _run, _why in summary.skipped} == {"tampered", "crashed"}
    assert any("changed since it was scored" in why for team, _run, why in summary.skipped if team == "tampered")
    assert active["good"].status is Status.SUCCEEDED and active["good"].scores["public"]["mae"] == 0.0
    assert active["shrunk"].status is Status.INVALID_OUTPUT
    assert "shrunk predictions are not accepted any more" in active["shrunk"].reason
    assert active["tampered"].scores["public"]["mae"] == 9.0  # untouched
    assert len(history) == 6
    lines = summary.lines()
    assert any(line.startswith("good: mae (public) 9 -> 0") for line in lines)
    assert lines[-1].startswith("2 run(s) of toy-delays rescored") and "no team code was run" in lines[-1]


def test_the_leaderboard_reads_its_runs_once_and_says_what_the_separate_reads_said(tmp_path: Path) -> None:
    import re
    import sys

    from harness.provenance import stale_report
    from harness.ranking import leaderboard, leaderboard_and_stale

    spec = toy_spec(tmp_path / "task")
    module = "harness_evaluator_" + re.sub(r"\W", "_", spec.id)  # what load_evaluator names the evaluator's module
    sys.modules.pop(module, None)
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    try:
        store.ensure_task(spec.id, spec.title, spec.spec_hash)
        now = task_inputs(spec, "test")
        metric = next(m.name for m in spec.metrics if m.primary)
        for index, (team, inputs) in enumerate(
            [("alpha", now), ("beta", {**now, "evaluator": "0" * 64}), ("gamma", {})]
        ):
            sub_id, _ = store.register_submission(spec.id, team, f"{index}" * 64, source=team, kind="script",
                                                  entry="main.py")  # fmt: skip
            run_id = store.start_run(sub_id, "test")
            scores = {split: {m.name: 1.0 + index for m in spec.metrics} for split in ("public", "private")}
            record = finished_record("succeeded", scores=scores, provenance={"inputs": inputs})
            store.finish_run(run_id, replace(record, task_id=spec.id, artifacts_dir=str(tmp_path / team)))
        reads = []
        runs = store.runs

        def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(args)
            return runs(*args, **kwargs)

        store.runs = counted  # type: ignore[method-assign]
        table, lines = leaderboard_and_stale(spec, store=store, intervals=True)
        assert len(reads) == 1  # the board, its intervals and the stale warnings share one read
        store.runs = runs  # type: ignore[method-assign]
        separate = leaderboard(spec, store=store, intervals=True)
        pd.testing.assert_frame_equal(table, separate)
        assert lines == stale_report(spec, store) and len(lines) == 2  # evaluator changed; provenance unknown
        assert table["stale"].tolist() == ["", "evaluator changed", "provenance unknown"]
        assert list(table["team"]) == ["alpha", "beta", "gamma"] and table[metric].tolist() == [1.0, 2.0, 3.0]
        # no team kept predictions: the board says so without importing the evaluator
        assert "kept predictions of 3 ranked team(s)" in table.attrs["intervals"]["unavailable"]
        assert module not in sys.modules
    finally:
        store.close()
