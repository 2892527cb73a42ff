"""Validating a team's prediction file: read it bounded, sniff that it is CSV text, parse and check columns and ids.

:func:`validate_predictions` reports every problem found, each a sentence a team can act on (counts, the first
offending id, the column name), as an :class:`~harness.errors.InvalidOutputError`.
"""

from __future__ import annotations

import codecs
import difflib
import io
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from harness.errors import InvalidOutputError
from harness.sandbox.output import entry_kind
from harness.scoring.columns import _are, _clip, _fmt, _plural
from harness.scoring.encoding import eight_bit_encoding, wide_encoding
from harness.scoring.expected import ExpectedIds, _blank
from harness.scoring.kinds import check_groups, parse_column
from harness.scoring.reference import load_reference
from harness.scoring.shape import Header, has_lone_cr, narrow_body, read_header, scan_rows
from harness.spec import TaskSpec

__all__ = ["not_a_regular_file", "validate_predictions"]

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 64 * 1024
_BOM: Final = b"\xef\xbb\xbf"
_DECODE_CHUNK = 1 << 20
_NOT_BLANK = re.compile(rb"[^ \t\r\n\xef\xbb\xbf]")
#: Arrow's reader builds a column object per column of the header; past this many pandas' ``usecols`` is faster.
_ARROW_MAX_COLUMNS: Final = 1000
_HINT_COLUMNS = 1000  # the rename hint compares a missing column with this many of the found names, at most
_SAVE_AS_UTF8 = (
    "save it as UTF-8 (pandas' to_csv writes UTF-8; in Excel choose 'CSV UTF-8'; in an editor, 'Save with "
    "encoding: UTF-8')"
)
_UNQUOTED_COMMA = (
    "a value holds an unquoted comma. Write numbers without thousands separators (1234.5, not 1,234.5) and quote "
    "text with commas (pandas' to_csv does both)"
)
_MAGIC: Final = (
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a zip archive (or an Excel .xlsx file)"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"\x80", "a Python pickle"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls file"),
)


def _how_to_write(spec: TaskSpec) -> str:
    cols = ", ".join(repr(c.name) for c in spec.predictions.all_columns)
    return f"write it with pandas: df[[{cols}]].to_csv(Path(output_dir) / {spec.predictions.file!r}, index=False)"


#: What to do about a predictions file that is not a regular file, by what it is (see :func:`not_a_regular_file`).
_NOT_REGULAR_HINTS: Final = {
    "symbolic link": "links are never followed, whatever they point at: write the CSV data itself",
    "directory": "a folder has that name: write the CSV file itself at that path, not a folder",
    "named pipe": "a pipe (FIFO) keeps no data once your code ends",
    "socket": "a socket keeps no data once your code ends",
    "device node": "device files are never read",
}


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
            raise not_a_regular_file(name, entry_kind(mode))
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
            raise not_a_regular_file(name, entry_kind(info.st_mode))
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
        step = max(info.st_size + 1, 1 << 20)  # one read as a rule: join then returns it without a copy
        while remaining > 0:
            chunk = os.read(fd, min(remaining, step))
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


