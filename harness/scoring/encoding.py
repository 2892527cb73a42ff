"""Naming the encoding of a prediction file that is not UTF-8, so the team is told what to re-save, not "binary".

Two tools, each where it is good:

* :func:`wide_encoding`: UTF-16 and UTF-32 (what Excel's "Unicode Text" and PowerShell's ``Out-File`` write), with
  a byte-order mark or without one. A small heuristic: the BOM, or else a sample that decodes strictly in one of the
  four byte orders to text holding a comma or a line break and no control character. CSV text is mostly ASCII
  digits and separators, so the wrong byte order or random binary fails that test at once.
* :func:`eight_bit_encoding`: one-byte code pages (cp1252, latin-1, cp1251, koi8-r, ...), which any byte sequence
  is valid in, so only statistics over the letters can tell them apart. That is charset-normalizer's work (a
  dependency of requests, maintained, pure Python here); it is given a bounded sample around the first byte that is
  not UTF-8, so its cost does not grow with the file. Among equally good guesses the commonest code page of
  spreadsheet exports wins (cp1252 over cp1250 for "café", which both spell alike).
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["eight_bit_encoding", "wide_encoding"]

logger = logging.getLogger(__name__)

_SAMPLE: Final = 64 * 1024
_EIGHT_BIT_SAMPLE: Final = 16 * 1024
_BOMS: Final = (
    (b"\xff\xfe\x00\x00", "UTF-32", "little-endian"),
    (b"\x00\x00\xfe\xff", "UTF-32", "big-endian"),
    (b"\xff\xfe", "UTF-16", "little-endian"),
    (b"\xfe\xff", "UTF-16", "big-endian"),
)
_WIDE: Final = (
    ("utf-32-le", 4, "UTF-32", "little-endian"),
    ("utf-32-be", 4, "UTF-32", "big-endian"),
    ("utf-16-le", 2, "UTF-16", "little-endian"),
    ("utf-16-be", 2, "UTF-16", "big-endian"),
)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

#: Preferred among guesses charset-normalizer rates alike, commonest first, with the name a team knows.
_KNOWN: Final = {
    "cp1252": "Windows-1252 or Latin-1 (cp1252, Western European)",
    "cp1251": "Windows-1251 (cp1251, Cyrillic)",
    "latin_1": "Latin-1 (ISO-8859-1)",
    "cp1250": "Windows-1250 (cp1250, Central European)",
    "iso8859_15": "Latin-9 (ISO-8859-15)",
    "koi8_r": "KOI8-R (Cyrillic)",
    "cp1253": "Windows-1253 (cp1253, Greek)",
    "cp1254": "Windows-1254 (cp1254, Turkish)",
    "cp1257": "Windows-1257 (cp1257, Baltic)",
    "cp1256": "Windows-1256 (cp1256, Arabic)",
    "cp1255": "Windows-1255 (cp1255, Hebrew)",
    "cp932": "Shift JIS (cp932, Japanese)",
    "shift_jis": "Shift JIS (Japanese)",
    "gb18030": "GB18030 (Chinese)",
    "gbk": "GBK (Chinese)",
    "big5": "Big5 (Chinese)",
    "cp949": "cp949 (Korean)",
    "mac_roman": "Mac Roman",
    "cp850": "DOS cp850 (Western European)",
    "cp866": "DOS cp866 (Cyrillic)",
}


def wide_encoding(data: bytes) -> str | None:
    """What ``data`` looks like when it is UTF-16 or UTF-32 text, e.g. ``"UTF-16 (little-endian, no byte-order
    mark)"``; ``None`` when it does not look like either (call it with bytes holding a NUL or starting with a BOM).

    Only the first 64 KiB are looked at.
    """
    for bom, name, order in _BOMS:
        if data.startswith(bom):
            return f"{name} ({order}, with a byte-order mark)"
    sample = data[:_SAMPLE]
    for codec, unit, name, order in _WIDE:
        if _reads_as_text(sample[: len(sample) - len(sample) % unit], codec):
            return f"{name} ({order}, no byte-order mark)"
    return None


def _reads_as_text(sample: bytes, codec: str) -> bool:
    try:
        text = sample.decode(codec)
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a surrogate pair cut by the sample's end
            return False
        text = sample[: exc.start].decode(codec, errors="replace")
    return bool(text) and ("," in text or "\n" in text) and _CONTROL.search(text) is None


def eight_bit_encoding(data: bytes, bad_offset: int) -> tuple[str, str] | None:
    """The code page ``data`` most likely is in, e.g. ``("cp1251", "Windows-1251 (cp1251, Cyrillic)")``.

    Args:
        data: a file that is not UTF-8.
        bad_offset: the offset of its first byte that is not UTF-8; the sample starts at that byte's line and holds
            at most 16 KiB, so the cost is bounded whatever the file's size.

    Returns:
        ``(Python codec name, readable name)``, or ``None`` when charset-normalizer is missing or makes no guess.
        A guess from a few letters can be wrong (``"Да"`` alone is also valid Big5); the caller says "looks like".
    """
    try:
        import charset_normalizer
    except ImportError:  # pragma: no cover - a dependency of the package
        return None
    line_start = data.rfind(b"\n", max(0, bad_offset - 4096), bad_offset) + 1
    sample = data[line_start : line_start + _EIGHT_BIT_SAMPLE]
    matches = list(charset_normalizer.from_bytes(sample))
    if not matches:
        return None
    best = matches[0]
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    order = list(_KNOWN)
    tied.sort(key=lambda m: order.index(m.encoding) if m.encoding in _KNOWN else len(order))
    encoding = tied[0].encoding
    if encoding.startswith(("utf", "ascii")):  # a cut multi-byte sequence, not another code page
        return None
    logger.debug("non-UTF-8 sample guessed as %s (of %s)", encoding, [m.encoding for m in tied])
    return encoding, _KNOWN.get(encoding, encoding)
