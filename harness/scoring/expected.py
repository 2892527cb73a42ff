"""The ids a prediction file must hold, prepared once per reference so that checking a file costs per byte.

:class:`ExpectedIds` keeps a phase's expected ids in the forms :func:`~harness.scoring.validate_predictions`
compares a file's ids with: the values (for messages), the text as one Arrow array (a file whose ids are the rows
to predict in their order is compared with it in one native pass, about 5 ms per million ids, where handing a
million Python strings to Arrow costs about 40 ms on every call), and, for ids that all have the same length in
bytes (``r0000001``, UUIDs, zero-padded numbers: what a generated reference holds), a 64-bit key per id, sorted
once, so that a file holding exactly these ids in another order is recognised by sorting its keys
(:meth:`ExpectedIds.same_set`, about 15 ms per million 8-byte ids), and an open-addressing table of the keys, so
that the ids of any other file are each looked up (:meth:`ExpectedIds.positions`, about 0.1 s per million) to say
which are duplicated, missing or not expected, instead of hashing every string (``pandas.factorize``: about 0.5 s
per million on this machine, mostly cache misses).
Rescoring's chunks, intervals and similarity load a phase's reference once and build this once with it
(:attr:`~harness.scoring.kept.PhaseReference.expected_ids`); a scoring at run time (a fresh evaluator child that
reads the reference itself) builds it once for its one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = ["ExpectedIds"]

#: Ids longer than this many bytes take the hashing path (a key is built from every 8 bytes of an id).
_MAX_KEY_BYTES: Final = 256
_MIX: Final = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant (the golden ratio's), to mix words into a key


class ExpectedIds:
    """A phase's expected ids, each to appear exactly once in a prediction file, in reference order.

    Built from any sequence (a reference's id column, a list); the values are copied, so changing the source
    afterwards changes nothing here. The Arrow text and the key table are built on first use and kept.

    Attributes:
        values: the ids as a read-only object array, in reference order (``str`` or ``int``).
    """

    def __init__(self, ids: Sequence[Any] | pd.Series | pd.Index | np.ndarray) -> None:
        values = (
            ids.to_numpy(dtype=object, copy=True)
            if isinstance(ids, pd.Series | pd.Index)
            else np.array(list(ids), dtype=object)
        )
        values.flags.writeable = False
        self.values: np.ndarray = values

    def __len__(self) -> int:
        return len(self.values)

    @cached_property
    def text(self) -> Any:
        """The ids as one Arrow ``large_string`` array without nulls, or ``None`` when any id is not a ``str``."""
        import pyarrow as pa

        try:
            array = pa.array(self.values, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        return None if array.null_count else array

    @cached_property
    def has_blank(self) -> bool:
        """True when some id is text that is empty or only whitespace (``str.strip() == ""``), as :func:`_blank`
        tells; False for ids that are not all text (:attr:`text` ``None``: no file's text ids are these then)."""
        text = self.text
        return text is not None and bool(_blank(pd.Series(text.to_pandas(), dtype=str)).any())

    def same(self, file_ids: Any) -> bool:
        """True when ``file_ids`` (an Arrow string array or chunked array) is exactly these ids, in this order."""
        import pyarrow as pa

        if self.text is None or len(file_ids) != len(self.values):
            return False
        start = 0
        for chunk in file_ids.chunks if isinstance(file_ids, pa.ChunkedArray) else [file_ids]:
            if chunk.type != pa.large_string():
                chunk = chunk.cast(pa.large_string())
            if not chunk.equals(self.text.slice(start, len(chunk))):  # compared chunk by chunk: no copy
                return False
            start += len(chunk)
        return True

    @cached_property
    def _fixed(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """``(width, keys, rows)`` when every id is text of one length of 1 to :data:`_MAX_KEY_BYTES` bytes and
        no two ids share a key: the width in bytes, a uint64 key per id and the ids' bytes (n x width uint8, a
        view of :attr:`text`); else ``None``."""
        text = self.text
        if text is None or not len(text):
            return None
        offsets, body = _buffers(text)
        width = int(offsets[1] - offsets[0])
        if not 0 < width <= _MAX_KEY_BYTES or (np.diff(offsets) != width).any():
            return None
        rows = body.reshape(-1, width)
        keys = _key(rows)
        return (width, keys, rows) if _unique(keys) else None

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The keys in ascending order and, for ids over 8 bytes (whose keys are mixes), the ids' positions in
        that order (``argsort``); ``None`` without :attr:`_fixed`."""
        fixed = self._fixed
        if fixed is None:
            return None
        width, keys, _rows = fixed
        if width <= 8:
            return np.sort(keys), None
        order = np.argsort(keys)
        return keys[order], order

    @cached_property
    def _table(self) -> _KeyTable | None:
        """The key table of :attr:`_fixed`, or ``None`` without it."""
        fixed = self._fixed
        return None if fixed is None else _KeyTable.build(*fixed)

    def same_set(self, file_ids: Any) -> bool:
        """True when ``file_ids`` (an Arrow string array or chunked array without nulls) holds exactly these ids,
        each once, in any order, compared by their bytes; False when it does not, or when these ids do not all
        have one length in bytes (:meth:`positions` returns ``None`` then too). A False says nothing about which
        ids differ: the caller then matches them one by one to say so.

        One sort of the file's 64-bit keys (about 15 ms per million) compared with the expected keys sorted once:
        for ids of 8 bytes or fewer a key is the id's bytes, so equal sorted keys are equal sets of ids (the
        expected keys are unique). Longer ids' keys are mixes of their words: the keys are argsorted instead
        (about 60 ms per million) and every id is then compared byte for byte with the expected id of its key
        (about 0.25 s per million 36-byte ids in all, a third of looking each one up with :meth:`positions`).
        """
        fixed, by_key = self._fixed, self._sorted
        if fixed is None or by_key is None or len(file_ids) != len(self.values):
            return False
        width, _keys, rows = fixed
        matrix = _fixed_width_rows(file_ids, width)
        if matrix is None:
            return False
        keys = _key(matrix)  # a new array: sorted in place
        sorted_keys, order = by_key
        if order is None:
            keys.sort()
            return bool(np.array_equal(keys, sorted_keys))
        file_order = np.argsort(keys)
        if not np.array_equal(keys[file_order], sorted_keys):
            return False
        match = np.empty(len(keys), dtype=np.int64)
        match[file_order] = order  # the expected id of each file id's key
        return bool(np.array_equal(matrix, np.take(rows, match, axis=0)))  # take: 4x faster than rows[match]

    def positions(self, file_ids: Any) -> np.ndarray | None:
        """Where each of ``file_ids`` stands among these ids (int64, ``-1`` for an id that is not one of them),
        or ``None`` when these ids do not all have one length in bytes (the caller then hashes the strings).

        Linear: an id's key is its bytes (8 or fewer) or a mix of its 8-byte words, looked up in an
        open-addressing table of the expected keys built once (vectorised probes; a match of keys is confirmed
        by comparing the bytes when ids are longer than 8, so a collision cannot match two different ids).

        Args:
            file_ids: an Arrow string or large-string array (or chunked array) without nulls.
        """
        import pyarrow as pa

        table = self._table
        if table is None:
            return None
        if isinstance(file_ids, pa.ChunkedArray):
            file_ids = file_ids.combine_chunks()
        if file_ids.type != pa.large_string():
            file_ids = file_ids.cast(pa.large_string())
        offsets, body = _buffers(file_ids)
        width = table.width
        found = np.full(len(file_ids), -1, dtype=np.int64)
        lengths = np.diff(offsets)
        if (lengths == width).all():
            matrix = body.reshape(-1, width)
            found = table.find(_key(matrix), matrix)
        else:
            rows = np.flatnonzero(lengths == width)
            if len(rows):
                matrix = body[(offsets[rows])[:, None] + np.arange(width)]
                found[rows] = table.find(_key(matrix), matrix)
        return found


class _KeyTable:
    """An open-addressing hash table (linear probing, a third to two thirds full) of unique uint64 keys and their
    positions, built and probed with vectorised numpy passes: 12 bytes a slot (16 past 2**31 ids), so about 24 MB
    for a million ids."""

    def __init__(self, width: int, keys: np.ndarray, positions: np.ndarray, rows: np.ndarray, probes: int) -> None:
        self.width = width  # bytes per id
        self.keys = keys  # uint64 per slot
        self.positions = positions  # int32 (int64 past 2**31 ids) per slot, -1 for an empty slot
        self.rows = rows  # the expected ids' bytes, one row per id (for confirming keys of ids over 8 bytes)
        self.probes = probes  # the longest probe sequence of any key: a lookup stops after as many
        self.bits = len(keys).bit_length() - 1

    @classmethod
    def build(cls, width: int, keys: np.ndarray, rows: np.ndarray) -> _KeyTable | None:
        """The table of ``keys`` (position ``i`` for ``keys[i]``); no two keys may be equal (:func:`_unique`)."""
        bits = max(4, (3 * len(keys) // 2).bit_length())
        size = 1 << bits
        slot_keys = np.zeros(size, dtype=np.uint64)
        slot_positions = np.full(size, -1, dtype=np.int32 if len(keys) < 2**31 else np.int64)
        slot = _slot(keys, bits)
        pending = np.arange(len(keys))
        probes = 0
        while len(pending):
            probes += 1
            at = slot[pending]
            free = slot_positions[at] < 0
            taking, taken = pending[free], at[free]
            slot_positions[taken] = taking  # of several keys after one free slot, the last written wins it
            won = slot_positions[taken] == taking
            slot_keys[taken[won]] = keys[taking[won]]
            pending = np.concatenate([pending[~free], taking[~won]])
            slot[pending] = (slot[pending] + 1) & (size - 1)
        return cls(width, slot_keys, slot_positions, rows, probes)

    def find(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The position of each key (``-1`` when absent); ``rows``: the ids' bytes, to confirm mixed keys."""
        mask = len(self.keys) - 1
        slot = _slot(keys, self.bits)
        found = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        for _ in range(self.probes):
            at_positions = self.positions[slot]
            wanted = keys if len(todo) == len(keys) else keys[todo]
            hit = (at_positions >= 0) & (self.keys[slot] == wanted)
            found[todo[hit]] = at_positions[hit]
            going = (at_positions >= 0) & ~hit
            todo, slot = todo[going], (slot[going] + 1) & mask
            if not len(todo):
                break
        if self.width > 8:
            matched = np.flatnonzero(found >= 0)
            wrong = (rows[matched] != self.rows[found[matched]]).any(axis=1)
            found[matched[wrong]] = -1
        return found


def _slot(keys: np.ndarray, bits: int) -> np.ndarray:
    """The first slot of each key in a table of ``2 ** bits`` slots (Fibonacci hashing: the top bits of the
    key times an odd constant)."""
    with np.errstate(over="ignore"):
        return ((keys * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


def _unique(keys: np.ndarray) -> bool:
    """True when no two of ``keys`` (uint64) are equal: one sort (``np.unique`` took 1.2 s per million here)."""
    ordered = np.sort(keys)
    return not (ordered[1:] == ordered[:-1]).any()


def _fixed_width_rows(file_ids: Any, width: int) -> np.ndarray | None:
    """The bytes of ``file_ids`` (an Arrow string array or chunked array without nulls) as an n x ``width``
    uint8 matrix (a view of a single chunk's buffer, else one copy), or ``None`` when any id has another length."""
    import pyarrow as pa

    parts = []
    for chunk in file_ids.chunks if isinstance(file_ids, pa.ChunkedArray) else [file_ids]:
        if chunk.type != pa.large_string():
            chunk = chunk.cast(pa.large_string())
        if not len(chunk):
            continue
        offsets, body = _buffers(chunk)
        if offsets[-1] != width * len(chunk) or (np.diff(offsets) != width).any():
            return None
        parts.append(body.reshape(-1, width))
    if not parts:
        return np.zeros((0, width), dtype=np.uint8)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _buffers(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (int64, rebased to 0) and the bytes (uint8) of an Arrow ``large_string`` array without nulls."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    body = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return offsets - offsets[0], body[offsets[0] : offsets[-1]]


def _key(matrix: np.ndarray) -> np.ndarray:
    """A uint64 key per row of ``matrix`` (n ids of w bytes each): the bytes themselves when w <= 8 (equal keys
    then mean equal ids), else a mix of the row's 8-byte words (equal ids give equal keys; the converse is
    checked by the caller)."""
    n, width = matrix.shape
    words = -(-width // 8)
    if width % 8 == 0 and matrix.flags.c_contiguous:
        as_words = matrix.view(np.uint64)  # no padding needed: the words are read in place
    else:
        padded = np.zeros((n, words * 8), dtype=np.uint8)
        padded[:, :width] = matrix
        as_words = padded.view(np.uint64)
    if words == 1:
        return as_words[:, 0].copy()
    key = as_words[:, 0].copy()
    with np.errstate(over="ignore"):
        for i in range(1, words):
            key *= _MIX
            key ^= key >> np.uint64(29)
            key += as_words[:, i]
    return key


def _blank(raw: pd.Series) -> np.ndarray:
    """``(raw.str.strip() == "").to_numpy()``: which values are empty or only whitespace, as bools.

    When every value is non-empty and its bytes are all printable ASCII but the space (0x21 to 0x7F), none can
    be blank, whatever counts as whitespace: one vectorised pass over the text's bytes (about 0.5 ms per million
    short ids) instead of a stripped copy of every value (about 10 ms). Any other column takes the exact test.
    """
    import pyarrow as pa

    try:
        text = pa.array(raw, type=pa.large_string(), from_pandas=True)  # zero-copy for a pandas text column
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = None
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    if all(_printable(chunk) for chunk in chunks):
        return np.zeros(len(raw), dtype=bool)
    return (raw.str.strip() == "").to_numpy()


def _printable(chunk: Any) -> bool:
    """True when ``chunk`` is an Arrow large-string array without nulls whose every value is one or more bytes
    of 0x21 to 0x7F."""
    import pyarrow as pa

    if not isinstance(chunk, pa.LargeStringArray) or chunk.null_count:
        return False
    if not len(chunk):
        return True
    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
    body = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return bool(np.diff(offsets).min() > 0) and not ((body - np.uint8(0x21)) >= 0x5F).any()
