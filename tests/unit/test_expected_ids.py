"""ExpectedIds: a reference's ids prepared once, and the three ways validation matches a file's ids with them.

Ids of one byte length are first checked as a set (``same_set``: the file's sorted 64-bit keys against the
expected ones); when that does not hold they are looked up one by one in a 64-bit key table; any others (mixed
lengths, over 256 bytes, duplicates in the expected ids) are hashed as strings with ``pandas.factorize``. Every case
here is validated all three ways (the lookup way by an ExpectedIds whose set check is switched off, the hashing way
by one whose key table is switched off too) and must give the same outcome, word for word.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from harness.errors import InvalidOutputError
from harness.scoring import validate_predictions
from harness.scoring.expected import ExpectedIds
from harness.spec import TaskSpec, load_spec

FIXTURE_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"


class LookupIds(ExpectedIds):
    """The same ids, each file id looked up in the key table: as if the set check never held."""

    def same_set(self, file_ids: object) -> bool:
        return False


class HashingIds(LookupIds):
    """The same ids, matched the general way: as if they had no key table (as ids of mixed lengths have none)."""

    def positions(self, file_ids: object) -> None:
        return None


@pytest.fixture(scope="module")
def spec() -> TaskSpec:
    return load_spec(FIXTURE_TASK)


def outcome(spec: TaskSpec, path: Path, expected: ExpectedIds) -> tuple[str, list[str]] | pd.DataFrame:
    try:
        return validate_predictions(spec, path, expected_ids=expected)
    except InvalidOutputError as exc:
        return exc.message, list(exc.problems)


def both_ways(spec: TaskSpec, tmp_path: Path, expected: list[str], file_ids: list[str]) -> tuple[str, list[str]]:
    """Validate a file of ``file_ids`` against ``expected`` through the set check, the key table and by hashing;
    assert the same outcome and return it (``("valid", [])`` for a valid file)."""
    path = tmp_path / "predictions.csv"
    path.write_text("id,y\n" + "".join(f"{i},{n}.5\n" for n, i in enumerate(file_ids)), encoding="utf-8")
    fast = outcome(spec, path, ExpectedIds(expected))
    lookup = outcome(spec, path, LookupIds(expected))
    slow = outcome(spec, path, HashingIds(expected))
    if isinstance(fast, pd.DataFrame):
        assert isinstance(lookup, pd.DataFrame) and isinstance(slow, pd.DataFrame)
        pd.testing.assert_frame_equal(fast, lookup)
        pd.testing.assert_frame_equal(fast, slow)
        assert list(fast["id"]) == file_ids
        return "valid", []
    assert fast == lookup == slow
    return fast


IDS = [f"r{i:07d}" for i in range(2000)]  # 8 bytes: the key is the id's bytes
UUIDS = [f"{i:08x}-7d4e-4c1b-9a3f-{i * 7919:012x}" for i in range(2000)]  # 36 bytes: a mix of five words
UNICODE = [f"идент-{i:04d}-é" for i in range(2000)]  # one byte length, but more bytes than characters


@pytest.mark.parametrize("expected", [IDS, UUIDS, UNICODE], ids=["8-byte", "uuid", "unicode"])
def test_every_shape_of_a_file_is_judged_the_same_through_the_key_table_and_by_hashing(
    spec: TaskSpec, tmp_path: Path, expected: list[str]
) -> None:
    shuffled = random.Random(3).sample(expected, len(expected))
    assert both_ways(spec, tmp_path, expected, expected) == ("valid", [])
    assert both_ways(spec, tmp_path, expected, shuffled) == ("valid", [])

    duplicated = [*shuffled[:-1], shuffled[5]]  # the last id missing, one id twice
    message, problems = both_ways(spec, tmp_path, expected, duplicated)
    assert message == "predictions.csv is invalid (2 problems)"
    assert problems[0].startswith(f"1 id appears more than once (2 rows in all); first: {shuffled[5]} (lines 7, ")
    assert problems[1].startswith(f"predictions.csv lacks 1 of 2,000 ids; first missing: {shuffled[-1]};")

    extra = [*shuffled[:10], "x" + shuffled[10][1:], "another", "another", *shuffled[12:]]
    message, problems = both_ways(spec, tmp_path, expected, extra)
    assert any(
        p.startswith("1 id appears more than once (2 rows in all); first: another (lines 13, 14)") for p in problems
    )
    assert any(p.startswith("predictions.csv lacks 2 of 2,000 ids;") for p in problems)
    assert any(
        p.startswith(f"predictions.csv has 2 ids that are not among the rows to predict; first: x{shuffled[10][1:]};")
        for p in problems
    )

    assert both_ways(spec, tmp_path, expected, expected[:-1])[1][0].startswith(
        f"predictions.csv lacks 1 of 2,000 ids; first missing: {expected[-1]};"
    )


def test_ids_of_mixed_lengths_empty_and_blank_ids_are_judged_the_same_both_ways(spec: TaskSpec, tmp_path: Path) -> None:
    mixed = [str(i) for i in range(1500)]  # 1 to 4 bytes: no key table, hashed
    assert ExpectedIds(mixed).positions(pa.array(mixed)) is None
    assert both_ways(spec, tmp_path, mixed, random.Random(4).sample(mixed, 1500)) == ("valid", [])
    file_ids = [*IDS[:3], "", " ", "r00000", *IDS[6:]]  # an empty and a blank id, one id of another length
    _message, problems = both_ways(spec, tmp_path, IDS, file_ids)
    assert problems[0] == "2 rows have an empty 'id'; first at line 5"
    assert any(p.startswith("predictions.csv lacks 3 of 2,000 ids; first missing: r0000003;") for p in problems)
    assert any(
        p.startswith("predictions.csv has 1 id that is not among the rows to predict; first: r00000;") for p in problems
    )


@pytest.mark.parametrize("blank", ["", " ", "\u3000"], ids=["empty", "space", "ideographic space"])
def test_a_file_of_exactly_the_expected_ids_is_refused_when_one_of_them_is_blank(
    spec: TaskSpec, tmp_path: Path, blank: str
) -> None:
    """A file equal to the expected ids skips the blank-id check only when no expected id is blank."""
    assert not ExpectedIds(IDS).has_blank and not ExpectedIds([1, 2]).has_blank
    expected = [*IDS[:5], blank, *IDS[6:]]
    assert ExpectedIds(expected).has_blank
    for file_ids in (expected, expected[::-1]):
        _message, problems = both_ways(spec, tmp_path, expected, file_ids)
        assert problems[0] == f"1 row has an empty 'id'; first at line {file_ids.index(blank) + 2}"


def test_expected_ids_without_a_key_table_fall_back_to_hashing(spec: TaskSpec, tmp_path: Path) -> None:
    long_ids = ["z" * 300 + f"{i:04d}" for i in range(50)]  # over 256 bytes each
    assert ExpectedIds(long_ids).positions(pa.array(long_ids)) is None
    assert both_ways(spec, tmp_path, long_ids, long_ids[::-1]) == ("valid", [])
    twice = [*IDS[:10], IDS[0]]  # the expected ids themselves hold a duplicate: no table
    assert ExpectedIds(twice).positions(pa.array(IDS[:10])) is None
    assert ExpectedIds([1, 2, 3]).positions(pa.array(["1", "2", "3"])) is None  # not text


def test_positions_finds_each_id_once_and_nothing_else() -> None:
    expected = ExpectedIds(UUIDS)
    file_ids = [UUIDS[7], "nope", UUIDS[7], UUIDS[1999], UUIDS[0][:-1] + "#", ""]
    found = expected.positions(pa.chunked_array([pa.array(file_ids[:2]), pa.array(file_ids[2:])]))
    assert found is not None
    assert found.tolist() == [7, -1, 7, 1999, -1, -1]
    assert ExpectedIds(IDS).positions(pa.array(["r0000042", "r00000420", "r0000042"], type=pa.string())).tolist() == [
        42,
        -1,
        42,
    ]


def test_expected_ids_are_a_copy_and_compare_in_order_only(spec: TaskSpec, tmp_path: Path) -> None:
    source = pd.Series(IDS[:100], dtype=object)
    expected = ExpectedIds(source)
    source.iloc[0] = "changed"
    assert expected.values[0] == "r0000000"
    assert not expected.values.flags.writeable
    assert expected.same(pa.array(IDS[:100]))
    assert not expected.same(pa.array(IDS[1:101]))
    assert not expected.same(pa.array(IDS[:99]))
    path = tmp_path / "predictions.csv"
    path.write_text("id,y\n" + "".join(f"{i},1\n" for i in IDS[:100]), encoding="utf-8")
    assert list(validate_predictions(spec, path, expected_ids=expected)["id"]) == IDS[:100]


def _mixed_key(words: list[int]) -> int:
    """The key ``_key`` gives an id of 8-byte words ``words`` (in the machine's byte order), in Python integers."""
    key = words[0]
    for word in words[1:]:
        key = key * 0x9E3779B97F4A7C15 % 2**64
        key = (key ^ (key >> 29)) + word
        key %= 2**64
    return key


@pytest.mark.parametrize("expected", [IDS, UUIDS, UNICODE], ids=["8-byte", "uuid", "unicode"])
def test_same_set_holds_for_exactly_the_expected_ids_in_any_order(expected: list[str]) -> None:
    ids = ExpectedIds(expected)
    shuffled = random.Random(5).sample(expected, len(expected))
    assert ids.same_set(pa.array(shuffled))
    assert ids.same_set(pa.array(shuffled, type=pa.large_string()))
    assert ids.same_set(
        pa.chunked_array([pa.array(shuffled[:700]), pa.array([], pa.string()), pa.array(shuffled[700:])])
    )
    assert ids.same_set(pa.array(["pad", *shuffled]).slice(1))  # an array with an offset into its buffers
    assert not ids.same_set(pa.array([*shuffled[:-1], shuffled[0]]))  # one id twice, one missing: same count
    assert not ids.same_set(pa.array(shuffled[:-1]))
    assert not ids.same_set(pa.array([*shuffled[:-1], "x" + shuffled[-1][1:]]))  # an unexpected id, same length
    assert not ids.same_set(pa.array([shuffled[0] + "z", shuffled[1][:-1], *shuffled[2:]]))  # same total bytes
    assert not ids.same_set(pa.array([*shuffled[:-1], ""]))


def test_same_set_compares_the_bytes_of_ids_whose_mixed_keys_collide() -> None:
    expected = [f"id-{i:013d}" for i in range(100)]  # 16 bytes: a key mixes two words
    first = np.frombuffer(expected[0].encode(), dtype=np.uint64).tolist()
    other = first[0] ^ 0xFF  # another first word, and the second word that gives the same key
    second = (_mixed_key([first[0], first[1]]) - _mixed_key([other, 0])) % 2**64
    assert _mixed_key([other, second]) == _mixed_key(first)
    forged = np.array([other, second], dtype=np.uint64).tobytes()
    assert forged != expected[0].encode()
    data = forged + "".join(expected[1:]).encode()
    offsets = np.arange(0, 16 * 101, 16, dtype=np.int64)
    file_ids = pa.LargeStringArray.from_buffers(100, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    ids = ExpectedIds(expected)
    assert not ids.same_set(file_ids)  # the keys are the expected ones, sorted; the first id's bytes are not
    assert ids.positions(file_ids).tolist() == [-1, *range(1, 100)]
    assert ids.same_set(pa.array(expected[::-1]))


def test_same_set_needs_ids_of_one_length_and_one_key_each() -> None:
    mixed = [str(i) for i in range(1500)]
    assert not ExpectedIds(mixed).same_set(pa.array(mixed))  # no key table: the caller hashes
    assert not ExpectedIds([*IDS[:10], IDS[0]]).same_set(pa.array([*IDS[:10], IDS[0]]))  # duplicate expected ids
    assert not ExpectedIds([1, 2, 3]).same_set(pa.array(["1", "2", "3"]))
    assert not ExpectedIds([]).same_set(pa.array([], pa.string()))
