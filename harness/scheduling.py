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
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.concurrency import IdleWindow, default_workers
from harness.errors import EngineUnavailableError, ImageError, SubmissionError
from harness.interrupts import Interrupted
from harness.pipeline import RunRecord, evaluate_opened
from harness.sandbox import get_sandbox
from harness.scoring import EvaluatorPool
from harness.spec import PHASES, TaskSpec
from harness.status import Status
from harness.store import NewSubmission, Plan, Store
from harness.submission import (
    FingerprintCache,
    OpenedSubmission,
    SubmissionEntry,
    hidden_entries,
    iter_entries,
    open_entry,
    submitted_at,
    unopened_fingerprint,
)
from harness.text import visible

__all__ = ["BatchSummary", "Hooks", "default_workers", "evaluate_many", "plan_batch", "run_batch"]

log = logging.getLogger(__name__)


#: Optional packages jsonschema imports only to check ``format`` keywords; nbformat's notebook schemas use none.
_FORMAT_CHECKER_MODULES = (
    "rfc3987_syntax",
    "rfc3987",
    "rfc3986_validator",
    "rfc3339_validator",
    "isoduration",
    "uri_template",
    "webcolors",
    "jsonpointer",
    "fqdn",
)


def _without_iri_grammar() -> None:
    """Keep jsonschema (imported by nbformat to validate notebooks) from importing its optional format checkers.

    With ``rfc3987_syntax`` installed, importing jsonschema compiles a Lark grammar for the ``iri`` string format:
    about 1.7 s of CPU in every coordinator, more than opening a hundred notebooks; the other checkers' packages
    (RFC 3986's regular expressions, isoduration and arrow, ...) cost another ~0.08 s. The notebook schemas use
    no ``format`` keyword and nbformat passes no format checker, so the coordinator marks these modules as absent
    (jsonschema then skips those checkers) unless something imported jsonschema already. Nothing else in the
    coordinator imports them.
    """
    if "jsonschema" not in sys.modules:
        for name in _FORMAT_CHECKER_MODULES:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Hooks:
    """Progress callbacks of a batch, each optional (as nbclient's ``on_cell_*`` hooks), called with keywords.

    Attributes:
        on_batch_planned: ``(total: int, skipped: int)``, once, after every entry was opened and planned: ``total``
            runs will be made, ``skipped`` entries are unchanged since their last run.
        on_run_started: ``(team: str, content_hash: str)``, when a run is handed to a worker.
        on_run_finished: ``(record: RunRecord)``, after a run's outcome was written to the store.

    Callbacks run in the coordinator's thread; an exception in one stops the batch like any other error (runs in
    flight are then removed and recorded as interrupted by the next call).
    """

    on_batch_planned: Callable[..., None] | None = None
    on_run_started: Callable[..., None] | None = None
    on_run_finished: Callable[..., None] | None = None

    def batch_planned(self, *, total: int, skipped: int) -> None:
        """Call :attr:`on_batch_planned` if set."""
        if self.on_batch_planned is not None:
            self.on_batch_planned(total=total, skipped=skipped)

    def run_started(self, *, team: str, content_hash: str) -> None:
        """Call :attr:`on_run_started` if set."""
        if self.on_run_started is not None:
            self.on_run_started(team=team, content_hash=content_hash)

    def run_finished(self, *, record: RunRecord) -> None:
        """Call :attr:`on_run_finished` if set."""
        if self.on_run_finished is not None:
            self.on_run_finished(record=record)


@dataclass
class BatchSummary:
    """What a call of :func:`evaluate_many` did.

    Attributes:
        task_id: the task.
        entries: entries found in the submissions folder.
        hidden: names in the submissions folder skipped because they start with ``.`` (``.git``, ``.team.zip``).
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
        workers: sandboxes run at once in this call (``--workers`` or :func:`default_workers`; 0 when nothing ran),
            so a judge comparing run times knows the concurrency they were measured at.
    """

    task_id: str
    entries: int = 0
    hidden: list[str] = field(default_factory=list)
    evaluated: int = 0
    unchanged: int = 0
    recovered: int = 0
    retried: int = 0
    over_limit: list[str] = field(default_factory=list)
    shared_teams: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    records: list[RunRecord] = field(default_factory=list)
    workers: int = 0
    duration_s: float = 0.0

    def message(self) -> str:
        """One line for humans, e.g. ``"6 entries: 4 evaluated (3 succeeded, 1 failed), 2 unchanged"``.

        Team and entry names in it are made visible (:func:`harness.text.visible`): a file name may hold escapes.
        """
        notes = "".join(
            f"; team {team} is named by {len(names)} entries ({', '.join(names)})"
            for team, names in sorted(self.shared_teams.items())
        )
        if self.over_limit:
            notes += (
                f"; {len(self.over_limit)} over their daily limit, not evaluated today: {', '.join(self.over_limit)}"
            )
        if self.hidden:
            more = f" and {len(self.hidden) - 10} more" if len(self.hidden) > 10 else ""
            shown = ", ".join(self.hidden[:10]) + more
            notes += f"; {len(self.hidden)} hidden name(s) skipped (starting with '.'): {shown}"
        notes = visible(notes, keep="")
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
        at_once = f", {self.workers} at a time" if self.workers else ""
        return text + notes + f" in {self.duration_s:.1f} s{at_once}"


