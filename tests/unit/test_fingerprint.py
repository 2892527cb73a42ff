"""Unchanged entries are recognised by a cheap fingerprint; a changed one never is (issue 13); default workers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from spec_fixtures import toy_spec

from harness.concurrency import BUSY_BELOW_IDLE, IdleWindow, cpu_ticks, default_workers, idle_cpu_fraction
from harness.spec import TaskSpec
from harness.submission import FingerprintCache, SubmissionEntry, open_entry
from harness.submission import fingerprint as fingerprint_module

NOTEBOOK = (
    '{"cells": [{"cell_type": "code", "execution_count": null, "id": "c1", "metadata": {"tags": ["parameters"]}, '
    '"outputs": [], "source": "input_dir = %d"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
)


def _settle(_path: Path) -> None:
    """Wait until the entry's times are older than SETTLE_S (set to 0.2 s by the ``spec`` fixture)."""
    time.sleep(0.3)


def _open_cached(spec: TaskSpec, root: Path, path: Path) -> tuple[bool, str]:
    """Open ``path`` as a batch does (cache first); (was it taken from the cache, its content hash)."""
    cache = FingerprintCache(root, spec.submission)
    found = cache.lookup(path)
    if found is not None:
        hit, content_hash = True, found[0].content_hash
    else:
        opened, reason = open_entry(SubmissionEntry(path, path.stem), root, spec.submission)
        assert opened is not None, reason
        cache.remember(path, opened, dt.datetime.now(dt.UTC))
        hit, content_hash = False, opened.content_hash
    cache.save()
    return hit, content_hash


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TaskSpec:
    monkeypatch.setattr(fingerprint_module, "SETTLE_S", 0.2)  # instead of 2 s: a quicker test
    return toy_spec(tmp_path / "task")


def test_an_unchanged_notebook_is_taken_from_the_cache_and_a_rewritten_one_is_opened_again(
    spec: TaskSpec, tmp_path: Path
) -> None:
    root = tmp_path / "opened"
    root.mkdir()
    entry = tmp_path / "team-a.ipynb"
    entry.write_text(NOTEBOOK % 1)
    _settle(entry)
    first = _open_cached(spec, root, entry)
    assert first[0] is False
    assert _open_cached(spec, root, entry) == (True, first[1])
    # Same size, modification time set back to what it was: the change time still tells.
    info = entry.stat()
    entry.write_text(NOTEBOOK % 2)
    os.utime(entry, ns=(info.st_atime_ns, info.st_mtime_ns))
    hit, changed = _open_cached(spec, root, entry)
    assert hit is False and changed != first[1]


def test_a_fresh_entry_is_not_remembered_until_its_times_settle(spec: TaskSpec, tmp_path: Path) -> None:
    root = tmp_path / "opened"
    root.mkdir()
    entry = tmp_path / "team-a.ipynb"
    entry.write_text(NOTEBOOK % 1)  # just written: a second write within the same clock tick keeps its times
    assert _open_cached(spec, root, entry)[0] is False
    assert _open_cached(spec, root, entry)[0] is False
    _settle(entry)
    assert _open_cached(spec, root, entry)[0] is False  # remembered now
    assert _open_cached(spec, root, entry)[0] is True


