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
from typing import Any

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


# -- issue 11: shapes that made validation quadratic, and encodings that are not UTF-8 ----------------------------
# The big shapes go through score_outputs, the evaluator's own process with its time limit (120 s for the minimal
# task): each must end as scores or as the team's invalid_output, never as an EvaluatorError (a timeout would be one).

PERFECT = {"public": {"mae": 0.0, "max_error": 0.0}, "private": {"mae": 0.0, "max_error": 0.0}}


def wide(rows: list[tuple[str, int]], columns: int, *, header: str | None = None) -> bytes:
    """The perfect predictions with ``columns - 2`` extra columns of ``0`` (column ``id`` first, ``y`` last)."""
    extra = columns - 2
    head = header if header is not None else ",".join(["id", *(f"c{i}" for i in range(extra)), "y"])
    zeros = ",0" * extra
    return "\n".join([head, *(f"{rid}{zeros},{3 * x + 1}" for rid, x in rows), ""]).encode()


def scored_or_refused(spec: TaskSpec, path: Path) -> InvalidOutputError | dict[str, dict[str, float]]:
    """What the judging path makes of ``path``: the scores, or the team's InvalidOutputError (never another error)."""
    try:
        return score_outputs(spec, path.parent, "test")
    except InvalidOutputError as exc:
        return exc


@pytest.mark.parametrize("columns", [50_000, 100_000])
def test_tens_of_thousands_of_extra_columns_are_ignored_and_scored(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path, columns: int
) -> None:
    path = write(tmp_path / "out", wide(rows, columns))
    assert scored_or_refused(spec, path) == PERFECT  # 10,000 columns took 5 s before; the limit is 100,000


@pytest.mark.parametrize("columns", [100_001, 200_000, 5_000_000])
def test_more_columns_than_the_cap_are_the_teams_invalid_output_with_the_cap(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path, columns: int
) -> None:
    data = wide(rows[:2], columns) if columns < 1_000_000 else b"id," + b"," * columns + b"y\n"  # a 5 MB header
    error = scored_or_refused(spec, write(tmp_path / "out", data))
    assert isinstance(error, InvalidOutputError)
    assert error.message == "predictions.csv has too many columns"
    assert error.problems[0].startswith(
        f"the header of predictions.csv names {columns + (2 if columns > 1_000_000 else 0):,} columns; "
        "the harness reads at most 100,000. Write one row per id and only the columns the task asks for"
    )


