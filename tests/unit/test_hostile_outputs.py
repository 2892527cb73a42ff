"""Hostile and odd prediction files (issue 7): each one is refused with a reason a team can act on, or scored right.

The prediction files are generated for the minimal fixture task (``y = 3x + 1``; 25 test ids, 9 of them public;
no bounds on ``y``), prepared in a temporary folder. Validation cases call :func:`validate_predictions`; cases
whose outcome depends on the evaluator go through :func:`score_outputs` (the evaluator's own process), as a
judging run does. No Docker, no kernel.
"""

from __future__ import annotations

import csv
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from harness.errors import InvalidOutputError
from harness.scoring import score_outputs, validate_predictions
from harness.spec import TaskSpec, load_spec

MINIMAL_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"
GiB = 1024**3


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared copy of the minimal fixture task."""
    from harness.tasks import prepare_task

    folder = tmp_path_factory.mktemp("hostile-outputs") / "minimal"
    shutil.copytree(MINIMAL_TASK, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    prepare_task(folder, echo=lambda _msg: None)
    return folder


@pytest.fixture(scope="module")
def spec(task_dir: Path) -> TaskSpec:
    """The minimal task's spec."""
    return load_spec(task_dir)


@pytest.fixture(scope="module")
def rows(task_dir: Path) -> list[tuple[str, int]]:
    """The test phase's rows to predict: ``(id, x)``."""
    with (task_dir / "data" / "input" / "test" / "test.csv").open() as fh:
        return [(r["id"], int(r["x"])) for r in csv.DictReader(fh)]


