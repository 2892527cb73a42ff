"""Scoring: prediction validation, the :class:`Evaluator` base class, and running an evaluator in its own process.

A task author subclasses :class:`Evaluator` and writes one method:

* ``score(predictions, reference) -> {metric: float}`` (``evaluator.mode: predictions``, the default): the base
  class has already validated the team's prediction file against the spec and aligned it to the reference rows,
  so row ``i`` of ``predictions`` is the prediction for row ``i`` of ``reference``;
* or ``score_output_dir(output_dir, reference) -> {metric: float}`` (``evaluator.mode: output_dir``) for tasks
  whose output is not a prediction table. It may raise :class:`~harness.errors.InvalidOutputError` itself.

The base class owns the rest of the lifecycle: it loads the reference, validates the outputs, splits the reference
(``public``/``private`` in the test phase, ``validation`` in the validation phase), calls the author's method once
per split and checks the answer (the spec's metric names exactly, each a finite float).

The pipeline calls :func:`score_outputs`, which runs that lifecycle in a separate Python process with the
evaluator's time limit and an address-space limit, kills its whole process group on expiry and reaps it, and
re-raises :class:`~harness.errors.InvalidOutputError` or :class:`~harness.errors.EvaluatorError` in the caller.
POSIX only (process groups, ``resource`` limits).
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import importlib.util
import io
import json
import logging
import math
import os
import pickle
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from harness import errors
from harness.errors import EvaluatorError, HarnessError, InvalidOutputError
from harness.spec import ColumnSpec, TaskSpec

__all__ = [
    "Evaluator",
    "check_metrics",
    "evaluate_outputs",
    "load_evaluator",
    "load_reference",
    "score_outputs",
    "validate_predictions",
]

logger = logging.getLogger(__name__)

#: Values read as "missing" in a numeric or bool prediction column (after stripping blanks, case-insensitive).
_MISSING_TOKENS: Final = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>", "-nan"})
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?$")
_TOKENIZE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_BOOL_VALUES: Final = {"true": True, "false": False, "1": True, "0": False}
_SNIFF_BYTES = 64 * 1024
_MAGIC: Final = (
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a zip archive (or an Excel .xlsx file)"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"\x80", "a Python pickle"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls file"),
)
_LOG_TAIL_BYTES = 4000


def _fmt(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{_fmt(n)} {word if n == 1 else (plural or word + 's')}"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def _how_to_write(spec: TaskSpec) -> str:
    cols = ", ".join(repr(c.name) for c in spec.predictions.columns)
    return f"write it with pandas: df[[{cols}]].to_csv(output_dir / {spec.predictions.file!r}, index=False)"


# -- prediction validation -------------------------------------------------------------------------------------
def _read_bounded(path: Path, name: str, max_mb: int) -> bytes:
    """Read a regular file without following links, refusing it before reading when it exceeds ``max_mb``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        found = sorted(p.name for p in path.parent.iterdir())[:10] if path.parent.is_dir() else []
        raise InvalidOutputError(
            f"no {name} in the output folder",
            [
                f"{name} was not written; your code must write {name} into output_dir "
                f"(files found there: {', '.join(found) or 'none'})"
            ],
        ) from None
    except OSError as exc:  # ELOOP: a symbolic link; EISDIR etc.
        raise InvalidOutputError(
            f"{name} cannot be read",
            [f"{name} must be a regular file written by your code, not a link or a folder ({exc.strerror})"],
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidOutputError(
                f"{name} is not a regular file", [f"{name} must be a regular file written by your code"]
            )
        limit = max_mb * 1024 * 1024
        if info.st_size > limit:
            raise InvalidOutputError(
                f"{name} is too large",
                [
                    f"{name} is {info.st_size / 1024 / 1024:,.1f} MiB, above the task's limit of {max_mb} MiB; "
                    "write one row per id and only the required columns"
                ],
            )
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:  # grew while we read it
            raise InvalidOutputError(f"{name} is too large", [f"{name} is above the task's limit of {max_mb} MiB"])
        return data
    finally:
        os.close(fd)


def _sniff_text(data: bytes, name: str, spec: TaskSpec) -> str:
    """Decode a CSV file's bytes (UTF-8, a BOM tolerated) or say what the file looks like instead."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise InvalidOutputError(
                f"{name} is not a CSV file", [f"{name} looks like {what}, not a CSV text file; {_how_to_write(spec)}"]
            )
    nul = data.find(b"\x00", 0, _SNIFF_BYTES)
    if nul >= 0:
        raise InvalidOutputError(
            f"{name} is not a CSV file",
            [f"{name} holds binary data (a NUL byte at offset {nul:,}), not CSV text; {_how_to_write(spec)}"],
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidOutputError(
            f"{name} is not UTF-8 text",
            [f"{name} is not UTF-8 text (invalid byte at offset {exc.start:,}); save it as UTF-8 CSV"],
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rename_hint(wanted: str, found: list[str]) -> str:
    """`` (rename 'X' to 'wanted'?)`` for the found column most like ``wanted``, or ``""``."""
    candidates = [c for c in found if c.strip().lower() == wanted.lower()]
    candidates += difflib.get_close_matches(wanted, found, n=1, cutoff=0.6)
    candidates += [c for c in found if wanted.lower() in c.lower() or (len(c) > 1 and c.lower() in wanted.lower())]
    return f" (rename {candidates[0]!r} to {wanted!r}?)" if candidates else ""


def _first_id(ids: pd.Series, mask: np.ndarray | pd.Series) -> str:
    hits = ids[np.asarray(mask, dtype=bool)]
    return str(hits.iloc[0]) if len(hits) else "?"


def _parse_column(column: ColumnSpec, raw: pd.Series, ids: pd.Series, name: str) -> tuple[pd.Series, list[str]]:
    """Convert one column of strings to its spec dtype; return the values and the problems found."""
    problems: list[str] = []
    col = column.name
    stripped = raw.str.strip()
    missing = stripped.str.lower().isin(_MISSING_TOKENS).to_numpy()
    if column.dtype == "string":
        empty = (stripped == "").to_numpy()
        if empty.any():
            problems.append(
                f"column {col!r} has {_plural(int(empty.sum()), 'empty value')}; first at id {_first_id(ids, empty)}"
            )
        return raw.astype(object), problems
    if missing.any():
        problems.append(
            f"column {col!r} has {_plural(int(missing.sum()), 'missing or NaN value')}; first at id "
            f"{_first_id(ids, missing)}; predict a number for every row (fill gaps, e.g. with the training mean)"
            if column.dtype != "bool"
            else f"column {col!r} has {_plural(int(missing.sum()), 'missing value')}; first at id "
            f"{_first_id(ids, missing)}"
        )
    if column.dtype == "bool":
        lowered = stripped.str.lower()
        bad = (~lowered.isin(list(_BOOL_VALUES)) & ~missing).to_numpy()
        if bad.any():
            problems.append(
                f"column {col!r} must hold true/false (or 1/0); {_plural(int(bad.sum()), 'value')} "
                f"{_are(int(bad.sum()))} not, first: {stripped[bad].iloc[0]!r} at id {_first_id(ids, bad)}"
            )
        return lowered.map(_BOOL_VALUES).astype(object), problems
    numbers = pd.to_numeric(stripped.where(~missing, None), errors="coerce").astype("float64")
    unparsable = numbers.isna().to_numpy() & ~missing
    if unparsable.any():
        first = str(stripped[unparsable].iloc[0])
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
    values = numbers.to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        problems.append(
            f"column {col!r} has {_plural(int(infinite.sum()), 'infinite value')} (inf); first at id "
            f"{_first_id(ids, infinite)}; predictions must be finite numbers"
        )
    finite = np.isfinite(values)
    if column.min is not None or column.max is not None:
        lo = -math.inf if column.min is None else column.min
        hi = math.inf if column.max is None else column.max
        out = finite & ((values < lo) | (values > hi))
        if out.any():
            problems.append(
                f"column {col!r} has {_plural(int(out.sum()), 'value')} outside the accepted range "
                f"[{lo:g}, {hi:g}]; first: {values[out][0]:g} at id {_first_id(ids, out)}"
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


def validate_predictions(
    spec: TaskSpec,
    path: str | Path,
    *,
    expected_ids: Sequence[Any] | pd.Series | pd.Index | None = None,
    phase: str | None = None,
) -> pd.DataFrame:
    """Check a team's prediction file against the spec's schema and return it parsed.

    The file must be UTF-8 CSV (a BOM and CRLF line ends are tolerated) with a header row naming every column of
    ``spec.predictions.columns``; extra columns are ignored. It is refused before parsing when larger than
    ``predictions.max_mb``, and symbolic links are not followed. Every problem found is reported, not just the
    first.

    Args:
        spec: the task spec.
        path: the prediction file (usually ``output_dir / spec.predictions.file``).
        expected_ids: the ids that must each appear exactly once (reference order); ``None`` to skip the id-set
            checks unless ``phase`` is given.
        phase: read ``expected_ids`` from this phase's reference (``validation`` or ``test``) when
            ``expected_ids`` is not given.

    Returns:
        One row per line of the file, in file order, with exactly the spec's columns in spec order; dtypes:
        ``string`` -> object (str), ``int`` -> int64, ``float`` -> float64 (all finite), ``bool`` -> object (bool).

    Raises:
        InvalidOutputError: the file is missing, empty, too large, not CSV, header only, lacks a column, or has
            missing/duplicate/unknown ids, values of the wrong type, NaN or inf. ``problems`` holds one sentence
            per problem with counts, the first offending id and the column name.
        EvaluatorError: ``phase`` is given and its reference cannot be read (a task problem).
    """
    path = Path(path)
    name = path.name
    pspec = spec.predictions
    data = _read_bounded(path, name, pspec.max_mb)
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise InvalidOutputError(f"{name} is empty", [f"{name} is empty ({len(data)} bytes); {_how_to_write(spec)}"])
    text = _sniff_text(data, name, spec)
    del data
    header_line = text.split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([header_line]), [])
    required = [c.name for c in pspec.columns]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise InvalidOutputError(
            f"{name} has duplicate column names",
            [f"the header names column(s) {', '.join(map(repr, duplicated))} more than once"],
        )
    no_header_hint = ""
    if not set(required) & set(header) and (len(header) < 2 or any(_is_number(h) for h in header)):
        no_header_hint = (
            f"none of the required columns ({', '.join(required)}) is in the first line "
            f"{header_line[:80]!r}; the file needs a CSV header row. {_how_to_write(spec)}"
        )
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=False, engine="c"
        )
    except pd.errors.ParserError as exc:
        match = _TOKENIZE.search(str(exc))
        detail = f"line {match[2]} has {match[3]} fields but the header has {match[1]}" if match else str(exc).strip()
        if no_header_hint:
            raise InvalidOutputError(f"{name} is not a CSV prediction table", [no_header_hint]) from None
        raise InvalidOutputError(
            f"{name} is not a well-formed CSV file",
            [
                f"{name}: {detail}; a value holds an unquoted comma. Write numbers without thousands separators "
                "(1234.5, not 1,234.5) and quote text with commas (pandas' to_csv does both)"
            ],
        ) from None
    except (ValueError, UnicodeError) as exc:
        raise InvalidOutputError(f"{name} is not a well-formed CSV file", [f"{name}: {exc}"]) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # Every row has one field more than the header: pandas silently makes the first one the index, and the
        # ids would then be whatever followed it (e.g. the '1' of '1,234.5').
        raise InvalidOutputError(
            f"{name} is not a well-formed CSV file",
            [
                f"{name}: every row has {len(header) + 1} fields but the header has {len(header)}; a value holds "
                "an unquoted comma. Write numbers without thousands separators (1234.5, not 1,234.5) and quote "
                "text with commas (pandas' to_csv does both)"
            ],
        )
    del text
    problems: list[str] = []
    absent = [c for c in required if c not in frame.columns]
    found = [str(c) for c in frame.columns]
    for col in absent:
        problems.append(f"missing column {col!r}{_rename_hint(col, found)}; found columns: {', '.join(found[:20])}")
    if no_header_hint:
        problems.append(no_header_hint)
    if len(frame) == 0:
        expected = f"{_fmt(len(expected_ids))} rows, one per id" if expected_ids is not None else "one row per id"
        problems.append(f"{name} has a header but no rows; expected {expected}")
        raise InvalidOutputError(f"{name} has no rows", problems)
    if expected_ids is None and phase is not None:
        expected_ids = load_reference(spec, phase)[pspec.id_column]

    id_col = pspec.id_column
    out: dict[str, pd.Series] = {}
    if id_col in frame.columns:
        ids, id_problems = _parse_ids(spec, frame[id_col], expected_ids, name)
        problems += id_problems
        out[id_col] = ids
    ids_for_messages = (
        frame[id_col] if id_col in frame.columns else pd.Series([f"(row {i + 1})" for i in range(len(frame))])
    )
    for column in pspec.columns:
        if column.name == id_col or column.name not in frame.columns:
            continue
        values, col_problems = _parse_column(column, frame[column.name], ids_for_messages, name)
        problems += col_problems
        out[column.name] = values
    if problems:
        summary = f"{name} is invalid ({_plural(len(problems), 'problem')})"
        logger.info("%s: %s", summary, "; ".join(problems))
        raise InvalidOutputError(summary, problems)
    return pd.DataFrame({c: out[c] for c in required})


def _parse_ids(
    spec: TaskSpec, raw: pd.Series, expected_ids: Sequence[Any] | pd.Series | pd.Index | None, name: str
) -> tuple[pd.Series, list[str]]:
    """Parse the id column and check that every expected id appears exactly once and no other id does."""
    id_col = spec.predictions.id_column
    dtype = next(c.dtype for c in spec.predictions.columns if c.name == id_col)
    problems: list[str] = []
    empty = (raw.str.strip() == "").to_numpy()
    if empty.any():
        problems.append(
            f"{_plural(int(empty.sum()), 'row')} {'has' if empty.sum() == 1 else 'have'} an empty "
            f"{id_col!r}; first at line {int(np.argmax(empty)) + 2}"
        )
    ids: pd.Series = raw.astype(object)
    skip = empty.copy()  # rows whose id is unusable: left out of the duplicate and id-set checks
    if dtype == "int":
        parsed = pd.to_numeric(raw.str.strip(), errors="coerce").astype("float64").to_numpy()
        whole = np.isfinite(parsed) & (parsed == np.round(parsed))
        bad = ~whole & ~empty
        if bad.any():
            n_bad = int(bad.sum())
            problems.append(
                f"column {id_col!r} must hold whole numbers; {_plural(n_bad, 'id')} {_are(n_bad)} not, "
                f"first: {raw[bad].iloc[0]!r}"
            )
        ids = pd.Series([int(v) if ok else None for v, ok in zip(parsed, whole, strict=True)], dtype=object)
        skip |= bad
    duplicated = ids.duplicated(keep=False).to_numpy() & ~skip
    if duplicated.any():
        first = ids[duplicated].iloc[0]
        lines = [str(i + 2) for i in np.flatnonzero((ids == first).to_numpy())[:3]]
        n_ids = int(ids[duplicated].nunique())
        verb = "appears" if n_ids == 1 else "appear"
        problems.append(
            f"{_plural(n_ids, 'id')} {verb} more than once ({_plural(int(duplicated.sum()), 'row')} in all); "
            f"first: {first} (lines {', '.join(lines)}); write each id exactly once"
        )
    if expected_ids is not None:
        rows = f"the rows of {spec.data.predict_file} in input_dir" if spec.data.predict_file else "the rows to predict"
        expected = pd.Index(pd.Series(list(expected_ids), dtype=object))
        present = pd.Index(ids[~skip])
        missing_mask = ~expected.isin(present)
        if missing_mask.any():
            problems.append(
                f"{name} lacks {_fmt(int(missing_mask.sum()))} of {_fmt(len(expected))} ids; first "
                f"missing: {expected[missing_mask][0]}; predict every one of {rows}"
            )
        extra_mask = ~present.isin(expected)
        if extra_mask.any():
            extra = present[extra_mask]
            n_extra = int(extra.nunique())
            problems.append(
                f"{name} has {_plural(n_extra, 'id')} that {'is' if n_extra == 1 else 'are'} not among "
                f"the rows to predict; first: {extra[0]}; predict exactly {rows}, not those of the training data"
            )
    return ids, problems


# -- reference -------------------------------------------------------------------------------------------------
def load_reference(spec: TaskSpec, phase: str) -> pd.DataFrame:
    """Read a phase's reference file (the truth), as the evaluator sees it.

    Args:
        spec: the task spec.
        phase: ``validation`` or ``test``.

    Returns:
        One row per id in file order; columns: the id column (object str, or int64 for ``int`` ids), every target
        column with its spec dtype (float64 / int64 / object), and the split column (object str). Other columns
        in the file are kept as strings after these.

    Raises:
        EvaluatorError: the file is missing or lacks a column, has duplicate ids, a non-numeric or missing
            target, or a split the spec does not declare. These are task problems, not the team's.
        ValueError: ``phase`` is not a phase of the spec.
    """
    if phase not in spec.data.references:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(spec.data.references)}")
    path = spec.reference_path(phase)
    if not path.is_file():
        raise EvaluatorError(
            f"the {phase} reference {path} does not exist; run `harness task prepare {spec.task_dir}` first"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, OSError, UnicodeError) as exc:
        raise EvaluatorError(f"cannot read the {phase} reference {path}: {exc}") from None
    pspec = spec.predictions
    needed = [pspec.id_column, *pspec.target_columns, spec.data.split_column]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise EvaluatorError(f"the {phase} reference {path} lacks column(s) {absent}; it needs {needed}")
    ids = frame[pspec.id_column]
    id_dtype = next(c.dtype for c in pspec.columns if c.name == pspec.id_column)
    out: dict[str, Any] = {pspec.id_column: ids.astype("int64") if id_dtype == "int" else ids.astype(object)}
    if ids.duplicated().any():
        raise EvaluatorError(f"the {phase} reference {path} has duplicate ids, first: {ids[ids.duplicated()].iloc[0]}")
    for column in pspec.columns:
        if column.name == pspec.id_column:
            continue
        values, problems = _parse_column(column, frame[column.name], ids, path.name)
        if problems:
            raise EvaluatorError(f"the {phase} reference {path} is malformed: {'; '.join(problems)}")
        out[column.name] = values
    split = frame[spec.data.split_column].astype(object)
    unknown = sorted(set(split) - set(spec.splits(phase)))
    if unknown:
        raise EvaluatorError(
            f"the {phase} reference {path} has split(s) {unknown} that data.splits.{phase} "
            f"({list(spec.splits(phase))}) does not declare"
        )
    out[spec.data.split_column] = split
    for col in frame.columns:
        if col not in out:
            out[col] = frame[col]
    return pd.DataFrame(out)


# -- the evaluator ---------------------------------------------------------------------------------------------
class Evaluator:
    """Base class of a task's evaluator: it owns the lifecycle, a subclass writes one scoring method.

    Subclass it in ``evaluators/<task>.py`` and implement :meth:`score` (``evaluator.mode: predictions``) or
    :meth:`score_output_dir` (``evaluator.mode: output_dir``). Return ``{metric_name: value}`` with exactly the
    spec's metric names; each value a finite real number. Use scikit-learn's metrics where they exist.

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
                row ``i``); the spec's prediction columns with their dtypes, index ``0..n-1``.
            reference: the split's reference rows (the id column, the target columns, the split column),
                index ``0..n-1``.

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

    # -- lifecycle ------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Load, validate, split, score each split and check the metrics.

        Returns:
            ``{split: {metric: value}}`` with the splits in the spec's order and the metrics in the spec's order.

        Raises:
            InvalidOutputError: the team's outputs do not match the spec.
            EvaluatorError: the reference is unusable, the author's method raised, or it returned malformed
                metrics.
        """
        spec = self.spec
        started = time.perf_counter()
        reference = load_reference(spec, self.phase)
        split_col = spec.data.split_column
        id_col = spec.predictions.id_column
        masks = {split: (reference[split_col] == split).to_numpy() for split in spec.splits(self.phase)}
        empty = [s for s, m in masks.items() if not m.any()]
        if empty:
            raise EvaluatorError(f"the {self.phase} reference has no rows of split(s) {empty}")
        aligned: pd.DataFrame | None = None
        if spec.evaluator.mode == "predictions":
            predictions = validate_predictions(
                spec, self.output_dir / spec.predictions.file, expected_ids=reference[id_col]
            )
            aligned = predictions.set_index(id_col).reindex(pd.Index(reference[id_col], name=id_col)).reset_index()
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
    for column in spec.predictions.columns:
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


# -- the evaluator's own process -------------------------------------------------------------------------------
_ERROR_CLASSES: Final[dict[str, type[HarnessError]]] = {
    cls.__name__: cls for cls in (errors.InvalidOutputError, errors.EvaluatorError, errors.SpecError)
}


def _child_main() -> None:
    """Entry point of a cold evaluator process: ``python -c '...' REQUEST RESULT MEMORY_MB``."""
    request_path, result_path, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _limit_memory(memory_mb)
    _serve(request_path, result_path, memory_mb)


def _standby_main() -> None:
    """Entry point of a warm evaluator process: ``python -c '...' WORK_DIR MEMORY_MB``.

    It applies the memory limit, imports what evaluators use (pandas, numpy, scikit-learn's metrics), then waits
    for one line on stdin and serves ``WORK_DIR/request.pkl`` into ``WORK_DIR/result.json``. One request per
    process: nothing an evaluator leaves in memory reaches the next run.
    """
    work, memory_mb = Path(sys.argv[1]), int(sys.argv[2])
    _limit_memory(memory_mb)
    with contextlib.suppress(ImportError, MemoryError):
        import sklearn.metrics  # noqa: F401  (warm-up only)
    if not sys.stdin.readline():
        return  # the harness closed the pool without a request
    _serve(str(work / "request.pkl"), str(work / "result.json"), memory_mb)


def _limit_memory(memory_mb: int) -> None:
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _serve(request_path: str, result_path: str, memory_mb: int) -> None:
    """Read the pickled ``(spec, output_dir, phase)`` our parent wrote, run :func:`evaluate_outputs` and write the
    outcome as JSON (never pickle: nothing the evaluator makes is unpickled by the harness)."""
    outcome: dict[str, Any]
    try:
        with open(request_path, "rb") as fh:
            spec, output_dir, phase = pickle.load(fh)  # written by our parent a moment ago
        outcome = {"ok": True, "scores": evaluate_outputs(spec, output_dir, phase)}
    except MemoryError:
        outcome = {
            "ok": False,
            "error": "EvaluatorError",
            "args": [
                f"the evaluator ran out of memory (limit {memory_mb} MiB, evaluator.memory_mb in task.yaml)",
                traceback.format_exc(),
            ],
        }
    except HarnessError as exc:
        name = type(exc).__name__ if type(exc).__name__ in _ERROR_CLASSES else "EvaluatorError"
        args = list(exc.args) if name == type(exc).__name__ else [str(exc), traceback.format_exc()]
        outcome = {"ok": False, "error": name, "args": args}
    except BaseException as exc:
        outcome = {
            "ok": False,
            "error": "EvaluatorError",
            "args": [f"the evaluator failed: {type(exc).__name__}: {exc}", traceback.format_exc()],
        }
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, result_path)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group and reap the child (no zombie left)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        proc.wait()


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# -- warm evaluator processes ----------------------------------------------------------------------------------
class _Standby:
    """An evaluator process started ahead of time: imports done, waiting for one request (see _standby_main)."""

    def __init__(self, memory_mb: int, env: dict[str, str]) -> None:
        self.memory_mb = memory_mb
        self.work = Path(tempfile.mkdtemp(prefix="harness-score-"))
        self.log = self.work / "evaluator.log"
        with self.log.open("wb") as log_fh:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from harness.scoring import _standby_main; _standby_main()",
                    str(self.work),
                    str(memory_mb),
                ],
                stdin=subprocess.PIPE,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                env=env,
                start_new_session=True,
            )

    def discard(self) -> None:
        _kill_group(self.proc)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        shutil.rmtree(self.work, ignore_errors=True)


class _WarmPool:
    """Standby evaluator processes shared by the threads of one batch (see :func:`warm_evaluators`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[_Standby] = []
        self.lock = threading.Lock()

    def take(self, memory_mb: int, env: dict[str, str]) -> _Standby | None:
        with self.lock:
            match = next((s for s in self.idle if s.memory_mb == memory_mb and s.proc.poll() is None), None)
            if match is not None:
                self.idle.remove(match)
            for other in [s for s in self.idle if s.memory_mb != memory_mb]:
                self.idle.remove(other)
                other.discard()
            while len(self.idle) < self.size:  # ready for the next runs
                self.idle.append(_Standby(memory_mb, env))
            return match

    def close(self) -> None:
        with self.lock:
            for standby in self.idle:
                standby.discard()
            self.idle.clear()


_POOL: _WarmPool | None = None


@contextlib.contextmanager
def warm_evaluators(size: int = 1) -> Iterator[None]:
    """Keep ``size`` evaluator processes started ahead of time while the block runs.

    Starting Python and importing pandas and scikit-learn costs about a second per scoring; a batch of thousands
    of submissions pays it in the background instead. Each process still serves exactly one scoring under the
    same time and memory limits, and every standby is killed when the block ends.
    """
    global _POOL
    if _POOL is not None:  # nested: the outer block owns the pool
        yield
        return
    _POOL = _WarmPool(max(1, size))
    try:
        yield
    finally:
        pool, _POOL = _POOL, None
        pool.close()


def _evaluator_env() -> dict[str, str]:
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # keeps the address space of the BLAS thread pools small
    return env


def score_outputs(spec: TaskSpec, output_dir: Path, phase: str) -> dict[str, dict[str, float]]:
    """Validate a run's outputs and score them, in a separate process with the evaluator's limits.

    The child process runs :meth:`Evaluator.evaluate` under an address-space limit of ``evaluator.memory_mb``
    MiB, in its own session. When it does not finish within ``evaluator.time_s`` seconds its whole process group
    is killed with SIGKILL and reaped. Its stdout and stderr go to a temporary file whose tail is kept in the
    error detail.

    Args:
        spec: the task spec.
        output_dir: the run's output folder (holding ``spec.predictions.file`` in predictions mode).
        phase: ``validation`` (scored against the public validation labels) or ``test`` (the hidden reference).

    Returns:
        ``{split: {metric: value}}``, e.g. ``{"public": {"mae": 21.3, ...}, "private": {...}}``; splits and
        metrics in the spec's order, every value a finite float.

    Raises:
        InvalidOutputError: the outputs do not match the spec (a team problem; ``problems`` say what to fix).
        EvaluatorError: the evaluator raised, ran out of memory, exceeded ``evaluator.time_s``, died, or returned
            malformed metrics (a task problem).
        ValueError: ``phase`` is not a phase of the spec.
    """
    if phase not in spec.data.references:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(spec.data.references)}")
    time_s = spec.evaluator.time_s
    env = _evaluator_env()
    pool = _POOL
    standby = pool.take(spec.evaluator.memory_mb, env) if pool is not None else None
    work = standby.work if standby is not None else Path(tempfile.mkdtemp(prefix="harness-score-"))
    try:
        request, result, log = work / "request.pkl", work / "result.json", work / "evaluator.log"
        request.write_bytes(pickle.dumps((spec, Path(output_dir).resolve(), phase)))
        started = time.monotonic()
        if standby is not None:
            proc = standby.proc
            assert proc.stdin is not None
            try:
                proc.stdin.write(b"go\n")
                proc.stdin.close()
            except OSError:
                pass  # it died while waiting: reported below as an evaluator without a result
        else:
            with log.open("wb") as log_fh:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "from harness.scoring import _child_main; _child_main()",
                        str(request),
                        str(result),
                        str(spec.evaluator.memory_mb),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    cwd=work,
                    env=env,
                    start_new_session=True,
                )
        logger.debug("evaluator process %d started for %s (%s)", proc.pid, spec.id, phase)
        try:
            returncode = proc.wait(timeout=time_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise EvaluatorError(
                f"the evaluator did not finish within its time limit of {time_s:g} s (evaluator.time_s in "
                "task.yaml) and was stopped",
                _tail(log),
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            # Children the evaluator left behind die with its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        duration = time.monotonic() - started
        logger.debug("evaluator process %d ended with %s after %.2f s", proc.pid, returncode, duration)
        if not result.is_file():
            how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
            hint = " (SIGKILL: perhaps the machine's OOM killer)" if returncode == -signal.SIGKILL else ""
            raise EvaluatorError(f"the evaluator process {how}{hint} without a result", _tail(log))
        outcome = json.loads(result.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if outcome["ok"]:
        return {split: {m: float(v) for m, v in metrics.items()} for split, metrics in outcome["scores"].items()}
    raise _ERROR_CLASSES[outcome["error"]](*outcome["args"])
