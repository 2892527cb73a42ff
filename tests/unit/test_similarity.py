"""Similar submissions on real code: the NYC examples and starter kit, a disguised copy, copied predictions.

The code tests read the real files of ``examples/submissions/nyc-flight-delays`` and the NYC task's starter kit;
the prediction tests build hidden-row predictions of independent models and of a copy with small noise.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from harness.similarity import (
    CodeDocument,
    SimilarityFindings,
    code_pairs,
    code_table,
    extract_code,
    findings_html,
    findings_lines,
    most_similar,
    prediction_pairs,
    starter_documents,
    team_predictions,
    with_similar_column,
)
from harness.similarity.code import kgram_hashes, text_document
from harness.similarity.predictions import TeamPredictions
from harness.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
NYC = ROOT / "task_specs" / "nyc-flight-delays"
EXAMPLES = ROOT / "examples" / "submissions" / "nyc-flight-delays"

RENAMES = {
    "train": "df_tr",
    "test": "df_te",
    "features": "build_matrix",
    "model": "regressor",
    "weather": "wx",
    "planes": "aircraft",
    "minutes": "to_min",
    "predictions": "submission_df",
    "by_origin": "grp",
    "CATEGORICAL": "CAT_COLS",
    "WEATHER": "WX_COLS",
    "out": "result",
    "df": "frame",
}


def disguised_copy(original: Path, dest: Path) -> Path:
    """The gradient-boosting notebook as a copier would hand it in: variables and functions renamed, the feature
    cell moved before the loading cell, the markdown dropped, a comment on every cell and on every third line."""
    nb = nbformat.read(original, as_version=4)
    pattern = re.compile(r"\b(" + "|".join(RENAMES) + r")\b")
    cells = []
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        source = pattern.sub(lambda m: RENAMES[m.group(1)], cell.source)
        lines = [
            line + ("  # tweak" if i % 3 == 0 and line.strip() else "") for i, line in enumerate(source.split("\n"))
        ]
        changed = copy.deepcopy(cell)
        changed.source = "# our own work\n" + "\n".join(lines)
        cells.append(changed)
    cells[2], cells[3] = cells[3], cells[2]
    nb.cells = cells
    dest.mkdir(parents=True)
    nbformat.write(nb, dest / "solution.ipynb")
    return dest


@pytest.fixture(scope="module")
def nyc():
    return load_spec(NYC)


@pytest.fixture(scope="module")
def starter(nyc):
    return starter_documents(nyc)


def _listed(spec, documents, starter) -> dict[frozenset[str], object]:
    pairs, _ = code_pairs(spec, documents, starter)
    return {frozenset((p.team_a, p.team_b)): p for p in pairs}


def test_a_disguised_copy_of_the_gbm_notebook_is_found(nyc, starter, tmp_path: Path) -> None:
    copy_dir = disguised_copy(EXAMPLES / "gbm-notebook" / "solution.ipynb", tmp_path / "copier")
    documents = {
        "original": extract_code(EXAMPLES / "gbm-notebook"),
        "copier": extract_code(copy_dir),
        "ridge": extract_code(EXAMPLES / "ridge-script"),
        "baseline": extract_code(EXAMPLES / "baseline"),
    }
    assert "df_tr" in documents["copier"].text and "train =" not in documents["copier"].text  # really renamed
    listed = _listed(nyc, documents, starter)
    assert set(listed) == {frozenset({"original", "copier"})}
    pair = listed[frozenset({"original", "copier"})]
    assert pair.similarity > 0.9 and pair.match.matched_chars > 500
    # the marked lines are the copied code on both sides, in the copier's reordered cells too
    copier_side = pair.match.lines_a if pair.team_a == "copier" else pair.match.lines_b
    marked = {n for first, last in copier_side for n in range(first, last + 1)}
    lines = pair.code_a.text.split("\n") if pair.team_a == "copier" else pair.code_b.text.split("\n")
    assert any("HistGradientBoostingRegressor(" in lines[n - 1] for n in marked)
    assert any("def build_matrix" in lines[n - 1] for n in marked)


def test_the_ridge_script_and_the_baseline_are_not_similar(nyc, starter) -> None:
    documents = {name: extract_code(EXAMPLES / name) for name in ("ridge-script", "baseline", "gbm-notebook")}
    assert _listed(nyc, documents, starter) == {}


def test_starter_kit_code_alone_never_makes_two_teams_similar(nyc, starter, tmp_path: Path) -> None:
    kit = nbformat.read(NYC / "starter" / "solution.ipynb", as_version=4)
    teams = {}
    for team, extra in (("one", "print('done')"), ("two", "x = 1\nprint(x)"), ("three", "")):
        nb = copy.deepcopy(kit)
        nb.cells.append(nbformat.v4.new_code_cell(extra))
        nb.cells.append(nbformat.v4.new_code_cell('import harness\nharness.check("task", "solution.ipynb")'))
        (tmp_path / team).mkdir()
        nbformat.write(nb, tmp_path / team / "solution.ipynb")
        teams[team] = extract_code(tmp_path / team)
    assert _listed(nyc, teams, starter) == {}
    # without the starter kit as boilerplate the same notebooks are near-identical: the removal is what decides
    assert len(_listed(nyc, teams, [])) == 3


def test_code_extraction_reads_cells_not_outputs_and_comments_out_magics(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%pip install lightgbm\n!ls /input\nvalue = 1")
    cell.outputs = [nbformat.v4.new_output("stream", text="SECRET OUTPUT")]
    nb.cells = [nbformat.v4.new_markdown_cell("MARKDOWN TEXT"), cell]
    (tmp_path / "sub" / ".ipynb_checkpoints").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "sub" / "solution.ipynb")
    (tmp_path / "sub" / ".ipynb_checkpoints" / "old.py").write_text("ignored = True\n")
    (tmp_path / "sub" / "helpers.py").write_text("def helper():\n    return 2\n")
    (tmp_path / "sub" / "broken.ipynb").write_text("{not json")
    document = extract_code(tmp_path / "sub")
    assert "SECRET OUTPUT" not in document.text and "MARKDOWN TEXT" not in document.text
    assert "# %pip install lightgbm" in document.text and "# !ls /input" in document.text
    assert "ignored" not in document.text and "def helper" in document.text
    line = document.text.split("\n").index("value = 1") + 1
    assert document.part_at(line) == "solution.ipynb cell 2"


def test_kgram_hashes_are_the_same_in_every_process() -> None:
    # fixed values: a salted hash() would change them from one interpreter to the next
    hashes = kgram_hashes("V=V.V(S)", 5)
    assert len(hashes) == 4 and hashes.dtype == np.int64
    assert list(kgram_hashes("V=V.V(S)", 5)) == list(hashes)
    assert kgram_hashes("abc", 5).size == 0


def _independent(rng: np.random.Generator, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A truth mostly noise (as flight delays are) and three independent models of its predictable part."""
    signal = rng.normal(0, 10, n)
    truth = signal + rng.normal(0, 35, n)
    models = {
        "median": np.full(n, 3.0) + 0.4 * signal + rng.normal(0, 4, n),
        "ridge": 0.6 * signal + rng.normal(0, 6, n),
        "gbm": 0.8 * signal + rng.normal(0, 5, n),
    }
    return truth, models


