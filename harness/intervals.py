"""Paired bootstrap intervals of many teams' scores on the same rows, and what they allow a judge to say.

Every team is scored on the same hidden rows, so the teams can be compared *paired*: each bootstrap resample draws
one set of row indices (with replacement) and scores every team on those same rows. A difference between two
teams then varies only by how their errors differ row by row, which gives much tighter intervals of differences
than two independent intervals would.

* :func:`resample_indices` / :func:`resample_counts`: the resampled rows, from a seeded generator (reproducible).
* :func:`bootstrap_means`: for metrics that are a mean of per-row values (MAE, squared error, log loss, pinball,
  accuracy), one matrix product ``counts (B, n) @ values (n, T) / n`` per chunk of resamples: no Python loop per
  resample or team.
* :func:`bootstrap_scores`: any other metric (F1, AUC), a function called per resample and team.
* :func:`compare`: from the resampled scores (B, T) of teams in rank order, each team's percentile interval, the
  paired comparisons, each team's rank range, whether it is separable from the leader, and tie groups.

Rules of :func:`compare` (``level`` = 0.95 by default):

* Team ``i`` is **significantly better** than team ``j`` when the percentile interval of the paired difference
  ``score_i - score_j`` (oriented so that positive is better) lies entirely above zero. The relation is
  antisymmetric by construction: only ``i < j`` is computed and mirrored.
* **Rank range**: best rank = 1 + the number of teams significantly better; worst rank = the number of teams
  minus the number significantly worse.
* **Tied with the leader**: not significantly different from the rank-1 team (the leader itself is).
* **Tie groups**, walking down the ranking: a team joins the current group unless it is significantly worse than
  the group's first team, in which case it starts the next group. Groups are numbered 1, 2, ... from the top;
  teams that no comparison separates (identical predictions) always share a group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Comparison",
    "bootstrap_means",
    "bootstrap_scores",
    "compare",
    "percentile_interval",
    "resample_counts",
    "resample_indices",
    "split_rng",
]

#: Resamples drawn at once by :func:`resample_counts`: the counts chunk is ``chunk x n`` float64 (66 MB for
#: 100 x 82,609 rows).
DEFAULT_CHUNK = 100


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator of one split's resamples: fixed by the seed and the split's name (not by other splits)."""
    return np.random.default_rng([int(seed), *split.encode("utf-8")])