def _sniff_text(data: bytes, name: str, spec: TaskSpec) -> None:
    """Check that a CSV file's bytes are UTF-8 text (a BOM tolerated), or say what the file looks like instead.

    UTF-16/UTF-32 and 8-bit code pages are named (:mod:`harness.scoring.encoding`) with the fix: save as UTF-8.
    The check decodes in chunks of 1 MiB, so its memory does not grow with the file.
    """
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise InvalidOutputError(
                f"{name} is not a CSV file", [f"{name} looks like {what}, not a CSV text file; {_how_to_write(spec)}"]
            )
    nul = data.find(b"\x00", 0, _SNIFF_BYTES)
    wide = wide_encoding(data) if nul >= 0 or data.startswith((b"\xff\xfe", b"\xfe\xff")) else None
    if wide is not None:
        raise InvalidOutputError(
            f"{name} is not UTF-8 text",
            [f"{name} looks like {wide} text, not UTF-8; {_SAVE_AS_UTF8}"],
        )
    if nul >= 0:
        raise InvalidOutputError(
            f"{name} is not a CSV file",
            [f"{name} holds binary data (a NUL byte at offset {nul:,}), not CSV text; {_how_to_write(spec)}"],
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _DECODE_CHUNK):
        try:
            decoder.decode(view[start : start + _DECODE_CHUNK], final=start + _DECODE_CHUNK >= len(data))
        except UnicodeDecodeError as exc:
            offset = max(0, start - len(decoder.getstate()[0]) + exc.start)
            line = data.count(b"\n", 0, offset) + 1
            guess = eight_bit_encoding(data, offset)
            where = f"byte 0x{data[offset]:02X} on line {line:,}"
            if guess is not None:
                char = data[offset : offset + 4].decode(guess[0], errors="replace")[:1]
                where = f"it looks like {guess[1]} text ({where} reads {char!r} in it)"
            raise InvalidOutputError(
                f"{name} is not UTF-8 text",
                [f"{name} is not UTF-8 text (invalid byte at offset {offset:,}): {where}; {_SAVE_AS_UTF8}"],
            ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rename_hint(wanted: str, found: list[str]) -> str:
    """`` (rename 'X' to 'wanted'?)`` for the found column most like ``wanted``, or ``""``.

    Only the first :data:`_HINT_COLUMNS` names of up to 200 characters are compared (difflib's cost grows with
    both), so a header of 100,000 names costs no more than one of 1,000.
    """
    found = [c for c in found[:_HINT_COLUMNS] if len(c) <= 200]
    candidates = [c for c in found if c.strip().lower() == wanted.lower()]
    candidates += difflib.get_close_matches(wanted, found, n=1, cutoff=0.6)
    candidates += [c for c in found if wanted.lower() in c.lower() or (len(c) > 1 and c.lower() in wanted.lower())]
    return f" (rename {candidates[0]!r} to {wanted!r}?)" if candidates else ""


def validate_predictions(
    spec: TaskSpec,
    path: str | Path,
    *,
    expected_ids: Sequence[Any] | pd.Series | pd.Index | ExpectedIds | None = None,
    phase: str | None = None,
) -> pd.DataFrame:
    """Check a team's prediction file against the spec's schema and return it parsed.

    The file must be UTF-8 CSV (a BOM and CRLF line ends are tolerated) with a header row naming every column of
    ``spec.predictions.all_columns`` (plain columns, then the probability and quantile groups'); extra columns
    are ignored (not parsed), up to :data:`~harness.scoring.shape.MAX_COLUMNS` columns in all. It is refused
    before parsing when larger than ``predictions.max_mb``, and symbolic links are not followed. Every problem
    found is reported, not just the first. Time is linear in the file's bytes whatever its shape (many columns or
    rows, long fields, many ids); a file in UTF-16 or an 8-bit code page is refused naming the encoding it looks
    like.

    Args:
        spec: the task spec.
        path: the prediction file (usually ``output_dir / spec.predictions.file``).
        expected_ids: the ids that must each appear exactly once (reference order); ``None`` to skip the id-set
            checks unless ``phase`` is given. An :class:`~harness.scoring.expected.ExpectedIds` built once per
            reference (as :func:`~harness.scoring.kept.load_phase_reference` does) makes each call cost per byte
            of the file; any other sequence is converted on every call (about 0.05 s per million ids).
        phase: read ``expected_ids`` from this phase's reference (``validation`` or ``test``) when
            ``expected_ids`` is not given.

    Returns:
        One row per line of the file, in file order, with exactly the spec's ``all_columns`` in that order;
        dtypes: ``string`` -> pandas text (``str``) for the id column, object (str) for others, ``int`` -> int64,
        ``float`` -> float64 (all finite), ``bool`` -> object (bool); a label column (``values``) int64 or object
        (str), each value one of the allowed labels.

    Raises:
        InvalidOutputError: the file is missing, empty, too large, not CSV, not UTF-8, has more than
            ``MAX_COLUMNS`` columns or a row wider than its header, is header only, lacks a column, or has
            missing/duplicate/unknown ids, values of the wrong type, NaN or inf, a label outside its allowed set
            (or not written exactly, unless ``coerce``), a value outside its bounds, probabilities whose row does
            not sum to 1 within the group's tolerance, or crossing quantiles. ``problems`` holds one sentence per
            problem with counts, the first offending id, its value and the column name.
        EvaluatorError: ``phase`` is given and its reference cannot be read (a task problem).
    """
    path = Path(path)
    name = path.name
    pspec = spec.predictions
    data = _read_bounded(path, name, pspec.max_mb)
    if not _NOT_BLANK.search(data):
        raise InvalidOutputError(f"{name} is empty", [f"{name} is empty ({len(data)} bytes); {_how_to_write(spec)}"])
    _sniff_text(data, name, spec)
    header = read_header(data, name)
    required = [c.name for c in pspec.all_columns]
    unique_names = len(header.name_set) == len(header.names)
    duplicated = [] if unique_names else sorted(h for h, n in Counter(header.names).items() if n > 1)
    if duplicated:
        raise InvalidOutputError(
            f"{name} has duplicate column names",
            [f"the header names column(s) {', '.join(repr(_clip(d)) for d in duplicated[:10])} more than once"],
        )
    no_header_hint = ""
    if not any(c in header.name_set for c in required) and (
        len(header.names) < 2 or any(_is_number(h) for h in header.names)
    ):
        no_header_hint = (
            f"none of the required columns ({', '.join(required)}) is in the first line "
            f"{header.line[:80]!r}; the file needs a CSV header row. {_how_to_write(spec)}"
        )
    frame = _read_fast(data, header, required, _numeric_columns(spec))
    if frame is None:
        shape = scan_rows(data, header)
        if shape.wider:
            if no_header_hint:
                raise InvalidOutputError(f"{name} is not a CSV prediction table", [no_header_hint])
            width = len(header.names)
            if shape.wider == shape.one_wider == shape.rows:
                detail = f"every row has {width + 1} fields but the header has {width}"
            else:
                detail = (
                    f"line {shape.first_wider_line:,} has {shape.first_wider_fields:,} fields but the header has "
                    f"{width:,} ({_plural(shape.wider, 'line')} {_are(shape.wider)} wider than the header)"
                )
            raise InvalidOutputError(f"{name} is not a well-formed CSV file", [f"{name}: {detail}; {_UNQUOTED_COMMA}"])
        frame = _read_columns(data, header, required, shape.rows, name)
    del data
    problems: list[str] = []
    absent = [c for c in required if c not in frame.columns]
    for col in absent:
        shown = ", ".join(_clip(h, 40) for h in header.names[:20])
        more = f" and {_fmt(len(header.names) - 20)} more" if len(header.names) > 20 else ""
        problems.append(f"missing column {col!r}{_rename_hint(col, header.names)}; found columns: {shown}{more}")
    if no_header_hint:
        problems.append(no_header_hint)
    if len(frame) == 0:
        wanted = f"{_fmt(len(expected_ids))} rows, one per id" if expected_ids is not None else "one row per id"
        problems.append(f"{name} has a header but no rows; expected {wanted}")
        raise InvalidOutputError(f"{name} has no rows", problems)
    if expected_ids is None and phase is not None:
        expected_ids = load_reference(spec, phase)[pspec.id_column]
    expected = (
        expected_ids if expected_ids is None or isinstance(expected_ids, ExpectedIds) else ExpectedIds(expected_ids)
    )

    id_col = pspec.id_column
    out: dict[str, pd.Series] = {}
    if id_col in frame.columns:
        ids, id_problems = _parse_ids(spec, frame[id_col], expected, name)
        problems += id_problems
        out[id_col] = ids
    ids_for_messages = (
        frame[id_col] if id_col in frame.columns else pd.Series([f"(row {i + 1})" for i in range(len(frame))])
    )
    refused = set(absent)
    for column in pspec.all_columns:
        if column.name == id_col or column.name not in frame.columns:
            continue
        values, col_problems = parse_column(column, frame[column.name], ids_for_messages, name)
        problems += col_problems
        out[column.name] = values
        if col_problems:
            refused.add(column.name)
    problems += check_groups(pspec, out, ids_for_messages, skip=frozenset(refused))
    if problems:
        summary = f"{name} is invalid ({_plural(len(problems), 'problem')})"
        logger.info("%s: %s", summary, "; ".join(problems))
        raise InvalidOutputError(summary, problems)
    return pd.DataFrame({c: out[c] for c in required}, copy=False)  # no copy of the columns (10 ms per 5M rows)


def _read_columns(data: bytes, header: Header, required: list[str], rows: int, name: str) -> pd.DataFrame:
    """Parse only the required columns the header names (pandas ``usecols``), as strings, in file order.

    Time is linear in the file's bytes: pandas tokenises every field but converts only these columns, and the
    header is not parsed again. Row widths were checked by :func:`~harness.scoring.shape.scan_rows` (pandas does
    not check them with ``usecols``). With none of the required columns present the first column is read, for the
    row count.

    Returns:
        One column per required column present (named as in the header), pandas text (``str``) values, a
        ``RangeIndex``; no rows when the file has none.

    Raises:
        InvalidOutputError: pandas cannot tokenise the body (e.g. a quote left open until the end of the file).
    """
    usecols, labels = _wanted(header, required)
    if rows == 0:
        return pd.DataFrame({labels[i]: pd.Series([], dtype=str) for i in usecols})
    body, start = _keep_bom(data, header.body_start)
    try:
        frame = pd.read_csv(
            io.BytesIO(body[start:]),
            header=None,
            names=list(range(len(header.names))),
            usecols=usecols,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skipinitialspace=False,
            lineterminator="\r" if header.newline == 13 else None,
            encoding="utf-8",
            engine="c",
        )
    except (pd.errors.ParserError, ValueError, UnicodeError) as exc:
        raise InvalidOutputError(
            f"{name} is not a well-formed CSV file", [f"{name}: {_clip(str(exc).strip(), 300)}"]
        ) from None
    return frame.rename(columns=labels).reset_index(drop=True)


def _numeric_columns(spec: TaskSpec) -> frozenset[str]:
    """The required columns whose values are numbers parsed to float64 (``float`` and ``int``, not labels nor the
    id column): those :func:`_read_fast` may have Arrow parse as it reads them."""
    pspec = spec.predictions
    numbers = (c for c in pspec.all_columns if c.dtype in ("float", "int") and not c.is_label)
    return frozenset(c.name for c in numbers if c.name != pspec.id_column)


def _wanted(header: Header, required: list[str]) -> tuple[list[int], dict[int, str]]:
    """The positions of the required columns the header names (the first column when it names none), and
    their names by position."""
    # names are unique (checked before); index() finds each of the few required ones
    usecols = sorted(header.names.index(c) for c in required if c in header.name_set) or [0]
    return usecols, {i: header.names[i] for i in usecols}


def _read_fast(
    data: bytes, header: Header, required: list[str], numeric: frozenset[str] = frozenset()
) -> pd.DataFrame | None:
    """The required columns of a plain file, parsed by Arrow's CSV reader, or ``None`` for any other file.

    A plain file has no double quote after its header, ``\\n`` line ends, and 2 or more columns: what pandas,
    Excel and R write for numbers and plain ids. Up to :data:`_ARROW_MAX_COLUMNS` columns, Arrow tokenises every
    field but makes no Python object per value, and it refuses any row whose width differs from the header's, so
    a file it reads needs no separate width scan (about 0.01 s per MB of 13-byte rows, where the scan plus
    pandas' C parser takes 0.05). Wider, each line's commas are counted and its spec columns cut out
    (:func:`~harness.scoring.shape.narrow_body`, per byte rather than per field: 0.003 s per MB of 100,000
    2-byte columns, where pandas took 0.03) before Arrow reads them. Any other file, or one refused here (a row
    wider or narrower than the header, a ``\\r`` not followed by ``\\n``), returns ``None``: the caller scans row widths
    and parses with pandas, so every message stays the same.

    Args:
        data: the whole file.
        header: its header.
        required: the spec's column names.
        numeric: names among ``required`` that Arrow parses to float64 as it reads them, when every value of
            them is a plain number (see :func:`_read_with_arrow`); the others are text.

    Returns:
        As :func:`_read_columns` (the ``numeric`` columns float64 when read so), or ``None``.
    """
    if len(header.names) < 2 or header.newline != 10 or data.find(b'"', header.body_start) >= 0:
        return None
    usecols, labels = _wanted(header, required)
    typed = [i for i in usecols if labels[i] in numeric]
    if len(header.names) > _ARROW_MAX_COLUMNS:
        body = narrow_body(data, header, usecols)
        if body is None:
            return None
        narrow = Header(names=[*(labels[i] for i in usecols), ""], line="", body_start=0, newline=10)
        at = {column: j for j, column in enumerate(usecols)}
        frame = _read_with_arrow(body, narrow, list(range(len(usecols))), [at[i] for i in typed])
        return None if frame is None else frame.set_axis([labels[i] for i in usecols], axis=1)
    if has_lone_cr(data, header.body_start):  # a line end to Arrow, not to the width scan (narrow_body checks it)
        return None
    frame = _read_with_arrow(data, header, usecols, typed)
    return None if frame is None else frame.rename(columns=labels)


def _read_with_arrow(data: bytes, header: Header, usecols: list[int], typed: list[int]) -> pd.DataFrame | None:
    """The columns ``usecols`` of a quote-free, ``\\n``-ended body, or ``None`` when Arrow refuses the body (the
    caller then uses pandas, whose messages the tests pin).

    The columns ``typed`` (among ``usecols``) are parsed to float64 by the reader itself when every value of
    them is a plain number, as the cast of :func:`~harness.scoring.columns._plain_numbers` would parse it (the
    same parser: it accepts and rounds alike, ``nan`` and ``inf`` included), at about a third of the cost of
    text plus the cast (no string per value is made). The reader also accepts a number padded with spaces or
    tabs, which the cast refuses, so a body holding either byte anywhere is read as text, as is every column
    when any value of a typed one is not a plain number (a second read, as text); other columns are pandas text
    (``str``, Arrow ``large_string``)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [str(i) for i in range(len(header.names))]
    body, start = _keep_bom(data, header.body_start)
    if typed and (body.find(b" ", start) >= 0 or body.find(b"\t", start) >= 0):
        typed = []
    for floats in [typed, []] if typed else [[]]:
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(body).slice(start),
                read_options=pa_csv.ReadOptions(column_names=names, use_threads=True),
                parse_options=pa_csv.ParseOptions(quote_char=False, double_quote=False, ignore_empty_lines=True),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=[names[i] for i in usecols],
                    column_types={names[i]: pa.float64() if i in floats else pa.large_string() for i in usecols},
                    null_values=[],  # no text is missing: "", "NA" or "nan" in a typed column is not a null
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    check_utf8=False,  # _sniff_text decoded the whole file already
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # a value that is not a plain number, or a body Arrow refuses (then refused as text too)
        return pd.DataFrame({i: table.column(names[i]).to_pandas() for i in usecols}, copy=False)
    return None


def _keep_bom(data: bytes, start: int) -> tuple[bytes, int]:
    """``(data, start)`` to parse a body beginning at ``data[start]`` from, such that a byte-order mark opening its
    first line stays part of the first value.

    Arrow's and pandas' readers drop a UTF-8 BOM at the start of what they read, as a file's own; the file's was
    dropped with its header, so one here is the first row's text (an id ``"\ufeffa1"`` is not ``"a1"``). Such a
    body is read from its header's line end instead (an empty line, which both readers skip), or, when nothing
    comes before it (a narrowed body), after a ``\n`` put in front of it (a copy).
    """
    if not data.startswith(_BOM, start):
        return data, start
    return (data, start - 1) if start else (b"\n" + data, 0)


def _same_ids(raw: pd.Series, expected: ExpectedIds | None) -> bool:
    """True when the file's ids are exactly the expected ids, as text, each once: in the same order (one native
    comparison of the Arrow buffers, no hashing: the common case of predictions written in the order of the rows
    to predict), or in another order when the expected ids have one length in bytes (one sort of 64-bit keys,
    :meth:`ExpectedIds.same_set`). False tells the caller to match the ids one by one and say what differs."""
    if expected is None or len(raw) != len(expected):
        return False
    text = _arrow_text(raw)
    return text is not None and (expected.same(text) or expected.same_set(text))


def _arrow_text(raw: pd.Series) -> Any:
    """A text column as Arrow ``large_string`` (zero-copy for a pandas text column), or ``None`` when it holds
    anything but ``str`` or a missing value."""
    import pyarrow as pa

    try:
        text = pa.array(raw, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text (ids of an int task, mixed types)
        return None
    return None if text.null_count else text


def _as_text(values: np.ndarray) -> pd.Series | np.ndarray:
    """Object ids as a pandas text column when every one is a ``str`` (factorising Arrow-backed text is about
    twice as fast as Python objects), else unchanged."""
    import pyarrow as pa

    try:
        return pd.Series(pa.array(values, type=pa.large_string()).to_pandas(), dtype=str)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return values


def _parse_ids(spec: TaskSpec, raw: pd.Series, expected: ExpectedIds | None, name: str) -> tuple[pd.Series, list[str]]:
    """Parse the id column and check that every expected id appears exactly once and no other id does."""
    id_col = spec.predictions.id_column
    dtype = next(c.dtype for c in spec.predictions.columns if c.name == id_col)
    problems: list[str] = []
    if dtype == "string" and expected is not None and not expected.has_blank and _same_ids(raw, expected):
        return raw, problems  # every expected id once, in any order (none blank): nothing to look up one by one
    empty = _blank(raw)
    if empty.any():
        problems.append(
            f"{_plural(int(empty.sum()), 'row')} {'has' if empty.sum() == 1 else 'have'} an empty "
            f"{id_col!r}; first at line {int(np.argmax(empty)) + 2}"
        )
    ids: pd.Series = raw
    skip = empty.copy()  # rows whose id is unusable: left out of the duplicate and id-set checks
    if dtype == "int":
        ids = _int_ids(raw)
        bad = ids.isna().to_numpy() & ~empty
        if bad.any():
            n_bad = int(bad.sum())
            problems.append(
                f"column {id_col!r} must hold whole numbers; {_plural(n_bad, 'id')} {_are(n_bad)} not, "
                f"first: {_clip(str(raw[bad].iloc[0]))!r}"
            )
        skip |= bad
    id_codes, expected_codes, n_codes = _id_codes(ids, expected, dtype)
    kept = id_codes[~skip]
    counts = np.bincount(kept, minlength=n_codes)
    duplicated = (counts[id_codes] > 1) & ~skip
    if duplicated.any():
        first_row = int(np.argmax(duplicated))
        first = ids.iloc[first_row]
        lines = [str(i + 2) for i in np.flatnonzero((id_codes == id_codes[first_row]) & ~skip)[:3]]
        n_ids = int((counts > 1).sum())
        verb = "appears" if n_ids == 1 else "appear"
        problems.append(
            f"{_plural(n_ids, 'id')} {verb} more than once ({_plural(int(duplicated.sum()), 'row')} in all); "
            f"first: {_clip(str(first))} (lines {', '.join(lines)}); write each id exactly once"
        )
    if expected is not None and expected_codes is not None:
        rows = f"the rows of {spec.data.predict_file} in input_dir" if spec.data.predict_file else "the rows to predict"
        missing_mask = counts[expected_codes] == 0
        if missing_mask.any():
            problems.append(
                f"{name} lacks {_fmt(int(missing_mask.sum()))} of {_fmt(len(expected))} ids; first "
                f"missing: {_clip(str(expected.values[int(np.argmax(missing_mask))]))}; predict every one of {rows}"
            )
        wanted = np.zeros(n_codes, dtype=bool)
        wanted[expected_codes] = True
        extra_mask = ~wanted[kept]
        if extra_mask.any():
            n_extra = len(np.unique(kept[extra_mask]))
            first_extra = ids.iloc[int(np.flatnonzero(~skip)[int(np.argmax(extra_mask))])]
            problems.append(
                f"{name} has {_plural(n_extra, 'id')} that {'is' if n_extra == 1 else 'are'} not among "
                f"the rows to predict; first: {_clip(str(first_extra))}; predict exactly {rows}, not those of the "
                "training data"
            )
    return ids, problems


def _int_ids(raw: pd.Series) -> pd.Series:
    """The ids of an ``int`` id column, each the exact whole number its text (stripped) writes, else ``None``.

    ``12``, ``+12``, ``012``, ``12.0`` and ``1.2e1`` are all 12; ``1.5``, ``inf``, ``x`` and empty text are
    ``None``. When every text is an integer pandas reads as ``int64``/``uint64`` (exact), those are the ids.
    Otherwise: float64 holds every integer below 2**53 exactly, so a plain integer (digits, optionally ``.0``)
    under it is converted through float64, vectorised. Any other whole value is read exactly from its text
    (``decimal``): float64 would round ``9007199254740993`` to ``...992`` (two ids one, or a wrong id an
    expected one) and ``1.0000000000000001`` to 1.

    Returns:
        object Series of ``int`` or ``None``, index ``0..n-1``.
    """
    text = raw.str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.dtype.kind in "iu":  # every id an integer that pandas read as one, exactly: the common case
        return pd.Series(numeric.to_numpy().astype(object), dtype=object)
    parsed = numeric.astype("float64").to_numpy()
    whole = np.isfinite(parsed) & (parsed == np.round(parsed))
    plain = np.asarray(text.str.fullmatch(r"[+-]?[0-9]+(?:\.0*)?"), dtype=bool)
    exact = whole & (~plain | (np.abs(parsed) >= 2.0**53))
    values = np.full(len(raw), None, dtype=object)
    near = whole & ~exact
    values[near] = parsed[near].astype(np.int64).astype(object)  # Python ints
    for row in np.flatnonzero(exact):
        values[row] = _exact_int(text.iloc[row])
    return pd.Series(values, dtype=object)


def _exact_int(text: str) -> int | None:
    """The whole number ``text`` writes exactly (a number pandas reads as a finite whole float), or ``None``."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return int(number) if number.is_finite() and number == number.to_integral_value() else None


