"""The ``similarity:`` section of a task spec: when two teams' submissions are shown to judges as similar.

Part of :mod:`harness.spec` (``TaskSpec.similarity``). Every field has a default, so a task.yaml without the section
is valid::

    similarity:
      code_threshold: 0.5          # share of a submission's code (beyond the starter kit) matching another's
      min_matched_chars: 200       # and at least this much matched code (normalised characters)
      prediction_threshold: 0.1    # predictions apart by at most this share of their spread / of their errors
      noise_chars: 25              # fingerprints are k-grams of this many normalised characters
      guarantee_chars: 30          # a match at least this long is always found (winnowing window)

The figures are evidence for judges (see the README's "Similar submissions"); nothing is decided from them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from harness.spec_predictions import _Strict

__all__ = ["SimilaritySpec"]


class SimilaritySpec(_Strict):
    """Thresholds of ``harness similar`` and of the judges' "similar submissions" section.

    Attributes:
        code_threshold: a pair is listed when the larger of its two code similarities reaches this share (0 to 1):
            the share of one team's code, beyond the starter kit's, found in the other's (after renaming every
            variable, function and string, and dropping comments and blank lines).
        min_matched_chars: and when at least this many normalised characters match (short scripts sharing a few
            idioms are not listed).
        prediction_threshold: a pair's predictions are flagged when they differ by at most this share: for
            numbers, the root-mean-square difference of the two teams' predictions over the mean of their standard
            deviations; for labels, the rows where they differ over the rows where either is wrong.
        noise_chars: k-gram length of the fingerprints (copydetect's noise threshold), in normalised characters.
        guarantee_chars: any match at least this long is found (winnowing window = guarantee - noise + 1).
    """

    code_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    min_matched_chars: Annotated[int, Field(ge=0)] = 200
    prediction_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.1
    noise_chars: Annotated[int, Field(ge=5, le=200)] = 25
    guarantee_chars: Annotated[int, Field(ge=5, le=400)] = 30

    @model_validator(mode="after")
    def _window(self) -> SimilaritySpec:
        if self.guarantee_chars < self.noise_chars:
            raise ValueError(
                f"similarity.guarantee_chars ({self.guarantee_chars}) must be at least noise_chars "
                f"({self.noise_chars}): the winnowing window is guarantee - noise + 1"
            )
        return self

    @property
    def window(self) -> int:
        """The winnowing window size (k-grams per window)."""
        return self.guarantee_chars - self.noise_chars + 1