def respec(task_dir: Path, dest: Path, **y_column: object) -> TaskSpec:
    """A copy of the task whose ``y`` column takes the given fields (e.g. ``dtype="int"``, ``min=0``).

    Args:
        task_dir: the prepared minimal task.
        dest: an empty folder for the copy (its data is copied too).
        **y_column: fields of the ``y`` column in ``predictions.columns`` to set.

    Returns:
        The copy's spec.
    """
    shutil.copytree(task_dir, dest)
    raw = yaml.safe_load((dest / "task.yaml").read_text())
    for column in raw["predictions"]["columns"]:
        if column["name"] == "y":
            column.update(y_column)
    (dest / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_spec(dest)


def write(folder: Path, data: bytes) -> Path:
    """Write ``data`` as ``folder/predictions.csv`` (folder created) and return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.csv"
    path.write_bytes(data)
    return path


def table(rows: list[tuple[str, int]], value: str = "{y}", *, newline: str = "\n") -> bytes:
    """A prediction table: header ``id,y`` and one line per row; ``value`` is formatted with ``y`` (the truth)."""
    lines = ["id,y", *(f"{rid},{value.format(y=3 * x + 1)}" for rid, x in rows)]
    return newline.join([*lines, ""]).encode()


def refused(spec: TaskSpec, path: Path) -> InvalidOutputError:
    """Validate ``path`` against every test id, expecting :class:`InvalidOutputError`; return it."""
    with pytest.raises(InvalidOutputError) as info:
        validate_predictions(spec, path, phase="test")
    return info.value


# -- size ------------------------------------------------------------------------------------------------------


def test_a_1_gib_one_column_csv_is_refused_by_its_size_without_being_read(spec: TaskSpec, tmp_path: Path) -> None:
    path = tmp_path / "out" / "predictions.csv"
    path.parent.mkdir()
    with path.open("wb") as fh:  # sparse: one column of nothing, 1 GiB long, no disk used
        fh.write(b"y\n")
        fh.truncate(GiB)
    assert path.stat().st_blocks * 512 < 1024 * 1024
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = refused(spec, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 5 * 1024**2  # bytes: the file was never loaded
    assert error.message == "predictions.csv is too large"
    assert f"is 1,024.0 MiB, above the task's limit of {spec.predictions.max_mb} MiB" in error.problems[0]

    started = time.perf_counter()  # the judging path (the evaluator's process) refuses it as fast
    with pytest.raises(InvalidOutputError, match="too large"):
        score_outputs(spec, path.parent, "test")
    assert time.perf_counter() - started < 30.0


# -- number formats --------------------------------------------------------------------------------------------


def test_quoted_thousands_separators_are_refused_with_the_fix(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    error = refused(spec, write(tmp_path, table(rows, '"1,{y}.5"')))
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert f"column 'y' must hold numbers (float); {len(rows)} values are not, first: '1,226.5' at id r075" in problem
    assert "without thousands separators" in problem and "(1234.5, not 1,234.5)" in problem


def test_unquoted_thousands_separators_break_the_row_and_say_why(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    every_row = refused(spec, write(tmp_path / "all", table(rows, "1,{y}.5")))  # not read as a shifted table
    assert every_row.message == "predictions.csv is not a well-formed CSV file"
    assert "every row has 3 fields but the header has 2" in every_row.problems[0]
    assert "without thousands separators (1234.5, not 1,234.5)" in every_row.problems[0]

    mixed = table(rows[:3], "{y}.5") + table(rows[3:], "1,{y}.5").split(b"\n", 1)[1]
    some_rows = refused(spec, write(tmp_path / "some", mixed))
    assert some_rows.message == "predictions.csv is not a well-formed CSV file"
    assert "line 5 has 3 fields but the header has 2" in some_rows.problems[0]
    assert "without thousands separators (1234.5, not 1,234.5)" in some_rows.problems[0]


def test_negative_zero_is_a_number_and_scores_as_zero(
    spec: TaskSpec, rows: list[tuple[str, int]], task_dir: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "out", table(rows, "-0.0"))
    parsed = validate_predictions(spec, path, phase="test")
    assert (parsed["y"] == 0.0).all()
    scores = score_outputs(spec, path.parent, "test")
    with (task_dir / "data" / "hidden" / "test.csv").open() as fh:
        truth = [r for r in csv.DictReader(fh)]
    for split in ("public", "private"):
        ys = [float(r["y"]) for r in truth if r["split"] == split]
        assert scores[split]["mae"] == pytest.approx(sum(ys) / len(ys))  # |y - (-0)| = y


# -- huge values -----------------------------------------------------------------------------------------------


def test_1e308_without_column_bounds_is_the_teams_invalid_output_not_an_evaluator_error(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    path = write(tmp_path / "out", table(rows, "1e308"))
    assert (validate_predictions(spec, path, phase="test")["y"] == 1e308).all()  # finite: a number like any other
    with pytest.raises(InvalidOutputError) as info:  # but the mean absolute error over it overflows
        score_outputs(spec, path.parent, "test")
    assert info.value.message == "predictions.csv cannot be scored"
    assert info.value.problems == [
        "column 'y' holds 9 values too large to compute with (first: 1e+308 at id r075), so metric 'mae' is inf "
        "on split 'public'; predict values on the scale of the target"
    ]


def test_1e308_outside_declared_bounds_is_refused_by_validation(
    task_dir: Path, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    bounded = respec(task_dir, tmp_path / "task", min=0, max=10_000)
    error = refused(bounded, write(tmp_path / "out", table(rows, "1e308")))
    assert error.problems == [
        f"column 'y' has {len(rows)} values outside the accepted range [0, 10000]; first: 1e+308 at id r075"
    ]


def test_1e309_is_infinite_and_refused(spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path) -> None:
    error = refused(spec, write(tmp_path, table(rows, "1e309")))
    assert error.problems == [
        f"column 'y' has {len(rows)} infinite values (inf); first at id r075; predictions must be finite numbers"
    ]


def test_1e308_in_an_int_column_is_refused_not_wrapped(
    task_dir: Path, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    whole = respec(task_dir, tmp_path / "task", dtype="int")
    assert validate_predictions(whole, write(tmp_path / "ok", table(rows)), phase="test")["y"].dtype == "int64"
    error = refused(whole, write(tmp_path / "out", table(rows, "1e308")))
    assert error.problems == [
        f"column 'y' must hold whole numbers (int) between -9.2e18 and 9.2e18; {len(rows)} values are outside, "
        "first: 1e+308 at id r075"
    ]


# -- encodings and line ends -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bom", lambda rows: b"\xef\xbb\xbf" + table(rows)),
        ("crlf", lambda rows: table(rows, newline="\r\n")),
        ("bom-and-crlf", lambda rows: b"\xef\xbb\xbf" + table(rows, newline="\r\n")),
        ("no-final-newline", lambda rows: table(rows).rstrip(b"\n")),
    ],
)
def test_a_bom_and_crlf_line_ends_are_read_like_a_plain_file(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path, name: str, data: object
) -> None:
    path = write(tmp_path / "out", data(rows))  # type: ignore[operator]
    parsed = validate_predictions(spec, path, phase="test")
    assert list(parsed.columns) == ["id", "y"]  # the BOM is not part of the first column's name
    assert list(parsed["id"]) == [rid for rid, _ in rows]
    assert list(parsed["y"]) == [float(3 * x + 1) for _, x in rows]


def test_crlf_and_bom_score_like_the_plain_file(spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path) -> None:
    path = write(tmp_path / "out", b"\xef\xbb\xbf" + table(rows, newline="\r\n"))
    assert score_outputs(spec, path.parent, "test") == {
        "public": {"mae": 0.0, "max_error": 0.0},
        "private": {"mae": 0.0, "max_error": 0.0},
    }


def test_utf16_from_a_spreadsheet_is_refused_as_not_utf8(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    error = refused(spec, write(tmp_path, table(rows).decode().encode("utf-16")))
    assert error.message == "predictions.csv is not UTF-8 text"  # issue 11: named, no longer "binary data"
    assert (
        "looks like UTF-16 (little-endian, with a byte-order mark) text, not UTF-8; save it as UTF-8"
        in (error.problems[0])
    )
