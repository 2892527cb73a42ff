"""The shape of a CSV prediction file, read in time linear in its bytes: the header row and every row's width.

:func:`read_header` parses the first line once (refusing more than :data:`MAX_COLUMNS` columns before it makes a
name of any of them); :func:`scan_rows` counts the fields of every line in vectorised passes over fixed-size chunks
of the bytes (commas and line ends inside double quotes are not counted), so a file of 200,000 columns or 5,000,000
rows costs the same per MB as a plain one. :mod:`harness.scoring.predictions` then asks pandas for the spec's
columns only (``usecols``): pandas' own check of row widths is skipped for columns it does not convert, so the
widths found here are what refuses a row with an unquoted comma. :func:`narrow_body` cuts a wide, quote-free
file down to the spec's columns (its lines' widths checked on the way) for Arrow's reader, at the cost of
``memchr`` per byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np

from harness.errors import InvalidOutputError
from harness.scoring.columns import _fmt

__all__ = ["MAX_COLUMNS", "Header", "RowShape", "has_lone_cr", "narrow_body", "read_header", "scan_rows"]

#: Most columns a prediction file's header may name. A task needs a handful (a probability group one per class);
#: past this the file is refused before any column is parsed, which keeps a header's cost in memory bounded.
MAX_COLUMNS: Final = 100_000
_CHUNK: Final = 4 * 1024 * 1024  # bytes per vectorised pass of scan_rows
_QUOTED: Final = re.compile(r'"[^"]*"?')
_COMMA, _QUOTE, _LF, _CR = 44, 34, 10, 13
#: A wanted field this many fields or fewer from an end of its line is found by bytes.find; farther, numpy scans.
_FIND_FIELDS: Final = 64
#: Lines longer than this many bytes have their commas counted by numpy (3x faster than bytes.count, which counts
#: a byte at a time) rather than by bytes.count (faster on short lines, where numpy's call costs more).
_NUMPY_COUNT: Final = 4096
_CR_CHUNK: Final = 256 * 1024  # bytes per numpy pass of has_lone_cr


@dataclass(frozen=True)
class Header:
    """The header row of a prediction file.

    Attributes:
        names: the column names in file order (a UTF-8 BOM removed, nothing stripped).
        line: the header line as text (for messages; may be long).
        body_start: byte offset of the first data line.
        newline: the byte that ends a line: ``\\n`` (10; a ``\\r`` before it belongs to the line end), or ``\\r``
            (13) in a file with no ``\\n`` at all (old Mac line ends).
    """

    names: list[str]
    line: str
    body_start: int
    newline: int

    @cached_property
    def name_set(self) -> frozenset[str]:
        """The names as a set, built once (a header may name 100,000 columns)."""
        return frozenset(self.names)


@dataclass(frozen=True)
class RowShape:
    """The widths of a prediction file's data lines, as counted by :func:`scan_rows`.

    Attributes:
        rows: data lines that are not blank.
        wider: data lines with more fields than the header has names.
        one_wider: those with exactly one field more.
        first_row_fields: fields in the first non-blank data line (0 when there is none).
        first_wider_line: 1-based line number in the file (the header is line 1) of the first wider line, or 0.
        first_wider_fields: fields in that line (0 when there is none).
    """

    rows: int
    wider: int
    one_wider: int
    first_row_fields: int
    first_wider_line: int
    first_wider_fields: int


def read_header(data: bytes, name: str) -> Header:
    """Parse the first line of a prediction file's bytes (already checked to be UTF-8 text) as a CSV header.

    Args:
        data: the whole file.
        name: the file's name, for messages.

    Returns:
        The header; :attr:`Header.names` has at most :data:`MAX_COLUMNS` entries.

    Raises:
        InvalidOutputError: the header names more than :data:`MAX_COLUMNS` columns.
    """
    newline = _LF if b"\n" in data else _CR
    end = data.find(bytes([newline]))
    end = len(data) if end < 0 else end
    raw = data[:end]
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    line = raw.decode("utf-8").removesuffix("\r")
    count = line.count(",") + 1
    if count > MAX_COLUMNS and '"' in line:
        count = _QUOTED.sub("", line).count(",") + 1  # commas inside quoted names do not separate columns
    if count > MAX_COLUMNS:
        raise InvalidOutputError(
            f"{name} has too many columns",
            [
                f"the header of {name} names {_fmt(count)} columns; the harness reads at most {_fmt(MAX_COLUMNS)}. "
                "Write one row per id and only the columns the task asks for (a table with ids as columns is "
                "transposed: write df, not df.T)"
            ],
        )
    names = _split_header(line) if '"' in line else line.split(",")
    return Header(names=names, line=line, body_start=min(end + 1, len(data)), newline=newline)


def _split_header(line: str) -> list[str]:
    """Split a header line with double quotes into names as the csv module does (``""`` is a quote inside quotes;
    text after a closing quote is kept; an unclosed quote runs to the end), without its 128 KiB field limit."""
    names: list[str] = []
    pos, end = 0, len(line)
    while True:
        parts = []
        if pos < end and line[pos] == '"':
            pos += 1
            while True:
                quote = line.find('"', pos)
                if quote < 0:
                    parts.append(line[pos:])
                    pos = end
                    break
                parts.append(line[pos:quote])
                if line.startswith('"', quote + 1):
                    parts.append('"')
                    pos = quote + 2
                else:
                    pos = quote + 1
                    break
        comma = line.find(",", pos)
        stop = end if comma < 0 else comma
        parts.append(line[pos:stop])
        names.append("".join(parts))
        if comma < 0:
            return names
        pos = comma + 1


def scan_rows(data: bytes, header: Header) -> RowShape:
    """Count the fields of every data line, in vectorised passes over chunks of :data:`_CHUNK` bytes.

    A field separator is a comma outside double quotes, a line ends at :attr:`Header.newline` outside double
    quotes (an RFC 4180 quoted field may hold both; ``""`` inside quotes toggles twice and changes nothing). Blank
    lines (empty, or only ``\\r``) are not rows, as pandas skips them. Time is linear in ``len(data)``; memory is
    bounded by the chunk size (about 10 bytes per byte of a chunk), whatever the shape of the file.

    Args:
        data: the whole file.
        header: its header, from :func:`read_header`.

    Returns:
        The widths found.
    """
    width = len(header.names)
    whole = np.frombuffer(data, dtype=np.uint8)
    quoted = data.find(b'"', header.body_start) >= 0
    inside = False  # the quote state carried from one chunk into the next
    open_commas = 0  # separators seen in the line that the previous chunk left open
    line_start = header.body_start
    rows = wider = one_wider = first_row_fields = first_wider_fields = 0
    first_wider_at = -1
    for lo in range(header.body_start, len(data), _CHUNK):
        chunk = whole[lo : lo + _CHUNK]
        commas = chunk == _COMMA
        ends = chunk == header.newline
        if quoted:
            in_quotes = np.logical_xor.accumulate(chunk == _QUOTE)
            if inside:
                np.logical_not(in_quotes, out=in_quotes)
            inside = bool(in_quotes[-1])
            commas &= ~in_quotes
            ends &= ~in_quotes
        comma_at = np.flatnonzero(commas)
        end_at = np.flatnonzero(ends)
        if not len(end_at):
            open_commas += len(comma_at)
            continue
        before = np.searchsorted(comma_at, end_at)
        fields = np.diff(before, prepend=0) + 1
        fields[0] += open_commas
        open_commas = len(comma_at) - int(before[-1])
        starts = np.concatenate(([line_start], end_at[:-1] + lo + 1))
        line_start = int(end_at[-1]) + lo + 1
        counted = _count(whole, starts, end_at + lo, fields, width)
        rows, wider, one_wider = rows + counted[0], wider + counted[1], one_wider + counted[2]
        if not first_row_fields:
            first_row_fields = counted[3]
        if first_wider_at < 0 and counted[4] >= 0:
            first_wider_at, first_wider_fields = counted[4], counted[5]
    if line_start < len(data):  # a last line without a line end
        last = np.array([open_commas + 1])
        counted = _count(whole, np.array([line_start]), np.array([len(data)]), last, width)
        rows, wider, one_wider = rows + counted[0], wider + counted[1], one_wider + counted[2]
        first_row_fields = first_row_fields or counted[3]
        if first_wider_at < 0 and counted[4] >= 0:
            first_wider_at, first_wider_fields = counted[4], counted[5]
    first_wider_line = 0
    if first_wider_at >= 0:  # physical lines, quoted line breaks included, as an editor numbers them
        first_wider_line = data.count(bytes([header.newline]), 0, first_wider_at) + 1
    return RowShape(rows, wider, one_wider, first_row_fields, first_wider_line, first_wider_fields)


def _count(
    whole: np.ndarray, starts: np.ndarray, ends: np.ndarray, fields: np.ndarray, width: int
) -> tuple[int, int, int, int, int, int]:
    """Tally lines ``[starts[i], ends[i])`` with ``fields[i]`` fields each.

    Returns:
        ``(rows, wider, one_wider, first_row_fields, first_wider_start, first_wider_fields)``; the first row's
        fields are 0 and the first wider line's start is -1 when there is none.
    """
    length = ends - starts
    blank = length == 0
    single = np.flatnonzero(length == 1)
    if len(single):
        blank[single] = whole[starts[single]] == _CR
    kept = ~blank
    over = kept & (fields > width)
    first_row = int(fields[np.argmax(kept)]) if kept.any() else 0
    first_over, first_over_fields = -1, 0
    if over.any():
        index = int(np.argmax(over))
        first_over, first_over_fields = int(starts[index]), int(fields[index])
    return (
        int(kept.sum()),
        int(over.sum()),
        int((over & (fields == width + 1)).sum()),
        first_row,
        first_over,
        first_over_fields,
    )


def has_lone_cr(data: bytes, start: int) -> bool:
    """True when ``data[start:]`` holds a ``\\r`` not followed by ``\\n``.

    Arrow's reader (and pandas') ends a line at such a carriage return, where :func:`scan_rows` counts the fields
    between ``\\n``s only: ``r003,2\\rr004,2`` is two rows to Arrow but one of 3 fields (refused as wider) to the
    scan. A file holding one is left to the general path. One ``memchr`` for a file without ``\\r``; a file with
    CRLF line ends takes numpy passes over chunks of :data:`_CR_CHUNK` bytes (they stay in cache: about 0.3 ms per
    MB, where one pass over the whole file took 0.45).
    """
    first = data.find(b"\r", start)
    if first < 0:
        return False
    whole = np.frombuffer(data, dtype=np.uint8)
    size = len(data)
    for lo in range(first, size, _CR_CHUNK):
        after = np.flatnonzero(whole[lo : lo + _CR_CHUNK] == _CR) + (lo + 1)  # the byte after each \r
        if len(after) and (after[-1] >= size or (whole[after] != _LF).any()):
            return True
    return False


def narrow_body(data: bytes, header: Header, usecols: list[int]) -> bytes | None:
    """The fields ``usecols`` of every line of a wide, quote-free file, as a small CSV body, or ``None``.

    A line of the result holds the line's fields at ``usecols`` (in that order), then one empty field, so that no
    line of it is empty (Arrow skips empty lines); blank lines (empty, or only ``\\r``) are left out. Each line's
    commas are counted (:meth:`bytes.count`; numpy past :data:`_NUMPY_COUNT` bytes) and the wanted fields found
    with :meth:`bytes.find` from the nearer end of the line (numpy on the line's bytes when a wanted field lies
    more than :data:`_FIND_FIELDS` fields from both ends), so the cost is per byte, whatever the number of
    columns: meant for headers of more than about 1,000 names, where a line is at least 2 KB and the loop over
    lines is short.

    Args:
        data: the whole file, UTF-8 text with no double quote after the header.
        header: its header (``\\n`` line ends).
        usecols: sorted positions of the columns to keep.

    Returns:
        The body, or ``None`` (the caller then takes the general path, whose messages say what is wrong, or
        which skips blank lines at numpy speed) when there are more lines than ``2 * bytes / width``, or when a
        non-blank line has a field count other than the header's, or a ``\\r`` inside (a line end to Arrow and
        pandas).
    """
    width = len(header.names)
    size = len(data)
    whole = np.frombuffer(data, dtype=np.uint8)
    if int(np.count_nonzero(whole[header.body_start :] == _LF)) > 2 * (size - header.body_start) // width + 16:
        return None  # many short (blank) lines: one pass of the loop each would cost far more than their bytes
    far = any(_FIND_FIELDS < i < width - 1 - _FIND_FIELDS for i in usecols)
    head = max((i for i in usecols if i <= _FIND_FIELDS), default=-1) + 1  # fields found from the line's start
    tail = width - min((i for i in usecols if i > _FIND_FIELDS), default=width)  # and from its end
    out: list[bytes] = []
    pos = header.body_start
    while pos < size:
        end = data.find(b"\n", pos)
        end = size if end < 0 else end
        stop = end - 1 if end > pos and data[end - 1] == _CR else end  # the line without its \r
        if stop > pos:
            long = stop - pos > _NUMPY_COUNT
            commas = int(np.count_nonzero(whole[pos:stop] == _COMMA)) if long else data.count(b",", pos, stop)
            if commas != width - 1 or data.find(b"\r", pos, stop) >= 0:
                return None
            if far:
                line = whole[pos:stop]
                cuts = [pos - 1, *(np.flatnonzero(line == _COMMA) + pos).tolist(), stop]
                out.append(b",".join([data[cuts[i] + 1 : cuts[i + 1]] for i in usecols]) + b",")
            else:
                out.append(_near_fields(data, pos, stop, width, usecols, head, tail) + b",")
        pos = end + 1
    return b"\n".join([*out, b""]) if out else b""


def _near_fields(data: bytes, start: int, stop: int, width: int, usecols: list[int], head: int, tail: int) -> bytes:
    """The fields ``usecols`` of the line ``data[start:stop]`` (``width`` fields, quote-free), comma-joined, each
    among its first ``head`` or last ``tail`` fields: found with ``head`` finds and ``tail`` reverse finds."""
    cuts = [start - 1]  # cuts[j]: the comma before field j (start - 1 for the first); cuts[j + 1], the one after
    for _ in range(head):
        comma = data.find(b",", cuts[-1] + 1, stop)
        cuts.append(stop if comma < 0 else comma)
    ends = [stop]  # ends[b]: the end of the b-th field from the line's end; ends[b + 1], the comma before it
    for _ in range(tail):
        ends.append(data.rfind(b",", start, ends[-1]))
    parts = []
    for i in usecols:
        if i < head:
            parts.append(data[cuts[i] + 1 : cuts[i + 1]])
        else:
            back = width - 1 - i
            parts.append(data[ends[back + 1] + 1 : ends[back]])
    return b",".join(parts)
