"""How similar submissions are shown to judges: terminal lines, the report's HTML section, its figure, a column.

Every piece of team text (team names, code) goes through :func:`harness.text.visible` and, in HTML, through
:func:`html.escape`: a team's code may hold control characters, bidirectional overrides or ``</pre><script>``.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from harness.similarity.code import CodeDocument
from harness.similarity.find import CodePair, SimilarityFindings, most_similar
from harness.text import visible

__all__ = [
    "code_table",
    "findings_html",
    "findings_lines",
    "prediction_figure",
    "prediction_table",
    "with_similar_column",
]

#: Lines of context shown around each matching fragment.
CONTEXT_LINES = 2
#: At most this many lines of each side are shown per pair.
MAX_SHOWN_LINES = 80

_STYLE = """<style>
.similar-pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:4px 0 18px 0}
.similar-pair pre{margin:0;padding:6px;background:#fafafa;border:1px solid #ddd;font-size:11px;line-height:1.35;
overflow-x:auto;white-space:pre}
.similar-pair .hit{background:#ffe08a;display:block}
.similar-pair .gap{color:#999;display:block}
.similar-pair .ln{color:#999;user-select:none}
</style>"""


def _fmt(value: float, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def findings_lines(findings: SimilarityFindings) -> list[str]:
    """Plain text lines for the terminal (``harness similar``): listed code pairs, flagged prediction pairs, the
    teams not compared, the time taken. Team names are made visible."""
    lines = [
        f"{findings.task_id}: {len(findings.teams)} team(s); {len(findings.code)} similar code pair(s), "
        f"{len(findings.flagged_predictions)} flagged prediction pair(s)"
    ]
    for pair in findings.code:
        m = pair.match
        lines.append(
            visible(
                f"  code  {pair.team_a} ~ {pair.team_b}: {pair.similarity:.0%} "
                f"({m.similarity_a:.0%} of {pair.team_a}'s code, {m.similarity_b:.0%} of {pair.team_b}'s; "
                f"{m.matched_chars} normalised characters match)",
                keep="",
            )
        )
    for pred in findings.flagged_predictions:
        lines.append(
            visible(
                f"  predictions  {pred.team_a} ~ {pred.team_b}: difference ratio {pred.difference:.3f} "
                f"(typical pair {pred.typical_difference:.3f}); residual correlation "
                f"{_fmt(pred.residual_correlation, 4)}, agreement {_fmt(pred.agreement, 4)}",
                keep="",
            )
        )
    for team, why in findings.skipped:
        lines.append(visible(f"  not compared  {team}: {why}", keep=""))
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in findings.seconds.items())
    lines.append(f"  compared {findings.code_compared} code pair(s) in full; {timing}")
    return lines


def _side(document: CodeDocument, ranges: tuple[tuple[int, int], ...]) -> str:
    """One side of a pair as HTML: matching lines marked, ``CONTEXT_LINES`` around them, gaps elided."""
    lines = document.text.split("\n")
    hit: set[int] = set()
    for first, last in ranges:
        hit.update(range(first, last + 1))
    keep = {n for h in hit for n in range(h - CONTEXT_LINES, h + CONTEXT_LINES + 1) if 1 <= n <= len(lines)}
    out = []
    previous = 0
    for shown, number in enumerate(sorted(keep)):
        if shown >= MAX_SHOWN_LINES:
            out.append('<span class="gap">… (more matching lines not shown)</span>')
            break
        if number != previous + 1:
            part = document.part_at(number)
            out.append(f'<span class="gap">… {html.escape(visible(part, keep=""))}</span>')
        text = html.escape(visible(lines[number - 1], keep=""))
        cell = f'<span class="ln">{number:>4} </span>{text}'
        out.append(f'<span class="hit">{cell}</span>' if number in hit else cell)
        previous = number
    return "\n".join(out)


def _pair_html(pair: CodePair) -> str:
    a = html.escape(visible(pair.team_a, keep=""))
    b = html.escape(visible(pair.team_b, keep=""))
    m = pair.match
    head = (
        f"<h4>{a} ~ {b}: {pair.similarity:.0%}</h4><p>{m.similarity_a:.0%} of {a}'s code is found in {b}'s, "
        f"{m.similarity_b:.0%} of {b}'s in {a}'s ({m.matched_chars} normalised characters). Matching lines are "
        "marked; each side is marked on its own, so a fragment may sit elsewhere on the other side.</p>"
    )
    left = f"<div><b>{a}</b><pre>{_side(pair.code_a, m.lines_a)}</pre></div>"
    right = f"<div><b>{b}</b><pre>{_side(pair.code_b, m.lines_b)}</pre></div>"
    return f'{head}<div class="similar-pair">{left}{right}</div>'


def code_table(findings: SimilarityFindings) -> pd.DataFrame:
    """The listed code pairs, most similar first.

    Columns: ``team_a``, ``team_b`` (string), ``similarity``, ``similarity_a``, ``similarity_b`` (float64, 0 to 1),
    ``matched_chars`` (int64).
    """
    rows = [
        {
            "team_a": p.team_a,
            "team_b": p.team_b,
            "similarity": p.similarity,
            "similarity_a": p.match.similarity_a,
            "similarity_b": p.match.similarity_b,
            "matched_chars": p.match.matched_chars,
        }
        for p in findings.code
    ]
    columns = ["team_a", "team_b", "similarity", "similarity_a", "similarity_b", "matched_chars"]
    dtypes = {
        "team_a": "string",
        "team_b": "string",
        "similarity": "float64",
        "similarity_a": "float64",
        "similarity_b": "float64",
        "matched_chars": "int64",
    }
    return pd.DataFrame(rows, columns=columns).astype(dtypes)


def prediction_table(findings: SimilarityFindings, *, limit: int = 20) -> pd.DataFrame:
    """The flagged prediction pairs, then the closest others up to ``limit`` rows.

    Columns: ``team_a``, ``team_b`` (string), ``difference``, ``typical_difference``, ``residual_correlation``,
    ``agreement`` (float64), ``flagged`` (bool).
    """
    rows = [
        {
            "team_a": p.team_a,
            "team_b": p.team_b,
            "difference": p.difference,
            "typical_difference": p.typical_difference,
            "residual_correlation": p.residual_correlation,
            "agreement": p.agreement,
            "flagged": p.flagged,
        }
        for p in findings.predictions[: max(limit, len(findings.flagged_predictions))]
    ]
    columns = ["team_a", "team_b", "difference", "typical_difference", "residual_correlation", "agreement", "flagged"]
    df = pd.DataFrame(rows, columns=columns)
    return df.astype(
        {
            "team_a": "string",
            "team_b": "string",
            "difference": "float64",
            "typical_difference": "float64",
            "residual_correlation": "float64",
            "agreement": "float64",
            "flagged": "bool",
        }
    )


def findings_html(findings: SimilarityFindings, *, threshold: float, prediction_threshold: float) -> str:
    """The report's "similar submissions" section as one HTML fragment (style included).

    Args:
        findings: what :func:`~harness.similarity.find_similar` found.
        threshold: the spec's ``similarity.code_threshold`` (said in the text).
        prediction_threshold: the spec's ``similarity.prediction_threshold``.
    """
    parts = [_STYLE]
    parts.append(
        f"<p>{len(findings.teams)} teams compared (one submission each). Evidence for judges, not a verdict: "
        "common libraries, a shared tutorial or one person's advice make honest code alike; teams never see this.</p>"
    )
    if findings.code:
        rows = "".join(
            f"<tr><td>{html.escape(visible(p.team_a, keep=''))}</td><td>{html.escape(visible(p.team_b, keep=''))}</td>"
            f"<td>{p.similarity:.0%}</td><td>{p.match.similarity_a:.0%}</td><td>{p.match.similarity_b:.0%}</td>"
            f"<td>{p.match.matched_chars}</td></tr>"
            for p in findings.code
        )
        parts.append(
            f"<h3>Similar code (over {threshold:.0%}, starter kit code removed)</h3><table><thead><tr><th>team a</th>"
            "<th>team b</th><th>similarity</th><th>share of a</th><th>share of b</th><th>matched characters</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
        parts.extend(_pair_html(p) for p in findings.code)
    else:
        parts.append(f"<p>No pair of teams shares more than {threshold:.0%} of its code beyond the starter kit.</p>")
    flagged = findings.flagged_predictions
    if flagged:
        rows = "".join(
            f"<tr><td>{html.escape(visible(p.team_a, keep=''))}</td><td>{html.escape(visible(p.team_b, keep=''))}</td>"
            f"<td>{p.difference:.3f}</td><td>{p.typical_difference:.3f}</td><td>{_fmt(p.residual_correlation, 4)}</td>"
            f"<td>{_fmt(p.agreement, 4)}</td></tr>"
            for p in flagged
        )
        parts.append(
            f"<h3>Similar predictions on the hidden rows (difference ratio at most {prediction_threshold:g})</h3>"
            "<table><thead><tr><th>team a</th><th>team b</th><th>difference ratio</th><th>typical pair</th>"
            f"<th>residual correlation</th><th>agreement</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    elif findings.predictions:
        parts.append(
            f"<p>No pair of teams' predictions is within a difference ratio of {prediction_threshold:g} (the typical "
            f"pair: {findings.predictions[0].typical_difference:.3f}).</p>"
        )
    if findings.skipped:
        items = "".join(
            f"<li>{html.escape(visible(team, keep=''))}: {html.escape(visible(why, keep=''))}</li>"
            for team, why in findings.skipped
        )
        parts.append(f"<p>Not compared:</p><ul>{items}</ul>")
    return "\n".join(parts)


def prediction_figure(findings: SimilarityFindings, *, threshold: float) -> Any:
    """A matplotlib figure: every pair's difference ratio (log scale), the threshold and the flagged pairs marked;
    ``None`` when fewer than two teams' predictions were compared."""
    import matplotlib.pyplot as plt
    import numpy as np

    if not findings.predictions:
        return None
    values = np.array([max(p.difference, 1e-4) for p in findings.predictions if np.isfinite(p.difference)])
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    if values.size:
        bins = np.logspace(-4, max(1.0, math.log10(values.max()) + 0.1), 40)
        ax.hist(values, bins=list(bins), color="#4c72b0", alpha=0.85, label="pairs of teams")
    ax.axvline(threshold, color="#c44e52", linestyle="--", linewidth=2, label=f"threshold {threshold:g}")
    for pred in findings.flagged_predictions[:10]:
        ax.annotate(
            visible(f"{pred.team_a} ~ {pred.team_b}", keep="")[:40].replace("$", r"\$"),
            (max(pred.difference, 1e-4), 0),
            xytext=(0, 18),
            textcoords="offset points",
            rotation=60,
            fontsize=7,
            arrowprops={"arrowstyle": "-", "color": "#c44e52"},
        )
    ax.set_xscale("log")
    ax.set_xlabel("difference ratio of two teams' predictions (0 = the same predictions)")
    ax.set_ylabel("pairs")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def with_similar_column(board: pd.DataFrame, findings: SimilarityFindings) -> pd.DataFrame:
    """A copy of a leaderboard with a ``similar_to`` string column (after ``identical_to`` when present): the most
    similar other team over a threshold (:func:`~harness.similarity.most_similar`), ``""`` for none."""
    named = most_similar(findings)
    out = board.copy()
    column = out["team"].map(lambda t: named.get(str(t), "")).astype("string")
    at = list(out.columns).index("identical_to") + 1 if "identical_to" in out.columns else len(out.columns)
    out.insert(at, "similar_to", column)
    return out