def resample_indices(
    n: int, resamples: int, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
) -> Iterator[np.ndarray]:
    """Row indices of bootstrap resamples, ``chunk`` resamples at a time.

    Yields:
        int64 arrays of shape ``(c, n)`` (``c <= chunk``), values in ``0..n-1``; ``resamples`` rows in all.
    """
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def resample_counts(
    n: int, resamples: int, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK, dtype: type = np.float64
) -> Iterator[np.ndarray]:
    """How often each row is drawn in each resample (the same resamples as :func:`resample_indices`).

    Yields:
        arrays of ``dtype``, shape ``(c, n)``: row ``b`` counts the draws of each row in resample ``b`` (sums to n).
    """
    for indices in resample_indices(n, resamples, rng, chunk=chunk):
        size = indices.shape[0]
        flat = (indices + (np.arange(size) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=size * n).reshape(size, n).astype(dtype)


def bootstrap_means(
    values: np.ndarray, resamples: int, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
) -> np.ndarray:
    """Means of per-row values over paired bootstrap resamples.

    The product ``counts @ values`` runs in float32 (counts are exact; values keep about 7 significant digits,
    far below the bootstrap's own spread) on the distinct columns only: identical columns (teams with identical
    predictions) get identical resampled means.

    Args:
        values: shape ``(n, k)``: per-row values of ``k`` columns (teams, or teams x metrics).
        resamples: number of resamples ``B``.
        rng: the generator (:func:`split_rng`).

    Returns:
        float64 array ``(B, k)``: the mean of each column over the rows of each resample (all columns resampled
        with the same rows).

    Raises:
        ValueError: ``values`` is not two-dimensional or has no rows.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"values must have shape (rows, columns) with rows > 0, not {values.shape}")
    n = values.shape[0]
    first: dict[bytes, int] = {}
    source = np.array([first.setdefault(values[:, j].tobytes(), j) for j in range(values.shape[1])], dtype=np.int64)
    distinct = np.unique(source)
    # centre each column so float32 rounds deviations from the mean, not large offsets
    centre = values[:, distinct].mean(axis=0)
    compact = np.asfortranarray(values[:, distinct] - centre, dtype=np.float32)
    out = np.empty((resamples, len(distinct)), dtype=np.float32)
    start = 0
    for counts in resample_counts(n, resamples, rng, chunk=chunk, dtype=np.float32):
        stop = start + counts.shape[0]
        np.matmul(counts, compact, out=out[start:stop])
        start = stop
    means = out.astype(np.float64) / n + centre
    return means[:, np.searchsorted(distinct, source)]


def bootstrap_scores(
    score: Callable[[int, np.ndarray], float], teams: int, n: int, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """A metric without a per-row form, scored per resample and team on paired resamples.

    Args:
        score: ``score(team, indices) -> value``: the metric of team ``team`` (0-based column) on the rows
            ``indices`` (int64, shape ``(n,)``).
        teams: number of teams ``T``.
        n: rows of the split.
        resamples: number of resamples ``B``.

    Returns:
        float64 array ``(B, T)``.
    """
    out = np.empty((resamples, teams), dtype=np.float64)
    b = 0
    for chunk in resample_indices(n, resamples, rng):
        for indices in chunk:
            for team in range(teams):
                out[b, team] = score(team, indices)
            b += 1
    return out


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of ``samples`` ``(B, k)``: the ``(1-level)/2`` and ``(1+level)/2``
    quantiles, two arrays of shape ``(k,)``."""
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return low, high


@dataclass(frozen=True)
class Comparison:
    """Paired comparisons of teams in rank order (index 0 is the leader); arrays of length ``T`` unless said.

    Attributes:
        low, high: percentile interval of each team's score (the metric's own scale and direction).
        better: ``(T, T)`` bool; ``better[i, j]``: team ``i`` is significantly better than team ``j``.
        rank_best, rank_worst: the rank range (1-based, int64).
        tied_with_leader: bool; not significantly different from team 0 (True for team 0).
        tie_group: int64, 1-based, non-decreasing down the ranking.
        level: the intervals' coverage.
    """

    low: np.ndarray
    high: np.ndarray
    better: np.ndarray
    rank_best: np.ndarray
    rank_worst: np.ndarray
    tied_with_leader: np.ndarray
    tie_group: np.ndarray
    level: float

    @property
    def leader_separable(self) -> bool | None:
        """Whether first and second are significantly different (None with fewer than two teams)."""
        return None if len(self.low) < 2 else bool(self.better[0, 1])


def compare(samples: np.ndarray, *, higher_is_better: bool, level: float = 0.95) -> Comparison:
    """Intervals, paired comparisons, rank ranges and tie groups (rules in the module docstring).

    Args:
        samples: ``(B, T)`` resampled scores of ``T`` teams, columns in the leaderboard's rank order; every column
            from the same resampled rows.
        higher_is_better: the metric's direction (False for a loss).
        level: coverage of the intervals, in (0.5, 1).

    Raises:
        ValueError: ``samples`` is not ``(B, T)`` with ``B >= 2``, or ``level`` is outside (0.5, 1).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (resamples >= 2, teams), not {samples.shape}")
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1), not {level}")
    teams = samples.shape[1]
    low, high = percentile_interval(samples, level) if teams else (np.empty(0), np.empty(0))
    oriented = samples if higher_is_better else -samples
    # differences below float rounding of the scores are no difference (identical predictions give exactly 0,
    # but a matrix product may round two equal columns differently)
    tol = 1e-6 * (1.0 + float(np.max(np.abs(samples)))) if teams else 0.0
    better = np.zeros((teams, teams), dtype=bool)
    q = (1 - level) / 2
    for i in range(teams - 1):
        diffs = oriented[:, [i]] - oriented[:, i + 1 :]  # (B, T-i-1)
        d_low, d_high = np.quantile(diffs, [q, 1 - q], axis=0)
        better[i, i + 1 :] = d_low > tol
        better[i + 1 :, i] = d_high < -tol
    rank_best = 1 + better.sum(axis=0)
    rank_worst = teams - better.sum(axis=1)
    tied_with_leader = ~(better[0] | better[:, 0]) if teams else np.zeros(0, dtype=bool)
    tie_group = np.zeros(teams, dtype=np.int64)
    head, group = 0, 1
    for k in range(teams):
        if better[head, k]:
            head, group = k, group + 1
        tie_group[k] = group
    return Comparison(
        low=low,
        high=high,
        better=better,
        rank_best=rank_best.astype(np.int64),
        rank_worst=rank_worst.astype(np.int64),
        tied_with_leader=tied_with_leader,
        tie_group=tie_group,
        level=level,
    )