def test_a_copy_of_predictions_with_small_noise_is_flagged_and_independent_models_are_not() -> None:
    rng = np.random.default_rng(7)
    truth, models = _independent(rng, 20_000)
    models["copier"] = models["gbm"] + rng.normal(0, 0.2, truth.size)  # gbm's file with noise of 2 % of its spread
    teams = tuple(models)
    predictions = TeamPredictions(teams, {"y": np.vstack([models[t] for t in teams])}, {"y": truth}, {}, {}, {})
    pairs = prediction_pairs(predictions, threshold=0.1)
    assert len(pairs) == 6
    flagged = [p for p in pairs if p.flagged]
    assert [(p.team_a, p.team_b) for p in flagged] == [("copier", "gbm")]
    assert flagged[0].difference < 0.05 and flagged[0].residual_correlation > 0.999
    # independent models' residuals correlate highly too (the truth's noise dominates): not what flags a pair
    ridge_gbm = next(p for p in pairs if {p.team_a, p.team_b} == {"ridge", "gbm"})
    assert ridge_gbm.residual_correlation > 0.9 and ridge_gbm.difference > 0.3
    assert flagged[0].typical_difference > 0.3


def test_copied_labels_with_a_few_changes_are_flagged_by_agreement_beyond_chance() -> None:
    rng = np.random.default_rng(3)
    n, classes = 5_000, 4
    truth = rng.integers(0, classes, n)

    def model(accuracy: float) -> np.ndarray:
        right = rng.random(n) < accuracy
        return np.where(right, truth, rng.integers(0, classes, n))

    a, b = model(0.7), model(0.72)
    copier = np.where(rng.random(n) < 0.01, rng.integers(0, classes, n), a)
    codes = np.vstack([a, b, copier])
    predictions = TeamPredictions(("a", "b", "copier"), {}, {}, {"label": codes}, {"label": truth}, {"label": classes})
    pairs = prediction_pairs(predictions, threshold=0.1)
    flagged = [p for p in pairs if p.flagged]
    assert [(p.team_a, p.team_b) for p in flagged] == [("a", "copier")]
    assert flagged[0].agreement > 0.95 and flagged[0].kind == "labels"
    a_b = next(p for p in pairs if {p.team_a, p.team_b} == {"a", "b"})
    assert a_b.difference > 0.5 and a_b.agreement < 0.7


