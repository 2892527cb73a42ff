"""Opening submissions: archive safety, caps, normalisation, content hash, team, kind and notebook door checks.

Archives are built in each test (tmp_path); the fixture notebooks in tests/fixtures/submissions are the natural
files for notebook cases. Nothing here needs Docker or a kernel.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import nbformat
import pytest

from harness.errors import SubmissionError
from harness.spec import SubmissionSpec
from harness.submission import (
    DEFAULT_LIMITS,
    OpenedSubmission,
    OpenLimits,
    SubmissionEntry,
    iter_entries,
    open_submission,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "submissions"
SPEC = SubmissionSpec()  # notebook or script; solution.ipynb; python main.py; kernel python3
MAIN = b"print('hello')\n"
MiB = 1024 * 1024

Members = dict[str, bytes]


# -- helpers ---------------------------------------------------------------------------------------------------


def notebook_bytes(name: str = "valid_solution.ipynb") -> bytes:
    return (FIXTURES / name).read_bytes()


def write_tree(root: Path, members: Members) -> Path:
    for rel, data in members.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def make_zip(path: Path, members: Members, *, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in members.items():
            zf.writestr(prefix + rel, data)
    return path


def add_tar(
    tf: tarfile.TarFile,
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
    mode: int = 0o644,
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = 1_700_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


def make_tar(path: Path, members: Members, *, prefix: str = "", gz: bool = True) -> Path:
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.GNU_FORMAT) as tf:
        for rel, data in members.items():
            add_tar(tf, prefix + rel, data)
    return path


def reference_hash(files: Members) -> str:
    """The documented content hash, computed independently of the module."""
    total = hashlib.sha256()
    for rel in sorted(files, key=lambda p: p.encode("utf-8")):
        if rel != "team.yaml":
            total.update(rel.encode("utf-8") + b"\0" + hashlib.sha256(files[rel]).digest())
    return total.hexdigest()


def tree(root: Path) -> Members:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def opened(source: Path, tmp_path: Path, spec: SubmissionSpec = SPEC, **limits: int | float) -> OpenedSubmission:
    dest = tmp_path / "work" / "submission"
    return open_submission(source, dest, spec, OpenLimits(**limits) if limits else DEFAULT_LIMITS)


def refused(source: Path, tmp_path: Path, match: str, spec: SubmissionSpec = SPEC, **limits: int | float) -> str:
    """Open, expect a SubmissionError matching ``match``; check the work folder was cleaned; return the message."""
    dest = tmp_path / "work" / "submission"
    with pytest.raises(SubmissionError, match=match) as caught:
        open_submission(source, dest, spec, OpenLimits(**limits) if limits else DEFAULT_LIMITS)
    assert not dest.exists(), "a refused submission must leave nothing in the work folder"
    assert caught.value.path == str(source)
    return caught.value.message


def patch_zip(path: Path, *, local: dict[int, int], central: dict[int, int], width: str = "<I") -> None:
    """Overwrite fields of the (only) member's local and central headers: {offset: value}."""
    raw = bytearray(path.read_bytes())
    local_at = raw.find(b"PK\x03\x04")
    central_at = raw.find(b"PK\x01\x02")
    for offset, value in local.items():
        struct.pack_into(width, raw, local_at + offset, value)
    for offset, value in central.items():
        struct.pack_into(width, raw, central_at + offset, value)
    path.write_bytes(bytes(raw))


def write_deflate_bomb(path: Path, gib: int = 1) -> None:
    """A real zip of ``gib`` GiB of zeros in about 1 MB, without compressing a GiB.

    After a full flush deflate starts afresh, so every further MiB of zeros compresses to the same bytes: the
    compressed stream is one block repeated. Sizes fit the 32-bit fields, so no zip64 record is needed.
    """
    block = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = first + repeated * (1024 * gib - 1) + compressor.flush()
    size = 1024 * gib * MiB
    crc = 0
    for _ in range(1024 * gib):
        crc = zlib.crc32(block, crc)
    name = b"zeros.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
    )
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), len(local) + len(name) + len(data), 0
    )
    path.write_bytes(local + name + data + central + name + end)


# -- a good submission in every format -------------------------------------------------------------------------


SCRIPT_FILES: Members = {"main.py": MAIN, "model/weights.txt": b"1 2 3\n", "README.md": b"# us\n"}


