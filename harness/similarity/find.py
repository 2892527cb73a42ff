"""Find similar submissions of a task: each team's code against every other's, and their hidden-row predictions.

:func:`find_similar` is what ``harness similar TASK`` and the judges' "similar submissions" section call. It takes
the runs of the store (one per team: the leaderboard's, when its run ids are given), reads each run's submitted code
from the opened submission (``home/submissions/<task>/<content hash>``), removes the starter kit's code
(:func:`starter_documents`), fingerprints the rest (:mod:`harness.similarity.code`) and compares the pairs that can
reach the threshold (:func:`code_pairs`). It then reads each succeeded run's kept predictions on the hidden test
rows (:mod:`harness.scoring.kept`) and compares every pair (:mod:`harness.similarity.predictions`).

**Which pairs are compared in full.** Comparing all pairs grows with the square of the teams. Before copydetect
compares two documents, a sparse product of the teams' fingerprint sets (scipy) counts, for each pair, the places
in one document whose fingerprint also occurs in the other. Every matched character lies within ``noise_chars`` of
such a place, so a pair whose count times ``noise_chars`` is below the matched characters or the share the
thresholds ask for cannot be listed, and is skipped. The bound is exact: unlike MinHash with locality-sensitive
hashing (an estimate of Jaccard similarity, which misses a small notebook copied into a large one), it never
drops a pair that would have been listed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.similarity.code import (
    CodeDocument,
    CodeMatch,
    Fingerprint,
    boilerplate_hashes,
    compare,
    extract_code,
    fingerprint,
    text_document,
)
from harness.similarity.predictions import PredictionPair, prediction_pairs, team_predictions
from harness.spec import TaskSpec
from harness.status import Status
from harness.store import ScoredRun

__all__ = [
    "CodePair",
    "SimilarityFindings",
    "code_pairs",
    "find_similar",
    "most_similar",
    "starter_documents",
    "submission_folder",
]

log = logging.getLogger(__name__)

#: The template folder of a task's starter kit (:data:`harness.starter.TEMPLATE_DIR`).
STARTER_TEMPLATE_DIR = "starter"
#: The code blocks the starter kit's README adds for the self-check (:mod:`harness.starter`), as Markdown.
SELF_CHECK_CODE = '\n```python\nimport harness\nharness.check("task", "solution.ipynb")\n```\n'
_FENCED = re.compile(r"^```(?:python|py|ipython)\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class CodePair:
    """Two teams whose code is similar.

    Attributes:
        team_a: one team (the pair is ordered by name).
        team_b: the other.
        match: the comparison (``similarity_a`` is ``team_a``'s share found in ``team_b``'s code).
        code_a: ``team_a``'s code as compared (the line numbers of ``match`` refer to it).
        code_b: ``team_b``'s code.
    """

    team_a: str
    team_b: str
    match: CodeMatch
    code_a: CodeDocument = field(repr=False)
    code_b: CodeDocument = field(repr=False)

    @property
    def similarity(self) -> float:
        """The larger of the two shares (0 to 1)."""
        return self.match.similarity


@dataclass(frozen=True)
class SimilarityFindings:
    """What :func:`find_similar` found for one task.

    Attributes:
        task_id: the task.
        teams: the teams compared (one run each), sorted.
        code: listed code pairs, most similar first.
        predictions: every pair of teams with comparable predictions, flagged first (see
            :class:`~harness.similarity.predictions.PredictionPair`).
        skipped: ``(team, why)`` for teams whose code or predictions could not be compared.
        code_compared: pairs compared in full (after the exact shortlist) out of ``n (n - 1) / 2``.
        seconds: wall-clock time of each step (``code``, ``predictions``).
    """

    task_id: str
    teams: tuple[str, ...]
    code: tuple[CodePair, ...] = ()
    predictions: tuple[PredictionPair, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    code_compared: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def flagged_predictions(self) -> tuple[PredictionPair, ...]:
        """The prediction pairs at or under the threshold."""
        return tuple(p for p in self.predictions if p.flagged)


def starter_documents(spec: TaskSpec) -> list[CodeDocument]:
    """The starter kit's code, boilerplate that never counts: the template folder's ``.py`` files and notebook
    cells, the Python blocks of the task's README (and of the kit's self-check section), and the evaluator."""
    documents = []
    template = spec.task_dir / STARTER_TEMPLATE_DIR
    if template.is_dir():
        documents.append(extract_code(template))
    readme = spec.task_dir / "README.md"
    text = (readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else "") + SELF_CHECK_CODE
    blocks = [(f"README block {i}", block) for i, block in enumerate(_FENCED.findall(text), start=1)]
    documents.append(text_document(blocks))
    if spec.evaluator_path.is_file():
        documents.append(extract_code(spec.evaluator_path))
    return documents


def submission_folder(run: ScoredRun, home: Path | None) -> Path | None:
    """Where a run's submitted content lies: ``home/submissions/<task>/<hash>``, else the same folder beside the
    run's artifacts (``<home>/artifacts/<task>/run-<id>``), else the entry as submitted (a folder or a notebook);
    ``None`` when none of them exists any more."""
    candidates = []
    if home is not None:
        candidates.append(Path(home) / "submissions" / run.task_id / run.content_hash)
    if run.artifacts_dir:
        candidates.append(Path(run.artifacts_dir).parent.parent.parent / "submissions" / run.task_id / run.content_hash)
    source = Path(run.source) if run.source else None
    if source is not None and (source.is_dir() or source.suffix in (".ipynb", ".py")):
        candidates.append(source)
    return next((c for c in candidates if c.exists()), None)


def _shortlist(
    prints: Sequence[Fingerprint], *, noise_chars: int, threshold: float, min_chars: int
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, that can reach the thresholds (the exact bound of the module docstring)."""
    from scipy import sparse

    vocabulary: dict[int, int] = {}
    rows, cols, counts = [], [], []
    for i, fp in enumerate(prints):
        for value, where in fp.data.hash_idx.items():
            rows.append(i)
            cols.append(vocabulary.setdefault(int(value), len(vocabulary)))
            counts.append(len(where))
    shape = (len(prints), max(len(vocabulary), 1))
    occurrences = sparse.csr_matrix((np.array(counts, dtype=np.float64), (rows, cols)), shape=shape)
    present = occurrences.copy()
    present.data[:] = 1.0
    reach = (occurrences @ present.T).tocsr() * float(noise_chars)  # [i, j]: chars of i near hashes of j
    coverage = np.array([max(fp.coverage, 1) for fp in prints], dtype=np.float64)
    long_enough = reach >= float(min_chars)
    share = sparse.diags(1.0 / coverage) @ reach >= threshold  # [i, j]: i's share found in j can reach it
    either = ((long_enough + long_enough.T) > 0).multiply((share + share.T) > 0)
    upper = sparse.triu(either, k=1).tocoo()
    return sorted((int(i), int(j)) for i, j in zip(upper.row, upper.col, strict=True))


