"""The statistics of a leaderboard: paired bootstrap intervals and the public-leaderboard rule.

Part of :mod:`harness.spec` (``task.yaml``'s ``leaderboard:`` section holds these two fields)::

    leaderboard:
      intervals: {resamples: 1000, level: 0.95, seed: 20150101, score_resamples: 200}
      public_rule: best        # or ladder (Blum & Hardt 2015, parameter-free): see harness.ladder

Every default keeps an existing ``task.yaml`` valid.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IntervalSpec", "PublicRule"]

#: ``best``: the public board shows each team's best public score (the ``selection`` rule); ``ladder``: a team's
#: public score changes only when a new submission beats the shown one by more than the paired standard error.
PublicRule = Literal["best", "ladder"]


class IntervalSpec(BaseModel):
    """Paired bootstrap intervals of a leaderboard (see :mod:`harness.intervals`).

    Attributes:
        resamples: bootstrap resamples of each split's rows for metrics with a per-row form (the evaluator's
            ``row_scores``); every team is scored on the same resampled rows in one resample.
        score_resamples: resamples for metrics without a per-row form (F1, AUC), each one a call of the
            evaluator's ``score`` per team, so fewer by default.
        level: coverage of the percentile intervals, e.g. 0.95 for the 2.5 % and 97.5 % percentiles.
        seed: seed of the resampling; recorded with the intervals so a report can be reproduced.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resamples: Annotated[int, Field(ge=100, le=100_000)] = 1000
    score_resamples: Annotated[int, Field(ge=20, le=100_000)] = 200
    level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    seed: Annotated[int, Field(ge=0)] = 20150101