@pytest.mark.parametrize("fmt", ["folder", "zip", "zip-wrapped", "tar.gz", "tgz", "tar", "tar-wrapped"])
def test_same_content_gives_the_same_hash_in_every_format(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    if fmt == "folder":
        source = write_tree(src / "team-a", SCRIPT_FILES)
        (source / ".DS_Store").write_bytes(b"junk")
        os.utime(source / "main.py", (1, 1))
    elif fmt.startswith("zip"):
        src.mkdir()
        source = make_zip(src / "team-a.zip", SCRIPT_FILES, prefix="team-a/" if "wrapped" in fmt else "")
    else:
        src.mkdir()
        suffix = {"tar.gz": ".tar.gz", "tgz": ".tgz", "tar": ".tar", "tar-wrapped": ".tar"}[fmt]
        source = make_tar(
            src / f"team-a{suffix}", SCRIPT_FILES, prefix="./outer/" if "wrapped" in fmt else "./", gz="gz" in suffix
        )
    result = opened(source, tmp_path)
    assert result.content_hash == reference_hash(SCRIPT_FILES)
    assert (result.kind, result.entry, result.team) == ("script", "main.py", None)
    assert (result.n_files, result.n_bytes) == (3, sum(len(b) for b in SCRIPT_FILES.values()))
    assert result.root == tmp_path / "work" / "submission"
    assert tree(result.root) == SCRIPT_FILES


def test_lone_notebook_and_zipped_notebook_hash_alike(tmp_path: Path) -> None:
    lone = tmp_path / "team-a.ipynb"
    lone.write_bytes(notebook_bytes())
    archive = make_zip(tmp_path / "team-a.zip", {"team-a.ipynb": notebook_bytes()}, prefix="team-a/")
    first = open_submission(lone, tmp_path / "one", SPEC)
    second = open_submission(archive, tmp_path / "two", SPEC)
    assert first.content_hash == second.content_hash == reference_hash({"team-a.ipynb": notebook_bytes()})
    assert (first.kind, first.entry) == ("notebook", "team-a.ipynb")
    assert first.notebook_kernel == "python3"
    assert first.notes == ()


def test_hash_changes_with_bytes_and_with_names(tmp_path: Path) -> None:
    base = opened(write_tree(tmp_path / "a", SCRIPT_FILES), tmp_path / "1").content_hash
    changed = opened(write_tree(tmp_path / "b", {**SCRIPT_FILES, "main.py": MAIN + b"#"}), tmp_path / "2")
    renamed_files = {**SCRIPT_FILES, "README.txt": SCRIPT_FILES["README.md"]}
    del renamed_files["README.md"]
    renamed = opened(write_tree(tmp_path / "c", renamed_files), tmp_path / "3")
    assert len({base, changed.content_hash, renamed.content_hash}) == 3


def test_team_yaml_names_the_team_and_is_left_out_of_the_hash(tmp_path: Path) -> None:
    a = make_zip(tmp_path / "a.zip", {**SCRIPT_FILES, "team.yaml": b"team: Data Wizards\n"})
    b = make_tar(tmp_path / "b.tar.gz", {**SCRIPT_FILES, "team.yaml": b"team: copy-cats_2.0\n"})
    first = open_submission(a, tmp_path / "one", SPEC)
    second = open_submission(b, tmp_path / "two", SPEC)
    plain = open_submission(make_zip(tmp_path / "c.zip", SCRIPT_FILES), tmp_path / "three", SPEC)
    assert (first.team, second.team, plain.team) == ("Data Wizards", "copy-cats_2.0", None)
    assert first.content_hash == second.content_hash == plain.content_hash
    assert first.n_files == 4 and (first.root / "team.yaml").is_file()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"team: ''\n", "1 to 64 characters"),
        (b"team: " + b"x" * 65 + b"\n", "1 to 64 characters"),
        (b"team: '...'\n", "has no letter, number or symbol"),
        (b'team: "evil\\e[2J"\n', r"U\+001B ESCAPE \(a control character\)"),
        (b'team: "a\\u202eb"\n', r"U\+202E RIGHT-TO-LEFT OVERRIDE \(an invisible format character\)"),
        (b'team: "a\\u200db"\n', r"U\+200D ZERO WIDTH JOINER"),
        (b"team: [a, b]\n", "must be a name"),
        (b"name: wizards\n", "no `team:` key"),
        (b"team: [unclosed\n", "not valid YAML"),
        (b"team: caf\xe9\n", "not UTF-8"),
    ],
)
def test_bad_team_yaml_is_refused(tmp_path: Path, text: bytes, match: str) -> None:
    source = write_tree(tmp_path / "src", {"main.py": MAIN, "team.yaml": text})
    message = refused(source, tmp_path, match)
    assert message.startswith("team.yaml: ")


def test_team_yaml_unknown_keys_are_noted(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"main.py": MAIN, "team.yaml": "team: Équipe 7\nmembers: [a]\n".encode()})
    result = opened(source, tmp_path)
    assert result.team == "Équipe 7"
    assert any("members" in note for note in result.notes)


# -- archive safety --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.py", "team/../../evil.py", "a/b/../../../evil.py"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    source = make_zip(tmp_path / "slip.zip", {"main.py": MAIN, name: b"owned"})
    refused(source, tmp_path, r"contains '\.\.'")
    assert not list(tmp_path.rglob("evil.py"))


def test_zip_slip_in_tar_is_refused(tmp_path: Path) -> None:
    source = make_tar(tmp_path / "slip.tar.gz", {"main.py": MAIN, "x/../../evil.py": b"owned"})
    refused(source, tmp_path, r"contains '\.\.'")
    assert not list(tmp_path.rglob("evil.py"))


