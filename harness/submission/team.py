"""Team names: the one a ``team.yaml`` gives, and the one made from an entry's name when it gives none.

A team name is a display name in any script: letters, marks, numbers, symbols, punctuation and spaces
(``Ёжики №7 ✨``, ``チーム 東京``, ``فريق 9``), NFC-normalised, each run of spaces (any ``Zs``) made one
space, stripped, 1 to :data:`MAX_TEAM_NAME_CHARS` characters, at least one of them a letter, number or symbol.
Refused are control characters, format characters (zero-width space and joiners, bidirectional marks,
embeddings, overrides and isolates, tag characters), line and paragraph separators, lone surrogates, private-use
and unassigned code points, and the invisible fillers and selectors of :data:`INVISIBLE_CHARS`: each can hide or
reorder text or make two names look alike. A name from ``team.yaml`` that breaks the rule is refused with a reason
naming the characters (the team chose it); an entry's name is cleaned (those characters become ``_``). Paths and
file names never use the display name itself but :func:`harness.text.slug` of it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import NoReturn

import yaml

from harness.errors import SubmissionError
from harness.submission.model import TEAM_FILE, short
from harness.text import describe_char, visible

__all__ = ["INVISIBLE_CHARS", "MAX_TEAM_NAME_CHARS", "check_team_name", "read_team", "team_name_from_entry"]

_MAX_TEAM_FILE_BYTES = 64 * 1024
#: The longest team name, in characters (code points) after NFC normalisation; 64 fit every table and any store.
MAX_TEAM_NAME_CHARS = 64
#: Categories a team name may hold: letters, marks, numbers, punctuation, symbols, spaces.
_ALLOWED_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No"}) | frozenset(
    {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs"}
)
#: Characters of allowed categories that show as nothing: Hangul fillers, the braille blank, the combining grapheme
#: joiner, Khmer inherent vowels, Mongolian free variation selectors, variation selectors (but VS15 and VS16, which
#: choose the text or emoji form of a symbol: ``❤️``).
INVISIBLE_CHARS = frozenset(
    "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d"
    + "".join(chr(c) for c in range(0xFE00, 0xFE0E))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)
_WHAT = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": f"unassigned in Unicode {unicodedata.unidata_version}",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
_RULE = (
    "a team name may hold letters, marks, numbers, symbols, punctuation and spaces of any script, but no control, "
    "zero-width, bidirectional or other invisible characters"
)
#: Runs of space separators (``Zs``: space, no-break space, ideographic space, ...); one space each in a name.
_SPACES = re.compile("[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")


def _refused(char: str) -> bool:
    return char in INVISIBLE_CHARS or unicodedata.category(char) not in _ALLOWED_CATEGORIES


def _what(char: str) -> str:
    """Why a refused character is refused, in words."""
    return "an invisible character" if char in INVISIBLE_CHARS else _WHAT[unicodedata.category(char)]


def _normalise(name: str) -> str:
    """NFC, every run of spaces one space, stripped."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", name)).strip()


def _has_substance(name: str) -> bool:
    """At least one letter, number or symbol (not only punctuation, marks and spaces)."""
    return any(unicodedata.category(c)[0] in "LNS" for c in name)


def check_team_name(name: str) -> str:
    """A team's display name, normalised, or the reason it is refused (see the module docstring for the rule).

    Args:
        name: the name as the team wrote it.

    Returns:
        The name NFC-normalised, each run of spaces one space, stripped.

    Raises:
        ValueError: the name is empty or longer than :data:`MAX_TEAM_NAME_CHARS` characters, holds a refused
            character (the message names up to five, by code point and Unicode name: ``U+202E RIGHT-TO-LEFT
            OVERRIDE (an invisible format character)``), or has no letter, number or symbol.
    """
    bad = sorted({c for c in name if _refused(c)})
    if bad:
        described = [f"{describe_char(c)} ({_what(c)})" for c in bad[:5]]
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(f"team name '{visible(name, keep='')}' holds {', '.join(described)}{more}; {_RULE}")
    cleaned = _normalise(name)
    if not 1 <= len(cleaned) <= MAX_TEAM_NAME_CHARS:
        raise ValueError(f"the team name must have 1 to {MAX_TEAM_NAME_CHARS} characters, got {len(cleaned)}")
    if not _has_substance(cleaned):
        raise ValueError(f"team name '{cleaned}' has no letter, number or symbol; {_RULE}")
    return cleaned


def team_name_from_entry(name: str) -> str:
    """A team name made from an entry's name under the rules of ``team.yaml`` names.

    Refused characters (controls such as ESC, format characters, lone surrogates of an undecodable file name,
    invisible fillers) become ``_``; the result is normalised as :func:`check_team_name` does and cut to
    :data:`MAX_TEAM_NAME_CHARS` characters. A name with no letter, number or symbol becomes ``team-`` plus a short
    hash, so that entries stay apart.
    """
    cleaned = _normalise("".join("_" if _refused(c) else c for c in unicodedata.normalize("NFC", name)))
    cleaned = cleaned[:MAX_TEAM_NAME_CHARS].strip()
    if not _has_substance(cleaned):
        return "team-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return cleaned


def read_team(dest: Path, source: Path) -> tuple[str, list[str]]:
    """Read the team name from ``dest/team.yaml`` (one line: ``team: NAME``).

    Args:
        dest: the opened submission's work folder, holding the file.
        source: the submission as sent (named in errors).

    Returns:
        ``(name, notes)``: the name as :func:`check_team_name` returns it, and a note naming unknown keys, which
        are ignored.

    Raises:
        SubmissionError: the file is over 64 KiB, not UTF-8, not YAML, has no ``team:`` key or a bad name (the
            message names the refused characters).
    """
    path = dest / TEAM_FILE

    def fail(message: str) -> NoReturn:
        raise SubmissionError(f"{TEAM_FILE}: {message}", str(source))

    if path.stat().st_size > _MAX_TEAM_FILE_BYTES:
        fail(f"larger than {_MAX_TEAM_FILE_BYTES // 1024} KiB; it holds one line: `team: NAME`")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        fail("not UTF-8 text; save it as UTF-8 with one line: `team: NAME`")
    except yaml.YAMLError as exc:
        fail(f"not valid YAML ({visible(short(exc))}); it holds one line: `team: NAME`")
    if not isinstance(data, dict) or "team" not in data:
        fail("no `team:` key; it holds one line: `team: NAME`")
    name = data["team"]
    if not isinstance(name, str | int) or isinstance(name, bool):
        fail(f"`team:` must be a name, got {type(name).__name__}")
    try:
        name = check_team_name(str(name))
    except ValueError as exc:
        fail(str(exc))
    unknown = sorted(visible(str(key), keep="") for key in data if key != "team")
    notes = [f"{TEAM_FILE}: ignored unknown key(s) {', '.join(unknown)}"] if unknown else []
    return name, notes