def test_team_predictions_reads_probability_columns_as_numbers_and_labels_as_codes() -> None:
    weather = load_spec(ROOT / "task_specs" / "seattle-weather")  # probabilities of five classes
    reference = pd.DataFrame({"id": ["a", "b"], "weather": ["rain", "sun"], "split": ["public", "private"]})
    table = pd.DataFrame(
        {"id": ["a", "b"], "p_drizzle": 0.0, "p_fog": 0.0, "p_rain": [1.0, 0.5], "p_snow": 0.0, "p_sun": [0.0, 0.5]}
    )
    stacked = team_predictions(weather, reference, {"x": table, "y": table})
    assert stacked.teams == ("x", "y") and set(stacked.numbers) == {"p_drizzle", "p_fog", "p_rain", "p_snow", "p_sun"}
    assert stacked.truths["p_rain"].tolist() == [1.0, 0.0] and stacked.truths["p_sun"].tolist() == [0.0, 1.0]
    pairs = prediction_pairs(stacked, threshold=0.1)
    assert len(pairs) == 1 and pairs[0].flagged and pairs[0].difference == 0.0  # the same file twice

    digits = load_spec(ROOT / "task_specs" / "meter-digits")  # a label column
    reference = pd.DataFrame({"id": ["a", "b", "c"], "digit": [7, 1, 0], "split": "public"})
    one = pd.DataFrame({"id": ["a", "b", "c"], "digit": [7, 2, 0]})
    other = pd.DataFrame({"id": ["a", "b", "c"], "digit": [1, 1, 0]})
    stacked = team_predictions(digits, reference, {"one": one, "other": other})
    assert stacked.labels["digit"].tolist() == [[7, 2, 0], [1, 1, 0]] and stacked.label_truths["digit"].tolist() == [
        7,
        1,
        0,
    ]
    (pair,) = prediction_pairs(stacked, threshold=0.1)
    assert pair.kind == "labels" and pair.difference == 1.0 and not pair.flagged  # they differ on every wrong row


def _findings(teams=("<b>evil</b>", "plain")) -> SimilarityFindings:
    code = text_document([("main.py", "x = 1\n</pre><script>alert(1)</script>\ny = 2\n\x1b[2J")])
    from harness.similarity.code import CodeMatch
    from harness.similarity.find import CodePair

    pair = CodePair(teams[0], teams[1], CodeMatch(0.8, 0.6, 300, ((2, 3),), ((2, 2),)), code, code)
    return SimilarityFindings("t", tuple(teams), code=(pair,))