@pytest.mark.parametrize("name", ["/tmp/abs.py", "C:/Windows/abs.py", "C:\\abs.py"])
def test_absolute_paths_are_refused_in_zip(tmp_path: Path, name: str) -> None:
    source = make_zip(tmp_path / "abs.zip", {"main.py": MAIN, name: b"owned"})
    refused(source, tmp_path, "absolute path")


def test_absolute_paths_are_refused_in_tar(tmp_path: Path) -> None:
    source = make_tar(tmp_path / "abs.tar", {"main.py": MAIN, "/etc/evil.conf": b"owned"}, gz=False)
    refused(source, tmp_path, "absolute path")


@pytest.mark.parametrize("target", ["../../../etc/passwd", "/etc/passwd", "../outside.txt"])
def test_tar_symlink_leaving_the_folder_is_refused(tmp_path: Path, target: str) -> None:
    source = tmp_path / "link.tar.gz"
    with tarfile.open(source, "w:gz") as tf:
        add_tar(tf, "team/main.py", MAIN)
        add_tar(tf, "team/data", kind=tarfile.SYMTYPE, linkname=target)
    refused(source, tmp_path, "is a link to .* outside the submission folder")


def test_tar_symlink_to_the_archive_root_above_the_enclosing_folder_is_refused(tmp_path: Path) -> None:
    # team/data -> ../shared stays inside the archive but leaves the submission (the stripped folder 'team/').
    source = tmp_path / "link.tar"
    with tarfile.open(source, "w") as tf:
        add_tar(tf, "team/main.py", MAIN)
        add_tar(tf, "team/data", kind=tarfile.SYMTYPE, linkname="../shared")
    refused(source, tmp_path, "outside the submission folder")


def test_tar_hardlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "hard.tar"
    with tarfile.open(source, "w") as tf:
        add_tar(tf, "main.py", MAIN)
        add_tar(tf, "passwd", kind=tarfile.LNKTYPE, linkname="../../etc/passwd")
    refused(source, tmp_path, "is a link to .* outside")


def test_zip_symlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "link.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("main.py", MAIN)
        link = zipfile.ZipInfo("secrets")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/shadow")
    refused(source, tmp_path, "'secrets' is a link to '/etc/shadow', outside")


def test_links_inside_are_dropped_and_noted(tmp_path: Path) -> None:
    source = tmp_path / "links.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("main.py", MAIN)
        link = zipfile.ZipInfo("alias.py")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "main.py")
    result = opened(source, tmp_path)
    assert tree(result.root) == {"main.py": MAIN}
    assert not any(p.is_symlink() for p in result.root.rglob("*"))
    assert any("dropped 1 link" in note and "alias.py" in note for note in result.notes)


def test_tar_hard_link_inside_is_stored_as_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "hard.tar.gz"
    with tarfile.open(source, "w:gz") as tf:
        add_tar(tf, "team/main.py", MAIN)
        add_tar(tf, "team/copy.py", kind=tarfile.LNKTYPE, linkname="team/main.py")
        add_tar(tf, "team/alias.py", kind=tarfile.SYMTYPE, linkname="main.py")
    result = opened(source, tmp_path)
    assert tree(result.root) == {"main.py": MAIN, "copy.py": MAIN}
    assert all(p.stat().st_nlink == 1 and not p.is_symlink() for p in result.root.rglob("*"))
    assert any("hard link" in note for note in result.notes)
    assert result.content_hash == reference_hash({"main.py": MAIN, "copy.py": MAIN})


def test_folder_links_are_checked_like_archive_links(tmp_path: Path) -> None:
    inside = write_tree(tmp_path / "inside", {"main.py": MAIN})
    (inside / "alias.py").symlink_to("main.py")
    result = opened(inside, tmp_path / "1")
    assert tree(result.root) == {"main.py": MAIN}
    assert any("alias.py" in note for note in result.notes)

    outside = write_tree(tmp_path / "outside", {"main.py": MAIN})
    (outside / "venv-python").symlink_to("/usr/bin/python3")
    refused(outside, tmp_path / "2", "'venv-python' is a link to '/usr/bin/python3', outside")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_in_tar_are_refused(tmp_path: Path, kind: bytes) -> None:
    source = tmp_path / "dev.tar"
    with tarfile.open(source, "w") as tf:
        add_tar(tf, "main.py", MAIN)
        add_tar(tf, "sda", kind=kind)
    refused(source, tmp_path, "'sda' is a device, FIFO, socket")


def test_fifo_in_a_folder_is_refused_without_blocking(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"main.py": MAIN})
    os.mkfifo(source / "pipe")
    refused(source, tmp_path, "'pipe' is a device, FIFO, socket")


def test_zip_with_a_unix_device_mode_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "dev.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("main.py", MAIN)
        dev = zipfile.ZipInfo("null")
        dev.create_system = 3
        dev.external_attr = (stat.S_IFCHR | 0o666) << 16
        zf.writestr(dev, b"")
    refused(source, tmp_path, "'null' is a device")


