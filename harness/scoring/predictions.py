"""Validating a team's prediction file: read it bounded, sniff that it is CSV text, parse and check columns and ids.

:func:`validate_predictions` reports every problem found, each a sentence a team can act on (counts, the first
offending id, the column name), as an :class:`~harness.errors.InvalidOutputError`.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from harness.errors import InvalidOutputError
from harness.scoring.columns import _are, _fmt, _parse_column, _plural
from harness.scoring.reference import load_reference
from harness.spec import TaskSpec

__all__ = ["not_a_regular_file", "validate_predictions"]

logger = logging.getLogger(__name__)

_TOKENIZE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_SNIFF_BYTES = 64 * 1024
_MAGIC: Final = (
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a zip archive (or an Excel .xlsx file)"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"\x80", "a Python pickle"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls file"),
)


def _how_to_write(spec: TaskSpec) -> str:
    cols = ", ".join(repr(c.name) for c in spec.predictions.columns)
    return f"write it with pandas: df[[{cols}]].to_csv(output_dir / {spec.predictions.file!r}, index=False)"


#: What to do about a predictions file that is not a regular file, by what it is (see :func:`not_a_regular_file`).
_NOT_REGULAR_HINTS: Final = {
    "symbolic link": "links are never followed, whatever they point at: write the CSV data itself",
    "directory": "a folder has that name: write the CSV file itself at that path, not a folder",
    "named pipe": "a pipe (FIFO) keeps no data once your code ends",
    "socket": "a socket keeps no data once your code ends",
    "device node": "device files are never read",
}


def _mode_kind(mode: int) -> str:
    """An ``lstat`` mode in words (the sandbox's :func:`harness.sandbox.output.entry_kind`, for what is left here)."""
    for test, kind in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISBLK, "device node"),
        (stat.S_ISCHR, "device node"),
    ):
        if test(mode):
            return kind
    return "special file"


def not_a_regular_file(name: str, kind: str) -> InvalidOutputError:
    """The refusal of a predictions file found as something other than a regular file (nothing of it was read).

    Args:
        name: the predictions file's name, e.g. ``"predictions.csv"``.
        kind: what was found: ``"symbolic link"``, ``"named pipe"``, ``"socket"``, ``"directory"``,
            ``"device node"`` or ``"special file"``.

    Returns:
        An :class:`InvalidOutputError` whose one problem says what was found and what to do, e.g.
        ``"predictions.csv is a symbolic link; write a regular file (links are never followed, ...)"``.
    """
    hint = _NOT_REGULAR_HINTS.get(kind, "only regular files are read")
    return InvalidOutputError(f"{name} is not a regular file", [f"{name} is a {kind}; write a regular file ({hint})"])


def _read_bounded(path: Path, name: str, max_mb: int) -> bytes:
    """Read a regular file without following links, refusing it before reading when it exceeds ``max_mb``."""
    try:
        # lstat first: a named pipe or a device is refused without being opened (opening a FIFO would block).
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            raise not_a_regular_file(name, _mode_kind(mode))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        found = sorted(p.name for p in path.parent.iterdir())[:10] if path.parent.is_dir() else []
        raise InvalidOutputError(
            f"no {name} in the output folder",
            [
                f"{name} was not written; your code must write {name} into output_dir "
                f"(files found there: {', '.join(found) or 'none'})"
            ],
        ) from None
    except OSError as exc:  # ELOOP: replaced by a symbolic link after the lstat (never followed)
        raise InvalidOutputError(
            f"{name} cannot be read", [f"{name} must be a regular file written by your code ({exc.strerror})"]
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_a_regular_file(name, _mode_kind(info.st_mode))
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
