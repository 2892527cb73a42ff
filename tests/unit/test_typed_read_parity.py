"""Numbers parsed by Arrow's CSV reader as it reads a plain file give the outcome of reading them as text first.

Validation's fast path asks Arrow's reader for a ``float``/``int`` column as float64 (no string per value), which
is only right when the reader accepts and rounds exactly what the cast of ``_plain_numbers`` does: the reader also
trims spaces and tabs around a number, so a file holding either byte is read as text, and any value that is not a
plain number makes it read the file again as text. Every file here, each value a kind a team writes (plain, signed,
exponents, ``nan``/``inf`` spelled out, out-of-range, padded, empty, missing-value words, text, hex, unicode
digits), is validated three ways (typed, text only, and pandas' parser without Arrow) under several specs of ``y``
(float, int, bounded, an int label); the outcome must be the same, word for word, and a valid frame bit for bit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import InvalidOutputError
from harness.scoring import predictions, validate_predictions
from harness.scoring.expected import ExpectedIds
from harness.scoring.shape import _CR_CHUNK, has_lone_cr, read_header
from harness.spec import TaskSpec, load_spec

FIXTURE_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"
IDS = [f"r{i:03d}" for i in range(40)]
#: One value each, put in a file of otherwise plain numbers (and in a file where every row holds it).
VALUES = [
    "1", "+1", "-1", "1.", ".5", "-.5", "1e5", "1E+05", "1e-5", "-0", "0.0", "00012", "1.5e", "e5", "1e", "--1", "+-1",
    "nan", "NaN", "NAN", "-nan", "+nan", "inf", "-inf", "+inf", "Inf", "Infinity", "-INFINITY", "infinit",
    "1e309", "-1e309", "1e-400", "4.9e-324", "1.7976931348623157e308", "1.7976931348623159e308", "9007199254740993",
    "0.1000000000000000055511151231257827", "123456789012345678901234567890", "0.30000000000000004", "2.5", "7",
    " 1.5", "1.5 ", "\t2", "2\t", "  3  ", "", "NA", "n/a", "null", "None", "<NA>", "seven", "0x10", "1_000", "1d5",
    "\u0661", "\xa01", "1\xa0", "\u2003", "\x0b1", "true", "1..2", ".", "-", "5", "11", "10.0000000000000001",
    # padded: Arrow's reader trims spaces and tabs, the cast does not ("+nan" is NaN to both, text once stripped)
    " +nan", "+nan\t", " nan", " -inf", "\tInfinity", " 1e309", " 4.9e-324", " 0x10", " 1.", "1e5 ",
    # other padding (str.strip removes it, Arrow's reader does not), correctly rounded ties, int64's edges
    "\u30001", "1\u3000", "\x1c1", "1\x1f", "\x851", "\u200b1", "\ufeff1", "1\x0c", "\uff11", "\xb2", "nan(1)",
    "infinity", "+infinity", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "2.4703282292062327e-324", "2.4703282292062328e-324", "1e99999999999999999999", "0" * 400 + "1",
    "1.00000000000000011102230246251565404236316680908203125",
    "1.00000000000000011102230246251565404236316680908203126",
]  # fmt: skip
Y_SPECS = {
    "float": "{name: y, dtype: float}",
    "int": "{name: y, dtype: int}",
    "bounded float": "{name: y, dtype: float, min: 0, max: 10}",
    "int label": "{name: y, dtype: int, values: [1, 2, 5, 7]}",
}


@pytest.fixture(scope="module", params=list(Y_SPECS))
def spec(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TaskSpec:
    task = tmp_path_factory.mktemp("typed") / "minimal"
    shutil.copytree(FIXTURE_TASK, task, ignore=shutil.ignore_patterns("data", "__pycache__"))
    text = (task / "task.yaml").read_text(encoding="utf-8")
    assert "{name: y, dtype: float}" in text
    (task / "task.yaml").write_text(text.replace("{name: y, dtype: float}", Y_SPECS[request.param]), "utf-8")
    return load_spec(task)


def outcome(spec: TaskSpec, path: Path) -> tuple[str, object]:
    try:
        frame = validate_predictions(spec, path, expected_ids=ExpectedIds(IDS))
    except InvalidOutputError as exc:
        return "refused", (exc.message, list(exc.problems))
    columns = {c: (str(frame[c].dtype), frame[c].tolist()) for c in frame.columns}
    floats = {c: frame[c].to_numpy().tobytes() for c in frame.columns if frame[c].dtype == np.float64}
    return "valid", (columns, floats)  # the bytes: -0.0 is not 0.0, and a NaN's sign shows


def three_ways(spec: TaskSpec, path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object]:
    """The outcome typed, as text only and through pandas' parser; asserted equal, returned."""
    typed = outcome(spec, path)
    with monkeypatch.context() as patch:
        patch.setattr(predictions, "_numeric_columns", lambda _spec: frozenset())
        text = outcome(spec, path)
        patch.setattr(predictions, "_read_fast", lambda *_args: None)
        general = outcome(spec, path)
    assert typed == text
    assert typed == general
    return typed