def test_the_report_section_escapes_team_text_and_marks_matching_lines() -> None:
    page = findings_html(_findings(), threshold=0.5, prediction_threshold=0.1)
    assert "<script>" not in page and "<b>evil" not in page
    assert "&lt;/pre&gt;&lt;script&gt;" in page and "&lt;b&gt;evil&lt;/b&gt;" in page
    assert "\x1b" not in page and "\\x1b" in page
    assert page.count('<span class="hit">') == 3  # lines 2-3 on one side, line 2 on the other
    lines = findings_lines(_findings())
    assert any("80%" in line and "<b>evil</b> ~ plain" in line for line in lines)
    table = code_table(_findings())
    assert list(table.columns)[:3] == ["team_a", "team_b", "similarity"] and table["similarity"].iloc[0] == 0.8


def test_the_leaderboard_column_names_the_most_similar_other_team() -> None:
    findings = _findings(("alpha", "bravo"))
    assert most_similar(findings) == {"alpha": "bravo (code 80%)", "bravo": "alpha (code 80%)"}
    board = pd.DataFrame({"rank": [1, 2, 3], "team": ["alpha", "bravo", "charlie"], "identical_to": ["", "", ""]})
    shown = with_similar_column(board, findings)
    assert list(shown.columns) == ["rank", "team", "identical_to", "similar_to"]
    assert list(shown["similar_to"]) == ["bravo (code 80%)", "alpha (code 80%)", ""]
    assert "similar_to" not in board  # a copy


def test_the_similarity_section_of_a_spec_has_defaults_and_checks_its_window(nyc) -> None:
    from pydantic import ValidationError

    from harness.spec import SimilaritySpec

    assert nyc.similarity.code_threshold == 0.5 and nyc.similarity.window == 6
    with pytest.raises(ValidationError, match="guarantee_chars"):
        SimilaritySpec(noise_chars=30, guarantee_chars=20)


def test_an_empty_document_has_no_parts() -> None:
    assert extract_code(ROOT / "does-not-exist.txt") == CodeDocument(text="")


def test_the_boilerplate_is_what_the_starter_kit_holds() -> None:
    from harness import starter
    from harness.similarity.find import SELF_CHECK_CODE, STARTER_TEMPLATE_DIR

    assert starter.TEMPLATE_DIR == STARTER_TEMPLATE_DIR
    assert SELF_CHECK_CODE.strip("\n").split("\n")[1:3] == ["import harness", 'harness.check("task", "solution.ipynb")']
    assert 'import harness\nharness.check("task", "solution.ipynb")' in starter._SELF_CHECK


def test_the_shortlist_drops_no_pair_that_comparing_every_pair_would_list(nyc, tmp_path: Path) -> None:
    from harness.similarity.code import boilerplate_hashes, compare, fingerprint
    from harness.spec import SimilaritySpec

    spec = nyc.model_copy(update={"similarity": SimilaritySpec(code_threshold=0.2, min_matched_chars=50)})
    documents = {f"{d.parent.name}/{d.name}": extract_code(d) for d in sorted(EXAMPLES.parent.glob("*/*"))}
    documents["copier"] = extract_code(disguised_copy(EXAMPLES / "gbm-notebook" / "solution.ipynb", tmp_path / "c"))
    boiler = starter_documents(spec)
    listed, compared = code_pairs(spec, documents, boiler)
    rules = spec.similarity
    hashes = boilerplate_hashes(boiler, noise_chars=rules.noise_chars)
    teams = sorted(documents)
    prints = [fingerprint(documents[t], noise_chars=25, window=rules.window, boilerplate=hashes) for t in teams]
    every = {
        (teams[i], teams[j])
        for i in range(len(teams))
        for j in range(i + 1, len(teams))
        if (m := compare(prints[i], prints[j])).similarity >= 0.2 and m.matched_chars >= 50
    }
    assert len(every) >= 3 and compared < len(teams) * (len(teams) - 1) // 2
    assert {(p.team_a, p.team_b) for p in listed} == every
