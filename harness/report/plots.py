"""The review page's plots per task kind, drawn from the tables of :mod:`harness.report.kinds` and
:func:`harness.report.analysis.errors_by_group`.

Each function returns a matplotlib ``Figure`` (the notebook shows it); every label goes through
:func:`harness.report.tables.plain_label`, so class names and column names are shown literally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.report.kinds import TOP_CLASS
from harness.report.tables import plain_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["confusion_figure", "coverage_figure", "horizon_figure", "reliability_figure"]


def confusion_figure(table: pd.DataFrame, title: str) -> Figure:
    """A confusion matrix (output of :func:`harness.report.kinds.confusion_table`): cells shaded by the share of
    their true class (row), annotated with counts."""
    import matplotlib.pyplot as plt

    counts = table.to_numpy(dtype="float64")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = max(3.2, 0.55 * len(table) + 1.6)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    labels = [plain_label(str(c)) for c in table.columns]
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0, fontsize=8)
    ax.set_yticks(range(len(table.index)), [plain_label(str(c)) for c in table.index], fontsize=8)
    for (row, col), count in np.ndenumerate(counts):
        ax.text(
            col,
            row,
            f"{int(count)}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if shares[row, col] > 0.6 else "black",
        )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(plain_label(title), fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return fig


def reliability_figure(table: pd.DataFrame, title: str) -> Figure:
    """Reliability curves (output of :func:`harness.report.kinds.reliability_table`): observed frequency against
    mean predicted probability per bin, the top-class curve bold, the diagonal for perfect calibration."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.plot([0, 1], [0, 1], color="#8a8a8a", linestyle=":", label="perfectly calibrated")
    for curve, points in table.groupby("curve", sort=False):
        top = curve == TOP_CLASS
        ax.plot(
            points["mean_predicted"],
            points["observed"],
            marker="o",
            markersize=4 if top else 3,
            linewidth=2.2 if top else 1.0,
            alpha=1.0 if top else 0.7,
            color="black" if top else None,
            label=plain_label(str(curve)),
        )
    if table.empty:
        ax.text(0.5, 0.5, "no probabilities to show", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed frequency")
    ax.set_title(plain_label(title), fontsize=10)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def coverage_figure(coverage: pd.DataFrame, title: str) -> Figure:
    """Observed against nominal coverage of each central interval (output of
    :func:`harness.report.kinds.interval_coverage` without ``by``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(coverage) + 2.5), 3.3))
    x = np.arange(len(coverage))
    ax.bar(x - 0.18, coverage["nominal"], width=0.36, color="#c8c8c8", label="nominal")
    ax.bar(x + 0.18, coverage["observed"], width=0.36, color="#4c72b0", label="observed")
    ax.set_xticks(x, [plain_label(str(i)) for i in coverage["interval"]], fontsize=8)
    ax.set_xlim(-0.7, max(len(coverage), 2) - 0.3)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of truths inside")
    ax.set_title(plain_label(title), fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def horizon_figure(summary: pd.DataFrame, horizon: str, title: str, nominal: float | None = None) -> Figure:
    """Error by forecast horizon (output of :func:`harness.report.analysis.errors_by_group` grouped by the horizon):
    mean absolute error of the median and mean pinball loss on the left, coverage of the widest interval against
    ``nominal`` on the right (when the summary has ``coverage``)."""
    import matplotlib.pyplot as plt

    panels = 2 if "coverage" in summary else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.3), squeeze=False)
    x = summary[horizon]
    numeric = pd.api.types.is_numeric_dtype(x)
    positions = x if numeric else np.arange(len(x))
    ax = axes[0, 0]
    ax.plot(positions, summary["mean_abs_error"], marker="o", label="mean abs error (median)")
    if "pinball_loss" in summary:
        ax.plot(positions, summary["pinball_loss"], marker="s", label="mean pinball loss")
    ax.set_ylabel("error (target's unit)")
    ax.legend(frameon=False, fontsize=8)
    if "coverage" in summary:
        right = axes[0, 1]
        right.plot(positions, summary["coverage"], marker="o", color="#55a868", label="observed")
        if nominal is not None:
            right.axhline(nominal, color="black", linestyle=":", label=f"nominal {nominal:g}")
        right.set_ylim(0, 1)
        right.set_ylabel("coverage of the widest interval")
        right.legend(frameon=False, fontsize=8)
    for axis in axes[0]:
        axis.set_xlabel(plain_label(horizon))
        if not numeric:
            axis.set_xticks(positions, [plain_label(str(v)) for v in x], fontsize=8, rotation=45)
    fig.suptitle(plain_label(title), fontsize=10)
    fig.tight_layout()
    return fig
