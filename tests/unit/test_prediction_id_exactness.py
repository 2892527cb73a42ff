"""A file's ids are judged by exactly the text it holds: int ids beyond float64's 2**53, and a byte-order mark
opening the first data row.

Found by comparing :func:`validate_predictions` with a plain check (Python's ``csv`` module, exact ``int``
parsing): int ids went through float64, so ``9007199254740993`` was read as ``...992`` (a right file refused, a
wrong id taken for an expected one, two ids counted as one), and the readers dropped a BOM at the start of the
body as if it were the file's own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import InvalidOutputError
from harness.scoring import validate_predictions
from harness.scoring.expected import ExpectedIds
from harness.scoring.kept import aligned_predictions
from harness.spec import TaskSpec, load_spec

FIXTURE_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"
ROWS = "the rows of test.csv in input_dir"


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    return load_spec(FIXTURE_TASK)


@pytest.fixture(scope="module")
def int_spec(tmp_path_factory: pytest.TempPathFactory) -> TaskSpec:
    task = tmp_path_factory.mktemp("int_ids") / "minimal"
    shutil.copytree(FIXTURE_TASK, task)
    text = (task / "task.yaml").read_text(encoding="utf-8")
    assert "{name: id, dtype: string}" in text
    (task / "task.yaml").write_text(text.replace("{name: id, dtype: string}", "{name: id, dtype: int}"), "utf-8")
    return load_spec(task)


def problems_of(spec: TaskSpec, path: Path, expected: list[int] | list[str]) -> list[str]:
    with pytest.raises(InvalidOutputError) as info:
        validate_predictions(spec, path, expected_ids=ExpectedIds(expected))
    return list(info.value.problems)


BIG = [2**53 + 1, 2**60 + 7, 2**63 - 1, -(2**63), 5]  # 9007199254740993 is ...992 in float64


def test_int_ids_past_two_to_the_53_are_read_exactly(int_spec: TaskSpec, tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("id,y\n" + "".join(f"{i},{n}.5\n" for n, i in enumerate(BIG[::-1])), encoding="utf-8")
    reference = pd.DataFrame({"id": pd.Series(BIG, dtype="int64")})
    aligned = aligned_predictions(int_spec, path, reference, ExpectedIds(reference["id"]))
    assert list(aligned["id"]) == BIG
    assert list(aligned["y"]) == [4.5, 3.5, 2.5, 1.5, 0.5]

    path.write_text(f"id,y\n{2**53 + 1},1\n7,2\n", encoding="utf-8")  # a wrong id that rounds to an expected one
    assert problems_of(int_spec, path, [2**53, 7]) == [
        f"predictions.csv lacks 1 of 2 ids; first missing: {2**53}; predict every one of {ROWS}",
        f"predictions.csv has 1 id that is not among the rows to predict; first: {2**53 + 1}; predict exactly "
        f"{ROWS}, not those of the training data",
    ]
    path.write_text(f"id,y\n{2**53},1\n{2**53 + 1},2\n", encoding="utf-8")  # two ids, one float
    assert list(validate_predictions(int_spec, path, expected_ids=[2**53, 2**53 + 1])["id"]) == [2**53, 2**53 + 1]


def test_int_ids_are_whole_numbers_by_their_text_not_by_float_rounding(int_spec: TaskSpec, tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("id,y\n012,1\n+3,1\n 4.0 ,1\n5.,1\n6e0,1\n7.00E1,1\n", encoding="utf-8")
    assert list(validate_predictions(int_spec, path, expected_ids=[12, 3, 4, 5, 6, 70])["id"]) == [12, 3, 4, 5, 6, 70]
    path.write_text(f"id,y\n1.0000000000000001,1\n2,1\n{2**53}.5,1\n", encoding="utf-8")  # 1.0 and 2**53 as floats
    assert problems_of(int_spec, path, [1, 2, 2**53]) == [
        "column 'id' must hold whole numbers; 2 ids are not, first: '1.0000000000000001'",
        f"predictions.csv lacks 2 of 3 ids; first missing: 1; predict every one of {ROWS}",
    ]


WIDE = 1200  # past the Arrow reader's 1,000 columns: the body is narrowed to the spec's columns first
BODIES = {
    "arrow": "id,y\n\ufeffa1,1\nb2,2\n",
    "arrow-crlf": "\ufeffid,y\r\n\ufeffa1,1\r\nb2,2\r\n",
    "pandas-quoted": 'id,y\n\ufeffa1,"1"\nb2,2\n',
    "pandas-cr": "id,y\r\ufeffa1,1\rb2,2\r",
    "narrowed": (
        "id,y," + ",".join(f"c{i}" for i in range(WIDE)) + "\n\ufeffa1,1" + ",0" * WIDE + "\nb2,2" + ",0" * WIDE
    ),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_a_byte_order_mark_opening_the_first_row_belongs_to_its_id(spec: TaskSpec, tmp_path: Path, body: str) -> None:
    path = tmp_path / "predictions.csv"
    path.write_bytes(body.encode("utf-8"))
    assert list(validate_predictions(spec, path, expected_ids=["\ufeffa1", "b2"])["id"]) == ["\ufeffa1", "b2"]
    assert problems_of(spec, path, ["a1", "b2"]) == [
        f"predictions.csv lacks 1 of 2 ids; first missing: a1; predict every one of {ROWS}",
        "predictions.csv has 1 id that is not among the rows to predict; first: \ufeffa1; predict exactly "
        f"{ROWS}, not those of the training data",
    ]
