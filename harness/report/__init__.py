"""Judges' reports: the parameterised notebooks in ``templates/``, executed with papermill, exported to HTML.

:func:`write_report` runs ``templates/leaderboard.ipynb`` (and, for one team, ``templates/submission_review.ipynb``)
in a kernel of the harness's own Python, writes the executed notebooks into ``reports/<task>/`` and exports each to
a self-contained HTML page with the code hidden and the plots embedded as images. The other modules are the small
toolbox those notebooks call, so that what they show is computed by tested code:

* :mod:`harness.report.run`: :func:`write_report`, :class:`ReportPaths`, the kernel the notebooks run in;
* :mod:`harness.report.export`: the HTML page of an executed notebook;
* :mod:`harness.report.tables`: the tables shown (:func:`style_metric_table`, :func:`plain_table`, ...) and their
  machine-readable copies (:func:`glue_table` / :func:`read_glued`);
* :mod:`harness.report.artifacts`: :func:`find_baseline_team`, :func:`artifact_links_html`, :func:`resource_table`,
  :func:`log_tail`;
* :mod:`harness.report.analysis`: error analysis of prediction tasks (:func:`load_predictions`,
  :func:`load_reference`, :func:`load_test_input`, :func:`default_group_by`, :func:`review_targets`,
  :func:`prediction_errors`, :func:`errors_by_group`). The reference they read is the hidden one: these reports
  are for judges only.
* :mod:`harness.report.kinds`: the tables per task kind (:func:`confusion_table`, :func:`class_scores_table`,
  :func:`reliability_table` for classification; :func:`interval_coverage` for quantile forecasts);
* :mod:`harness.report.plots`: their plots.
* :mod:`harness.report.intervals`: the paired intervals as error bars (:func:`interval_figure`) and the
  public-to-private shake-up (:func:`shakeup_table`);
* :mod:`harness.report.errors`: :class:`ReportError`.

Inside the package, imports run one way: ``errors`` and ``artifacts`` import no sibling; ``tables`` and ``export``
import ``errors``; ``analysis`` imports ``artifacts``; ``kinds`` imports ``analysis``; ``plots`` imports ``kinds``
and ``tables``; ``run`` imports ``errors``, ``artifacts`` and ``export``. No
module imports this ``__init__`` or the ``harness`` root.

Open the executed notebooks in JupyterLab from the project folder (the root must hold both ``reports/`` and the
harness home, which is hidden by default, for the artifact links to work)::

    .venv/bin/jupyter lab --ServerApp.root_dir=. --ContentsManager.allow_hidden=True \\
        reports/nyc-flight-delays/leaderboard.ipynb
"""

from __future__ import annotations

from harness.report.analysis import (
    GROUP_BY_PARAMETER,
    ReviewTarget,
    default_group_by,
    errors_by_group,
    load_predictions,
    load_reference,
    load_test_input,
    prediction_errors,
    review_targets,
)
from harness.report.artifacts import (
    artifact_link,
    artifact_links_html,
    find_baseline_team,
    log_tail,
    resource_table,
)
from harness.report.errors import ReportError
from harness.report.export import REMOVE_FROM_HTML_TAG
from harness.report.kinds import (
    TOP_CLASS,
    class_scores_table,
    confusion_table,
    interval_coverage,
    reliability_table,
)
from harness.report.run import (
    KERNEL_NAME,
    LEADERBOARD_NOTEBOOK,
    NOTEBOOKS_DIR,
    REVIEW_NOTEBOOK,
    ReportPaths,
    write_report,
)
from harness.report.tables import (
    GLUE_KEY,
    GLUE_MIME,
    glue_table,
    plain_label,
    plain_table,
    read_glued,
    runs_by_split_table,
    style_metric_table,
    table_records,
)

__all__ = [
    "GLUE_KEY",
    "GLUE_MIME",
    "GROUP_BY_PARAMETER",
    "KERNEL_NAME",
    "LEADERBOARD_NOTEBOOK",
    "NOTEBOOKS_DIR",
    "REMOVE_FROM_HTML_TAG",
    "REVIEW_NOTEBOOK",
    "TOP_CLASS",
    "ReportError",
    "ReportPaths",
    "ReviewTarget",
    "artifact_link",
    "artifact_links_html",
    "class_scores_table",
    "confusion_table",
    "default_group_by",
    "errors_by_group",
    "find_baseline_team",
    "glue_table",
    "interval_coverage",
    "load_predictions",
    "load_reference",
    "load_test_input",
    "log_tail",
    "plain_label",
    "plain_table",
    "prediction_errors",
    "read_glued",
    "reliability_table",
    "resource_table",
    "review_targets",
    "runs_by_split_table",
    "style_metric_table",
    "table_records",
    "write_report",
]
