"""A run's kept predictions, read again after the run: aligned to a phase's reference, with each split's rows.

Every scored run keeps the team's output folder in its artifacts (``<artifacts_dir>/output/``). Rescoring a run
with a changed evaluator, bootstrapping per-row losses for intervals and comparing two teams' predictions all start
from the same two things, loaded here once: a phase's reference with a boolean mask per split
(:func:`load_phase_reference`, read once per task and phase, not once per run), and one run's predictions validated
exactly as at scoring time and aligned row for row to that reference (:func:`aligned_predictions`).
:meth:`harness.scoring.Evaluator.evaluate` uses the same alignment, so what is read here is what was scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import EvaluatorError
from harness.scoring.expected import ExpectedIds
from harness.scoring.predictions import validate_predictions
from harness.scoring.reference import load_reference
from harness.spec import TaskSpec

__all__ = ["PhaseReference", "aligned_predictions", "kept_output_dir", "kept_predictions_path", "load_phase_reference"]


@dataclass(frozen=True)
class PhaseReference:
    """A phase's reference rows and which of them belong to each split.

    Attributes:
        phase: ``validation`` or ``test``.
        reference: the rows :func:`~harness.scoring.load_reference` returns (index ``0..n-1``).
        masks: split -> boolean array of length ``n`` (the spec's splits of the phase, in the spec's order).
        expected_ids: the reference's ids prepared once for validating prediction files against them
            (:class:`~harness.scoring.expected.ExpectedIds`; pass it to :func:`aligned_predictions`).
    """

    phase: str
    reference: pd.DataFrame
    masks: dict[str, np.ndarray]
    expected_ids: ExpectedIds

    @property
    def n_rows(self) -> int:
        """Rows in the phase's reference."""
        return len(self.reference)

    def split(self, split: str) -> pd.DataFrame:
        """The reference rows of one split, index ``0..m-1`` (what the evaluator's ``score`` gets).

        Raises:
            KeyError: the phase has no such split.
        """
        return self.reference[self.masks[split]].reset_index(drop=True)


def load_phase_reference(spec: TaskSpec, phase: str) -> PhaseReference:
    """Read a phase's reference and the mask of each of its splits.

    Raises:
        EvaluatorError: the reference is unusable (see :func:`~harness.scoring.load_reference`) or a split of the
            phase has no rows.
        ValueError: ``phase`` is not a phase of the spec.
    """
    reference = load_reference(spec, phase)
    split_col = spec.data.split_column
    masks = {split: (reference[split_col] == split).to_numpy() for split in spec.splits(phase)}
    empty = [s for s, m in masks.items() if not m.any()]
    if empty:
        raise EvaluatorError(f"the {phase} reference has no rows of split(s) {empty}")
    expected_ids = ExpectedIds(reference[spec.predictions.id_column])
    return PhaseReference(phase=phase, reference=reference, masks=masks, expected_ids=expected_ids)


def aligned_predictions(
    spec: TaskSpec, path: Path, reference: pd.DataFrame, expected_ids: ExpectedIds | None = None
) -> pd.DataFrame:
    """Validate a predictions file against the spec and align it to the reference's rows.

    Args:
        spec: the task spec (``evaluator.mode: predictions``).
        path: the predictions file (a run's :func:`kept_predictions_path`, or a fresh output).
        reference: the phase's reference rows (the id column first among the spec's columns).
        expected_ids: ``reference``'s ids prepared once (:attr:`PhaseReference.expected_ids`), so that each call
            costs per byte of the file; ``None`` prepares them on every call.

    Returns:
        Row ``i`` predicts reference row ``i``: the id column and every prediction column of the spec with its
        dtype, index ``0..n-1`` (what :meth:`~harness.scoring.Evaluator.score` gets, before the split).

    Raises:
        InvalidOutputError: the file does not match the spec (the same reasons and words as at scoring time).
    """
    id_col = spec.predictions.id_column
    expected = reference[id_col] if expected_ids is None else expected_ids
    predictions = validate_predictions(spec, Path(path), expected_ids=expected)
    return predictions.set_index(id_col).reindex(pd.Index(reference[id_col], name=id_col)).reset_index()


def kept_output_dir(artifacts_dir: str | Path) -> Path:
    """The output folder a run kept (``<artifacts_dir>/output``); it may be missing for a run that failed early."""
    return Path(artifacts_dir) / "output"


def kept_predictions_path(spec: TaskSpec, artifacts_dir: str | Path) -> Path:
    """The predictions file a run kept (``<artifacts_dir>/output/<predictions.file>``); it may not exist."""
    return kept_output_dir(artifacts_dir) / spec.predictions.file
