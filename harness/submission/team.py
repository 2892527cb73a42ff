"""Team names: the one a ``team.yaml`` gives, and the one made from an entry's name when it gives none.

Both follow the same rule: 1 to 64 letters, digits, spaces, ``-``, ``_`` and ``.``, with at least one letter or
digit. A name from ``team.yaml`` that breaks it is refused (the team chose it); an entry's name is cleaned.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NoReturn

import yaml

from harness.errors import SubmissionError
from harness.submission.model import TEAM_FILE, short

__all__ = ["read_team", "team_name_from_entry"]

_MAX_TEAM_FILE_BYTES = 64 * 1024
_TEAM_NAME_PUNCTUATION = frozenset(" -_.")


def team_name_from_entry(name: str) -> str:
    """A team name made from an entry's name under the rules of ``team.yaml`` names.

    Characters other than letters, digits, space, ``-``, ``_`` and ``.`` become ``_`` (control characters, ``|``,
    ``/``, a leading ``=``); the result is cut to 64 characters. A name with no letter or digit becomes ``team``
    plus a short hash, so that entries stay apart.
    """
    cleaned = "".join(c if (c.isalnum() or c in _TEAM_NAME_PUNCTUATION) else "_" for c in name).strip()[:64]
    if not any(c.isalnum() for c in cleaned):
        return "team-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return cleaned


def read_team(dest: Path, source: Path) -> tuple[str, list[str]]:
    """Read the team name from ``dest/team.yaml`` (one line: ``team: NAME``).

    Args:
        dest: the opened submission's work folder, holding the file.
        source: the submission as sent (named in errors).

    Returns:
        ``(name, notes)``: the name, stripped (1 to 64 letters, digits, spaces, ``-``, ``_``, ``.``), and a note
        naming unknown keys, which are ignored.

    Raises:
        SubmissionError: the file is over 64 KiB, not UTF-8, not YAML, has no ``team:`` key or a bad name.
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
        fail(f"not valid YAML ({short(exc)}); it holds one line: `team: NAME`")
    if not isinstance(data, dict) or "team" not in data:
        fail("no `team:` key; it holds one line: `team: NAME`")
    name = data["team"]
    if not isinstance(name, str | int) or isinstance(name, bool):
        fail(f"`team:` must be a name, got {type(name).__name__}")
    name = str(name).strip()
    if not 1 <= len(name) <= 64:
        fail(f"the team name must have 1 to 64 characters, got {len(name)}")
    bad = sorted({c for c in name if not (c.isalnum() or c in _TEAM_NAME_PUNCTUATION)})
    if bad or not any(c.isalnum() for c in name):
        shown = "".join(bad) if bad else "only punctuation"
        fail(f"team name {name!r} may hold letters, digits, spaces, '-', '_' and '.' only (found {shown!r})")
    unknown = sorted(str(key) for key in data if key != "team")
    notes = [f"{TEAM_FILE}: ignored unknown key(s) {', '.join(unknown)}"] if unknown else []
    return name, notes
