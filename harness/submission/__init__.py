"""Open a team's submission safely: unpack, normalise, hash, find its entry point and check its notebook.

A submission arrives as a folder, a ``.zip``, a ``.tar.gz``/``.tgz``/``.tar`` or a lone ``.ipynb``.
:func:`open_submission` writes a normalised copy into a fresh work folder and describes it in an
:class:`OpenedSubmission`; :func:`iter_entries` lists one entry per team in a folder of submissions.

The package, one concern per module (each imports only those above it in this list):

* :mod:`.model`: :class:`OpenLimits`, :class:`OpenedSubmission`, the accepted suffixes and shared constants;
* :mod:`.plan`: the plan of what a source holds, checked before anything is written;
* :mod:`.readers`: the four readers (folder, zip, tar, lone notebook) in one table, ``READERS``;
* :mod:`.team` and :mod:`.kinds`: ``team.yaml`` and team names; notebook or script, and the entry point;
* :mod:`.unpack`: :func:`open_submission`: plan, write, hash, describe;
* :mod:`.entries`: the entries of a batch folder (:func:`iter_entries`, :func:`open_entry`,
  :func:`unopened_fingerprint`, :func:`submitted_at`).

Checking the entry notebook is :func:`harness.notebooks.check_notebook`.

Opening happens in two passes. The first reads only metadata (names, types, declared sizes) and refuses anything
unsafe before a single byte is written; the second copies the bytes, counting them again because headers can lie.
On any error the work folder is cleaned, and the source is never modified.

Decisions (each one a rule a team can rely on):

* **Names.** Absolute paths (``/x``, ``C:/x``), ``..`` anywhere in a path, control characters, components longer
  than 255 bytes and paths longer than 1024 bytes are refused. Names that are not valid UTF-8 are *refused*, not
  renamed: the team's code refers to its files by name, so a silent rename would only move the failure to run
  time. A zip member without the UTF-8 flag whose raw bytes are valid UTF-8 (Info-ZIP, macOS) is read as UTF-8.
  In zip names a backslash is a folder separator (old Windows tools write them). Two members with the same
  path, or a path that is both a file and a folder, are refused.
* **Links.** The output never contains a link. A symbolic or hard link whose target leaves the submission folder
  (absolute, or escaping through ``..``) is refused. A symbolic link inside is dropped and listed in ``notes``;
  a tar hard link to a file of the archive is stored as a regular copy of that file (GNU tar writes every
  second name of a hard-linked file that way, so dropping it would lose files). Device files, FIFOs and
  sockets are refused.
* **Junk.** ``__MACOSX/``, ``.ipynb_checkpoints/``, ``__pycache__/`` (anywhere), ``.DS_Store`` and
  macOS AppleDouble files ``._*`` are dropped and counted in ``notes``. Then enclosing folders are stripped while
  the submission holds nothing but one folder (so ``team/team/main.py`` becomes ``main.py``).
* **Caps** (:class:`OpenLimits`): the archive file's size is checked before it is opened; total unpacked bytes,
  file count and entry count are checked on the declared sizes before writing and on the bytes actually read
  while writing. The compression ratio is checked per zip member; a tar stream has no per-member compressed
  size, so for tars the ratio is the sum of member sizes over the archive's size. Files at most
  ``ratio_floor_bytes`` big are exempt (a small file of zeros compresses well and harms no one).
* **Modes.** Files are written 0644 (0755 if the owner could execute them), folders 0755, whatever the umask:
  the sandbox reads them as another user. Times and owners are not kept.
* **Content hash.** ``sha256`` over the files of the normalised tree, in order of their relative POSIX path
  (UTF-8 bytes), each contributing ``path + b"\\0" + sha256(file bytes)``. Folders (also empty ones), modes and
  times do not count; neither does the top-level ``team.yaml``, so two teams sending byte-identical code get the
  same hash whatever their team names. The bytes hashed are the team's bytes as unpacked, *before* a notebook is
  upgraded (see below), so the hash does not depend on the harness's nbformat version.
* **Notebook entry.** The entry notebook must be valid (any failure to read it becomes
  ``not a valid notebook: <reason>``), is upgraded to the current nbformat 4 minor when older (the upgraded file,
  with deterministic cell ids ``cell-0``, ``cell-1``..., replaces the team's file in the work folder; a note
  says so), and must have exactly one code cell tagged ``parameters``. A kernel name other than the task's is a
  note, not an error: the harness always executes with the task's kernel.
"""

from harness.submission.entries import (
    SubmissionEntry,
    hidden_entries,
    iter_entries,
    open_entry,
    submitted_at,
    unopened_fingerprint,
)
from harness.submission.fingerprint import FingerprintCache
from harness.submission.model import DEFAULT_LIMITS, SUBMISSION_SUFFIXES, TEAM_FILE, OpenedSubmission, OpenLimits
from harness.submission.team import MAX_TEAM_NAME_CHARS, check_team_name, team_name_from_entry
from harness.submission.unpack import open_submission

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_TEAM_NAME_CHARS",
    "SUBMISSION_SUFFIXES",
    "TEAM_FILE",
    "FingerprintCache",
    "OpenLimits",
    "OpenedSubmission",
    "SubmissionEntry",
    "check_team_name",
    "hidden_entries",
    "iter_entries",
    "open_entry",
    "open_submission",
    "submitted_at",
    "team_name_from_entry",
    "unopened_fingerprint",
]