# -- bombs and caps --------------------------------------------------------------------------------------------


def test_zip_bomb_1_gib_from_1_mb_is_refused_before_writing(tmp_path: Path) -> None:
    source = tmp_path / "bomb.zip"
    write_deflate_bomb(source)
    assert source.stat().st_size < 2 * MiB
    with zipfile.ZipFile(source) as zf:  # a real, valid zip: the stdlib would happily inflate it
        assert zf.infolist()[0].file_size == 1024 * MiB
    started = time.monotonic()
    refused(source, tmp_path, "larger than 200.0 MiB")
    assert time.monotonic() - started < 2.0


def test_zip_member_with_a_high_ratio_is_refused_as_a_bomb(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "bomb.zip", {"main.py": MAIN, "zeros.bin": bytes(20 * MiB)})
    message = refused(source, tmp_path, "looks like a zip bomb")
    assert "'zeros.bin' expands" in message and "100x" in message


def test_small_compressible_files_are_exempt_from_the_ratio_cap(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "ok.zip", {"main.py": MAIN, "zeros.bin": bytes(MiB)})
    assert opened(source, tmp_path).n_bytes == MiB + len(MAIN)


def test_zip_header_understating_the_size_is_refused(tmp_path: Path) -> None:
    # The central directory says 1,000 bytes; the data inflates to 20 MiB. Ratio and size checks on the header
    # pass, so the refusal must come from reading: the stdlib stops at the declared size and the CRC fails.
    source = make_zip(tmp_path / "liar.zip", {"zeros.bin": bytes(20 * MiB)})
    patch_zip(source, local={22: 1000}, central={24: 1000})
    with zipfile.ZipFile(source) as zf:
        assert zf.infolist()[0].file_size == 1000
    refused(source, tmp_path, "not a valid zip archive")


def test_bytes_are_counted_while_writing_even_if_the_reader_gives_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defence in depth: if an archive reader ever returned more bytes than declared, writing stops there.
    source = make_zip(tmp_path / "liar.zip", {"main.py": b"x" * 1000})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info, *a, **k: io.BytesIO(b"x" * (5 * MiB)))
    refused(source, tmp_path, "holds more data than the 1,000 bytes declared")


def test_tar_gz_bomb_is_refused_by_its_overall_ratio(tmp_path: Path) -> None:
    source = make_tar(tmp_path / "bomb.tar.gz", {"main.py": MAIN, "zeros.bin": bytes(20 * MiB)})
    refused(source, tmp_path, "archive expands .* looks like an archive bomb")