def test_commas_inside_quoted_column_names_do_not_count_towards_the_cap(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    name = '"' + "," * 150_000 + '"'  # one column whose name is 150,000 commas
    lines = [f"id,{name},y", *(f"{rid},x,{3 * x + 1}" for rid, x in rows), ""]
    assert scored_or_refused(spec, write(tmp_path / "out", "\n".join(lines).encode())) == PERFECT


def test_a_row_wider_than_a_wide_header_names_its_line_past_the_first_chunk(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    lines = wide(rows, 100_000).decode().split("\n")  # about 200 KB a row: row 22 starts past the first 4 MiB
    lines[21] += ",1"
    error = scored_or_refused(spec, write(tmp_path / "out", "\n".join(lines).encode()))
    assert isinstance(error, InvalidOutputError)
    assert error.message == "predictions.csv is not a well-formed CSV file"
    assert (
        "line 22 has 100,001 fields but the header has 100,000 (1 line is wider than the header)" in (error.problems[0])
    )


def test_quoted_line_breaks_and_commas_in_an_extra_column_are_one_field(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    note = '"a, b\nc ""quoted"", d\r\ne"'
    lines = ["id,note,y", *(f"{rid},{note},{3 * x + 1}" for rid, x in rows), ""]
    assert scored_or_refused(spec, write(tmp_path / "out", "\n".join(lines).encode())) == PERFECT


def test_a_5_mb_field_in_an_extra_column_is_scored(spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path) -> None:
    lines = [
        "id,note,y",
        *(f"{rid},{'x' * (5 * 1024**2) if i == 3 else ''},{3 * x + 1}" for i, (rid, x) in enumerate(rows)),
    ]
    assert scored_or_refused(spec, write(tmp_path / "out", "\n".join([*lines, ""]).encode())) == PERFECT


def test_a_5_mb_column_name_quoted_or_not_is_an_ignored_column(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    for quote in ("", '"'):
        header = f"id,{quote}{'n' * (5 * 1024**2)}{quote},y"
        lines = [header, *(f"{rid},,{3 * x + 1}" for rid, x in rows), ""]
        path = write(tmp_path / f"out{len(quote)}", "\n".join(lines).encode())
        assert scored_or_refused(spec, path) == PERFECT  # the csv module's 128 KiB field limit does not apply


@pytest.mark.parametrize("column", ["id", "y"])
def test_a_5_mb_value_in_a_required_column_is_refused_with_the_value_cut_short(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path, column: str
) -> None:
    huge = "7" * (5 * 1024**2) + "x"
    lines = ["id,y", *(f"{rid},{3 * x + 1}" for rid, x in rows[1:])]
    lines.append(f"{huge},1" if column == "id" else f"{rows[0][0]},{huge}")
    error = scored_or_refused(spec, write(tmp_path / "out", "\n".join([*lines, ""]).encode()))
    assert isinstance(error, InvalidOutputError)
    assert all(len(problem) < 1000 for problem in error.problems)  # not a 5 MB reason in the store
    if column == "id":
        assert any(f"first: {'7' * 80}… [5,242,881 characters]; predict exactly" in p for p in error.problems)
    else:
        assert error.problems[0].startswith(
            f"column 'y' must hold numbers (float); 1 value is not, first: '{'7' * 80}…"
        )


def test_a_million_distinct_ids_are_counted_not_listed(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    body = "".join(f"{rid},{3 * x + 1}\n" for rid, x in rows) + "".join(f"z{i:07d},1\n" for i in range(1_000_000))
    error = scored_or_refused(spec, write(tmp_path / "out", ("id,y\n" + body).encode()))
    assert isinstance(error, InvalidOutputError)
    assert error.problems == [
        "predictions.csv has 1,000,000 ids that are not among the rows to predict; first: z0000000; predict exactly "
        "the rows of test.csv in input_dir, not those of the training data"
    ]


def test_a_million_rows_of_two_ids_name_the_duplicates(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path
) -> None:
    body = "".join(f"{rid},{3 * x + 1}\n" for rid, x in rows) * 40_000  # 1,000,000 rows, every id 40,000 times
    error = scored_or_refused(spec, write(tmp_path / "out", ("id,y\n" + body).encode()))
    assert isinstance(error, InvalidOutputError)
    assert error.problems == [
        f"{len(rows)} ids appear more than once (1,000,000 rows in all); first: r075 (lines 2, 27, 52); "
        "write each id exactly once"
    ]


# Encodings: a file saved from a spreadsheet or an editor in another encoding names that encoding. Validation is
# called in this process; test_the_judging_path_names_the_encoding_too shows the evaluator's process says the same.
ROWS_LATIN = ["Café Crème", "Müller & Söhne", "Señor Zoë", "naïve façade"]
ROWS_CYRILLIC = ["Ёжики №7", "Привет, мир", "команда Москва", "Щука и ёлка"]


def labelled(rows: list[tuple[str, int]], names: list[str]) -> str:
    """The perfect predictions with a quoted ``team`` text column cycling through ``names``."""
    lines = ["id,y,team", *(f'{rid},{3 * x + 1},"{names[i % len(names)]}"' for i, (rid, x) in enumerate(rows))]
    return "\n".join([*lines, ""])


@pytest.mark.parametrize(
    ("codec", "bom", "looks_like"),
    [
        ("utf-16-le", b"", "UTF-16 (little-endian, no byte-order mark)"),
        ("utf-16-be", b"", "UTF-16 (big-endian, no byte-order mark)"),
        ("utf-16-le", b"\xff\xfe", "UTF-16 (little-endian, with a byte-order mark)"),
        ("utf-16-be", b"\xfe\xff", "UTF-16 (big-endian, with a byte-order mark)"),
        ("utf-32-le", b"", "UTF-32 (little-endian, no byte-order mark)"),
        ("utf-32-be", b"\x00\x00\xfe\xff", "UTF-32 (big-endian, with a byte-order mark)"),
    ],
)
@pytest.mark.parametrize("names", [ROWS_LATIN, ROWS_CYRILLIC], ids=["latin", "cyrillic"])
def test_utf16_and_utf32_are_named_with_their_byte_order(
    spec: TaskSpec,
    rows: list[tuple[str, int]],
    tmp_path: Path,
    codec: str,
    bom: bytes,
    looks_like: str,
    names: list[str],
) -> None:
    error = refused(spec, write(tmp_path / "out", bom + labelled(rows, names).encode(codec)))
    assert error.message == "predictions.csv is not UTF-8 text"
    assert error.problems == [
        f"predictions.csv looks like {looks_like} text, not UTF-8; save it as UTF-8 (pandas' to_csv writes UTF-8; "
        "in Excel choose 'CSV UTF-8'; in an editor, 'Save with encoding: UTF-8')"
    ]


@pytest.mark.parametrize(
    ("codec", "names", "looks_like", "char"),
    [
        ("cp1252", ROWS_LATIN, "Windows-1252 or Latin-1 (cp1252, Western European)", "é"),
        ("latin-1", ROWS_LATIN, "Windows-1252 or Latin-1 (cp1252, Western European)", "é"),
        ("cp1251", ROWS_CYRILLIC, "Windows-1251 (cp1251, Cyrillic)", "Ё"),
        ("cp1251", ["Привет", "Добрый день", "команда"], "Windows-1251 (cp1251, Cyrillic)", "П"),
    ],
)
def test_8_bit_code_pages_are_named_with_the_first_byte_that_is_not_utf8(
    spec: TaskSpec,
    rows: list[tuple[str, int]],
    tmp_path: Path,
    codec: str,
    names: list[str],
    looks_like: str,
    char: str,
) -> None:
    data = labelled(rows, names).encode(codec)
    offset = next(i for i, b in enumerate(data) if b >= 0x80)
    error = refused(spec, write(tmp_path / "out", data))
    assert error.message == "predictions.csv is not UTF-8 text"
    assert error.problems[0].startswith(
        f"predictions.csv is not UTF-8 text (invalid byte at offset {offset}): it looks like {looks_like} text "
        f"(byte 0x{data[offset]:02X} on line 2 reads {char!r} in it); save it as UTF-8"
    )


def test_binary_data_with_nul_bytes_is_still_binary_not_utf16(spec: TaskSpec, tmp_path: Path) -> None:
    error = refused(spec, write(tmp_path, b"id,y\n" + bytes(range(256)) * 64))
    assert error.message == "predictions.csv is not a CSV file"
    assert "holds binary data (a NUL byte at offset 5)" in error.problems[0]


@pytest.mark.parametrize(("codec", "looks_like"), [("utf-16-le", "UTF-16"), ("cp1251", "Windows-1251")])
def test_the_judging_path_names_the_encoding_too(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path, codec: str, looks_like: str
) -> None:
    error = scored_or_refused(spec, write(tmp_path / "out", labelled(rows, ROWS_CYRILLIC).encode(codec)))
    assert isinstance(error, InvalidOutputError)
    assert error.message == "predictions.csv is not UTF-8 text"
    assert f"looks like {looks_like} (" in error.problems[0] and "save it as UTF-8" in error.problems[0]


# -- issue 11: output entries that are not regular files, displayed outputs, timed-out reasons ------------------
# These run the hostile corpus's own inputs (tests/integration/hostile/corpus.py) in the process sandbox, through
# both `harness run`'s path (evaluate_submission, test phase) and `harness check` (selfcheck.check, validation
# phase); the Docker sandbox runs the same inputs in tests/integration/test_hostile.py.


def _corpus() -> object:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from hostile import corpus

    return corpus


def _run_and_check(task_dir: Path, entry: Path, work: Path) -> tuple[object, object]:
    """The process sandbox's record of ``entry`` as `harness run` makes it, and `harness check`'s result."""
    from harness.pipeline import evaluate_submission
    from harness.selfcheck import check

    spec = load_spec(task_dir)
    record = evaluate_submission(spec, entry, phase="test", sandbox="process", work_dir=work / "run")
    checked = check(task_dir, entry, sandbox="process", artifacts_dir=work / "check")
    return record, checked


@pytest.mark.parametrize("case", sorted(_corpus().NOT_REGULAR))  # type: ignore[attr-defined]
def test_a_predictions_file_that_is_not_a_regular_file_is_named_in_both_commands(
    task_dir: Path, tmp_path: Path, case: str
) -> None:
    import os

    corpus: Any = _corpus()
    if case == "device" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    entry = corpus.write_script(corpus.not_regular_script(case))(tmp_path / f"sc-{case}")
    record, checked = _run_and_check(task_dir, entry, tmp_path)
    kind = corpus.NOT_REGULAR_KIND[case]
    for status, reason in ((record.status, record.reason), (checked.status, checked.reason)):
        assert status == "invalid_output", reason
        assert reason.startswith(f"predictions.csv is a {kind}; write a regular file ("), reason
        assert "was not written" not in reason
    assert record.reason == checked.reason  # `harness check` agrees with `harness run`
    if kind != "directory":  # dropped from the kept outputs, and said so
        assert f"predictions.csv ({kind})" in " ".join(record.notes)
        assert not os.path.lexists(Path(record.artifacts_dir, "output", "predictions.csv"))


def test_dropped_entries_are_reported_by_kind_and_never_followed(tmp_path: Path) -> None:
    import os
    import socket

    from harness.sandbox.output import copy_output_tree, sanitize_output_tree

    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")

    def make(folder: Path) -> None:
        (folder / "sub").mkdir(parents=True)
        (folder / "ok.csv").write_text("id,y\n")
        (folder / "link").symlink_to(secret)
        (folder / "sub" / "dirlink").symlink_to(tmp_path)
        os.mkfifo(folder / "pipe")
        sock = socket.socket(socket.AF_UNIX)
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            sock.bind("sock")
        finally:
            os.chdir(cwd)
            sock.close()
        if os.geteuid() == 0:
            os.mknod(folder / "dev", 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 3))

    expected = {"link": "symbolic link", "sub/dirlink": "symbolic link", "pipe": "named pipe", "sock": "socket"}
    if os.geteuid() == 0:
        expected["dev"] = "device node"
    src, dest = tmp_path / "src", tmp_path / "dest"
    make(src)
    dest.mkdir()
    dropped: list[tuple[str, str]] = []
    copy_output_tree(src, dest, 1 << 20, dropped=dropped)
    assert dict(dropped) == expected
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["ok.csv", "sub"]
    in_place = tmp_path / "in-place"
    make(in_place)
    dropped = []
    assert sanitize_output_tree(in_place, strict=True, dropped=dropped) == (5, 5)
    assert dict(dropped) == expected
    assert secret.read_text() == "host secret"


def test_validation_names_a_fifo_without_opening_it(spec: TaskSpec, tmp_path: Path) -> None:
    import os

    (tmp_path / "out").mkdir()
    os.mkfifo(tmp_path / "out" / "predictions.csv")  # opening it for reading would block: it is never opened
    started = time.perf_counter()
    error = refused(spec, tmp_path / "out" / "predictions.csv")
    assert time.perf_counter() - started < 1.0
    assert error.problems[0].startswith("predictions.csv is a named pipe; write a regular file")


@pytest.mark.parametrize(
    ("script_tail", "fact"),
    [
        ("import time\nwhile True:\n    time.sleep(1)\n", "predictions.csv had already been written ("),
        (None, "predictions.csv had not been written yet"),
    ],
    ids=["after-predictions", "before-predictions"],
)
def test_a_timed_out_reason_says_whether_predictions_were_written(
    task_dir: Path, tmp_path: Path, script_tail: str | None, fact: str
) -> None:
    corpus: Any = _corpus()
    quick = tmp_path / "task"
    shutil.copytree(task_dir, quick)
    raw = yaml.safe_load((quick / "task.yaml").read_text())
    raw["limits"]["time_s"] = 2
    (quick / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    if script_tail is None:
        code = "import time\nwhile True:\n    time.sleep(1)\n" + corpus.script_predict(tag="never")
    else:
        code = corpus.script_predict(tag="then-sleep") + script_tail
    entry = corpus.write_script(code)(tmp_path / "sleeper")
    record, checked = _run_and_check(quick, entry, tmp_path)
    for status, reason in ((record.status, record.reason), (checked.status, checked.reason)):
        assert status == "timed_out", reason
        assert "ran past the time limit of 2 s and was stopped; " + fact in reason


def test_a_big_display_after_the_predictions_is_scored_and_the_kept_notebook_opens(
    task_dir: Path, tmp_path: Path
) -> None:
    import json

    import nbformat

    corpus: Any = _corpus()
    # The process sandbox's memory limit (RLIMIT_DATA) counts papermill's own copies of a message: 8 MB of SVG and
    # 10 MB of prints fit in 256 MB there; the Docker batch displays 20-30 MB.
    svg = (
        "from IPython.display import display\n"
        "display({'image/svg+xml': '<svg>' + 'x' * (8 * 2**20) + '</svg>'}, raw=True)"
    )
    prints = "for _ in range(10):\n    print('x' * 2**20, flush=True)"
    entry = corpus.write_notebook(corpus.notebook([corpus.notebook_predict(tag="display"), svg, prints]))(
        tmp_path / "nb-display.ipynb"
    )
    record, checked = _run_and_check(task_dir, entry, tmp_path)
    assert (record.status, checked.status) == ("succeeded", "succeeded"), (record.reason, checked.reason)
    assert record.scores["public"]["mae"] == 0.0
    for folder in (record.artifacts_dir, checked.artifacts_dir):
        kept = Path(folder, "executed.ipynb")
        assert kept.stat().st_size < 256 * 1024
        nb = nbformat.read(kept, as_version=4)
        nbformat.validate(nb)  # valid JSON and a valid notebook: JupyterLab opens it
        text = json.dumps(nb)
        assert "[harness: output dropped: image/svg+xml of 8,388,619 characters" in text
        assert "[harness: output truncated at 20000 characters]" in text
        assert not Path(folder, ".notebook-area").exists()
        assert sorted(p.name for p in Path(folder, "output").iterdir()) == ["predictions.csv"]


def test_the_runner_caps_outputs_as_they_are_recorded_and_saves_within_its_byte_cap(tmp_path: Path) -> None:
    import json

    import nbformat

    from harness.notebook_runner import Caps, cap_new_output, fit_notebook, save_atomically

    caps = Caps(output_chars=100, cell_chars=250, outputs_per_cell=5, rich_chars=1000, max_bytes=20_000)
    outputs: list[Any] = []
    for i in range(10_000):  # one cell's stream of outputs, capped one at a time
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"{i}-" + "y" * 150))
        cap_new_output(outputs, caps)
    assert len(outputs) == 3  # two capped outputs (~148 characters each) fill the cell's 250; a marker counts the rest
    assert "[harness: output truncated at 100 characters]" in outputs[0]["text"]
    assert outputs[-1]["text"].startswith("[harness: 9998 more outputs of this cell dropped")
    outputs.append(nbformat.v4.new_output("display_data", data={"image/png": "A" * 5000, "text/plain": "<Figure>"}))
    big = [outputs.pop()]
    cap_new_output(big, caps)
    assert big[0]["data"] == {
        "text/plain": "[harness: output dropped: image/png of 5,000 characters (cap: 1,000 characters per output)]"
        "\n<Figure>"
    }

    nb = nbformat.v4.new_notebook()
    for i in range(40):  # 40 cells of ~2 KB of outputs each: past the 20,000-byte cap
        cell = nbformat.v4.new_code_cell(f"print({i})")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="z" * (2000 + i))]
        nb.cells.append(cell)
    text, dropped = fit_notebook(nb, caps.max_bytes, dumps=nbformat.writes)
    assert len(text.encode()) <= caps.max_bytes and dropped > 0
    assert "were dropped: the executed notebook would be larger than 20,000 bytes" in text
    path = tmp_path / "executed.ipynb"
    assert save_atomically(text, str(path))
    nbformat.validate(nbformat.read(path, as_version=4))
    assert "".join(json.loads(path.read_text())["cells"][-1]["outputs"][0]["text"]).startswith("[harness: the outputs")
    assert [p.name for p in tmp_path.iterdir()] == ["executed.ipynb"]  # no temporary file left
    assert not save_atomically("{}", str(tmp_path / "missing" / "executed.ipynb"))  # reported, not raised


def test_an_unreadable_executed_notebook_is_replaced_by_the_submitted_cells(tmp_path: Path) -> None:
    import nbformat

    from harness.notebooks import read_executed

    corpus: Any = _corpus()
    submitted = corpus.write_notebook(corpus.notebook(["x = 1"]))(tmp_path / "team.ipynb")
    executed = tmp_path / "executed.ipynb"
    executed.write_text('{"cells": [{"outputs": ["xxxxx')  # cut mid-write
    assert read_executed(executed, submitted=submitted).notebook is None
    nb = nbformat.read(executed, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and "[harness: the executed notebook (" in nb.cells[0].source
    assert [c.source for c in nb.cells[1:]] == ['input_dir = "data"\noutput_dir = "."', "x = 1"]


def test_the_runner_source_survives_the_process_sandboxs_path_mapping() -> None:
    from harness.notebooks import runner_command
    from harness.sandbox.process import map_paths

    source = runner_command(())[2]
    mapping = {"/submission": "/h/s", "/input": "/h/i", "/output": "/h/o", "/notebook": "/h/n"}
    assert map_paths(source, mapping) == source


# -- the Arrow fast path and the pandas path agree --------------------------------------------------------------


def _plain_files(rows: list[tuple[str, int]]) -> dict[str, bytes]:
    """Quote-free, LF-ended files (the fast path's domain), valid and not, each a kind a team writes."""
    ids = [rid for rid, _ in rows]
    body = [f"{rid},{3 * x + 1}" for rid, x in rows]
    return {
        "valid": ("id,y\n" + "\n".join(body) + "\n").encode(),
        "valid, reordered columns and an extra one": (
            "note,y,id\n" + "\n".join(f"n,{3 * x + 1},{rid}" for rid, x in rows) + "\n"
        ).encode(),
        "valid, shuffled ids": ("id,y\n" + "\n".join(reversed(body)) + "\n").encode(),
        "valid, no final newline, blank lines": ("id,y\n\n" + "\n".join(body) + "\n\n").encode(),
        "a row narrower than the header": ("id,y\n" + "\n".join([*body[:-1], ids[-1]]) + "\n").encode(),
        "a row wider than the header": ("id,y\n" + "\n".join([*body[:-1], body[-1] + ",9"]) + "\n").encode(),
        "a missing id": ("id,y\n" + "\n".join(body[1:]) + "\n").encode(),
        "a duplicated id": ("id,y\n" + "\n".join([*body, body[0]]) + "\n").encode(),
        "an unknown id": ("id,y\n" + "\n".join([*body[:-1], "zzz,1"]) + "\n").encode(),
        "an empty id and a padded one": ("id,y\n" + "\n".join([",1", f" {body[1]}", *body[2:]]) + "\n").encode(),
        "text in y": ("id,y\n" + "\n".join([f"{ids[0]},seven", *body[1:]]) + "\n").encode(),
        "valid, a whitespace-only line (skipped as blank)": ("id,y\n" + "\n".join([*body, " "]) + "\n").encode(),
        "header only": b"id,y\n",
        "no y column": ("id,z\n" + "\n".join(body) + "\n").encode(),
        **_wide_files(rows),
        **{f"{case} (lines over 4 KB)": data for case, data in _wide_files(rows, extra=2500).items()},
    }


def _wide_files(rows: list[tuple[str, int]], extra: int = 1500) -> dict[str, bytes]:
    """Quote-free files wider than Arrow's own limit (their spec columns are cut out of each line first), valid
    and not: the spec's columns first, last, or one in the middle; CRLF, blank lines, rows of the wrong width."""
    half = extra // 2
    names = [f"c{i}" for i in range(extra)]
    headers = {
        "first": ",".join(["id", "y", *names]),
        "last": ",".join([*names, "id", "y"]),
        "middle": ",".join([*names[:half], "id", *names[half:], "y", "tail"]),
    }

    def row(rid: str, y: str, order: str = "first") -> str:
        if order == "first":
            return ",".join([rid, y, *["0"] * extra])
        if order == "last":
            return ",".join([*["0"] * extra, rid, y])
        return ",".join([*["0"] * half, rid, *["0"] * (extra - half), y, "0"])

    files: dict[str, bytes] = {}
    for order, header in headers.items():
        lines = [header, *(row(rid, str(3 * x + 1), order) for rid, x in rows)]
        files[f"valid, {extra:,} extra columns, spec columns {order}"] = ("\n".join(lines) + "\n").encode()
        narrower = [*lines[:-1], lines[-1].rsplit(",", 1)[0]]
        short = f"wide ({order}): a row narrower than the header"  # valid when it lacks an extra column only
        files[f"valid, {short}" if order != "last" else short] = ("\n".join(narrower) + "\n").encode()
        wider = [*lines, row("zzz", "1", order) + ",9"]
        files[f"wide ({order}): a row wider than the header"] = ("\n".join(wider) + "\n").encode()
    lines = [headers["first"], *(row(rid, str(3 * x + 1)) for rid, x in rows)]
    files["valid, wide, CRLF, blank lines, no final line end"] = "\r\n".join(
        [lines[0], "", *lines[1:3], "", *lines[3:]]
    ).encode()
    stray = [*lines[:2], lines[2].replace(",0,", ",\r,", 1), *lines[3:]]
    files["wide: a carriage return inside a row"] = ("\n".join(stray) + "\n").encode()
    bad = [lines[0], row("", "1"), row(rows[1][0], "seven"), row(f" {rows[2][0]}", "7"), *lines[5:]]
    files["wide: a missing id, an empty one, a padded one, text in y"] = ("\n".join(bad) + "\n").encode()
    files["wide: no y column"] = ("\n".join([lines[0].replace(",y,", ",z,"), *lines[1:]]) + "\n").encode()
    files["wide: header only"] = (lines[0] + "\n").encode()
    files["valid, wide, thousands of blank lines"] = ("\n".join(lines) + "\n" * 5000).encode()
    return files


def _outcome(spec: TaskSpec, path: Path) -> tuple[str, Any]:
    try:
        frame = validate_predictions(spec, path, phase="test")
    except InvalidOutputError as exc:
        return "refused", (exc.message, exc.problems)
    return "valid", frame.astype(str).to_dict("list")


@pytest.mark.parametrize("case", sorted(_plain_files([("a", 1), ("b", 2), ("c", 3)])))
def test_the_arrow_fast_path_gives_the_pandas_paths_outcome(
    spec: TaskSpec, rows: list[tuple[str, int]], tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every plain file validates (or is refused, with the same words) alike with and without Arrow's reader."""
    from harness.scoring import predictions

    path = write(tmp_path, _plain_files(rows)[case])
    fast = _outcome(spec, path)
    monkeypatch.setattr(predictions, "_read_fast", lambda *_args: None)
    slow = _outcome(spec, path)
    assert fast == slow
    assert fast[0] == ("valid" if case.startswith("valid") else "refused")


@pytest.mark.parametrize("order", ["first", "last", "middle"])
def test_a_valid_wide_plain_file_is_cut_to_its_spec_columns_without_the_general_path(
    rows: list[tuple[str, int]], order: str
) -> None:
    """The wide cases above do take the fast path (and the parity test compares it), not the pandas fallback."""
    from harness.scoring.predictions import _read_fast
    from harness.scoring.shape import read_header

    data = _wide_files(rows)[f"valid, 1,500 extra columns, spec columns {order}"]
    frame = _read_fast(data, read_header(data, "predictions.csv"), ["id", "y"])
    assert frame is not None
    assert frame["id"].tolist() == [rid for rid, _ in rows]
    assert frame["y"].tolist() == [str(3 * x + 1) for _, x in rows]
    crlf = _wide_files(rows)["valid, wide, CRLF, blank lines, no final line end"]
    assert _read_fast(crlf, read_header(crlf, "predictions.csv"), ["id", "y"]) is not None
    blank = _wide_files(rows)["valid, wide, thousands of blank lines"]  # a loop pass per line: the general path
    assert _read_fast(blank, read_header(blank, "predictions.csv"), ["id", "y"]) is None


@pytest.mark.parametrize(
    "values",
    [["a", "b"], ["a", ""], [" ", "x"], ["\u3000", "y"], ["a\x1f", "\x1c"], ["\xa0"], ["o k"], ["é"], ["\x7f", "!~"]],
)
def test_the_blank_id_check_agrees_with_strip_on_every_kind_of_whitespace(values: list[str]) -> None:
    """The byte-level shortcut of the empty-id check answers as ``str.strip() == ""`` does, chunked or not."""
    import pandas as pd
    import pyarrow as pa

    from harness.scoring.predictions import _blank

    plain = pd.Series(values, dtype=str)
    sliced = pd.Series(["zz", *values], dtype=str)[1:].reset_index(drop=True)
    chunked = pa.chunked_array([pa.array(["q"], pa.large_string()), pa.array(values, pa.large_string())]).to_pandas()
    for raw in (plain, sliced, chunked):
        assert _blank(raw).tolist() == (raw.str.strip() == "").tolist()