def files(value: str) -> dict[str, str]:
    plain = [f"{rid},{i % 5 + 1}" for i, rid in enumerate(IDS)]
    wide_names = ",".join(f"c{i}" for i in range(1200))
    zeros = ",0" * 1200
    return {
        "one row": "id,y\n" + "\n".join([f"{IDS[0]},{value}", *plain[1:]]) + "\n",
        "every row": "id,y\n" + "".join(f"{rid},{value}\n" for rid in IDS),
        "y first, crlf": "y,id\r\n" + "".join(f"{value if i == 3 else 2},{rid}\r\n" for i, rid in enumerate(IDS)),
        "a text column with spaces": "id,note,y\n" + "".join(f"{r},a note,{value}\n" for r in IDS),
        "wide": f"id,y,{wide_names}\n" + "".join(f"{rid},{value}{zeros}\n" for rid in IDS),
    }


@pytest.mark.parametrize("value", VALUES, ids=[repr(v) for v in VALUES])
def test_a_number_parsed_by_arrows_reader_is_judged_as_the_text_paths_judge_it(
    spec: TaskSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    for shape, body in files(value).items():
        path = tmp_path / shape.replace(" ", "_").replace(",", "") / "predictions.csv"
        path.parent.mkdir()
        path.write_text(body, encoding="utf-8", newline="")
        three_ways(spec, path, monkeypatch)


def test_the_typed_read_is_taken_for_plain_numbers_only() -> None:
    """The parity above compares the typed path (float64 straight from the reader), not two text reads."""
    plain = ("id,y\n" + "".join(f"{rid},{i}.5\n" for i, rid in enumerate(IDS))).encode()
    frame = predictions._read_fast(plain, read_header(plain, "p.csv"), ["id", "y"], frozenset({"y"}))
    assert frame is not None and frame["y"].dtype == np.float64 and frame["y"].iloc[3] == 3.5
    assert pd.api.types.is_string_dtype(frame["id"].dtype)
    for odd in (b"r000, 1.5\n", b"r000,seven\n", b"r000,\n", b"r000,NA\n", b"r 00,1.5\n"):
        data = plain + odd
        frame = predictions._read_fast(data, read_header(data, "p.csv"), ["id", "y"], frozenset({"y"}))
        assert frame is not None and pd.api.types.is_string_dtype(frame["y"].dtype), odd
    assert predictions._numeric_columns(load_spec(FIXTURE_TASK)) == frozenset({"y"})


PROBABILITY_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "probabilities"
#: Rows of a probability group (three classes, tolerance 0.001), one put among otherwise valid rows.
PROBABILITY_ROWS = [
    "0.2,0.3,0.5", "1,0,0", "1e-400,0.5,0.5", "0.3333333333333333,0.3333333333333333,0.3333333333333334",
    "0.2,0.3,0.6", "-0.1,0.6,0.5", "1.0000000000000002,0,0", "-0,1,0", "nan,0.5,0.5", "inf,0,0", " 0.2,0.3,0.5",
    "0.2,0.3,0.5\t", "0.2,,0.8", "0.2,NA,0.8", "0.2,0.3,half", ".2,.3,.5", "2e-1,3E-1,5e-1",
]  # fmt: skip


@pytest.mark.parametrize("row", PROBABILITY_ROWS)
def test_probability_columns_parsed_by_arrows_reader_are_judged_as_the_text_paths_judge_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: str
) -> None:
    spec = load_spec(PROBABILITY_TASK)
    body = "id,p_graffiti,p_noise,p_pothole\n" + "".join(
        f"{rid},{row if i == 7 else '0.25,0.25,0.5'}\n" for i, rid in enumerate(IDS)
    )
    path = tmp_path / "predictions.csv"
    path.write_text(body, encoding="utf-8", newline="")
    three_ways(spec, path, monkeypatch)


#: Files whose lines hold a carriage return not followed by ``\n``: a line end to Arrow's reader (and to pandas'),
#: not to the width scan of the general path, which counts the fields between ``\n``s.
LONE_CR = {
    # the rows of r003 and r004 in one line: every id once, so nothing else refuses it
    "two rows in a line": "id,y\n" + "".join(f"{rid},2" + ("\r" if i == 3 else "\n") for i, rid in enumerate(IDS)),
    "two rows in a line, crlf": "id,y\r\n"
    + "".join(f"{rid},2\r" + ("" if i == 3 else "\n") for i, rid in enumerate(IDS)),
    "an extra row in a line": "id,y\n" + "".join(f"{rid},2\n" for rid in IDS).replace("\n", "\rzzz,1\n", 1),
    "old Mac line ends after the first row": "id,y\n" + f"{IDS[0]},2\n" + "".join(f"{rid},2\r" for rid in IDS[1:]),
    "a carriage return at the end": "id,y\n" + "".join(f"{rid},2\n" for rid in IDS) + "\r",
    "two carriage returns, then a line end": "id,y\n" + "".join(f"{rid},2\r\r\n" for rid in IDS),
    "a carriage return in a text column": "id,note,y\n" + "".join(f"{rid},a\rb,2\n" for rid in IDS),
}


