"""Similar submissions at scale: the time to compare 100, 500 and 1,000 synthetic submissions, code and predictions.

Each synthetic submission is a notebook-like Python text: the NYC starter notebook's code (boilerplate, removed),
then 10 blocks drawn from a pool of 2,000 real functions (8 to 40 lines each, from the standard library's
modules), so that honest teams share a block now and then and common idioms often. One submission in fifty is a
disguised copy of another (names changed, blocks reordered, comments added).

Prints a markdown table: the whole code step of ``harness similar`` (fingerprints, the exact shortlist, the full
comparison of the shortlisted pairs), the fingerprinting alone, the pairs compared in full out of all pairs, the
pairs listed, and, side by side, the time copydetect would take to compare *every* pair (measured on 2,000 random
pairs and scaled). Then the prediction step: every pair of teams' predictions of ``--rows`` hidden rows (Gram
matrices), without reading files.

Measured, not asserted. Usage: ``python benchmarks/bench_similar.py [--sizes 100 500 1000] [--rows 82609]``.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from harness.similarity.code import (
    CodeDocument,
    boilerplate_hashes,
    compare,
    extract_code,
    fingerprint,
    text_document,
)
from harness.similarity.find import code_pairs
from harness.similarity.predictions import TeamPredictions, prediction_pairs
from harness.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "task_specs" / "nyc-flight-delays"


def _pool(size: int, rng: random.Random) -> list[str]:
    """``size`` real, varied blocks of code: functions of 8 to 40 lines from the standard library's modules."""
    import ast
    import sysconfig

    blocks: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = text.split("\n")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.end_lineno and 8 <= node.end_lineno - node.lineno <= 40:
                blocks.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    rng.shuffle(blocks)
    return blocks[:size]


def _rename(text: str, rng: random.Random) -> str:
    """A disguise: every identifier of 3 to 9 lower-case letters gets a new name; a comment every other line."""
    import re

    names: dict[str, str] = {}

    def new(match: re.Match[str]) -> str:
        word = match.group(0)
        if word in {"for", "in", "range", "if", "break", "def", "return", "sum", "len", "print", "fit", "predict"}:
            return word
        return names.setdefault(word, "z" + "".join(rng.choice("qwxyz") for _ in range(6)))

    renamed = re.sub(r"\b[a-z]{3,9}\b(?![\"'])", new, text)
    return "\n".join(line + ("  # ours" if i % 2 else "") for i, line in enumerate(renamed.split("\n")))


def synthetic(n: int, *, seed: int = 0) -> dict[str, CodeDocument]:
    """``n`` synthetic submissions (see the module docstring), team ``t0000`` ... ."""
    rng = random.Random(seed)
    starter = extract_code(TASK / "starter").text
    pool = _pool(2000, rng)
    blocks: dict[str, list[str]] = {}
    for t in range(n):
        team = f"t{t:04d}"
        if t >= 10 and t % 50 == 0:  # a disguised copy of an earlier team, blocks reordered
            source = list(blocks[f"t{rng.randrange(t):04d}"])
            rng.shuffle(source)
            blocks[team] = [_rename(b, rng) for b in source]
        else:
            blocks[team] = rng.sample(pool, 10)
    return {
        team: text_document([("starter", starter), *((f"cell {i}", b) for i, b in enumerate(bs))])
        for team, bs in blocks.items()
    }


def bench_code(n: int) -> dict[str, float]:
    spec = load_spec(TASK)
    from harness.similarity.find import starter_documents

    documents = synthetic(n)
    started = time.perf_counter()
    listed, compared = code_pairs(spec, documents, starter_documents(spec))
    total = time.perf_counter() - started

    rules = spec.similarity
    boiler = boilerplate_hashes(starter_documents(spec), noise_chars=rules.noise_chars)
    started = time.perf_counter()
    prints = [
        fingerprint(d, noise_chars=rules.noise_chars, window=rules.window, boilerplate=boiler)
        for d in documents.values()
    ]
    fingerprint_s = time.perf_counter() - started
    rng = random.Random(1)
    sample = 2000
    started = time.perf_counter()
    for _ in range(sample):
        i, j = rng.sample(range(n), 2)
        compare(prints[i], prints[j])
    per_pair = (time.perf_counter() - started) / sample
    all_pairs = n * (n - 1) // 2
    return {
        "n": n,
        "total_s": total,
        "fingerprint_s": fingerprint_s,
        "compared": compared,
        "pairs": all_pairs,
        "listed": len(listed),
        "all_pairs_s": fingerprint_s + per_pair * all_pairs,
    }


def bench_predictions(teams: int, rows: int) -> float:
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 40, rows)
    signal = rng.normal(0, 10, rows)
    matrix = signal[None, :] * rng.uniform(0.5, 1.2, (teams, 1)) + rng.normal(0, 6, (teams, rows))
    predictions = TeamPredictions(
        teams=tuple(f"t{i:04d}" for i in range(teams)),
        numbers={"y": matrix},
        truths={"y": truth},
        labels={},
        label_truths={},
        n_labels={},
    )
    started = time.perf_counter()
    prediction_pairs(predictions, threshold=0.1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--rows", type=int, default=82_609, help="hidden rows per team (NYC: 82,609)")
    args = parser.parse_args()
    print(
        "| submissions | harness similar, code (s) | of which fingerprints (s) | pairs compared in full | all pairs "
        "| pairs listed | copydetect on every pair (s, estimated) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        r = bench_code(n)
        print(
            f"| {n:,} | {r['total_s']:.1f} | {r['fingerprint_s']:.1f} | {r['compared']:,} | {r['pairs']:,} "
            f"| {r['listed']} | {r['all_pairs_s']:.0f} |"
        )
    print()
    print(f"| teams | predictions of {args.rows:,} rows, every pair (s) |")
    print("|---:|---:|")
    for n in args.sizes:
        print(f"| {n:,} | {bench_predictions(n, args.rows):.1f} |")


if __name__ == "__main__":
    main()