@dataclass
class _Job:
    entry: SubmissionEntry
    team: str
    submission_id: int
    opened: OpenedSubmission | None
    rejection: str = ""
    run_id: int = 0
    open_s: float = 0.0  # opening and hashing the entry (plan_batch)
    store_s: float = 0.0  # the store's transaction that started the run


def _executor(workers: int, scheduler_address: str | None) -> tuple[cf.Executor, Callable[[], None]]:
    """A Dask cluster's executor (see :mod:`harness.distributed`), else local threads; and how to shut it down."""
    if scheduler_address:
        from harness.distributed import cluster_executor

        return cluster_executor(scheduler_address)
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="harness-worker")
    return pool, lambda: pool.shutdown(wait=True, cancel_futures=True)


#: The coordinator renews its lease at least this often while runs finish (seconds; well under LEASE_STALE_S).
LEASE_RENEW_S = 30.0


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
    The batch is planned first (:func:`plan_batch`: every entry opened, one store transaction each), then run
    (:func:`run_batch`), under the task's lease.

    Args:
        spec: the task.
        submissions_dir: the folder of entries.
        store: the results store (this process becomes the task's only writer while it runs).
        home: harness home; opened submissions go to ``home/submissions/<task>/<hash>`` and artifacts to
            ``home/artifacts/<task>/run-<id>``.
        workers: sandboxes run at once (default: :func:`default_workers`).
        rerun: evaluate every entry again; the new result replaces the active one (never adds a second).
        phase: ``test`` for judging (default) or ``validation``.
        sandbox: ``docker`` (default) or ``process``.
        scheduler_address: a Dask scheduler (``tcp://host:8786``) to run on a cluster instead of local threads;
            its workers need the same paths (shared file system) and a Docker engine each.
        hooks: progress callbacks, see :class:`Hooks`.

    Returns:
        A :class:`BatchSummary`.

    Raises:
        ValueError: an unknown ``phase``.
        SubmissionError: ``submissions_dir`` is not a folder.
        StoreError: another coordinator is evaluating this task in the same store.
        EngineUnavailableError, ImageError: the sandbox cannot run at all; nothing was recorded as failed.
        HarnessError: an entry cannot be unpacked into ``home`` (e.g. its disk is full); nothing was recorded for it.
    """
    started = dt.datetime.now(dt.UTC)
    machine = IdleWindow()  # read once the plan is known: planning is the sample, not a sleep after it
    if phase not in PHASES:  # before anything is recorded: a typo must not fill the store with harness errors
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise SubmissionError("not a folder of submissions (one entry per team)", str(submissions_dir))
    hooks = hooks or Hooks()
    _without_iri_grammar()
    summary = BatchSummary(task_id=spec.id)
    store.ensure_task(spec.id, spec.title, spec.spec_hash)
    store.acquire_lease(spec.id)
    try:
        summary.recovered = store.recover_interrupted(spec.id)
        if sandbox == "docker" and scheduler_address is None and summary.recovered:
            from harness.sandbox.docker import remove_orphans

            # We hold the task's lease: containers and output mounts of an earlier, killed coordinator are orphans.
            remove_orphans(label_prefix=f"{spec.id}/")
        jobs = plan_batch(
            spec, submissions_dir, store=store, submissions_root=home / "submissions" / spec.id, phase=phase,
            rerun=rerun, summary=summary,
        )  # fmt: skip
        hooks.batch_planned(total=len(jobs), skipped=summary.unchanged)
        if jobs:
            _check_can_run(spec, sandbox, any(job.opened for job in jobs))
            summary.workers = max(1, workers or default_workers(spec, idle=machine.idle_share()))
            run_batch(
                spec, jobs, store=store, artifacts_root=home / "artifacts" / spec.id, phase=phase,
                workers=summary.workers, sandbox=sandbox,
                scheduler_address=scheduler_address, hooks=hooks, summary=summary,
            )  # fmt: skip
    finally:
        store.release_lease(spec.id)
        summary.duration_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return summary


def plan_batch(
    spec: TaskSpec,
    submissions_dir: Path,
    *,
    store: Store,
    submissions_root: Path,
    phase: str,
    rerun: bool,
    summary: BatchSummary,
) -> list[_Job]:
    """Open every entry and decide what to do with it: one store transaction per entry (see
    :meth:`harness.store.Store.plan_submission`: new, unchanged, over the daily limit, retry after a harness error).

    Fills ``summary``'s ``entries``, ``hidden``, ``unchanged``, ``retried``, ``over_limit`` and ``shared_teams``.

    Returns:
        The runs to make, in the folder's order (entries that could not be opened are runs too: they are recorded
        as ``rejected`` without starting a sandbox).

    Raises:
        HarnessError: an entry cannot be unpacked into ``submissions_root`` (e.g. its disk is full).
    """
    submissions_root.mkdir(parents=True, exist_ok=True)
    entries = iter_entries(submissions_dir)
    summary.entries = len(entries)
    summary.hidden = hidden_entries(submissions_dir)
    entries_of_team: dict[str, list[str]] = {}
    limit = spec.leaderboard.daily_limit if phase == "test" else None
    jobs: list[_Job] = []
    cache = FingerprintCache(submissions_root, spec.submission)  # unchanged entries are not opened again
    for entry in entries:
        opening = time.monotonic()
        opened: OpenedSubmission | None
        remembered = cache.lookup(entry.path)
        if remembered is not None:
            (opened, when), rejection = remembered, ""
        else:
            opened, rejection = open_entry(entry, submissions_root, spec.submission)
            when = submitted_at(entry.path)
            if opened is not None:
                cache.remember(entry.path, opened, when)
        open_s = time.monotonic() - opening
        team = (opened.team if opened and opened.team else None) or entry.default_team_name
        entries_of_team.setdefault(team, []).append(entry.path.name)
        if opened is not None:
            found = NewSubmission(
                content_hash=opened.content_hash, source=str(entry.path), kind=opened.kind, entry=opened.entry,
                n_files=opened.n_files, n_bytes=opened.n_bytes, notes=tuple(opened.notes), submitted_at=when,
            )  # fmt: skip
        else:
            found = NewSubmission(
                content_hash=unopened_fingerprint(entry.path), source=str(entry.path), kind="unknown", entry="",
                notes=(rejection,), submitted_at=submitted_at(entry.path),
            )  # fmt: skip
        plan, submission_id = store.plan_submission(
            spec.id, team, found, phase=phase, rerun=rerun, daily_limit=limit if opened is not None else None
        )
        if plan is Plan.OVER_LIMIT:
            if team not in summary.over_limit:
                summary.over_limit.append(team)
            log.warning("team %s reached its daily limit of %s submissions; %s waits", team, limit, entry.path)
            continue
        if plan is Plan.UNCHANGED:
            summary.unchanged += 1
            continue
        if plan is Plan.RETRY:
            summary.retried += 1
        assert submission_id is not None  # only OVER_LIMIT has none
        jobs.append(_Job(entry, team, submission_id, opened, rejection, open_s=open_s))
    cache.save()
    summary.shared_teams = {team: names for team, names in entries_of_team.items() if len(names) > 1}
    for team, names in summary.shared_teams.items():
        log.warning("team %s is named by %s entries (%s); each is one of its submissions", team, len(names), names)
    return jobs


def run_batch(
    spec: TaskSpec,
    jobs: list[_Job],
    *,
    store: Store,
    artifacts_root: Path,
    phase: str,
    workers: int,
    sandbox: str,
    scheduler_address: str | None,
    hooks: Hooks,
    summary: BatchSummary,
) -> None:
    """Run planned jobs, at most ``workers`` at once, writing each outcome as it finishes (the only writer).

    A run's row says ``running`` only while it really runs: rows are started as runs are handed out, so after
    Ctrl-C or SIGKILL nothing that never started is left looking started. Fills ``summary``'s ``evaluated``,
    ``statuses`` and ``records``.

    Raises:
        EngineUnavailableError, ImageError: the sandbox stopped working; the batch stops (runs in flight stay
            ``running`` until the next call marks them interrupted).
    """
    executor, shutdown = _executor(workers, scheduler_address)
    # Local workers share one sandbox, so Ctrl-C can remove every container it started (worker threads cannot be
    # interrupted); Dask workers get the sandbox's name and make their own.
    shared = get_sandbox(sandbox) if scheduler_address is None else None
    futures: dict[cf.Future[RunRecord], _Job] = {}
    waiting = list(reversed(jobs))
    renewed = time.monotonic()
    stopped_by: str | None = None
    started: dict[int, _Job] = {}  # runs whose row says `running` and whose outcome is not written yet
    finished_before_stop: list[cf.Future[RunRecord]] = []
    # Local runs score in children of one warm evaluator process (Dask workers score cold).
    evaluators = EvaluatorPool(workers) if scheduler_address is None else None
    from harness.provenance import task_inputs

    inputs = task_inputs(spec, phase)  # what scores depend on, hashed once per batch (issue 14)
    try:
        with evaluators if evaluators is not None else contextlib.nullcontext():
            if evaluators is not None and any(job.opened for job in jobs):
                evaluators.start(spec.evaluator.memory_mb)  # imports while the first sandboxes start
            while waiting or futures:
                while waiting and len(futures) < workers:
                    job = waiting.pop()
                    starting = time.monotonic()
                    job.run_id = store.start_run(job.submission_id, phase)
                    job.store_s = time.monotonic() - starting
                    started[job.run_id] = job
                    if job.opened is None:
                        _finish(store, job, _rejected_record(spec, job, phase), summary, hooks)
                        started.pop(job.run_id, None)
                        continue
                    future = executor.submit(
                        evaluate_opened,
                        spec,
                        job.opened,
                        phase=phase,
                        artifacts_dir=artifacts_root / f"run-{job.run_id}",
                        sandbox=shared or sandbox,
                        team=job.team,
                        evaluators=evaluators,
                        inputs=inputs,
                    )
                    futures[future] = job
                    hooks.run_started(team=job.team, content_hash=job.opened.content_hash)
                if not futures:
                    continue
                done, _pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    job = futures[future]  # kept until written: a stop meanwhile still knows the run
                    _finish(store, job, _outcome(spec, job, phase, future), summary, hooks)
                    del futures[future]
                    started.pop(job.run_id, None)
                if time.monotonic() - renewed > LEASE_RENEW_S:
                    store.renew_lease(spec.id)
                    renewed = time.monotonic()
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or a closed terminal (harness.interrupts)
        stopped_by = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
        finished_before_stop = [f for f, job in futures.items() if f.done() and job.run_id in started]
        for future in futures:
            future.cancel()
        raise
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    finally:
        if shared is not None:
            shared.close()  # stops the runs still going (after Ctrl-C or an error): containers, processes
        shutdown()
        if stopped_by is not None:
            for future in finished_before_stop:  # runs that ended before the signal keep their outcome
                job = futures[future]
                with contextlib.suppress(Exception):  # no hooks now: a closed terminal must not stop this
                    _finish(store, job, _outcome(spec, job, phase, future), summary, Hooks())
                    started.pop(job.run_id, None)
            # The sandboxes are gone: say so in the store now (an engine lost mid-batch leaves its runs `running`
            # instead, for the next call to clean up once the engine answers again).
            cut = store.interrupt_runs(
                list(started),
                f"the batch was stopped ({stopped_by}) before this run finished; it is evaluated again by the "
                "next `harness run`",
            )
            log.warning("batch stopped by %s: %s run(s) in flight recorded as interrupted", stopped_by, cut)


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
            status=Status.HARNESS_ERROR,
            reason=f"{type(exc).__name__}: {exc}",
            finished_at=dt.datetime.now(dt.UTC),
        )


def _check_can_run(spec: TaskSpec, sandbox: str, needs_image: bool) -> None:
    """Fail fast (before anything is recorded as failed) when the sandbox cannot run at all."""
    if sandbox != "docker" or not needs_image:
        return
    from harness.sandbox.docker import DockerSandbox

    with DockerSandbox() as box:
        box.check_image(spec.image_tag, build_hint=f"harness image build {spec.task_dir}")


def _rejected_record(spec: TaskSpec, job: _Job, phase: str) -> RunRecord:
    """The record of an entry refused at the door (it never reaches a sandbox)."""
    return RunRecord(
        task_id=spec.id,
        phase=phase,
        team=job.team,
        content_hash="",
        kind="unknown",
        status=Status.REJECTED,
        reason=job.rejection,
        finished_at=dt.datetime.now(dt.UTC),
        provenance={"spec_hash": spec.spec_hash, "phase": phase},
    )


def _finish(store: Store, job: _Job, record: RunRecord, summary: BatchSummary, hooks: Hooks) -> None:
    """Write one outcome (one transaction), count it, and tell the hooks.

    The record's ``provenance["stages"]`` gets ``open_hash`` (opening the entry) and ``store`` (the transaction
    that started the run; the one writing this outcome cannot time itself), in seconds.
    """
    stages = record.provenance.setdefault("stages", {})
    stages["open_hash"] = round(job.open_s, 3)
    stages["store"] = round(job.store_s, 3)
    store.finish_run(job.run_id, record)
    summary.evaluated += 1
    summary.statuses[record.status] += 1
    summary.records.append(record)
    hooks.run_finished(record=record)