def test_a_file_changed_inside_a_folder_entry_or_a_lost_opened_folder_is_opened_again(
    spec: TaskSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "opened"
    root.mkdir()
    entry = tmp_path / "team-b"
    entry.mkdir()
    (entry / "main.py").write_text("print(1)\n")
    _settle(entry)
    hit, content_hash = _open_cached(spec, root, entry)
    assert not hit and _open_cached(spec, root, entry) == (True, content_hash)
    (entry / "notes.txt").write_text("x")  # a new file: the folder's times and listing change
    _settle(entry)
    hit, second = _open_cached(spec, root, entry)
    assert not hit and second != content_hash
    import shutil

    shutil.rmtree(root / second)  # the opened copy is gone: never trusted blindly
    assert _open_cached(spec, root, entry) == (False, second)
    # Another way of opening entries (another harness version) does not use the cache either.
    monkeypatch.setattr(fingerprint_module, "__version__", "0.0.0-other")
    assert _open_cached(spec, root, entry)[0] is False


def test_default_workers_double_the_cores_within_memory_and_the_spec_limits(spec: TaskSpec) -> None:
    # a worker scores a run after its sandbox is gone: the larger of the two limits, not their sum, per run
    per_run = max(spec.limits.memory_mb, spec.evaluator.memory_mb)
    many = 1_000_000.0
    assert default_workers(spec, cores=2, memory_mb=many) in {int(2 / spec.limits.cpus), int(4 / spec.limits.cpus)}
    assert default_workers(spec, cores=2, memory_mb=many, idle=1.0) == int(4 / spec.limits.cpus)  # a quiet machine
    assert default_workers(spec, cores=2, memory_mb=many, idle=0.6) == int(4 / spec.limits.cpus)
    assert default_workers(spec, cores=2, memory_mb=many, idle=0.4) == int(2 / spec.limits.cpus)  # a busy one
    assert default_workers(spec, cores=2, memory_mb=many, idle=0.0) == int(2 / spec.limits.cpus)
    assert default_workers(spec, cores=64, memory_mb=per_run * 4 / 0.75, idle=1.0) == 4  # memory bounds it
    assert default_workers(spec, cores=64, memory_mb=per_run * 4 / 0.75 - 1, idle=1.0) == 3
    assert default_workers(spec, cores=1, memory_mb=1.0) == 1  # never below one


def test_the_idle_share_is_what_the_cpus_do_now_not_a_minute_ago() -> None:
    cores = os.cpu_count() or 1
    started = time.monotonic()
    quiet = idle_cpu_fraction(0.2)
    assert quiet is not None and 0.0 <= quiet <= 1.0
    assert 0.15 <= time.monotonic() - started < 2.0  # it samples for the time asked
    # Every CPU spinning: well under the busy threshold (other work on the machine only lowers it further).
    spinners = [
        subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
        for _ in range(cores)
    ]
    try:
        time.sleep(0.3)  # the spinners are running
        busy = idle_cpu_fraction(0.5)
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
    assert busy is not None and busy < BUSY_BELOW_IDLE


def test_the_batch_s_own_planning_is_the_idle_sample_and_its_cpu_counts_as_idle() -> None:
    # A window that already lasted its minimum answers at once (planning was the sample: no sleep after it).
    window = IdleWindow()
    before, cpu_before = cpu_ticks(), os.times()
    assert before is not None
    end = time.monotonic() + 0.4
    while time.monotonic() < end:  # this process busy, as a batch opening and hashing its entries is
        pass
    after, cpu_after = cpu_ticks(), os.times()
    asked = time.monotonic()
    share = window.idle_share(min_s=0.2)
    assert time.monotonic() - asked < 0.1
    assert after is not None and share is not None
    total = after[1] - before[1]
    raw = (after[0] - before[0]) / total  # what /proc/stat alone says: our own spinning looks like other work
    # the share of all CPUs our spinning took: about 1 / cores on a quiet machine, less on a busy one (measured, not
    # assumed: under load the spinning gets less than its 0.4 s of CPU)
    spent = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    own = spent * os.sysconf("SC_CLK_TCK") / total
    # Our own CPU time is given back as idle (less a tick's rounding on each side); other work still counts.
    assert share >= min(1.0, raw + own) - 0.1 - 1e-9
    assert share <= 1.0
    # A fresh window sleeps what is left of its minimum.
    started = time.monotonic()
    assert IdleWindow().idle_share(min_s=0.2) is not None
    assert 0.15 <= time.monotonic() - started < 2.0


def test_a_symlinked_entry_is_opened_every_time_so_a_changed_target_is_seen(spec: TaskSpec, tmp_path: Path) -> None:
    root = tmp_path / "opened"
    root.mkdir()
    real = tmp_path / "elsewhere" / "team-c"
    real.mkdir(parents=True)
    (real / "main.py").write_text("print(1)\n")
    entry = tmp_path / "entries" / "team-c"
    entry.parent.mkdir()
    entry.symlink_to(real)  # the link's own times never change when its target's files do
    _settle(entry)
    first = _open_cached(spec, root, entry)
    assert _open_cached(spec, root, entry) == (False, first[1])  # never taken from the cache
    (real / "main.py").write_text("print(22)\n")
    _settle(entry)
    hit, changed = _open_cached(spec, root, entry)
    assert hit is False and changed != first[1]