def test_tar_with_an_oversized_header_record_is_cut_short(tmp_path: Path) -> None:
    # A GNU long-name record of 5 MB: tarfile would read it whole into memory; the capped stream refuses first.
    source = tmp_path / "longname.tar"
    with tarfile.open(source, "w", format=tarfile.GNU_FORMAT) as tf:
        add_tar(tf, "a/" * (5 * MiB // 2) + "main.py", MAIN)
    assert source.stat().st_size > 5 * MiB
    refused(source, tmp_path, "tar stream is too long", max_total_bytes=1000, max_entries=10)


def test_oversize_archive_is_refused_by_its_size_before_opening(tmp_path: Path) -> None:
    for name in ("huge.zip", "huge.tar.gz", "huge.ipynb"):
        source = tmp_path / name
        with source.open("wb") as handle:
            handle.truncate(2 * 1024 * MiB)  # sparse: costs no disk
        started = time.monotonic()
        message = refused(source, tmp_path, "more than the limit of 500.0 MiB")
        assert time.monotonic() - started < 0.5
        assert "2,048.0 MiB" in message
        source.unlink()


def test_total_unpacked_bytes_are_capped(tmp_path: Path) -> None:
    files = {"main.py": MAIN, "a.bin": os.urandom(600), "b.bin": os.urandom(600)}
    refused(make_zip(tmp_path / "big.zip", files), tmp_path, "larger than 1,000 bytes", max_total_bytes=1000)
    refused(write_tree(tmp_path / "big", files), tmp_path, "larger than", max_total_bytes=1000)


@pytest.mark.parametrize("fmt", ["zip", "tar", "folder"])
def test_file_count_is_capped(tmp_path: Path, fmt: str) -> None:
    files = {"main.py": MAIN} | {f"f{i}.txt": b"x" for i in range(5)}
    source = {
        "zip": lambda: make_zip(tmp_path / "many.zip", files),
        "tar": lambda: make_tar(tmp_path / "many.tar.gz", files),
        "folder": lambda: write_tree(tmp_path / "many", files),
    }[fmt]()
    refused(source, tmp_path, "more than 5 files", max_files=5)
    assert opened(source, tmp_path / "ok", max_files=6).n_files == 6


def test_zip_entry_count_is_checked_before_reading_the_directory(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "dirs.zip", {"main.py": MAIN} | {f"d{i}/": b"" for i in range(20)})
    refused(source, tmp_path, "declares 21 entries, more than the limit of 10", max_entries=10)


def test_open_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_files"):
        OpenLimits(max_files=0)
    with pytest.raises(ValueError, match="ratio_floor_bytes"):
        OpenLimits(ratio_floor_bytes=-1)


# -- normalisation -----------------------------------------------------------------------------------------------


def test_nested_enclosing_folders_are_stripped(tmp_path: Path) -> None:
    source = tmp_path / "nested.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("outer/", b"")
        zf.writestr("outer/inner/", b"")
        zf.writestr("outer/inner/main.py", MAIN)
        zf.writestr("outer/inner/data/x.csv", b"a\n")
        zf.writestr("outer/inner/empty/", b"")
    result = opened(source, tmp_path)
    assert tree(result.root) == {"main.py": MAIN, "data/x.csv": b"a\n"}
    assert (result.root / "empty").is_dir()
    assert any("'outer/inner/'" in note for note in result.notes)
    assert result.content_hash == reference_hash({"main.py": MAIN, "data/x.csv": b"a\n"})


def test_a_single_folder_beside_a_file_is_not_stripped(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "x.zip", {"main.py": MAIN, "src/util.py": b"x = 1\n"})
    assert tree(opened(source, tmp_path).root) == {"main.py": MAIN, "src/util.py": b"x = 1\n"}


def test_macos_and_jupyter_junk_is_dropped(tmp_path: Path) -> None:
    source = make_zip(
        tmp_path / "mac.zip",
        {
            "team/main.py": MAIN,
            "team/.DS_Store": b"\0\0\0\1Bud1",
            "team/._main.py": b"\0\5\26\7",
            "__MACOSX/team/._main.py": b"\0\5\26\7",
            "__MACOSX/._team": b"\0\5\26\7",
            "team/.ipynb_checkpoints/solution-checkpoint.ipynb": b"{}",
            "team/pkg/__pycache__/mod.cpython-311.pyc": b"\x00",
            "team/pkg/mod.py": b"",
        },
    )
    result = opened(source, tmp_path)
    assert tree(result.root) == {"main.py": MAIN, "pkg/mod.py": b""}
    notes = " | ".join(result.notes)
    for junk in ("__MACOSX/", ".DS_Store", "._*", ".ipynb_checkpoints/", "__pycache__/"):
        assert junk in notes
    assert "stripped the enclosing folder 'team/'" in notes
    assert result.content_hash == reference_hash({"main.py": MAIN, "pkg/mod.py": b""})


def test_non_utf8_name_in_tar_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "latin1.tar"
    with tarfile.open(source, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tf:
        add_tar(tf, "main.py", MAIN)
        add_tar(tf, b"donn\xe9es.csv".decode("utf-8", "surrogateescape"), b"1\n")
    assert b"donn\xe9es.csv" in source.read_bytes()
    message = refused(source, tmp_path, "is not valid UTF-8")
    assert r"donn\xe9es.csv" in message


def test_non_utf8_name_in_zip_is_refused_and_utf8_without_flag_is_read(tmp_path: Path) -> None:
    bad = make_zip(tmp_path / "bad.zip", {"main.py": MAIN, "cafX.py": b""})
    bad.write_bytes(bad.read_bytes().replace(b"cafX.py", b"caf\xe9.py"))
    refused(bad, tmp_path / "1", "is not valid UTF-8")

    good = make_zip(tmp_path / "good.zip", {"main.py": MAIN, "cafXY.py": b""})
    good.write_bytes(good.read_bytes().replace(b"cafXY.py", "café.py".encode()))
    assert tree(opened(good, tmp_path / "2").root) == {"main.py": MAIN, "café.py": b""}


def test_backslashes_in_zip_names_are_folder_separators(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "win.zip", {"team\\main.py": MAIN, "team\\lib\\util.py": b"x = 1\n"})
    assert tree(opened(source, tmp_path).root) == {"main.py": MAIN, "lib/util.py": b"x = 1\n"}


@pytest.mark.parametrize("case", ["empty zip", "only junk", "empty tar", "zero bytes", "empty gzip", "empty folder"])
def test_empty_submissions_are_refused(tmp_path: Path, case: str) -> None:
    if case == "empty zip":
        source = make_zip(tmp_path / "e.zip", {})
    elif case == "only junk":
        source = make_zip(tmp_path / "e.zip", {"__MACOSX/._x": b"x", "team/": b"", ".DS_Store": b"x"})
    elif case == "empty tar":
        source = make_tar(tmp_path / "e.tar", {}, gz=False)
    elif case == "zero bytes":
        source = tmp_path / "e.zip"
        source.write_bytes(b"")
    elif case == "empty gzip":
        import gzip

        source = tmp_path / "e.tar.gz"
        source.write_bytes(gzip.compress(b""))
    else:
        source = tmp_path / "e"
        (source / "sub").mkdir(parents=True)
    refused(source, tmp_path, "empty")


@pytest.mark.parametrize(("name", "content"), [("x.zip", b"PK\x03\x04 not really"), ("x.tar.gz", b"\x1f\x8bgarbage")])
def test_corrupt_archives_are_refused(tmp_path: Path, name: str, content: bytes) -> None:
    source = tmp_path / name
    source.write_bytes(content * 100)
    refused(source, tmp_path, "not a valid (zip|tar) archive")


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "team.rar"
    source.write_bytes(b"Rar!")
    with pytest.raises(SubmissionError, match="unsupported submission format"):
        open_submission(source, tmp_path / "out", SPEC)
    with pytest.raises(SubmissionError, match="does not exist"):
        open_submission(tmp_path / "missing.zip", tmp_path / "out", SPEC)


def test_duplicate_members_and_file_folder_clashes_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "dup.zip"
    with zipfile.ZipFile(source, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("main.py", MAIN)
        zf.writestr("main.py", b"print('other')\n")
    refused(source, tmp_path / "1", "'main.py' appears twice")
    clash = make_zip(tmp_path / "clash.zip", {"main.py": MAIN, "data": b"x", "data/x.csv": b"1"})
    refused(clash, tmp_path / "2", "'data' is both a file and a folder")


def test_encrypted_zip_members_are_refused(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "secret.zip", {"main.py": MAIN})
    patch_zip(source, local={6: 1}, central={8: 1}, width="<H")
    refused(source, tmp_path, "encrypted")


def test_files_get_readable_modes_whatever_the_umask(tmp_path: Path) -> None:
    source = tmp_path / "modes.tar"
    with tarfile.open(source, "w") as tf:
        add_tar(tf, "main.py", MAIN, mode=0o600)
        add_tar(tf, "run.sh", b"#!/bin/sh\n", mode=0o4777)
        add_tar(tf, "lib/x.py", b"", mode=0o666)
    old = os.umask(0o077)
    try:
        result = opened(source, tmp_path)
    finally:
        os.umask(old)
    modes = {p.relative_to(result.root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in result.root.rglob("*")}
    assert modes == {"main.py": 0o644, "run.sh": 0o755, "lib": 0o755, "lib/x.py": 0o644}


# -- the source and the work folder ----------------------------------------------------------------------------


def test_source_is_untouched_and_nothing_is_written_outside_dest(tmp_path: Path) -> None:
    source = write_tree(
        tmp_path / "in" / "team", {**SCRIPT_FILES, "solution.ipynb": notebook_bytes("nbformat_v3.ipynb")}
    )
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in source.rglob("*") if p.is_file()}
    outside_before = set((tmp_path / "in").rglob("*"))
    result = opened(source, tmp_path)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in source.rglob("*") if p.is_file()} == before
    assert set((tmp_path / "in").rglob("*")) == outside_before
    assert set(tmp_path.iterdir()) == {tmp_path / "in", tmp_path / "work"}
    assert result.kind == "notebook"


def test_dest_must_be_empty_and_apart_from_the_source(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"main.py": MAIN})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        open_submission(source, busy, SPEC)
    with pytest.raises(ValueError, match="inside the submission"):
        open_submission(source, source / "work", SPEC)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert open_submission(source, empty, SPEC).root == empty


def test_an_existing_empty_dest_is_left_empty_on_error(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "x.zip", {"main.py": MAIN, "../evil.py": b""})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(SubmissionError):
        open_submission(source, dest, SPEC)
    assert dest.is_dir() and not any(dest.iterdir())


def test_a_late_error_removes_what_was_already_written(tmp_path: Path) -> None:
    # Everything unpacks, then the notebook check fails: the work folder must still be cleaned.
    source = make_zip(
        tmp_path / "x.zip", {"data.csv": b"1\n" * 1000, "solution.ipynb": notebook_bytes("not_json.ipynb")}
    )
    refused(source, tmp_path, "not a valid notebook")


# -- kind and entry ----------------------------------------------------------------------------------------------


def test_named_notebook_wins_among_several(tmp_path: Path) -> None:
    nb = notebook_bytes()
    source = write_tree(tmp_path / "s", {"solution.ipynb": nb, "explore.ipynb": b"not even json", "main.py": MAIN})
    result = opened(source, tmp_path)
    assert (result.kind, result.entry) == ("notebook", "solution.ipynb")


def test_a_single_notebook_of_any_name_is_the_entry(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "s", {"my analysis.ipynb": notebook_bytes(), "helpers/util.py": b""})
    result = opened(source, tmp_path)
    assert (result.kind, result.entry) == ("notebook", "my analysis.ipynb")


def test_several_notebooks_without_the_named_one_fall_back_to_the_script(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "s", {"a.ipynb": b"{}", "b.ipynb": b"{}", "main.py": MAIN})
    result = opened(source, tmp_path)
    assert (result.kind, result.entry) == ("script", "main.py")


def test_no_entry_point_lists_what_was_found_and_what_is_expected(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "s", {"a.ipynb": b"{}", "b.ipynb": b"{}", "run.py": MAIN, "lib/x.py": b""})
    message = refused(source, tmp_path, "no entry point")
    assert "'solution.ipynb'" in message and "'main.py'" in message and "python main.py" in message
    assert "a.ipynb, b.ipynb, run.py, lib/" in message
    assert "it holds 2 notebooks" in message


def test_a_kind_the_task_does_not_accept_is_named(tmp_path: Path) -> None:
    scripts_only = SubmissionSpec(kinds=("script",))
    notebooks_only = SubmissionSpec(kinds=("notebook",))
    nb_source = write_tree(tmp_path / "nb", {"solution.ipynb": notebook_bytes()})
    script_source = write_tree(tmp_path / "py", {"main.py": MAIN})
    refused(
        nb_source,
        tmp_path / "1",
        "accepts script submissions only .* holds the notebook 'solution.ipynb'",
        scripts_only,
    )
    refused(script_source, tmp_path / "2", "accepts notebook submissions only .* holds 'main.py'", notebooks_only)
    lone = tmp_path / "x.ipynb"
    lone.write_bytes(notebook_bytes())
    refused(lone, tmp_path / "3", "accepts script submissions only", scripts_only)


@pytest.mark.parametrize(
    ("command", "files", "entry"),
    [
        (("python", "-u", "src/run.py", "--fast"), {"src/run.py": MAIN}, "src/run.py"),
        (("python3", "-W", "ignore", "main.py"), {"main.py": MAIN}, "main.py"),
        (
            ("python", "-m", "team_pkg"),
            {"team_pkg/__main__.py": MAIN, "team_pkg/__init__.py": b""},
            "team_pkg/__main__.py",
        ),
        (("bash", "run.sh"), {"run.sh": b"python main.py\n", "main.py": MAIN}, "run.sh"),
        (("./run.sh",), {"run.sh": b"#!/bin/sh\n", "x.py": b""}, "run.sh"),
    ],
)
def test_script_entry_follows_the_command(tmp_path: Path, command: tuple[str, ...], files: Members, entry: str) -> None:
    spec = SubmissionSpec(kinds=("script",), command=command)
    result = opened(write_tree(tmp_path / "s", {**files, "README.md": b""}), tmp_path, spec)
    assert (result.kind, result.entry) == ("script", entry)


# -- the entry notebook ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "match"),
    [
        ("not_json.ipynb", r"is not a valid notebook: not JSON \(Expecting value: line 1 column 1"),
        ("json_list.ipynb", "is not a valid notebook: the file holds a JSON list"),
        ("schema_error.ipynb", "is not a valid notebook: 'execution_count' is a required property .at cells/0."),
        ("cells_not_a_list.ipynb", "is not a valid notebook: TypeError: 'int' object is not iterable"),
    ],
)
def test_invalid_notebooks_are_refused_at_the_door(tmp_path: Path, fixture: str, match: str) -> None:
    lone = tmp_path / "solution.ipynb"
    lone.write_bytes(notebook_bytes(fixture))
    refused(lone, tmp_path, match)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b'{"nbformat": 5, "nbformat_minor": 0, "cells": []}', "nbformat 5 is not supported"),
        (b'{"cells": []}', "no integer 'nbformat'"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_other_broken_notebooks_are_refused(tmp_path: Path, text: bytes, match: str) -> None:
    lone = tmp_path / "solution.ipynb"
    lone.write_bytes(text)
    refused(lone, tmp_path, match)


def test_a_notebook_without_a_parameters_cell_is_refused_with_the_reason_and_the_fix(tmp_path: Path) -> None:
    source = make_zip(tmp_path / "x.zip", {"solution.ipynb": notebook_bytes("no_parameters_tag.ipynb")})
    message = refused(source, tmp_path, "no cell of 'solution.ipynb' is tagged 'parameters'")
    assert "inserts them at the top" in message and "silently overrides" in message
    assert "JupyterLab" in message and "Cell Tags" in message


def test_two_parameters_cells_are_refused_naming_them(tmp_path: Path) -> None:
    lone = tmp_path / "solution.ipynb"
    lone.write_bytes(notebook_bytes("two_parameters_cells.ipynb"))
    message = refused(lone, tmp_path, "2 cells of 'solution.ipynb' are tagged 'parameters'")
    assert "cell 1 (\"input_dir = 'data'\")" in message and "cell 3 (\"output_dir = 'output'\")" in message


def test_a_parameters_tag_on_a_markdown_cell_is_refused(tmp_path: Path) -> None:
    lone = tmp_path / "solution.ipynb"
    lone.write_bytes(notebook_bytes("parameters_tag_on_markdown.ipynb"))
    refused(lone, tmp_path, "cell 1 of 'solution.ipynb' is tagged 'parameters' but is a markdown cell")


@pytest.mark.parametrize(("fixture", "version"), [("nbformat_v3.ipynb", "3.0"), ("nbformat_v4_2.ipynb", "4.2")])
def test_old_notebooks_are_upgraded_in_the_work_folder(tmp_path: Path, fixture: str, version: str) -> None:
    original = notebook_bytes(fixture)
    source = write_tree(tmp_path / "s", {"solution.ipynb": original, "main.py": MAIN})
    result = opened(source, tmp_path)
    assert f"upgraded solution.ipynb from nbformat {version} to 4.5" in result.notes
    upgraded = nbformat.read(result.root / "solution.ipynb", as_version=nbformat.NO_CONVERT)
    assert (upgraded.nbformat, upgraded.nbformat_minor) == (4, 5)
    nbformat.validate(upgraded)
    assert [cell.id for cell in upgraded.cells] == [f"cell-{i}" for i in range(len(upgraded.cells))]
    assert "parameters" in upgraded.cells[-2].metadata.tags
    # The hash is the team's bytes, not the upgrade's: stable across harness (nbformat) versions.
    assert result.content_hash == reference_hash({"solution.ipynb": original, "main.py": MAIN})
    again = opened(source, tmp_path / "again")
    assert (again.root / "solution.ipynb").read_bytes() == (result.root / "solution.ipynb").read_bytes()


def test_a_valid_current_notebook_is_kept_byte_for_byte(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "s", {"solution.ipynb": notebook_bytes()})
    result = opened(source, tmp_path)
    assert (result.root / "solution.ipynb").read_bytes() == notebook_bytes()
    assert result.notes == ()


def test_a_byte_order_mark_is_removed(tmp_path: Path) -> None:
    lone = tmp_path / "solution.ipynb"
    lone.write_bytes(b"\xef\xbb\xbf" + notebook_bytes())
    result = opened(lone, tmp_path)
    assert (result.root / "solution.ipynb").read_bytes().startswith(b"{")
    assert any("byte-order mark" in note for note in result.notes)


@pytest.mark.parametrize(
    ("fixture", "kernel", "note"),
    [("other_kernel.ipynb", "ir", "declares the kernel 'ir'"), ("no_kernelspec.ipynb", None, "declares no kernel")],
)
def test_a_different_or_missing_kernel_is_a_note_not_an_error(
    tmp_path: Path, fixture: str, kernel: str | None, note: str
) -> None:
    lone = tmp_path / "solution.ipynb"
    lone.write_bytes(notebook_bytes(fixture))
    result = opened(lone, tmp_path)
    assert result.notebook_kernel == kernel
    assert any(note in n and "'python3'" in n for n in result.notes)


def test_missing_cell_ids_in_a_current_notebook_are_repaired(tmp_path: Path) -> None:
    data = json.loads(notebook_bytes())
    for cell in data["cells"]:
        del cell["id"]
    lone = tmp_path / "solution.ipynb"
    lone.write_text(json.dumps(data))
    result = opened(lone, tmp_path)
    assert any("cell id" in note for note in result.notes)
    nbformat.validate(nbformat.read(result.root / "solution.ipynb", as_version=4))


# -- iter_entries ------------------------------------------------------------------------------------------------


def test_iter_entries_lists_one_entry_per_team(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "submissions"
    write_tree(root / "team-a", {"main.py": MAIN})
    for name in ("team-b.zip", "team-c.tar.gz", "team-d.tgz", "team-e.tar", "team-f.ipynb", "Team-G.ZIP"):
        (root / name).write_bytes(b"x")
    (root / ".hidden.zip").write_bytes(b"x")
    (root / ".git").mkdir()
    (root / "__MACOSX").mkdir()
    (root / "README.md").write_text("notes")
    with caplog.at_level(logging.WARNING, logger="harness.submission"):
        entries = iter_entries(root)
    assert entries == [
        SubmissionEntry(root / "Team-G.ZIP", "Team-G"),
        SubmissionEntry(root / "team-a", "team-a"),
        SubmissionEntry(root / "team-b.zip", "team-b"),
        SubmissionEntry(root / "team-c.tar.gz", "team-c"),
        SubmissionEntry(root / "team-d.tgz", "team-d"),
        SubmissionEntry(root / "team-e.tar", "team-e"),
        SubmissionEntry(root / "team-f.ipynb", "team-f"),
    ]
    assert "README.md" in caplog.text


def test_iter_entries_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="not a folder of submissions"):
        iter_entries(tmp_path / "missing")


@pytest.mark.parametrize(
    ("entry_name", "team"),
    [
        ("team@home", "team@home"),  # issue 11: display names keep symbols and punctuation; slugs are for paths
        ("a|b", "a|b"),
        ("esc\x1b[31mred", "esc_[31mred"),  # a control character is never kept
        ("=cmd()", "=cmd()"),  # CSV exports neutralise the formula prefix
        ("x" * 70, "x" * 64),
        ("café", "café"),
        ("Ёжики №7 ✨", "Ёжики №7 ✨"),
        ("cafe\u0301", "café"),  # NFC: a macOS (NFD) folder name is the same team as its team.yaml
        ("a\u202eb\u200dc", "a_b_c"),
    ],
)
def test_team_names_from_entry_names_follow_the_team_yaml_rules(tmp_path: Path, entry_name: str, team: str) -> None:
    (tmp_path / entry_name).mkdir()
    [entry] = iter_entries(tmp_path)
    assert entry.default_team_name == team
