"""Scoring: prediction validation, the :class:`Evaluator` base class, and running an evaluator in its own process.

A task author subclasses :class:`Evaluator` and writes one method:

* ``score(predictions, reference) -> {metric: float}`` (``evaluator.mode: predictions``, the default): the base
  class has already validated the team's prediction file against the spec and aligned it to the reference rows,
  so row ``i`` of ``predictions`` is the prediction for row ``i`` of ``reference``;
* or ``score_output_dir(output_dir, reference) -> {metric: float}`` (``evaluator.mode: output_dir``) for tasks
  whose output is not a prediction table. It may raise :class:`~harness.errors.InvalidOutputError` itself.

In ``predictions`` mode an author may also write ``check_predictions(predictions)``, the whole-file hook: called
once on the whole validated table before any split, it refuses with ``InvalidOutputError(summary, problems)``
(re-exported here).

The base class owns the rest of the lifecycle: it loads the reference, validates the outputs, splits the reference
(``public``/``private`` in the test phase, ``validation`` in the validation phase), calls the author's method once
per split and checks the answer (the spec's metric names exactly, each a finite float).

The pipeline calls :func:`score_outputs`, which runs that lifecycle in a separate Python process with the
evaluator's time limit and an address-space limit, kills its whole process group on expiry and reaps it, and
re-raises :class:`~harness.errors.InvalidOutputError` or :class:`~harness.errors.EvaluatorError` in the caller.
A batch passes an :class:`EvaluatorPool` (``score_outputs(..., pool=pool)``) to take processes started ahead of
time instead of paying Python's and pandas' start-up on each scoring. POSIX only (process groups, ``resource``
limits).

Modules, each importing only those above it:

* :mod:`~harness.scoring.columns`: one column of strings to its spec dtype (shared by predictions and reference);
* :mod:`~harness.scoring.kinds`: the checks of labels, probability and quantile groups; the truth columns'
  specs; :func:`perfect_predictions`;
* :mod:`~harness.scoring.reference`: :func:`load_reference`;
* :mod:`~harness.scoring.encoding`: naming the encoding of a prediction file that is not UTF-8;
* :mod:`~harness.scoring.shape`: a prediction file's header and row widths, in time linear in its bytes;
* :mod:`~harness.scoring.expected`: a reference's ids prepared once for checking files against them
  (:class:`~harness.scoring.expected.ExpectedIds`: Arrow text, a 64-bit key table);
* :mod:`~harness.scoring.predictions`: :func:`validate_predictions` (bounded read, CSV sniffing, columns, ids);
* :mod:`~harness.scoring.kept`: a phase's reference with its split masks, and a run's kept predictions aligned to
  it (:func:`aligned_predictions`), for rescoring, intervals and similarity;
* :mod:`~harness.scoring.rows`: :class:`RowScore`, the per-row form of a metric (``Evaluator.row_scores``);
* :mod:`~harness.scoring.evaluator`: :class:`Evaluator`, :func:`check_metrics`, :func:`load_evaluator`,
  :func:`evaluate_outputs`;
* :mod:`~harness.scoring.process`: :func:`score_outputs`, the evaluator processes it starts, :class:`EvaluatorPool`.

The names below are imported on first use (PEP 562): a batch's coordinator needs only :class:`EvaluatorPool` and
:func:`score_outputs`, and importing the evaluator's side (pandas, numpy, pyarrow: about 0.5 s of CPU) there would
be paid by every ``harness run`` although its scorings run in evaluator processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import InvalidOutputError
from harness.lazy import lazy_names

if TYPE_CHECKING:
    from harness.scoring.evaluator import Evaluator, check_metrics, evaluate_outputs, load_evaluator
    from harness.scoring.kinds import perfect_predictions
    from harness.scoring.predictions import validate_predictions
    from harness.scoring.process import EvaluatorPool, score_outputs
    from harness.scoring.reference import load_reference
    from harness.scoring.rows import RowScore

#: Where each lazily imported name lives.
_HOMES = {
    "Evaluator": "evaluator",
    "check_metrics": "evaluator",
    "evaluate_outputs": "evaluator",
    "load_evaluator": "evaluator",
    "perfect_predictions": "kinds",
    "validate_predictions": "predictions",
    "EvaluatorPool": "process",
    "score_outputs": "process",
    "load_reference": "reference",
    "RowScore": "rows",
}


__getattr__ = lazy_names(__name__, _HOMES)


__all__ = [
    "Evaluator",
    "EvaluatorPool",
    "InvalidOutputError",
    "RowScore",
    "check_metrics",
    "evaluate_outputs",
    "load_evaluator",
    "load_reference",
    "perfect_predictions",
    "score_outputs",
    "validate_predictions",
]
