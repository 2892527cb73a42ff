"""Evaluate many submissions: a local worker pool (or a Dask cluster) with one writer to the store.

The coordinator (:func:`evaluate_many`) opens and hashes every entry of a submissions folder, records teams and
submissions, decides what needs a run (new or changed content, runs interrupted earlier, everything with
``rerun``), and hands each run to a worker. Workers only compute (:func:`harness.pipeline.evaluate_opened` is pure);
the coordinator alone writes the store, one atomic write per finished run. A coordinator killed with SIGKILL loses
nothing: its ``running`` rows are marked ``interrupted`` by the next coordinator and evaluated again.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import hashlib
import logging
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.errors import EngineUnavailableError, HarnessError, ImageError, SubmissionError
from harness.pipeline import RunRecord, evaluate_opened
from harness.sandbox import get_sandbox
from harness.scoring import warm_evaluators
from harness.spec import TaskSpec
from harness.store import Store
from harness.submission import OpenedSubmission, SubmissionEntry, iter_entries, open_submission

__all__ = ["BatchSummary", "Hooks", "evaluate_many"]

log = logging.getLogger(__name__)


class Hooks(Protocol):
    """Callbacks of a batch, all optional (keyword arguments as documented).

    ``on_batch_planned(total=int, skipped=int)``: after every entry was opened and the plan is known.
    ``on_run_started(team=str, content_hash=str)``: a run was handed to a worker.
    ``on_run_finished(record=RunRecord)``: a run's outcome was written to the store.
    """

    def __call__(self, event: str, **kwargs: Any) -> None: ...


@dataclass
class BatchSummary:
    """What a call of :func:`evaluate_many` did.

    Attributes:
        task_id: the task.
        entries: entries found in the submissions folder.
        evaluated: runs executed in this call.
        unchanged: entries skipped because their content already has a finished result.
        recovered: runs of an earlier, interrupted coordinator that were marked ``interrupted``.
        retried: submissions evaluated again because their result was a ``harness_error`` (the harness's fault).
        shared_teams: teams named by more than one entry of the folder (team -> entry names); each entry is one of
            the team's submissions, and the leaderboard keeps one row for the team.
        over_limit: teams whose new submission waits because they reached the spec's ``daily_limit`` today
            (UTC); nothing is recorded for it, so a call on a later day takes it.
        statuses: count of this call's runs per status.
        records: this call's run records, in completion order.
        duration_s: wall-clock seconds of the whole call.
    """

    task_id: str
    entries: int = 0
    evaluated: int = 0
    unchanged: int = 0
    recovered: int = 0
    retried: int = 0
    over_limit: list[str] = field(default_factory=list)
    shared_teams: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    records: list[RunRecord] = field(default_factory=list)
    duration_s: float = 0.0

    def message(self) -> str:
        """One line for humans, e.g. ``"6 entries: 4 evaluated (3 succeeded, 1 failed), 2 unchanged"``."""
        notes = "".join(
            f"; team {team} is named by {len(names)} entries ({', '.join(names)})"
            for team, names in sorted(self.shared_teams.items())
        )
        if self.over_limit:
            notes += (
                f"; {len(self.over_limit)} over their daily limit, not evaluated today: {', '.join(self.over_limit)}"
            )
        if not self.evaluated:
            return (
                f"{self.entries} entries: nothing to evaluate; {self.unchanged} unchanged since their last run" + notes
            )
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        text = f"{self.entries} entries: {self.evaluated} evaluated ({parts}), {self.unchanged} unchanged"
        if self.recovered:
            text += f"; {self.recovered} interrupted run(s) from an earlier call were evaluated again"
        if self.retried:
            text += f"; {self.retried} submission(s) whose last run was a harness error were evaluated again"
        return text + notes + f" in {self.duration_s:.1f} s"


@dataclass
class _Job:
    entry: SubmissionEntry
    team: str
    submission_id: int
    opened: OpenedSubmission | None
    rejection: str = ""
    run_id: int = 0


def _fingerprint(path: Path) -> str:
    """A content hash for an entry that could not be opened (so a rejected entry is not re-tried each call)."""
    digest = hashlib.sha256(b"unopened\0")
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            if item.is_file() and not item.is_symlink():
                digest.update(item.relative_to(path).as_posix().encode("utf-8", "surrogateescape"))
                digest.update(str(item.stat().st_size).encode())
    elif path.is_file():
        size = path.stat().st_size
        if size <= 64 * 1024 * 1024:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(f"{path.name}:{size}:{path.stat().st_mtime_ns}".encode())
    return digest.hexdigest()


def _submitted_at(path: Path) -> dt.datetime:
    """When the entry was submitted, in UTC: the newest modification time of the entry or of any file in it (an
    edit inside a folder does not touch the folder's own time)."""
    try:
        newest = path.stat().st_mtime
        if path.is_dir():
            for item in path.rglob("*"):
                if item.is_file() and not item.is_symlink():
                    newest = max(newest, item.stat().st_mtime)
        return dt.datetime.fromtimestamp(newest, dt.UTC)
    except OSError:
        return dt.datetime.now(dt.UTC)


def _open_entry(spec: TaskSpec, entry: SubmissionEntry, submissions_root: Path) -> tuple[OpenedSubmission | None, str]:
    """Open an entry into the content-addressed folder ``submissions_root/<hash>``; returns (opened, rejection)."""
    incoming = submissions_root / f".incoming-{uuid.uuid4().hex}"
    try:
        opened = open_submission(entry.path, incoming, spec.submission)
    except SubmissionError as exc:
        shutil.rmtree(incoming, ignore_errors=True)
        return None, exc.message
    except OSError as exc:  # writing into the work folder failed (a team's unreadable file is a SubmissionError)
        shutil.rmtree(incoming, ignore_errors=True)
        raise HarnessError(
            f"cannot unpack {entry.path.name} into the work folder {submissions_root}: {exc.strerror or exc}; "
            "make room there (or choose another --home) and run the same command again"
        ) from exc
    final = submissions_root / opened.content_hash
    if final.exists():
        shutil.rmtree(incoming, ignore_errors=True)
    else:
        os.replace(incoming, final)
    return _relocated(opened, final), ""


def _relocated(opened: OpenedSubmission, root: Path) -> OpenedSubmission:
    import dataclasses

    return dataclasses.replace(opened, root=root)


def _executor(workers: int, scheduler_address: str | None) -> tuple[cf.Executor, Callable[[], None]]:
    if scheduler_address:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "--scheduler needs Dask distributed: pip install 'hackathon-harness[distributed]'"
            ) from exc
        client = Client(scheduler_address)
        return client.get_executor(), client.close
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="harness-worker")
    return pool, lambda: pool.shutdown(wait=True, cancel_futures=True)