def _id_codes(ids: pd.Series, expected: ExpectedIds | None, dtype: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """A code per file id and per expected id (``None`` without expected ids), equal exactly for equal ids, and
    how many codes there are (codes are ``0..n-1``).

    Text ids of one length in bytes are matched with the expected ids' prebuilt key table
    (:meth:`ExpectedIds.positions`: one sort, no string hashing); only ids that are not expected are hashed,
    among themselves. Any other ids take one hash pass over the file's ids and the expected ones
    (``pandas.factorize``: Index.isin on object ids took 0.6 s per million, factorize 0.1 to 0.5 s).
    """
    arrow = _arrow_text(ids) if dtype == "string" and expected is not None else None
    found = expected.positions(arrow) if expected is not None and arrow is not None else None
    if expected is not None and found is not None:
        other = found < 0
        own = np.arange(len(expected))  # expected id j has code j; ids that are not expected come after
        if not other.any():
            return found, own, len(expected)
        codes, uniques = pd.factorize(ids[other].to_numpy(), use_na_sentinel=False)
        found[other] = len(expected) + codes
        return found, own, len(expected) + len(uniques)
    values = ids.to_numpy(dtype=object)
    both = values if expected is None else np.concatenate([values, expected.values])
    codes, uniques = pd.factorize(_as_text(both) if dtype == "string" else both, use_na_sentinel=False)
    return codes[: len(values)], None if expected is None else codes[len(values) :], len(uniques)
