"""The CLI shell: errors as one line with their documented exit code, usage errors, help (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import EXIT_CODES, SpecError

runner = CliRunner()


def test_error_messages_keep_brackets_and_use_the_documented_exit_code(tmp_path: Path) -> None:
    folder = tmp_path / "[validation]"
    folder.mkdir()
    result = runner.invoke(app, ["image", "build", str(folder)])
    assert result.exit_code == EXIT_CODES[SpecError]
    assert "[validation]" in result.output and "no task.yaml" in result.output
    assert "Traceback" not in result.output


def test_parquet_without_an_output_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["leaderboard", "some-task", "--home", str(tmp_path), "--format", "parquet"])
    assert result.exit_code == 2
    assert "--output" in result.output
    assert not (tmp_path / "results.sqlite").exists()  # nothing created for a command that cannot run


def test_run_refuses_a_missing_submissions_folder_before_creating_a_store(tmp_path: Path) -> None:
    task = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"
    result = runner.invoke(app, ["run", str(task), str(tmp_path / "nope"), "--home", str(tmp_path / "home")])
    assert result.exit_code == 4
    assert "not a folder of submissions" in result.output
    assert not (tmp_path / "home").exists()


def test_every_command_has_help() -> None:
    for command in (
        ["run"],
        ["leaderboard"],
        ["check"],
        ["starter"],
        ["report"],
        ["task", "validate"],
        ["task", "prepare"],
        ["image", "build"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_an_explicit_home_beats_the_database_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.store import resolve_db_url

    monkeypatch.setenv("HARNESS_DB_URL", "sqlite:////elsewhere/results.sqlite")
    assert resolve_db_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'results.sqlite'}"
    assert resolve_db_url(None, None) == "sqlite:////elsewhere/results.sqlite"
    assert resolve_db_url("postgresql+psycopg://db/x", tmp_path) == "postgresql+psycopg://db/x"


def test_leaderboard_output_format_comes_from_the_suffix_or_is_refused(tmp_path: Path) -> None:
    for args in (
        ["--format", "xml"],
        ["--output", str(tmp_path / "x.txt")],
        ["--format", "table", "--output", "a.csv"],
    ):
        result = runner.invoke(app, ["leaderboard", "some-task", "--home", str(tmp_path), *args])
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output