def evaluate_many(
    spec: TaskSpec,
    submissions_dir: Path,
    *,
    store: Store,
    home: Path,
    workers: int | None = None,
    rerun: bool = False,
    phase: str = "test",
    sandbox: str = "docker",
    scheduler_address: str | None = None,
    hooks: Hooks | None = None,
) -> BatchSummary:
    """Evaluate every entry of a submissions folder that has no finished result yet.

    One entry per team: a folder, .zip, .tar.gz/.tgz/.tar or lone .ipynb; the team is named by a ``team.yaml``
    inside (``team: NAME``) or else by the entry's name. Same content from the same team is the same submission.

    Args:
        spec: the task.
        submissions_dir: the folder of entries.
        store: the results store (this process becomes the task's only writer while it runs).
        home: harness home; opened submissions go to ``home/submissions/<task>/<hash>`` and artifacts to
            ``home/artifacts/<task>/run-<id>``.
        workers: sandboxes run at once (default: the number of cores).
        rerun: evaluate every entry again; the new result replaces the active one (never adds a second).
        phase: ``test`` for judging (default) or ``validation``.
        sandbox: ``docker`` (default) or ``process``.
        scheduler_address: a Dask scheduler (``tcp://host:8786``) to run on a cluster instead of local threads;
            its workers need the same paths (shared file system) and a Docker engine each.
        hooks: progress callbacks, see :class:`Hooks`.

    Returns:
        A :class:`BatchSummary`.

    Raises:
        SubmissionError: ``submissions_dir`` is not a folder.
        StoreError: another coordinator is evaluating this task in the same store.
        EngineUnavailableError, ImageError: the sandbox cannot run at all; nothing was recorded as failed.
        HarnessError: an entry cannot be unpacked into ``home`` (e.g. its disk is full); nothing was recorded for it.
    """
    started = dt.datetime.now(dt.UTC)
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise SubmissionError("not a folder of submissions (one entry per team)", str(submissions_dir))
    notify: Hooks = hooks or (lambda event, **kwargs: None)
    workers = max(1, workers or os.cpu_count() or 1)
    summary = BatchSummary(task_id=spec.id)

    store.ensure_task(spec.id, spec.title, spec.spec_hash)
    store.acquire_lease(spec.id)
    try:
        summary.recovered = store.recover_interrupted(spec.id)
        if sandbox == "docker" and scheduler_address is None and summary.recovered:
            from harness.sandbox.docker import remove_orphans

            # We hold the task's lease: containers and output mounts of an earlier, killed coordinator are orphans.
            remove_orphans(label_prefix=f"{spec.id}/")
        submissions_root = home / "submissions" / spec.id
        submissions_root.mkdir(parents=True, exist_ok=True)
        artifacts_root = home / "artifacts" / spec.id
        jobs: list[_Job] = []
        entries = iter_entries(submissions_dir)
        summary.entries = len(entries)
        entries_of_team: dict[str, list[str]] = {}
        for entry in entries:
            opened, rejection = _open_entry(spec, entry, submissions_root)
            team = (opened.team if opened and opened.team else None) or entry.default_team_name
            entries_of_team.setdefault(team, []).append(entry.path.name)
            limit = spec.leaderboard.daily_limit
            if (
                opened is not None
                and phase == "test"
                and limit
                and not store.is_known(spec.id, team, opened.content_hash)
                and store.registered_today(spec.id, team) >= limit
            ):
                # Not recorded at all, so the entry is taken in a later call on another (UTC) day.
                if team not in summary.over_limit:
                    summary.over_limit.append(team)
                log.warning("team %s reached its daily limit of %s submissions; %s waits", team, limit, entry.path)
                continue
            if opened is not None:
                submission_id, _created = store.register_submission(
                    spec.id,
                    team,
                    opened.content_hash,
                    source=str(entry.path),
                    kind=opened.kind,
                    entry=opened.entry,
                    n_files=opened.n_files,
                    n_bytes=opened.n_bytes,
                    notes=opened.notes,
                    submitted_at=_submitted_at(entry.path),
                )
            else:
                submission_id, _created = store.register_submission(
                    spec.id,
                    team,
                    _fingerprint(entry.path),
                    source=str(entry.path),
                    kind="unknown",
                    entry="",
                    notes=[rejection],
                    submitted_at=_submitted_at(entry.path),
                )
            active = store.active_run(submission_id, phase)
            if not rerun and active is not None:
                if active.status != "harness_error":
                    summary.unchanged += 1
                    continue
                summary.retried += 1  # the harness was at fault (disk full, engine lost): the team gets a real run
            jobs.append(_Job(entry, team, submission_id, opened, rejection))
        summary.shared_teams = {team: names for team, names in entries_of_team.items() if len(names) > 1}
        for team, names in summary.shared_teams.items():
            log.warning("team %s is named by %s entries (%s); each is one of its submissions", team, len(names), names)
        notify("on_batch_planned", total=len(jobs), skipped=summary.unchanged)
        if not jobs:
            return summary
        _check_can_run(spec, sandbox, any(job.opened for job in jobs))

        executor, shutdown = _executor(workers, scheduler_address)
        # Local workers share one sandbox, so Ctrl-C can remove every container it started (worker threads
        # cannot be interrupted); Dask workers get the sandbox's name and make their own.
        shared = get_sandbox(sandbox) if scheduler_address is None else None
        futures: dict[cf.Future[RunRecord], _Job] = {}
        waiting = list(reversed(jobs))
        # Local runs score in evaluator processes started ahead of time (Dask workers score cold).
        warm = warm_evaluators(workers) if scheduler_address is None else contextlib.nullcontext()
        try:
            with warm:
                # At most `workers` runs in flight: a run's row says `running` only while it really runs, and
                # after Ctrl-C or SIGKILL nothing that never started is left looking started.
                while waiting or futures:
                    while waiting and len(futures) < workers:
                        job = waiting.pop()
                        job.run_id = store.start_run(job.submission_id, phase)
                        if job.opened is None:
                            _finish_rejected(store, spec, job, phase, summary, notify)
                            continue
                        future = executor.submit(
                            evaluate_opened,
                            spec,
                            job.opened,
                            phase=phase,
                            artifacts_dir=artifacts_root / f"run-{job.run_id}",
                            sandbox=shared or sandbox,
                            team=job.team,
                        )
                        futures[future] = job
                        notify("on_run_started", team=job.team, content_hash=job.opened.content_hash)
                    if not futures:
                        continue
                    done, _pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        job = futures.pop(future)
                        record = _outcome(spec, job, phase, future)
                        _write(store, job, record)
                        store.renew_lease(spec.id)
                        summary.evaluated += 1
                        summary.statuses[record.status] += 1
                        summary.records.append(record)
                        notify("on_run_finished", record=record)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            if shared is not None:
                shared.close()  # stops the runs still going (after Ctrl-C or an error): containers, processes
            shutdown()
    finally:
        store.release_lease(spec.id)
        summary.duration_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return summary


