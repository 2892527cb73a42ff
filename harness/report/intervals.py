"""The judges' view of the leaderboard's paired intervals: error bars, and the public-to-private shake-up.

* :func:`interval_figure`: each ranked team's primary metric with its paired bootstrap interval as an error bar,
  coloured by tie group (a board from :func:`harness.ranking.leaderboard` with ``intervals=True``);
* :func:`shakeup_table`: each team's public rank against its private rank, and whether the change lies within
  the public board's rank range (then the public split could not tell the two places apart: noise, not a
  surprise).

Imports no sibling module of :mod:`harness.report`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.text import visible

__all__ = ["SHAKEUP_COLUMNS", "interval_figure", "shakeup_table"]

#: Columns of :func:`shakeup_table`, with their dtypes.
SHAKEUP_COLUMNS: dict[str, str] = {
    "team": "string",
    "public_rank": "Int64",
    "private_rank": "Int64",
    "moved": "Int64",  # public_rank - private_rank: positive = up on the private board
    "public_ranks": "string",  # the public board's rank range, "best-worst"
    "private_ranks": "string",
    "within_intervals": "boolean",  # the private rank lies within the public rank range
}


def _range(row: pd.Series) -> str:
    if pd.isna(row.get("rank_best", pd.NA)):
        return ""
    best, worst = int(row["rank_best"]), int(row["rank_worst"])
    return str(best) if best == worst else f"{best}-{worst}"


def shakeup_table(public: pd.DataFrame, private: pd.DataFrame) -> pd.DataFrame:
    """Public against private rank per team.

    Args:
        public, private: the two leaderboards with intervals (:func:`harness.ranking.leaderboard` with
            ``intervals=True``, ``split="public"`` and ``"private"``).

    Returns:
        One row per team ranked on both boards, ordered by private rank; columns :data:`SHAKEUP_COLUMNS`.
        ``within_intervals`` is <NA> when the public board has no rank range for the team.
    """
    pub = public[public["rank"].notna()].set_index("team")
    priv = private[private["rank"].notna()].set_index("team")
    rows = []
    for team in priv.index:
        if team not in pub.index:
            continue
        p, q = pub.loc[team], priv.loc[team]
        has_range = "rank_best" in pub and not pd.isna(p["rank_best"])
        rows.append(
            {
                "team": team,
                "public_rank": int(p["rank"]),
                "private_rank": int(q["rank"]),
                "moved": int(p["rank"]) - int(q["rank"]),
                "public_ranks": _range(p) if "rank_best" in pub else "",
                "private_ranks": _range(q) if "rank_best" in priv else "",
                "within_intervals": (int(p["rank_best"]) <= int(q["rank"]) <= int(p["rank_worst"]))
                if has_range
                else pd.NA,
            }
        )
    out = pd.DataFrame(rows, columns=list(SHAKEUP_COLUMNS))
    for column, dtype in SHAKEUP_COLUMNS.items():
        out[column] = out[column].astype(dtype)
    return out.sort_values("private_rank", kind="mergesort").reset_index(drop=True)


def interval_figure(board: pd.DataFrame, metric: str, *, label: str | None = None) -> Any:
    """A matplotlib figure: one horizontal error bar per ranked team (the interval), the point score as a dot,
    teams top to bottom in rank order, colour per tie group. Without intervals, the points only."""
    import matplotlib.pyplot as plt

    ranked = board[board["rank"].notna()].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * max(len(ranked), 3) + 1))
    if ranked.empty:
        ax.text(0.5, 0.5, "no ranked team", ha="center", va="center", transform=ax.transAxes)
        return fig
    y = list(range(len(ranked)))[::-1]
    values = ranked[metric].astype("float64")
    has = f"{metric}_low" in ranked and ranked[f"{metric}_low"].notna().any()
    groups = ranked["tie_group"].fillna(0).astype(int) if has else pd.Series(0, index=ranked.index)
    cmap = plt.get_cmap("tab10")
    for i, row in ranked.iterrows():
        colour = cmap(int(groups[i]) % 10)
        if has and pd.notna(row[f"{metric}_low"]):
            low, high = float(row[f"{metric}_low"]), float(row[f"{metric}_high"])
            ax.errorbar(values[i], y[i], xerr=[[values[i] - low], [high - values[i]]], fmt="o", color=colour, capsize=3)
        else:
            ax.plot(values[i], y[i], "o", color=colour)
    ax.set_yticks(y, [_tick(f"{int(r)}. {t}") for r, t in zip(ranked["rank"], ranked["team"], strict=True)])
    ax.set_xlabel(label or metric)
    ax.set_title("paired bootstrap intervals; colour = tie group" if has else "scores (no intervals)")
    fig.tight_layout()
    return fig


def _tick(text: str) -> str:
    """A team's label as matplotlib must get it: control characters made visible, and ``$`` escaped, or a team
    named ``pay $\\frac{1}{$`` makes matplotlib's mathtext fail and the whole report with it."""
    return visible(text, keep="").replace("$", r"\$")
