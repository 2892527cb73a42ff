"""A self-check replaces only artifact folders it made itself: a team's own folder is never deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.selfcheck import ARTIFACTS_MARKER, _fresh_artifacts_dir


def test_a_teams_own_folder_is_refused_and_kept(tmp_path: Path) -> None:
    thesis = tmp_path / "important" / "notes" / "thesis.txt"
    thesis.parent.mkdir(parents=True)
    thesis.write_text("months of work")
    with pytest.raises(HarnessError, match="with files that no self-check made; give a new or empty folder"):
        _fresh_artifacts_dir(tmp_path / "important")
    assert thesis.read_text() == "months of work"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(HarnessError, match="is a file"):
        _fresh_artifacts_dir(tmp_path / "a-file")


def test_new_empty_and_earlier_check_folders_are_used(tmp_path: Path) -> None:
    made = _fresh_artifacts_dir(tmp_path / "new" / "art")
    assert (made / ARTIFACTS_MARKER).is_file()
    (made / "log.txt").write_text("old log")
    again = _fresh_artifacts_dir(made)  # an earlier check's folder: replaced
    assert sorted(p.name for p in again.iterdir()) == [ARTIFACTS_MARKER]
    (tmp_path / "empty").mkdir()
    assert (_fresh_artifacts_dir(tmp_path / "empty") / ARTIFACTS_MARKER).is_file()
