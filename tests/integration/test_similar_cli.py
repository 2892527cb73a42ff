"""`harness similar`, `harness leaderboard --similar` and the report's section on a small judged store.

The minimal fixture task (y = 3x + 1) is judged in the real sandbox with six teams: an original script, a disguised
copy of its code, a team that copied its predictions and added small noise with code of its own, two notebooks
that are the starter kit plus a line each, and an independent mean predictor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from harness.report.tables import read_glued

pytestmark = pytest.mark.integration

ORIGINAL = '''
import csv
import math
import os

source = os.environ["HARNESS_INPUT_DIR"]
target = os.environ["HARNESS_OUTPUT_DIR"]


def load(name):
    with open(os.path.join(source, name), newline="") as handle:
        return list(csv.DictReader(handle))


def fit(rows):
    """Slope and intercept of the least-squares line through (x, y)."""
    n = len(rows)
    sx = sum(float(r["x"]) for r in rows)
    sy = sum(float(r["y"]) for r in rows)
    sxx = sum(float(r["x"]) ** 2 for r in rows)
    sxy = sum(float(r["x"]) * float(r["y"]) for r in rows)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    return slope, (sy - slope * sx) / n


def wobble(x, amplitude=5.0, period=7.0):
    return amplitude * math.sin(2 * math.pi * x / period) + 0.3 * math.cos(x / 3.0)


slope, intercept = fit(load("train.csv"))
with open(os.path.join(target, "predictions.csv"), "w", newline="") as out:
    writer = csv.writer(out, lineterminator="\\n")
    writer.writerow(["id", "y"])
    for row in load("test.csv"):
        x = float(row["x"])
        writer.writerow([row["id"], slope * x + intercept + wobble(x)])
'''

# The same code, disguised: every name changed, comments added, the functions in another order.
DISGUISED = '''
import csv
import math
import os

# our solution
indir = os.environ["HARNESS_INPUT_DIR"]
outdir = os.environ["HARNESS_OUTPUT_DIR"]


def noise_term(v, amp=5.0, per=7.0):  # a periodic correction
    return amp * math.sin(2 * math.pi * v / per) + 0.3 * math.cos(v / 3.0)


def read_table(fname):
    with open(os.path.join(indir, fname), newline="") as fh:
        return list(csv.DictReader(fh))


def least_squares(data):
    """Our regression."""
    m = len(data)
    a = sum(float(d["x"]) for d in data)
    b = sum(float(d["y"]) for d in data)
    aa = sum(float(d["x"]) ** 2 for d in data)
    ab = sum(float(d["x"]) * float(d["y"]) for d in data)
    k = (m * ab - a * b) / (m * aa - a * a)  # the slope
    return k, (b - k * a) / m


k, c = least_squares(read_table("train.csv"))
with open(os.path.join(outdir, "predictions.csv"), "w", newline="") as sink:
    w = csv.writer(sink, lineterminator="\\n")
    w.writerow(["id", "y"])
    for r in read_table("test.csv"):
        v = float(r["x"])
        w.writerow([r["id"], k * v + c + noise_term(v)])
'''

# Another team's predictions with small noise added, in code of its own.
NOISY = """
import csv, math, os
rows = list(csv.DictReader(open(os.path.join(os.environ["HARNESS_INPUT_DIR"], "test.csv"))))
with open(os.path.join(os.environ["HARNESS_OUTPUT_DIR"], "predictions.csv"), "w") as f:
    print("id,y", file=f)
    for i, r in enumerate(rows):
        x = int(r["x"])
        base = 3 * x + 1 + 5.0 * math.sin(2 * math.pi * x / 7.0) + 0.3 * math.cos(x / 3.0)
        print(f"{r['id']},{base + 0.02 * math.sin(97 * i)}", file=f)
"""

MEAN = """
import csv, os
inp, out = os.environ["HARNESS_INPUT_DIR"], os.environ["HARNESS_OUTPUT_DIR"]
train = list(csv.DictReader(open(os.path.join(inp, "train.csv"))))
mean = sum(float(r["y"]) for r in train) / len(train)
rows = list(csv.DictReader(open(os.path.join(inp, "test.csv"))))
with open(os.path.join(out, "predictions.csv"), "w") as fh:
    fh.write("id,y\\n")
    for r in rows:
        fh.write(f"{r['id']},{mean + 0.1 * (int(r['x']) % 5)}\\n")
"""


def _script(folder: Path, code: str) -> None:
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(code)


def _starter_plus(task: Path, path: Path, line: str) -> None:
    nb = nbformat.read(task / "starter" / "solution.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(line))
    nbformat.write(nb, path)


def _harness(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_similar_lists_copied_code_and_copied_predictions_but_not_starter_code(
    minimal_task: Path, test_image: str, tmp_path: Path
) -> None:
    subs = tmp_path / "submissions"
    _script(subs / "original", ORIGINAL)
    _script(subs / "disguised", DISGUISED)
    _script(subs / "noisy", NOISY)
    _script(subs / "mean", MEAN)
    _starter_plus(minimal_task, subs / "kit-one.ipynb", "print('done')")
    _starter_plus(minimal_task, subs / "kit-two.ipynb", "summary = 'finished'\nprint(summary)")
    home = tmp_path / "home"
    run = _harness("run", str(minimal_task), str(subs), "--workers", "2", home=home)
    assert "6 evaluated (6 succeeded)" in run.stdout, run.stdout + run.stderr

    out = _harness("similar", str(minimal_task), home=home).stdout
    lines = out.splitlines()
    code = [line for line in lines if line.startswith("  code ")]
    predictions = [line for line in lines if line.startswith("  predictions ")]
    assert len(code) == 1 and "disguised ~ original" in code[0], out
    assert not any("kit-" in line for line in code), out  # starter kit code never counts
    assert any("noisy ~ original" in line for line in predictions), out
    assert any("disguised ~ original" in line for line in predictions), out  # same code, same predictions
    assert not any("mean" in line for line in predictions), out

    board = json.loads(_harness("leaderboard", str(minimal_task), "--similar", "--format", "json", home=home).stdout)
    similar_to = {row["team"]: row["similar_to"] for row in board}
    assert similar_to["disguised"].startswith("original (code") and similar_to["original"].startswith("disguised")
    # original and disguised write the same predictions: noisy's closest is either of them
    assert similar_to["noisy"].split(" (")[0] in ("original", "disguised") and "(predictions" in similar_to["noisy"]
    assert similar_to["mean"] == ""
    plain = json.loads(_harness("leaderboard", str(minimal_task), "--format", "json", home=home).stdout)
    assert "similar_to" not in plain[0]  # only behind --similar

    reports = tmp_path / "reports"
    _harness("report", str(minimal_task), "--out", str(reports), home=home, timeout=600)
    glued = read_glued(reports / "leaderboard.ipynb", "similar_code")
    assert [(r["team_a"], r["team_b"]) for r in glued] == [("disguised", "original")]
    flagged = {
        (r["team_a"], r["team_b"])
        for r in read_glued(reports / "leaderboard.ipynb", "similar_predictions")
        if r["flagged"]
    }
    assert ("noisy", "original") in flagged
    page = (reports / "leaderboard.html").read_text(encoding="utf-8")
    assert "Similar submissions" in page and 'class="hit"' in page and "similar_to" in page
