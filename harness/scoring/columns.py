"""Parsing one column of a prediction or reference file to its spec dtype, and the wording of counts.

Shared by :mod:`harness.scoring.predictions` (a team's file) and :mod:`harness.scoring.reference` (the truth); the
names here are private to :mod:`harness.scoring`.
"""

from __future__ import annotations

import math
import re
from typing import Final

import numpy as np
import pandas as pd

from harness.spec import ColumnSpec

#: Values read as "missing" in a numeric or bool prediction column (after stripping blanks, case-insensitive).
_MISSING_TOKENS: Final = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>", "-nan"})
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?$")
_BOOL_VALUES: Final = {"true": True, "false": False, "1": True, "0": False}


#: Relative slack of a column's bounds: four float64 ulps (values within it are clipped to the bound).
_SLACK: Final = 4 * np.finfo(np.float64).eps


def _exact(value: float) -> str:
    """A number as Python's shortest exact repr (``10080.0000001``, not ``:g``'s ``10080``), ``.0`` dropped."""
    text = repr(float(value))
    return text.removesuffix(".0")


def _fmt(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{_fmt(n)} {word if n == 1 else (plural or word + 's')}"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def _clip(text: str, limit: int = 80) -> str:
    """``text`` for a message: at most ``limit`` characters, a longer one cut with its length said (a team's value
    or column name may be megabytes long)."""
    return text if len(text) <= limit else f"{text[:limit]}… [{_fmt(len(text))} characters]"


def _first_id(ids: pd.Series, mask: np.ndarray | pd.Series) -> str:
    hits = ids[np.asarray(mask, dtype=bool)]
    return _clip(str(hits.iloc[0])) if len(hits) else "?"


def _plain_numbers(raw: pd.Series) -> pd.Series | None:
    """``raw`` as float64 when every value is a plain decimal number (``nan``/``inf`` spelled out included), or
    ``None``: Arrow's parser (correctly rounded) takes about 0.05 s per million values where ``pd.to_numeric`` on
    strings takes 0.6 s. It refuses blanks, padding, thousands separators and missing-value words; those files take
    the slow path, which says what is wrong with which value.

    A float64 ``raw`` is returned as it is: Arrow's CSV reader parsed it from the file's text with the parser of
    this cast, having refused to unless every value was a plain number written without padding
    (:func:`~harness.scoring.predictions._read_with_arrow`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if raw.dtype == np.float64:
        return raw
    try:
        array = pa.array(raw, type=pa.string()) if raw.dtype == object else pa.array(raw)
        if array.null_count or (not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type)):
            return None
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return pd.Series(values, index=raw.index, dtype="float64")


def _missing_problem(column: ColumnSpec, missing: np.ndarray, ids: pd.Series) -> list[str]:
    if not missing.any():
        return []
    col = column.name
    if column.dtype == "bool":
        return [
            f"column {col!r} has {_plural(int(missing.sum()), 'missing value')}; first at id {_first_id(ids, missing)}"
        ]
    return [
        f"column {col!r} has {_plural(int(missing.sum()), 'missing or NaN value')}; first at id "
        f"{_first_id(ids, missing)}; predict a number for every row (fill gaps, e.g. with the training mean)"
    ]


def _parse_column(column: ColumnSpec, raw: pd.Series, ids: pd.Series, name: str) -> tuple[pd.Series, list[str]]:
    """Convert one column of strings to its spec dtype; return the values and the problems found.

    Linear in the column's size; a numeric column of plain numbers takes a fast path (:func:`_plain_numbers`).
    """
    col = column.name
    if column.dtype in ("float", "int"):
        plain = _plain_numbers(raw)
        if plain is not None:
            finite = np.isfinite(plain.to_numpy())
            missing = [] if finite.all() else _missing_problem(column, np.isnan(plain.to_numpy()), ids)
            return _check_numbers(column, plain, missing, ids, finite)
    problems: list[str] = []
    stripped = raw.str.strip()
    missing = stripped.str.lower().isin(_MISSING_TOKENS).to_numpy()
    if column.dtype == "string":
        empty = (stripped == "").to_numpy()
        if empty.any():
            problems.append(
                f"column {col!r} has {_plural(int(empty.sum()), 'empty value')}; first at id {_first_id(ids, empty)}"
            )
        return raw.astype(object), problems
    problems += _missing_problem(column, missing, ids)
    if column.dtype == "bool":
        lowered = stripped.str.lower()
        bad = (~lowered.isin(list(_BOOL_VALUES)) & ~missing).to_numpy()
        if bad.any():
            problems.append(
                f"column {col!r} must hold true/false (or 1/0); {_plural(int(bad.sum()), 'value')} "
                f"{_are(int(bad.sum()))} not, first: {_clip(str(stripped[bad].iloc[0]))!r} at id {_first_id(ids, bad)}"
            )
        return lowered.map(_BOOL_VALUES).astype(object), problems
    numbers = pd.to_numeric(stripped.where(~missing, None), errors="coerce").astype("float64")
    unparsable = numbers.isna().to_numpy() & ~missing
    if unparsable.any():
        first = _clip(str(stripped[unparsable].iloc[0]))
        thousands = stripped[unparsable].str.match(_THOUSANDS)
        problem = (
            f"column {col!r} must hold numbers ({column.dtype}); {_plural(int(unparsable.sum()), 'value')} "
            f"{'is' if unparsable.sum() == 1 else 'are'} not, first: {first!r} at id "
            f"{_first_id(ids, unparsable)}"
        )
        if thousands.any():
            problem += (
                "; write numbers without thousands separators and with a '.' decimal point "
                "(1234.5, not 1,234.5), e.g. df.to_csv(path, index=False)"
            )
        problems.append(problem)
    return _check_numbers(column, numbers, problems, ids)


def _check_numbers(
    column: ColumnSpec, numbers: pd.Series, problems: list[str], ids: pd.Series, finite: np.ndarray | None = None
) -> tuple[pd.Series, list[str]]:
    """The checks of a numeric column once parsed to float64 (NaN where missing or unparsable): finite, within
    bounds, whole for ``int``; returns the values (int64 for a valid ``int`` column) and ``problems`` extended.
    ``finite``: ``np.isfinite`` of the values when the caller has it already (one pass fewer)."""
    col = column.name
    values = numbers.to_numpy()
    finite = np.isfinite(values) if finite is None else finite
    infinite = np.zeros(0, dtype=bool) if finite.all() else np.isinf(values)  # all finite: none is infinite
    if infinite.any():
        problems.append(
            f"column {col!r} has {_plural(int(infinite.sum()), 'infinite value')} (inf); first at id "
            f"{_first_id(ids, infinite)}; predictions must be finite numbers"
        )
    if column.min is not None or column.max is not None:
        lo = -math.inf if column.min is None else column.min
        hi = math.inf if column.max is None else column.max
        # A bound is met within float rounding (4 ulps of the bound): 1 - sum(others) = -2.2e-16 is 0, exp(2e-16)
        # is 1; such values are clipped to the bound, so the evaluator never sees them outside.
        slack_lo, slack_hi = _SLACK * max(1.0, abs(lo)), _SLACK * max(1.0, abs(hi))
        out = finite & ((values < lo - slack_lo) | (values > hi + slack_hi))
        if not out.any():
            values = np.clip(values, lo, hi)
            numbers = pd.Series(values, index=numbers.index, dtype="float64")
        if out.any():
            problems.append(
                f"column {col!r} has {_plural(int(out.sum()), 'value')} outside the accepted range "
                f"[{lo:g}, {hi:g}]; first: {_exact(values[out][0])} at id {_first_id(ids, out)}"
            )
    if column.dtype == "int":
        fractional = finite & (values != np.round(values))
        if fractional.any():
            problems.append(
                f"column {col!r} must hold whole numbers (int); {_plural(int(fractional.sum()), 'value')}"
                f" {'has' if fractional.sum() == 1 else 'have'} a fraction, first: {values[fractional][0]:g} at id "
                f"{_first_id(ids, fractional)}"
            )
            return numbers, problems
        huge = finite & ((values >= 2.0**63) | (values < -(2.0**63)))  # astype("int64") would wrap them silently
        if huge.any():
            problems.append(
                f"column {col!r} must hold whole numbers (int) between -9.2e18 and 9.2e18; "
                f"{_plural(int(huge.sum()), 'value')} {_are(int(huge.sum()))} outside, first: {values[huge][0]:g} "
                f"at id {_first_id(ids, huge)}"
            )
        if problems:
            return numbers, problems
        return numbers.astype("int64"), problems
    return numbers, problems
