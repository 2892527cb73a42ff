"""The one settings object: HARNESS_* variables, typed, with the store chosen most explicit first."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.settings import DEFAULT_DEBIAN_MIRROR, get_settings


def test_the_store_is_chosen_most_explicit_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_DB_URL", "postgresql+psycopg://judge@db/hackathon")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "env-home"))
    settings = get_settings()
    assert settings.store_url("sqlite:///x.sqlite", tmp_path) == "sqlite:///x.sqlite"  # --db
    assert settings.store_url(None, tmp_path / "h") == f"sqlite:///{(tmp_path / 'h').resolve()}/results.sqlite"
    assert settings.store_url() == "postgresql+psycopg://judge@db/hackathon"  # $HARNESS_DB_URL beats $HARNESS_HOME
    monkeypatch.delenv("HARNESS_DB_URL")
    assert get_settings().store_url() == f"sqlite:///{(tmp_path / 'env-home').resolve()}/results.sqlite"


def test_empty_and_odd_values_mean_what_a_user_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HARNESS_HOME", "HARNESS_DB_URL", "HARNESS_TASKS", "HARNESS_CACHE_DIR", "HARNESS_DEBIAN_MIRROR"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("HARNESS_SESSION_ID", "ci run/42;rm -rf")
    monkeypatch.setenv("HARNESS_PROGRESS", "0")  # as before: any value turns progress bars on
    settings = get_settings()
    assert settings.home_dir() == Path(".harness").resolve()  # not the working folder itself
    assert settings.db_url is None and settings.tasks is None and settings.cache_dir is None
    assert settings.debian_mirror == DEFAULT_DEBIAN_MIRROR
    assert settings.session_id == "cirun42rm-rf" and settings.progress is True
    monkeypatch.setenv("HARNESS_HOME", "~/judging")
    assert get_settings().home_dir() == Path.home() / "judging"