def code_pairs(
    spec: TaskSpec, documents: dict[str, CodeDocument], boilerplate: Iterable[CodeDocument] = ()
) -> tuple[list[CodePair], int]:
    """Compare every team's code with every other's and list the pairs over the spec's thresholds.

    Args:
        spec: gives ``similarity`` (thresholds, k-gram length, winnowing window).
        documents: team -> its code (:func:`~harness.similarity.code.extract_code`).
        boilerplate: the starter kit's code (:func:`starter_documents`); it never counts.

    Returns:
        ``(listed pairs most similar first, pairs compared in full)``. A pair is listed when its larger share
        reaches ``code_threshold`` and at least ``min_matched_chars`` normalised characters match.
    """
    rules = spec.similarity
    boiler = boilerplate_hashes(boilerplate, noise_chars=rules.noise_chars)
    teams = sorted(documents)
    prints = [
        fingerprint(documents[t], noise_chars=rules.noise_chars, window=rules.window, boilerplate=boiler) for t in teams
    ]
    candidates = _shortlist(
        prints, noise_chars=rules.noise_chars, threshold=rules.code_threshold, min_chars=rules.min_matched_chars
    )
    listed = []
    for i, j in candidates:
        match = compare(prints[i], prints[j])
        if match.similarity >= rules.code_threshold and match.matched_chars >= rules.min_matched_chars:
            listed.append(CodePair(teams[i], teams[j], match, documents[teams[i]], documents[teams[j]]))
    listed.sort(key=lambda p: (-p.similarity, p.team_a, p.team_b))
    return listed, len(candidates)


def _one_run_per_team(runs: Sequence[ScoredRun], run_ids: Iterable[int] | None) -> list[ScoredRun]:
    if run_ids is not None:
        wanted = {int(r) for r in run_ids}
        return sorted((r for r in runs if r.run_id in wanted), key=lambda r: r.team)
    latest: dict[str, ScoredRun] = {}
    for run in sorted(runs, key=lambda r: (r.submitted_at, r.run_id)):
        latest[run.team] = run
    return [latest[t] for t in sorted(latest)]