def _outcome(spec: TaskSpec, job: _Job, phase: str, future: cf.Future[RunRecord]) -> RunRecord:
    """The record of a finished future; an unexpected exception becomes a ``harness_error`` record."""
    try:
        return future.result()
    except (EngineUnavailableError, ImageError):
        raise
    except Exception as exc:  # a harness fault: recorded as data, the batch goes on
        log.exception("evaluating %s failed inside the harness", job.entry.path)
        return RunRecord(
            task_id=spec.id,
            phase=phase,
            team=job.team,
            content_hash=job.opened.content_hash if job.opened else "",
            kind=job.opened.kind if job.opened else "unknown",
            status="harness_error",
            reason=f"{type(exc).__name__}: {exc}",
            finished_at=dt.datetime.now(dt.UTC),
        )


def _check_can_run(spec: TaskSpec, sandbox: str, needs_image: bool) -> None:
    """Fail fast (before anything is recorded as failed) when the sandbox cannot run at all."""
    if sandbox != "docker" or not needs_image:
        return
    from harness.sandbox.docker import DockerSandbox

    with DockerSandbox() as box:
        if box.api.image_id(spec.image_tag) is None:
            raise ImageError(
                f"the task image {spec.image_tag} does not exist on this Docker engine (images are never pulled); "
                f"build it with `harness image build {spec.task_dir}`"
            )


def _finish_rejected(store: Store, spec: TaskSpec, job: _Job, phase: str, summary: BatchSummary, notify: Hooks) -> None:
    record = RunRecord(
        task_id=spec.id,
        phase=phase,
        team=job.team,
        content_hash="",
        kind="unknown",
        status="rejected",
        reason=job.rejection,
        finished_at=dt.datetime.now(dt.UTC),
        provenance={"spec_hash": spec.spec_hash, "phase": phase},
    )
    _write(store, job, record)
    summary.evaluated += 1
    summary.statuses[record.status] += 1
    summary.records.append(record)
    notify("on_run_finished", record=record)


def _write(store: Store, job: _Job, record: RunRecord) -> None:
    provenance = dict(record.provenance)
    if record.notes:
        provenance["notes"] = record.notes
    if record.limits:
        provenance["limits"] = record.limits
    store.finish_run(
        job.run_id,
        status=record.status,
        reason=record.reason,
        problems=record.problems,
        scores=record.scores,
        duration_s=record.duration_s,
        peak_memory_mb=record.peak_memory_mb,
        exit_code=record.exit_code,
        artifacts_dir=record.artifacts_dir,
        provenance=provenance,
        started_at=record.started_at,
        finished_at=record.finished_at,
    )
