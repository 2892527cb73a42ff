"""Similar submissions across teams, as evidence for judges (never shown to teams, never a verdict).

* :mod:`harness.similarity.code`: a submission's code (``.py`` files, notebook code cells), winnowing fingerprints
  with copydetect, the starter kit's code as boilerplate, :func:`compare`;
* :mod:`harness.similarity.predictions`: how far apart two teams' predictions on the hidden rows are;
* :mod:`harness.similarity.find`: :func:`find_similar` for a task's runs (the exact shortlist of pairs);
* :mod:`harness.similarity.report`: terminal lines, the report's HTML section and figure, the leaderboard column.

Inside the package imports run one way: ``code`` and ``predictions`` import no sibling, ``find`` imports both,
``report`` imports ``find`` and ``code``.
"""

from __future__ import annotations

from harness.similarity.code import CodeDocument, CodeMatch, compare, extract_code, fingerprint
from harness.similarity.find import (
    CodePair,
    SimilarityFindings,
    code_pairs,
    find_similar,
    most_similar,
    starter_documents,
    submission_folder,
)
from harness.similarity.predictions import PredictionPair, prediction_pairs, team_predictions
from harness.similarity.report import (
    code_table,
    findings_html,
    findings_lines,
    prediction_figure,
    prediction_table,
    with_similar_column,
)

__all__ = [
    "CodeDocument",
    "CodeMatch",
    "CodePair",
    "PredictionPair",
    "SimilarityFindings",
    "code_pairs",
    "code_table",
    "compare",
    "extract_code",
    "find_similar",
    "findings_html",
    "findings_lines",
    "fingerprint",
    "most_similar",
    "prediction_figure",
    "prediction_pairs",
    "prediction_table",
    "starter_documents",
    "submission_folder",
    "team_predictions",
    "with_similar_column",
]