def find_similar(
    spec: TaskSpec,
    runs: Sequence[ScoredRun],
    *,
    home: Path | None = None,
    run_ids: Iterable[int] | None = None,
    predictions: bool = True,
) -> SimilarityFindings:
    """Similar code and similar predictions among a task's teams (evidence for judges; nothing is decided here).

    Args:
        spec: the task spec (``similarity`` section for the thresholds).
        runs: the task's active test runs (``Store.runs(task_id)``).
        home: harness home holding ``submissions/<task>/<hash>`` (else found beside each run's artifacts).
        run_ids: the run compared for each team (the leaderboard's ``run_id`` column); default each team's
            latest submission.
        predictions: also compare the kept predictions on the hidden test rows (``evaluator.mode: predictions``).

    Returns:
        The findings; teams whose code or predictions are missing are in ``skipped`` with the reason.

    Raises:
        EvaluatorError: the hidden test reference cannot be read (``predictions=True`` only).
    """
    chosen = _one_run_per_team(runs, run_ids)
    skipped: list[tuple[str, str]] = []
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    documents: dict[str, CodeDocument] = {}
    for run in chosen:
        folder = submission_folder(run, home)
        if folder is None:
            skipped.append((run.team, f"code: submission {run.content_hash[:12]} is no longer on disk"))
            continue
        document = extract_code(folder)
        if not document.text.strip():
            skipped.append((run.team, "code: no .py file or notebook code cell"))
            continue
        documents[run.team] = document
    listed, compared = code_pairs(spec, documents, starter_documents(spec)) if len(documents) > 1 else ([], 0)
    seconds["code"] = time.perf_counter() - started

    started = time.perf_counter()
    pairs: list[PredictionPair] = []
    if predictions and spec.evaluator.mode == "predictions":
        pairs = _prediction_pairs(spec, chosen, skipped)
    seconds["predictions"] = time.perf_counter() - started
    return SimilarityFindings(
        task_id=spec.id,
        teams=tuple(run.team for run in chosen),
        code=tuple(listed),
        predictions=tuple(pairs),
        skipped=tuple(sorted(skipped)),
        code_compared=compared,
        seconds=seconds,
    )


def _prediction_pairs(
    spec: TaskSpec, chosen: Sequence[ScoredRun], skipped: list[tuple[str, str]]
) -> list[PredictionPair]:
    from harness.errors import InvalidOutputError
    from harness.scoring.kept import aligned_predictions, kept_predictions_path, load_phase_reference

    scored = [run for run in chosen if run.status == Status.SUCCEEDED]
    for run in chosen:
        if run.status != Status.SUCCEEDED:
            skipped.append((run.team, f"predictions: run {run.run_id} is {run.status}, not scored"))
    if len(scored) < 2:
        return []
    phase_reference = load_phase_reference(spec, "test")
    reference = phase_reference.reference
    tables = {}
    for run in scored:
        path = kept_predictions_path(spec, run.artifacts_dir)
        if not path.is_file():
            skipped.append((run.team, f"predictions: run {run.run_id} kept no {spec.predictions.file}"))
            continue
        try:
            tables[run.team] = aligned_predictions(spec, path, reference, phase_reference.expected_ids)
        except InvalidOutputError as exc:
            skipped.append((run.team, f"predictions: {exc}"))
    return prediction_pairs(team_predictions(spec, reference, tables), threshold=spec.similarity.prediction_threshold)


def most_similar(findings: SimilarityFindings) -> dict[str, str]:
    """Team -> the most similar other team over a threshold, as shown in the leaderboard's ``similar_to`` column:
    ``"other (code 83%)"`` from the most similar code pair, else ``"other (predictions 0.04)"`` from the closest
    flagged prediction pair; teams without such a pair are absent."""
    named: dict[str, str] = {}
    for pair in findings.code:  # most similar first
        for team, other in ((pair.team_a, pair.team_b), (pair.team_b, pair.team_a)):
            named.setdefault(team, f"{other} (code {pair.similarity:.0%})")
    for pred in findings.flagged_predictions:  # closest first
        for team, other in ((pred.team_a, pred.team_b), (pred.team_b, pred.team_a)):
            named.setdefault(team, f"{other} (predictions {pred.difference:.2f})")
    return named
