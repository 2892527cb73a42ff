"""The Ladder (Blum & Hardt 2015, parameter-free) against a simulated boosting attack on the public split."""

from __future__ import annotations

import numpy as np
import pytest

from harness.ladder import ladder

ROWS, SUBMISSIONS = 2000, 300
SE = 0.5 / np.sqrt(ROWS)  # standard error of a random submission's public accuracy


def _attack(seed: int, *, use_ladder: bool) -> tuple[float, float]:
    """A team with no skill (true accuracy 0.5) submits random labels, then the majority vote of the submissions
    the board said were good. Returns (shown public accuracy before the vote, after it)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, ROWS)
    guesses = rng.integers(0, 2, (SUBMISSIONS, ROWS))
    correct = (guesses == truth).astype(np.float64)
    if use_ladder:
        board = ladder(correct, higher_is_better=True)
        good, before = board.accepted, board.shown[-1]  # all the team sees: when its shown score moved
    else:
        good, before = correct.mean(axis=1) > 0.5, correct.mean(axis=1).max()  # every submission's exact score
    vote = (guesses[good].mean(axis=0) > 0.5).astype(int)
    everything = np.vstack([correct, (vote == truth).astype(np.float64)])
    after = ladder(everything, higher_is_better=True).shown[-1] if use_ladder else everything.mean(axis=1).max()
    return float(before), float(after)


def test_boosting_attack_gains_without_the_ladder_not_with_it() -> None:
    seeds = range(5)
    plain = [_attack(s, use_ladder=False) for s in seeds]
    laddered = [_attack(s, use_ladder=True) for s in seeds]
    # without the Ladder the vote lifts the shown public score far above the truth (0.5): many standard errors
    assert min(after for _, after in plain) > 0.5 + 6 * SE
    assert min(after - before for before, after in plain) > 3 * SE
    # with it the vote gains nothing significant, and the shown score stays within a few standard errors of 0.5
    assert max(after - before for before, after in laddered) < 2 * SE
    assert max(after for _, after in laddered) < 0.5 + 4 * SE


def test_known_sequence() -> None:
    rows = np.zeros((4, 100))
    rows[0, :50] = 1  # 0.50
    rows[1, :51] = 1  # 0.51: inside the standard error of the difference, not shown
    rows[2, :70] = 1  # 0.70: shown
    rows[3, :69] = 1  # worse: not shown
    result = ladder(rows, higher_is_better=True)
    assert result.accepted.tolist() == [True, False, True, False]
    np.testing.assert_allclose(result.shown, [0.5, 0.5, 0.7, 0.7])
    assert result.best.tolist() == [0, 0, 2, 2]
    losses = ladder(1 - rows, higher_is_better=False)  # the same as a loss
    assert losses.accepted.tolist() == result.accepted.tolist()
    with pytest.raises(ValueError, match="shape"):
        ladder(np.zeros((0, 5)), higher_is_better=True)