@pytest.mark.parametrize("case", list(LONE_CR))
def test_a_carriage_return_inside_a_line_is_judged_as_the_general_path_judges_it(
    spec: TaskSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Arrow's reader ends a line at a lone ``\\r``, so it would read ``r003,2\\rr004,2`` as two rows where the width
    scan finds one row of 3 fields (refused): such a file is left to the general path, whose verdict stands."""
    path = tmp_path / "predictions.csv"
    path.write_bytes(LONE_CR[case].encode())
    three_ways(spec, path, monkeypatch)


def test_crlf_line_ends_still_take_the_typed_read() -> None:
    """Only a ``\\r`` that does not end a line sends a file to the general path; CRLF files keep the typed read."""
    crlf = ("id,y\r\n" + "".join(f"{rid},{i}.5\r\n" for i, rid in enumerate(IDS))).encode()
    frame = predictions._read_fast(crlf, read_header(crlf, "p.csv"), ["id", "y"], frozenset({"y"}))
    assert frame is not None and frame["y"].dtype == np.float64 and frame["id"].iloc[-1] == IDS[-1]
    for odd in (crlf + b"\r", crlf.replace(b"\r\n", b"\r", 2), crlf.replace(b"\r\n", b"\n").replace(b"\n", b"\r\r\n")):
        assert predictions._read_fast(odd, read_header(odd, "p.csv"), ["id", "y"], frozenset({"y"})) is None


def test_a_lone_carriage_return_is_found_across_the_chunks_of_the_scan() -> None:
    """``has_lone_cr`` scans in chunks: a CRLF pair split by a chunk end is a line end, a lone ``\\r`` is not."""
    size = 2 * _CR_CHUNK + 10
    for at in (0, 5, _CR_CHUNK - 1, _CR_CHUNK, 2 * _CR_CHUNK - 1, size - 2):
        data = bytearray(b"a" * size)
        data[at : at + 2] = b"\r\n"
        assert not has_lone_cr(bytes(data), 0), at
        data[at + 1] = ord("b")
        assert has_lone_cr(bytes(data), 0), at
        assert not has_lone_cr(bytes(data), at + 1), at  # before start: not looked at
    assert has_lone_cr(b"a" * size + b"\r", 0) and not has_lone_cr(b"a" * size + b"\r\n", 0)


@pytest.mark.parametrize("row", ["r039,1\x00", "r039,\x001", "r039\x00,1", "r039,1,x\x00"])
def test_a_nul_byte_past_the_sniffed_start_is_judged_as_the_text_paths_judge_it(
    spec: TaskSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: str
) -> None:
    """Only the first 64 KB are sniffed for NUL bytes: one further on reaches the readers, which must agree."""
    note = "n" * 2000  # 40 rows of 2 KB: the last row lies past 64 KB
    body = "id,y,note\n" + "".join(f"{rid},2,{note}\n" for rid in IDS[:-1]) + row + ("" if "x" in row else ",x") + "\n"
    path = tmp_path / "predictions.csv"
    path.write_bytes(body.encode())
    assert len(body) > 64 * 1024
    three_ways(spec, path, monkeypatch)


#: What the random edits below put into a plain file: separators, line ends, padding, a BOM, odd values, other ids.
EDITS = [",", "\n", "\r", "\r\n", " ", "\t", "1", "2.5", "r003", "r999", "x", "\ufeff", "nan", "-0", "1e400", "\xa0"]


def test_plain_files_edited_at_random_are_judged_alike_by_every_path(
    spec: TaskSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seeded fuzz: 100 plain files (columns in several orders, LF or CRLF), each with one or two random edits
    (text put in, a byte taken out or replaced), judged three ways. Before a carriage return not followed by
    ``\\n`` sent a file to the general path, several of them were valid to Arrow's reader (a CRLF file with one
    ``\\n`` taken out) but refused by the general path, under every spec."""
    rng = np.random.default_rng(20261203)
    ids = IDS[:12]
    for n in range(100):
        columns = [["id", "y"], ["y", "id"], ["id", "y", "note"], ["id", "note", "y"]][n % 4]
        sep = "\r\n" if n % 3 == 0 else "\n"
        lines = [",".join(columns)]
        lines += [",".join({"id": rid, "y": str(rng.integers(1, 6)), "note": "a"}[c] for c in columns) for rid in ids]
        body = sep.join(lines) + (sep if n % 5 else "")
        for _ in range(1 if n % 4 else 2):  # a byte put in, taken out or replaced
            at = int(rng.integers(0, len(body)))
            kind = int(rng.integers(0, 3))
            body = body[:at] + ("" if kind == 1 else str(rng.choice(EDITS))) + body[at + (kind > 0) :]
        path = tmp_path / f"f{n}" / "predictions.csv"
        path.parent.mkdir()
        path.write_bytes(body.encode())
        three_ways(spec, path, monkeypatch)
