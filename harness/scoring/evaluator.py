"""The :class:`Evaluator` base class (the task authors' contract), the check of its answer, and loading it.

Task authors import it as ``from harness.scoring import Evaluator``. :func:`evaluate_outputs` runs the whole
lifecycle in the calling process, without limits; :mod:`harness.scoring.process` runs it in a process of its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import re
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from harness.errors import EvaluatorError, HarnessError, InvalidOutputError
from harness.scoring.columns import _plural
from harness.scoring.kept import PhaseReference, aligned_predictions, load_phase_reference
from harness.spec import TaskSpec

__all__ = ["Evaluator", "check_metrics", "evaluate_outputs", "load_evaluator"]

logger = logging.getLogger(__name__)


class Evaluator:
    """Base class of a task's evaluator: it owns the lifecycle, a subclass writes one scoring method.

    Subclass it in ``evaluators/<task>.py`` and implement :meth:`score` (``evaluator.mode: predictions``) or
    :meth:`score_output_dir` (``evaluator.mode: output_dir``). Return ``{metric_name: value}`` with exactly the
    spec's metric names; each value a finite real number. Use scikit-learn's metrics where they exist. In
    ``predictions`` mode, override :meth:`check_predictions` to refuse a whole file with checks of your own.
    Optionally implement :meth:`row_scores` (the per-row form of decomposable metrics) so the leaderboard's
    paired bootstrap intervals are fast.

    Attributes:
        spec: the task spec.
        phase: ``validation`` or ``test``.
        output_dir: the run's output folder (read it only in ``output_dir`` mode).
    """

    def __init__(self, spec: TaskSpec, phase: str, output_dir: Path) -> None:
        self.spec = spec
        self.phase = phase
        self.output_dir = Path(output_dir)

    # -- the one method an author writes --------------------------------------------------------------------
    def score(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> Mapping[str, float]:
        """Score one split's predictions (``predictions`` mode).

        Args:
            predictions: the split's rows, validated and aligned to ``reference`` (row ``i`` predicts reference
                row ``i``); the id column and every ``predictions`` column of the spec (plain, then probability
                groups' in ``classes`` order, then quantile groups' in ``levels`` order) with their dtypes,
                index ``0..n-1``.
            reference: the split's reference rows (the id column, every ``reference_targets`` column: each
                plain column's ``reference`` and each group's ``target``; the split column), index ``0..n-1``.

        Returns:
            ``{metric_name: value}`` for every metric in the spec.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement score(predictions, reference)")

    def score_output_dir(self, output_dir: Path, reference: pd.DataFrame) -> Mapping[str, float]:
        """Score one split from the output folder (``output_dir`` mode).

        Args:
            output_dir: the run's output folder (read-only by convention).
            reference: the split's reference rows, index ``0..n-1``.

        Returns:
            ``{metric_name: value}`` for every metric in the spec.

        Raises:
            InvalidOutputError: the outputs cannot be scored; ``problems`` tell the team what to fix.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement score_output_dir(output_dir, reference)")

    def row_scores(self, predictions: pd.DataFrame, reference: pd.DataFrame) -> Mapping[str, object]:
        """The per-row form of the metrics that have one, for paired bootstrap intervals (optional; none by default).

        Called like :meth:`score` (one split's aligned rows) when intervals are computed. For each metric that is
        a mean over rows (MAE, squared error, log loss, pinball, accuracy) return a float64 array of shape
        ``(n,)`` whose mean is the metric, or a :class:`~harness.scoring.RowScore` ``(values, transform)`` when the
        metric is ``transform(mean(values))`` (RMSE: squared errors and ``np.sqrt``). The intervals resample those
        values directly (fast); a metric left out (F1, AUC) is scored again with :meth:`score` on each resample
        (slow). The harness checks that the full split's values give the scored metric and otherwise falls back to
        :meth:`score` for that metric.

        Returns:
            ``{metric_name: ndarray (n,) | RowScore}`` for some of the spec's metrics.
        """
        return {}

    def check_predictions(self, predictions: pd.DataFrame) -> None:
        """The author's own checks of the whole prediction table (``predictions`` mode); by default none.

        Called once, after the harness's validation and before any split, for ``harness check`` and ``harness
        run`` alike, so a team sees the same message whichever rows are public or private: never name a split or
        count a split's rows in a message.

        Args:
            predictions: every row of the phase, validated and aligned to the phase's reference (the columns and
                dtypes :meth:`score` gets), index ``0..n-1``. Do not modify it.

        Raises:
            InvalidOutputError: the predictions cannot be scored; ``InvalidOutputError(summary, problems)`` with
                one sentence per problem telling the team what to fix (``from harness.scoring import
                InvalidOutputError``).
        """

    # -- lifecycle ------------------------------------------------------------------------------------------
    def evaluate(self, phase_reference: PhaseReference | None = None) -> dict[str, dict[str, float]]:
        """Load, validate (the harness's checks, then :meth:`check_predictions`, on the whole table), split, score
        each split and check the metrics.

        Args:
            phase_reference: the phase's reference already loaded (:func:`~harness.scoring.kept.load_phase_reference`),
                for scoring many runs in one process (rescoring); ``None`` loads it.

        Returns:
            ``{split: {metric: value}}`` with the splits in the spec's order and the metrics in the spec's order.

        Raises:
            InvalidOutputError: the team's outputs do not match the spec, or :meth:`check_predictions` refused
                them.
            EvaluatorError: the reference is unusable, the author's method raised, or it returned malformed
                metrics.
        """
        spec = self.spec
        started = time.perf_counter()
        phase_reference = phase_reference or load_phase_reference(spec, self.phase)
        reference, masks = phase_reference.reference, phase_reference.masks
        aligned: pd.DataFrame | None = None
        if spec.evaluator.mode == "predictions":
            aligned = aligned_predictions(
                spec, self.output_dir / spec.predictions.file, reference, phase_reference.expected_ids
            )
            self._run_check_predictions(aligned)
        results: dict[str, dict[str, float]] = {}
        for split, mask in masks.items():
            ref = reference[mask].reset_index(drop=True)
            try:
                if aligned is not None:
                    raw = self.score(aligned[mask].reset_index(drop=True), ref)
                else:
                    raw = self.score_output_dir(self.output_dir, ref)
            except (HarnessError, MemoryError):
                raise  # MemoryError: reported with the memory limit by the evaluator process
            except Exception as exc:
                raise EvaluatorError(
                    f"evaluator {type(self).__name__} raised {type(exc).__name__} on split {split!r}: {exc}",
                    traceback.format_exc(),
                ) from exc
            if aligned is not None:
                _refuse_overflowing(spec, aligned[mask].reset_index(drop=True), raw, split)
            results[split] = check_metrics(spec, raw, split=split)
        logger.debug("scored %s (%s) in %.2f s", spec.id, self.phase, time.perf_counter() - started)
        return results

    def _run_check_predictions(self, aligned: pd.DataFrame) -> None:
        """Call :meth:`check_predictions` on a copy of the whole table; anything but a harness error raised is
        the evaluator's fault. Nothing is copied for an evaluator that keeps the default (no checks)."""
        if type(self).check_predictions is Evaluator.check_predictions:
            return
        try:
            self.check_predictions(aligned.copy())
        except (HarnessError, MemoryError):
            raise
        except Exception as exc:
            raise EvaluatorError(
                f"evaluator {type(self).__name__} raised {type(exc).__name__} in check_predictions: {exc}",
                traceback.format_exc(),
            ) from exc


#: Predictions larger than this (about 1.3e154) make squares, and sums of many, overflow float64.
_OVERFLOW_MAGNITUDE: Final = math.sqrt(sys.float_info.max)


def _refuse_overflowing(spec: TaskSpec, predictions: pd.DataFrame, raw: object, split: str) -> None:
    """Blame the team, not the evaluator, for a metric that is not finite because its predictions are huge.

    Validation accepts any finite number (unless the spec bounds the column), but a metric over values near
    1e308 overflows to inf or NaN, which :func:`check_metrics` would report as the evaluator's fault.

    Raises:
        InvalidOutputError: a metric is not finite and a numeric prediction exceeds :data:`_OVERFLOW_MAGNITUDE`.
    """
    if not isinstance(raw, Mapping):
        return
    broken = {}
    for metric, value in raw.items():
        with contextlib.suppress(TypeError, ValueError):
            if not math.isfinite(float(value)):
                broken[metric] = float(value)
    if not broken:
        return
    id_col = spec.predictions.id_column
    for column in spec.predictions.all_columns:
        if column.name == id_col or column.dtype not in ("float", "int"):
            continue
        values = predictions[column.name].to_numpy(dtype="float64")
        huge = np.abs(values) > _OVERFLOW_MAGNITUDE
        if huge.any():
            metric, value = next(iter(broken.items()))
            first = int(np.argmax(huge))
            raise InvalidOutputError(
                f"{spec.predictions.file} cannot be scored",
                [
                    f"column {column.name!r} holds {_plural(int(huge.sum()), 'value')} too large to compute with "
                    f"(first: {values[first]:g} at id {predictions[id_col].iloc[first]}), so metric {metric!r} "
                    f"is {value} on split {split!r}; predict values on the scale of the target"
                ],
            )


def check_metrics(spec: TaskSpec, raw: object, *, split: str = "") -> dict[str, float]:
    """Check an evaluator's answer: exactly the spec's metric names, each a finite real number.

    Args:
        spec: the task spec.
        raw: what the author's method returned.
        split: the split scored (for messages).

    Returns:
        ``{metric: float}`` in the spec's metric order.

    Raises:
        EvaluatorError: not a mapping, a spec metric missing, a metric the spec lacks, or a value that is not a
            finite real number (bool, str, NaN, inf, arrays are refused).
    """
    where = f" on split {split!r}" if split else ""
    if not isinstance(raw, Mapping):
        raise EvaluatorError(
            f"the evaluator returned {type(raw).__name__}{where}; expected a dict of "
            f"{{metric_name: float}} with the metrics {list(spec.metric_names)}"
        )
    names = list(spec.metric_names)
    extra = [str(k) for k in raw if k not in names]
    if extra:
        raise EvaluatorError(
            f"the evaluator returned metric(s) {extra}{where} that task.yaml does not declare "
            f"(declared: {names}); add them to metrics: in task.yaml or stop returning them"
        )
    missing = [n for n in names if n not in raw]
    if missing:
        raise EvaluatorError(
            f"the evaluator returned no value for metric(s) {missing}{where} declared in "
            "task.yaml; return every declared metric"
        )
    out: dict[str, float] = {}
    for metric in names:
        value = raw[metric]
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
            raise EvaluatorError(f"metric {metric!r}{where} is {type(value).__name__} {value!r}; expected a float")
        number = float(value)
        if not math.isfinite(number):
            raise EvaluatorError(f"metric {metric!r}{where} is {number}; metrics must be finite floats")
        out[metric] = number
    return out


def load_evaluator(spec: TaskSpec) -> type[Evaluator]:
    """Import the spec's evaluator file and return its :class:`Evaluator` subclass.

    Raises:
        EvaluatorError: the file cannot be imported, lacks ``evaluator.class_name``, the class does not subclass
            :class:`Evaluator`, or it does not implement the method of ``evaluator.mode``.
    """
    path = spec.evaluator_path
    module_name = "harness_evaluator_" + re.sub(r"\W", "_", spec.id)
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise EvaluatorError(f"cannot import the evaluator file {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise EvaluatorError(
            f"importing the evaluator {path} failed: {type(exc).__name__}: {exc}", traceback.format_exc()
        ) from exc
    cls = getattr(module, spec.evaluator.class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
        raise EvaluatorError(
            f"{path} must define class {spec.evaluator.class_name} as a subclass of harness.scoring.Evaluator"
        )
    method = "score" if spec.evaluator.mode == "predictions" else "score_output_dir"
    if getattr(cls, method) is getattr(Evaluator, method):
        raise EvaluatorError(
            f"{spec.evaluator.class_name} in {path} does not implement {method}(), which "
            f"evaluator.mode {spec.evaluator.mode!r} calls"
        )
    return cls


def evaluate_outputs(spec: TaskSpec, output_dir: str | Path, phase: str) -> dict[str, dict[str, float]]:
    """Run the evaluator's lifecycle in this process, with no time or memory limit.

    Used by :func:`score_outputs` inside its child process, and handy for debugging an evaluator. Returns and
    raises as :func:`score_outputs`.
    """
    if phase not in spec.data.references:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(spec.data.references)}")
    cls = load_evaluator(spec)
    return cls(spec, phase, Path(output_dir)).evaluate()
