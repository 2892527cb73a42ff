"""Open a submission: check its plan, write the normalised copy into a fresh work folder, hash it, describe it.

:func:`open_submission` picks the reader of the source's format (:data:`~harness.submission.readers.READERS`),
lets it fill a :class:`~harness.submission.plan.Plan` (metadata only, refused before a byte is written), writes
the planned files counting their bytes again (headers can lie), hashes the normalised content, reads
``team.yaml``, finds the entry point (:mod:`.kinds`) and checks an entry notebook
(:func:`harness.notebooks.check_notebook`). On any error the work folder is cleaned; the source is never changed.
The rules a team can rely on are listed in :mod:`harness.submission`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness.errors import SubmissionError
from harness.notebooks import check_notebook
from harness.spec import SubmissionSpec
from harness.submission.kinds import detect_kind
from harness.submission.model import (
    DEFAULT_LIMITS,
    FORMATS_TEXT,
    TEAM_FILE,
    MiB,
    OpenedSubmission,
    OpenLimits,
    size_text,
    split_suffix,
)
from harness.submission.plan import Plan, PlannedFile, reading, too_big_message
from harness.submission.readers import READERS
from harness.submission.team import read_team

__all__ = ["open_submission"]

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 * MiB


def open_submission(
    source: Path,
    dest: Path,
    submission_spec: SubmissionSpec,
    limits: OpenLimits = DEFAULT_LIMITS,
) -> OpenedSubmission:
    """Unpack a submission safely into ``dest``, normalise it, hash it and find its entry point.

    Args:
        source: a folder, ``.zip``, ``.tar.gz``/``.tgz``/``.tar`` or lone ``.ipynb``. Only read, never changed.
        dest: the work folder to fill: absent (it is created) or empty. Nothing is written outside it.
        submission_spec: the task's accepted kinds, entry notebook name, script command and kernel.
        limits: caps on archive size, unpacked bytes, file and entry counts and compression ratio.

    Returns:
        The :class:`OpenedSubmission` describing ``dest``.

    Raises:
        SubmissionError: the submission is unsafe (absolute or ``..`` paths, links leaving it, device files,
            names that are not UTF-8), too large (archive size, unpacked bytes, file count, compression ratio),
            broken (corrupt archive, invalid notebook, bad ``team.yaml``), empty, of an unsupported format or kind,
            has no entry point, or its entry notebook lacks exactly one cell tagged ``parameters``. The message
            says what to change; ``dest`` is left absent (or empty, if it existed).
        ValueError: ``dest`` is not an empty folder, or overlaps ``source`` (a harness bug, not the team's).
    """
    source = Path(source)
    dest = Path(dest)
    fmt = _source_format(source)
    created = _prepare_dest(source, dest)
    try:
        opened = _open_into(source, fmt, dest, submission_spec, limits)
    except BaseException as exc:
        _clean_dest(dest, created)
        if isinstance(exc, SubmissionError):
            logger.debug("refused %s: %s", source, exc.message)
        raise
    logger.info(
        "opened %s: %s submission, entry %s, %d files, %d bytes, hash %s",
        source,
        opened.kind,
        opened.entry,
        opened.n_files,
        opened.n_bytes,
        opened.content_hash[:12],
    )
    return opened


# -- writing and hashing ---------------------------------------------------------------------------------------


@dataclass
class _Written:
    digests: dict[str, bytes] = field(default_factory=dict)  # relative POSIX path -> sha256 of its bytes
    n_bytes: int = 0


def _write_plan(plan: Plan, depth: int, dest: Path) -> _Written:
    """Write the planned files (and empty folders) into ``dest``, counting bytes against the caps again."""
    written = _Written()
    for parts in sorted(plan.dirs):
        if len(parts) > depth:
            _make_dirs(dest, parts[depth:])
    for item in plan.files.values():
        rel = item.parts[depth:]
        _make_dirs(dest, rel[:-1])
        target = dest.joinpath(*rel)
        mode = 0o755 if item.executable else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            if item.copy_of is not None:
                original = "/".join(item.copy_of[depth:])
                with (dest / original).open("rb") as src:
                    digest = _copy_capped(plan, src, out, item, written)
            else:
                assert item.opener is not None
                with reading(plan.source, plan.broken):
                    src_handle = item.opener()
                with src_handle as src:
                    digest = _copy_capped(plan, src, out, item, written)
        written.digests["/".join(rel)] = digest
    return written


def _copy_capped(plan: Plan, src: IO[bytes], out: IO[bytes], item: PlannedFile, written: _Written) -> bytes:
    """Copy one member's bytes, refusing more than its declared size or than the total cap."""
    digest = hashlib.sha256()
    n = 0
    while True:
        with reading(plan.source, plan.broken):
            chunk = src.read(_CHUNK_BYTES)
        if not chunk:
            break
        n += len(chunk)
        written.n_bytes += len(chunk)
        if n > item.size:
            plan.fail(
                f"{item.label!r} holds more data than the {item.size:,} bytes declared for it (a lying archive "
                "header, or a file that changed while being read); the archive is corrupt or hostile"
            )
        if written.n_bytes > plan.limits.max_total_bytes:
            plan.fail(too_big_message(written.n_bytes, plan.limits, item.label))
        digest.update(chunk)
        out.write(chunk)
    if n != item.size:
        plan.fail(f"{item.label!r} holds {n:,} bytes but {item.size:,} were declared; the archive is corrupt")
    return digest.digest()


def _make_dirs(dest: Path, parts: tuple[str, ...]) -> None:
    current = dest
    for part in parts:
        current = current / part
        if not current.is_dir():
            current.mkdir(mode=0o755)
            current.chmod(0o755)


def _content_hash(digests: dict[str, bytes]) -> str:
    """sha256 over ``path + b"\\0" + sha256(bytes)`` of every file but the top-level team.yaml, by path."""
    total = hashlib.sha256()
    for rel in sorted(digests, key=lambda p: p.encode("utf-8")):
        if rel == TEAM_FILE:
            continue
        total.update(rel.encode("utf-8") + b"\0" + digests[rel])
    return total.hexdigest()


# -- the whole flow ------------------------------------------------------------------------------------------


def _source_format(source: Path) -> str:
    """The format of a source (a key of :data:`READERS`), or a refusal when there is none."""
    if source.is_dir():
        return "folder"
    if not source.exists():
        raise SubmissionError("the submission does not exist", str(source))
    _stem, fmt = split_suffix(source.name)
    if fmt is None or not source.is_file():
        raise SubmissionError(f"unsupported submission format; send {FORMATS_TEXT}", str(source))
    return fmt


def _prepare_dest(source: Path, dest: Path) -> bool:
    """Make sure ``dest`` is an empty folder; return True when this call created it."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ValueError(f"work folder {dest} exists and is not a folder")
    resolved_dest = dest.resolve()
    resolved_source = source.resolve()
    if resolved_dest == resolved_source or resolved_source in resolved_dest.parents:
        raise ValueError(f"work folder {dest} lies inside the submission {source}; it would change the source")
    if resolved_dest in resolved_source.parents:
        raise ValueError(f"the submission {source} lies inside the work folder {dest}")
    if dest.exists():
        if any(dest.iterdir()):
            raise ValueError(f"work folder {dest} is not empty; open a submission into a fresh folder")
        return False
    dest.mkdir(parents=True)
    dest.chmod(0o755)
    return True


def _clean_dest(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in list(dest.iterdir()) if dest.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _open_into(source: Path, fmt: str, dest: Path, spec: SubmissionSpec, limits: OpenLimits) -> OpenedSubmission:
    """Plan, write, hash and describe one submission; ``dest`` is an empty folder (cleaned by the caller)."""
    reader = READERS[fmt]
    plan = Plan(source, limits, reader.broken)
    archive_bytes = 0
    if reader.from_file:
        archive_bytes = source.stat().st_size
        if archive_bytes > limits.max_archive_bytes:
            plan.fail(
                f"the file is {size_text(archive_bytes)}, more than the limit of "
                f"{size_text(limits.max_archive_bytes)}; leave out data the task provides (it is mounted at "
                "input_dir), model caches and outputs"
            )
        if archive_bytes == 0:
            plan.fail("the submission is empty (0 bytes)")
    with reader.read(plan, dest, archive_bytes):  # the source stays open while its files are written
        depth, notes = plan.finish()
        written = _write_plan(plan, depth, dest)

    content_hash = _content_hash(written.digests)
    team, team_notes = read_team(dest, source) if TEAM_FILE in written.digests else (None, [])
    notes.extend(team_notes)
    top_files = sorted(rel for rel in written.digests if "/" not in rel)
    top_dirs = sorted({rel.split("/", 1)[0] for rel in written.digests if "/" in rel})
    kind, entry = detect_kind(dest, top_files, top_dirs, spec, source)
    kernel: str | None = None
    if kind == "notebook":
        kernel, notebook_notes = check_notebook(dest / entry, entry, spec.kernel, source)
        notes.extend(notebook_notes)
    return OpenedSubmission(
        root=dest,
        kind=kind,
        entry=entry,
        content_hash=content_hash,
        team=team,
        n_files=len(written.digests),
        n_bytes=written.n_bytes,
        notes=tuple(notes),
        notebook_kernel=kernel,
    )
