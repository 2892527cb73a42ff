"""Paired bootstrap intervals, rank ranges and tie groups on synthetic per-row losses with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.intervals import bootstrap_means, bootstrap_scores, compare, resample_counts, split_rng


def _losses(seed: int = 0, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.exponential(10.0, size=n)
    return np.column_stack(
        [
            base * 0.5,  # clearly best
            base + rng.normal(0, 0.01, n),  # two teams whose difference is pure noise
            base + rng.normal(0, 0.01, n),
            base,  # identical to the next one
            base.copy(),
        ]
    )


def test_counts_are_resamples_of_every_row() -> None:
    counts = np.vstack(list(resample_counts(50, 7, split_rng(1, "public"), chunk=3)))
    assert counts.shape == (7, 50)
    assert (counts.sum(axis=1) == 50).all()


def test_means_match_fancy_indexing() -> None:
    values = _losses(n=300)
    means = bootstrap_means(values, 40, split_rng(3, "public"), chunk=7)
    rng = split_rng(3, "public")
    expected = np.vstack([values[rng.integers(0, 300, size=(c, 300))].mean(axis=1) for c in (7,) * 5 + (5,)])
    np.testing.assert_allclose(means, expected, rtol=1e-6)


def test_identical_tied_better_separated_ranges() -> None:
    values = _losses()
    order = np.argsort(values.mean(axis=0), kind="stable")
    samples = bootstrap_means(values[:, order], 1000, split_rng(7, "private"))
    result = compare(samples, higher_is_better=False)
    teams = [int(i) for i in order]
    assert teams[0] == 0
    assert result.leader_separable is True
    assert result.tied_with_leader.tolist() == [True, False, False, False, False]
    assert result.rank_best[0] == result.rank_worst[0] == 1
    # the four others are one tie group, each ranked 2-5
    assert result.tie_group.tolist() == [1, 2, 2, 2, 2]
    assert result.rank_best[1:].tolist() == [2, 2, 2, 2] and result.rank_worst[1:].tolist() == [5, 5, 5, 5]
    identical = [teams.index(3), teams.index(4)]
    assert not result.better[identical[0], identical[1]] and not result.better[identical[1], identical[0]]
    assert (result.low[0] < values[:, 0].mean() < result.high[0]) and result.high[0] < result.low[1]


def test_ties_symmetric_and_direction() -> None:
    values = _losses()
    samples = bootstrap_means(values, 500, split_rng(1, "public"))
    loss = compare(samples, higher_is_better=False)
    gain = compare(-samples[:, ::-1], higher_is_better=True)  # the same comparisons, reversed and as a score
    np.testing.assert_array_equal(loss.better, gain.better[::-1, ::-1])
    assert not (loss.better & loss.better.T).any()  # never both ways


def test_reproducible_from_seed() -> None:
    values = _losses(n=500)
    a = bootstrap_means(values, 200, split_rng(42, "public"))
    b = bootstrap_means(values, 200, split_rng(42, "public"))
    c = bootstrap_means(values, 200, split_rng(43, "public"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_score_path_uses_same_rows_for_every_team() -> None:
    values = _losses(n=200)
    scores = bootstrap_scores(lambda team, rows: float(values[rows, team].mean()), 5, 200, 30, split_rng(5, "p"))
    np.testing.assert_allclose(scores, bootstrap_means(values, 30, split_rng(5, "p")), rtol=1e-6)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare(np.zeros(3), higher_is_better=True)
    with pytest.raises(ValueError, match="level"):
        compare(np.zeros((3, 2)), higher_is_better=True, level=0.2)


def test_the_interval_figure_draws_team_names_holding_dollar_signs_literally(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from harness.report.intervals import interval_figure

    board = pd.DataFrame(
        {"rank": [1, 2], "team": ["pay $\\frac{1}{$ now", "b\x1b[31m"], "mae": [1.0, 2.0], "mae_low": [0.5, 1.5],
         "mae_high": [1.5, 2.5], "tie_group": [1, 2]}
    )  # fmt: skip
    figure = interval_figure(board, "mae")
    figure.savefig(tmp_path / "board.png")  # mathtext would raise on the first name
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["1. pay \\$\\frac{1}{\\$ now", "2. b\\x1b[31m"]
