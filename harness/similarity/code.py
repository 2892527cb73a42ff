"""Code similarity between submissions: winnowing fingerprints (copydetect) over Python source and notebook cells.

A submission's code is its ``.py`` files and the code cells of its notebooks (read with nbformat; outputs and
markdown ignored), joined into one Python text (:func:`extract_code`), each part under a header comment that names
it. :func:`fingerprint` fingerprints that text with copydetect's functions (``filter_code``: Pygments tokens, every
variable, function, class and string renamed to one letter, comments and whitespace dropped; ``winnow``: the
winnowing of Schleimer, Wilkerson and Aiken 2003, as MOSS does; ``compare_files``), with one change: k-grams are
hashed by :func:`kgram_hashes`, the same in every process, where copydetect's salted ``hash()`` would make the
figures differ from one run to the next. Renaming variables, reordering cells and adding comments therefore leave
most fingerprints in place.

The starter kit's code is boilerplate (:func:`boilerplate_hashes`): *every* k-gram of it (not only the winnowed
ones) is removed from each submission's fingerprints before any comparison, so code a team kept from the template
never counts, however the team's own winnowing happened to select it.

:func:`compare` returns a :class:`CodeMatch`: for each side the share of its remaining code found in the other,
the matched characters, and the matching fragments as line ranges of each side.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = [
    "CodeDocument",
    "CodeMatch",
    "Fingerprint",
    "boilerplate_hashes",
    "compare",
    "extract_code",
    "fingerprint",
    "kgram_hashes",
    "text_document",
]

log = logging.getLogger(__name__)

#: Files larger than this are not read as code (data files named .py, generated code): bytes.
MAX_FILE_BYTES = 1_000_000
#: At most this much code is read from one submission: characters.
MAX_CODE_CHARS = 2_000_000
_SKIPPED_DIRS = {".ipynb_checkpoints", "__pycache__", ".git", "__MACOSX"}
_MAGIC = re.compile(r"^(\s*)([%!])", re.MULTILINE)


@dataclass(frozen=True)
class CodeDocument:
    """A submission's code as one Python text.

    Attributes:
        text: the code: each part (a ``.py`` file, a notebook cell) under a ``# ---- <part>`` header line.
        parts: ``(first line of the part's code, 1-based, in text; part name)`` in text order, e.g.
            ``(12, "solution.ipynb cell 3")``.
    """

    text: str
    parts: tuple[tuple[int, str], ...] = ()

    def part_at(self, line: int) -> str:
        """The name of the part holding 1-based ``line`` of :attr:`text` (``""`` before the first part)."""
        name = ""
        for first, part in self.parts:
            if first > line:
                break
            name = part
        return name


def _notebook_cells(path: Path) -> list[tuple[str, str]]:
    """``(label, source)`` of each code cell of a notebook; ``[]`` (logged) when it is not a readable notebook."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # not JSON, old or broken nbformat: such a notebook has no comparable code
        log.info("similarity: %s is not a readable notebook (%s); its code is not compared", path, exc)
        return []
    cells = []
    for index, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") == "code" and isinstance(cell.get("source"), str):
            # IPython magics and shell lines are not Python: comment them out so they neither tokenize oddly
            # nor count as code.
            cells.append((f"{path.name} cell {index}", _MAGIC.sub(r"\1# \2", cell["source"])))
    return cells


def _code_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix in (".py", ".ipynb") else []
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if any(p in _SKIPPED_DIRS or p.startswith(".") for p in relative):
            continue
        if path.suffix in (".py", ".ipynb") and path.is_file() and not path.is_symlink():
            found.append(path)
    return found


def text_document(parts: Iterable[tuple[str, str]]) -> CodeDocument:
    """Join ``(part name, code)`` pairs into a :class:`CodeDocument` (header comments, a blank line between)."""
    lines: list[str] = []
    index: list[tuple[int, str]] = []
    size = 0
    for name, code in parts:
        header = f"# ---- {name}"
        body = code.rstrip("\n").split("\n") if code.strip() else []
        if size + len(code) > MAX_CODE_CHARS:
            log.info("similarity: code beyond %d characters is not compared (%s and later)", MAX_CODE_CHARS, name)
            break
        size += len(code)
        lines.append(header.replace("\n", " "))
        index.append((len(lines) + 1, name))
        lines.extend(body)
        lines.append("")
    return CodeDocument(text="\n".join(lines), parts=tuple(index))


def extract_code(root: str | Path) -> CodeDocument:
    """Read a submission's code: its ``.py`` files and its notebooks' code cells, in path order.

    Args:
        root: an opened submission folder (``home/submissions/<task>/<hash>``), a lone ``.ipynb`` or ``.py`` file.

    Returns:
        The code as one document; empty when there is none. Hidden folders, ``.ipynb_checkpoints``, links, files
        over :data:`MAX_FILE_BYTES` and text past :data:`MAX_CODE_CHARS` are left out; undecodable bytes are
        replaced.
    """
    root = Path(root)
    parts: list[tuple[str, str]] = []
    for path in _code_files(root):
        if path.stat().st_size > MAX_FILE_BYTES:
            log.info("similarity: %s is larger than %d bytes; not compared", path, MAX_FILE_BYTES)
            continue
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        if path.suffix == ".ipynb":
            parts.extend(_notebook_cells(path))
        else:
            parts.append((name, path.read_text(encoding="utf-8", errors="replace")))
    return text_document(parts)


@dataclass(frozen=True)
class Fingerprint:
    """One document's fingerprints (the attributes of a copydetect ``CodeFingerprint``) with its document."""

    document: CodeDocument
    data: SimpleNamespace = field(repr=False)  # the attributes of a copydetect.CodeFingerprint

    @property
    def hashes(self) -> set[int]:
        """The winnowed hashes left after boilerplate removal."""
        hashes: set[int] = self.data.hashes
        return hashes

    @property
    def coverage(self) -> int:
        """Normalised characters covered by those fingerprints (the denominator of a similarity)."""
        return int(self.data.token_coverage)


def kgram_hashes(text: str, k: int) -> np.ndarray:
    """A 64-bit hash of every ``k``-character substring of ``text``, in order (int64, ``len(text) - k + 1`` values).

    The same text gives the same hashes in every process (copydetect's own k-gram hashing uses Python's ``hash``,
    which is salted per process, so its winnowing and therefore its figures would change from run to run): a
    polynomial over the code points modulo 2**64, finished with splitmix64's mixer.
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes) - k + 1
    if n <= 0:
        return np.array([], dtype=np.int64)
    h = np.zeros(n, dtype=np.uint64)
    base = np.uint64(1_000_003)
    for j in range(k):
        h = h * base + codes[j : j + n]
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h.view(np.int64)


def _normalised(text: str) -> tuple[str, np.ndarray]:
    """copydetect's filtering of Python code: names to ``V``/``F``/``O``, strings to ``S``, comments and
    whitespace dropped; with the offsets that map the filtered text back to ``text``."""
    from copydetect.utils import filter_code

    filtered, offsets = filter_code(text, "submission.py", "python")
    return filtered, offsets


def boilerplate_hashes(documents: Iterable[CodeDocument], *, noise_chars: int) -> np.ndarray:
    """Every k-gram hash of the boilerplate documents (the starter kit's code), sorted and unique.

    Args:
        documents: boilerplate code.
        noise_chars: the k-gram length used for the submissions' fingerprints.

    Returns:
        A sorted int64 array (empty when there is no boilerplate).
    """
    hashes = [kgram_hashes(_normalised(d.text)[0], noise_chars) for d in documents if d.text.strip()]
    return np.unique(np.concatenate(hashes)) if hashes else np.array([], dtype=np.int64)


def fingerprint(
    document: CodeDocument, *, noise_chars: int, window: int, boilerplate: np.ndarray | None = None
) -> Fingerprint:
    """Winnowed fingerprints of a document, boilerplate removed, as copydetect's ``CodeFingerprint`` holds them
    (``k``, ``hashes``, ``hash_idx``, ``filtered_code``, ``offsets``, ``token_coverage``) but hashed with
    :func:`kgram_hashes`, so the figures do not change from one run to the next."""
    from copydetect.utils import get_token_coverage, winnow

    filtered, offsets = _normalised(document.text)
    hashes, idx = winnow(kgram_hashes(filtered, noise_chars), window_size=window, remove_duplicates=False)
    if boilerplate is not None and len(boilerplate) and len(hashes):
        keep = ~np.isin(hashes, boilerplate)
        hashes, idx = hashes[keep], idx[keep]
    hash_idx: dict[int, list[int]] = {}
    for value, where in zip(hashes.tolist(), idx.tolist(), strict=True):
        hash_idx.setdefault(value, []).append(where)
    data = SimpleNamespace(
        k=noise_chars,
        hashes=set(hash_idx),
        hash_idx=hash_idx,
        filtered_code=filtered,
        offsets=offsets,
        token_coverage=get_token_coverage(hash_idx, noise_chars, len(filtered)),
    )
    return Fingerprint(document, data)


@dataclass(frozen=True)
class CodeMatch:
    """Code similarity of two documents ``a`` and ``b``.

    Attributes:
        similarity_a: share of ``a``'s code (beyond boilerplate) found in ``b``, 0 to 1.
        similarity_b: share of ``b``'s code found in ``a``.
        matched_chars: normalised characters of ``a`` in matching fragments.
        lines_a: 1-based ``(first, last)`` line ranges of ``a``'s text inside matching fragments, merged.
        lines_b: the same for ``b``.
    """

    similarity_a: float
    similarity_b: float
    matched_chars: int
    lines_a: tuple[tuple[int, int], ...] = ()
    lines_b: tuple[tuple[int, int], ...] = ()

    @property
    def similarity(self) -> float:
        """The larger share: how much of the smaller (or more copied) side the other holds."""
        return max(self.similarity_a, self.similarity_b)


def _line_ranges(text: str, slices: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Merged 1-based line ranges covered by character slices (2 x N: starts, ends) of ``text``."""
    if slices.size == 0 or len(slices.shape) != 2:
        return ()
    starts = np.cumsum([0] + [len(line) + 1 for line in text.split("\n")])
    ranges: list[tuple[int, int]] = []
    for begin, end in zip(slices[0], slices[1], strict=True):
        first = int(np.searchsorted(starts, int(begin), side="right"))
        last = int(np.searchsorted(starts, max(int(end) - 1, int(begin)), side="right"))
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((first, last))
    return tuple(ranges)


def compare(a: Fingerprint, b: Fingerprint) -> CodeMatch:
    """Compare two fingerprinted documents (copydetect's ``compare_files``), with the matching line ranges."""
    from copydetect import compare_files

    if not a.hashes or not b.hashes or not (a.hashes & b.hashes):
        return CodeMatch(0.0, 0.0, 0)
    overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(a.data, b.data)
    return CodeMatch(
        similarity_a=float(min(sim_a, 1.0)),
        similarity_b=float(min(sim_b, 1.0)),
        matched_chars=int(overlap),
        lines_a=_line_ranges(a.document.text, np.asarray(slices_a)),
        lines_b=_line_ranges(b.document.text, np.asarray(slices_b)),
    )
