"""Team-written text as judges see it: control characters made visible, names described, file-name slugs.

Text that comes from a team (exception messages and reasons, log tails, column and file names quoted in reasons,
team names) is stored exactly as it came. Every renderer for people (the terminal, CSV, Markdown and HTML
exports, the report pages, ``harness check``) passes it through :func:`visible` first, so an ANSI escape cannot
clear a judge's screen, a carriage return or backspaces cannot overwrite what came before, and a bidirectional
override cannot reorder what a judge reads. JSON and parquet exports keep the exact text.

:func:`describe_char` names one character for a message (``U+202E RIGHT-TO-LEFT OVERRIDE``), :func:`slug` makes
a file-name fragment of a team name, :func:`spreadsheet_safe` keeps a CSV cell from being read as a formula.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["HIDDEN_CATEGORIES", "describe_char", "slug", "spreadsheet_safe", "visible"]

#: Unicode general categories :func:`visible` escapes: ``Cc`` controls (C0, DEL, C1: ESC, CR, BS, BEL, CSI, ...),
#: ``Cf`` format characters (the bidirectional embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069,
#: the marks U+200E, U+200F and U+061C, zero-width space, joiners and word joiner, the BOM, soft hyphen and the tag
#: characters that hide ASCII text), ``Cs`` lone surrogates (undecodable file names; they cannot even be written
#: as UTF-8) and ``Zl``/``Zp`` (line and paragraph separators, which break lines in some viewers).
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_CANDIDATE = re.compile(r"[^\x20-\x7e]")  # printable ASCII is never escaped: the fast path of ordinary text

_C0_NAMES = (
    "NULL",
    "START OF HEADING",
    "START OF TEXT",
    "END OF TEXT",
    "END OF TRANSMISSION",
    "ENQUIRY",
    "ACKNOWLEDGE",
    "BELL",
    "BACKSPACE",
    "CHARACTER TABULATION",
    "LINE FEED",
    "LINE TABULATION",
    "FORM FEED",
    "CARRIAGE RETURN",
    "SHIFT OUT",
    "SHIFT IN",
    "DATA LINK ESCAPE",
    "DEVICE CONTROL ONE",
    "DEVICE CONTROL TWO",
    "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR",
    "NEGATIVE ACKNOWLEDGE",
    "SYNCHRONOUS IDLE",
    "END OF TRANSMISSION BLOCK",
    "CANCEL",
    "END OF MEDIUM",
    "SUBSTITUTE",
    "ESCAPE",
    "INFORMATION SEPARATOR FOUR",
    "INFORMATION SEPARATOR THREE",
    "INFORMATION SEPARATOR TWO",
    "INFORMATION SEPARATOR ONE",
)
_OTHER_CONTROL_NAMES = {0x7F: "DELETE", 0x85: "NEXT LINE", 0x9B: "CONTROL SEQUENCE INTRODUCER"}
_OTHER_CONTROL_NAMES |= {0x9D: "OPERATING SYSTEM COMMAND"}

#: Characters that start a formula when a spreadsheet opens a CSV cell (OWASP's list: ``=``, ``+``, ``-``, ``@``,
#: tab, carriage return), with their full-width forms, defensively.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

_SLUG_KEPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,79}")


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    """Python's escape of one character: ``\\r``, ``\\x1b``, ``\\u202e``, ``\\U000e0041``."""
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, keep: str = "\n\t") -> str:
    """``text`` with every control and format character replaced by its escape, as Python writes it.

    ``"\\x1b[2J"`` becomes the six characters ``\\x1b[2J``, a carriage return ``\\r``, a backspace ``\\x08``, a
    right-to-left override ``\\u202e``, a tag character ``\\U000e0041``. Escaped are the categories in
    :data:`HIDDEN_CATEGORIES` (controls, format characters, lone surrogates, line and paragraph separators): those
    move a terminal's cursor, overwrite, reorder or hide what a reader sees. Every other character (letters of any
    script, marks, symbols, emoji, spaces) is kept, and so is a backslash typed by the team: the result is for
    reading, not for decoding back.

    Args:
        text: team-written text (any ``str``; other values are passed through ``str()``).
        keep: characters kept as they are where the surface shows them sensibly: newline and tab by default
            (log tails, HTML, CSV); ``""`` for one-line surfaces (a progress line, a terminal table cell).

    Returns:
        The text with nothing left that a terminal, spreadsheet or browser would act on or hide; plain ASCII text
        comes back unchanged.
    """
    text = str(text)
    if not _CANDIDATE.search(text):
        return text

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep or unicodedata.category(char) not in HIDDEN_CATEGORIES:
            return char
        return _escape(char)

    return _CANDIDATE.sub(replace, text)


def describe_char(char: str) -> str:
    """One character as a message names it: ``U+202E RIGHT-TO-LEFT OVERRIDE``, ``U+001B ESCAPE``.

    Controls (which have no Unicode name) get their usual alias; a character without any name gets its category
    in words (``U+E000 private use character``, ``U+0378 unassigned character``, ``U+D800 lone surrogate``).
    """
    code = ord(char)
    name = unicodedata.name(char, "")
    if not name:
        if code < 0x20:
            name = _C0_NAMES[code]
        elif code in _OTHER_CONTROL_NAMES:
            name = _OTHER_CONTROL_NAMES[code]
        else:
            name = {
                "Cc": "control character",
                "Cs": "lone surrogate",
                "Co": "private use character",
                "Cn": "unassigned character",
            }.get(unicodedata.category(char), "character")
    return f"U+{code:04X} {name}"


def slug(name: str, *, max_chars: int = 60) -> str:
    """A file-name fragment for a team name (or any display name): ASCII letters, digits, ``.``, ``_``, ``-``.

    A name that is already such a fragment (starting with a letter, digit or ``_``; up to 80 characters) is kept
    as it is. Any other name is folded to ASCII where Unicode allows (``Café`` -> ``Cafe``, ``№`` -> ``No``), other
    runs become ``-``, and 8 hex digits of the name's sha256 follow, so two names never share a file:
    ``"Ёжики №7 ✨"`` -> ``"No7-<8 hex>"``, ``"チーム 東京"`` -> ``"<8 hex>"``, ``"../../etc"`` -> ``"etc-<8 hex>"``.

    Args:
        name: the display name.
        max_chars: the most characters kept of the folded name, before the hash.

    Returns:
        A non-empty fragment without ``/``, ``..`` at its start, spaces or control characters.
    """
    if _SLUG_KEPT.fullmatch(name):
        return name
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", folded).strip(".-")[:max_chars].rstrip(".-")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe}-{digest}" if safe else digest


def spreadsheet_safe(cell: str) -> str:
    """A CSV text cell a spreadsheet shows as text: ``'`` is put before a leading ``=``, ``+``, ``-``, ``@``, tab
    or carriage return (and their full-width forms), which would otherwise start a formula (OWASP's advice).

    Only for text cells: numbers are written as numbers and never passed here.
    """
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell
