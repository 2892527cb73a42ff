"""Team text on every surface (issue 11, kinds 3 and 5): control characters made visible, names in any script.

The inputs are hostile on purpose: an ANSI clear-screen, an OSC window title, cursor moves, a carriage return that
would overwrite a line, backspaces, right-to-left overrides and isolates that reorder what a judge reads, zero-width
joiners inside names; and names in several scripts. Each surface (``harness run`` progress lines and summary, the
terminal leaderboard, the CSV, Markdown and HTML exports, the report's tables, links and log tails, ``harness
check``) is checked to show them as escapes, while JSON and parquet keep the exact text.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import unicodedata
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes import FakeSandbox, make_result
from spec_fixtures import perfect_predictions, write_toy_task
from typer.testing import CliRunner

from harness.cli import app
from harness.ranking import export, metric_table
from harness.record import RunRecord
from harness.report.artifacts import artifact_links_html, log_tail
from harness.report.run import _file_safe
from harness.report.tables import plain_label, plain_table
from harness.sandbox import SANDBOXES
from harness.scheduling import BatchSummary
from harness.selfcheck import CheckResult
from harness.spec import MetricSpec, load_spec
from harness.status import Status
from harness.store import Store
from harness.submission import check_team_name, hidden_entries, iter_entries, team_name_from_entry
from harness.text import HIDDEN_CATEGORIES, describe_char, slug, spreadsheet_safe, visible

#: Hostile team text of several kinds, each with a word that must stay readable around it.
CLEAR_SCREEN = "boom\x1b[2J\x1b[H\x1b[3Jscreen gone"
OSC_TITLE = "title\x1b]0;you have been pwned\x07 set"
CURSOR_MOVES = "up\x1b[5A\x1b[2K\x1b[10Cmoved"
CR_OVERWRITE = "score 0.10\rscore 0.99"
BACKSPACES = "wrong\x08\x08\x08\x08\x08right"
RLO = "name \u202eexe.txt\u202c end"  # reads as "name txt.exe end"
LRI_RLI = "a\u2066b\u2067c\u2069d\u2069"
ZWJ = "ze\u200dro\u200bwidth\ufeff"
C1_CSI = "c1\x9b2Jcsi"
TAGS = "tag\U000e0041\U000e0042hidden"
HOSTILE = [CLEAR_SCREEN, OSC_TITLE, CURSOR_MOVES, CR_OVERWRITE, BACKSPACES, RLO, LRI_RLI, ZWJ, C1_CSI, TAGS]
#: The reason of a failed run in the surface tests: every kind at once.
EVIL_REASON = "ValueError: " + " | ".join(HOSTILE)
SCRIPT_NAMES = ["Ёжики №7 ✨", "チーム 東京", "فريق الأمل", "Équipe 7 (Zürich)", "팀 서울 😀", "Ωmega-π", "हिन्दी टीम"]


def raw_controls(text: str) -> list[str]:
    """The characters of ``text`` that :func:`visible` would have escaped (newline and tab allowed)."""
    return [c for c in text if c not in "\n\t" and unicodedata.category(c) in HIDDEN_CATEGORIES]


# -- the one function ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (CLEAR_SCREEN, "boom\\x1b[2J\\x1b[H\\x1b[3Jscreen gone"),
        (OSC_TITLE, "title\\x1b]0;you have been pwned\\x07 set"),
        (CURSOR_MOVES, "up\\x1b[5A\\x1b[2K\\x1b[10Cmoved"),
        (CR_OVERWRITE, "score 0.10\\rscore 0.99"),
        (BACKSPACES, "wrong\\x08\\x08\\x08\\x08\\x08right"),
        (RLO, "name \\u202eexe.txt\\u202c end"),
        (LRI_RLI, "a\\u2066b\\u2067c\\u2069d\\u2069"),
        (ZWJ, "ze\\u200dro\\u200bwidth\\ufeff"),
        (C1_CSI, "c1\\x9b2Jcsi"),
        (TAGS, "tag\\U000e0041\\U000e0042hidden"),
        ("lrm\u200e rlm\u200f alm\u061c", "lrm\\u200e rlm\\u200f alm\\u061c"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        ("bad name \udcff", "bad name \\udcff"),  # a lone surrogate (undecodable file name): now writable UTF-8
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
    ],
)
def test_visible_escapes_each_kind_of_hostile_text(text: str, shown: str) -> None:
    assert visible(text) == shown
    assert raw_controls(visible(text)) == []
    visible(text).encode("utf-8")  # never raises


def test_visible_keeps_ordinary_text_of_every_script_newlines_and_tabs() -> None:
    for name in [*SCRIPT_NAMES, "plain ASCII, (brackets) [x] $y$ <b>", "❤️ a\\b C:\\path", "a\u00a0b\u3000c"]:
        assert visible(name) == name
    assert visible("two\nlines\tand a tab") == "two\nlines\tand a tab"
    assert visible("two\nlines\tand a tab", keep="") == "two\\nlines\\tand a tab"
    assert visible("a\r\nb", keep="\n") == "a\\r\nb"


def test_visible_leaves_nothing_that_hides_or_moves_over_every_code_point() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 or c % 97 == 0)
    shown = visible(every, keep="")
    assert raw_controls(shown) == []
    assert "\n" not in shown and "\t" not in shown


def test_describe_char_names_controls_and_format_characters() -> None:
    assert describe_char("\x1b") == "U+001B ESCAPE"
    assert describe_char("\r") == "U+000D CARRIAGE RETURN"
    assert describe_char("\x08") == "U+0008 BACKSPACE"
    assert describe_char("\x9b") == "U+009B CONTROL SEQUENCE INTRODUCER"
    assert describe_char("\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    assert describe_char("\u200d") == "U+200D ZERO WIDTH JOINER"
    assert describe_char("\ue000") == "U+E000 private use character"
    assert describe_char("\udcff") == "U+DCFF lone surrogate"


def test_slugs_are_safe_distinct_and_keep_plain_names() -> None:
    assert slug("team-1.v2") == "team-1.v2" == _file_safe("team-1.v2")
    names = [*SCRIPT_NAMES, "../../etc", "a/b", "a b", "a-b", "Ёжики №7 ✨ ", "CON", "x" * 64, ".hidden", "-rf"]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    for fragment in slugs:
        assert fragment and fragment.isascii() and "/" not in fragment and " " not in fragment
        assert not fragment.startswith((".", "-")) and len(fragment) <= 80
    assert slug("Ёжики №7 ✨").startswith("No7-") and slug("Équipe 7 (Zürich)").startswith("Equipe-7-Zurich-")
    assert slug("../../etc").startswith("etc-")


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r", "＝"])
def test_spreadsheet_formula_prefixes_are_neutralised(prefix: str) -> None:
    assert spreadsheet_safe(prefix + "HYPERLINK(1)") == "'" + prefix + "HYPERLINK(1)"
    assert spreadsheet_safe("a=b") == "a=b" and spreadsheet_safe("") == ""


# -- team names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SCRIPT_NAMES, "=SUM(A1)", "a|b", "<script>", "❤️", "team@home", "1"])
def test_team_names_in_every_script_are_accepted(name: str) -> None:
    assert check_team_name(name) == name
    assert team_name_from_entry(name) == name


def test_team_names_are_nfc_normalised_with_spaces_collapsed() -> None:
    assert check_team_name("  Equipe\u0301   7\u00a0\u3000x ") == "Equipé 7 x"
    assert check_team_name("x" * 64) == "x" * 64


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("evil\x1b[2J", "U+001B ESCAPE (a control character)"),
        ("ok\rmask", "U+000D CARRIAGE RETURN (a control character)"),
        ("back\x08space", "U+0008 BACKSPACE"),
        ("Ёжики\u200d№7", "U+200D ZERO WIDTH JOINER (an invisible format character)"),
        ("zero\u200bwidth", "U+200B ZERO WIDTH SPACE"),
        ("team \u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u2067فريق\u2069", "U+2067 RIGHT-TO-LEFT ISOLATE"),
        ("\u200fmark", "U+200F RIGHT-TO-LEFT MARK"),
        ("blank\u3164", "U+3164 HANGUL FILLER (an invisible character)"),
        ("private\ue000", "U+E000 private use character (a private-use character)"),
        ("two\u2028lines", "U+2028 LINE SEPARATOR"),
    ],
)
def test_team_names_with_hidden_characters_are_refused_naming_them(name: str, named: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_team_name(name)
    message = str(caught.value)
    assert named in message and "letters, marks, numbers, symbols, punctuation and spaces" in message
    assert raw_controls(message) == []  # the message quotes the name made visible


@pytest.mark.parametrize(("name", "why"), [("", "1 to 64"), ("x" * 65, "1 to 64"), ("-.-", "no letter, number")])
def test_team_names_empty_long_or_only_punctuation_are_refused(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_team_name(name)


def test_entry_folders_named_in_any_script_keep_their_display_name(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    for name in [*SCRIPT_NAMES, "evil\x1b]0;t\x07", "rlo\u202eoof"]:
        (subs / name).mkdir(parents=True)
    teams = {entry.default_team_name for entry in iter_entries(subs)}
    assert teams == {*SCRIPT_NAMES, "evil_]0;t_", "rlo_oof"}


# -- hidden entries --------------------------------------------------------------------------------------------


def test_hidden_entries_are_listed_and_said_in_the_batch_summary(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    for name in (".git", ".team-x.zip", ".DS_Store", "visible"):
        (subs / name).mkdir(parents=True)
    assert [e.path.name for e in iter_entries(subs)] == ["visible"]
    assert hidden_entries(subs) == [".DS_Store", ".git", ".team-x.zip"]
    summary = BatchSummary(task_id="t", entries=1, unchanged=1, hidden=hidden_entries(subs))
    assert summary.message().endswith("; 3 hidden name(s) skipped (starting with '.'): .DS_Store, .git, .team-x.zip")
    many = BatchSummary(task_id="t", hidden=[f".h{i:02d}\x1b[2J" for i in range(12)])
    assert "12 hidden name(s) skipped" in many.message() and "and 2 more" in many.message()
    assert "\\x1b[2J" in many.message() and raw_controls(many.message()) == []


# -- surfaces --------------------------------------------------------------------------------------------------

MAE = MetricSpec(name="mae", goal="minimize", primary=True, precision=2)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _record(store: Store, task: str, team: str, content: str, *, scores: Any = None, reason: str = "") -> None:
    sub_id, _ = store.register_submission(
        task, team, content, source=content, kind="script", entry="main.py", submitted_at=T0
    )
    run_id = store.start_run(sub_id, "test")
    status = Status.SUCCEEDED if scores else Status.FAILED
    record = RunRecord(
        task_id=task, phase="test", team=team, content_hash=content, kind="script", status=status, reason=reason,
        scores=scores or {},
    )  # fmt: skip
    store.finish_run(run_id, record)


@pytest.fixture()
def hostile_store(tmp_path: Path) -> Store:
    """A store with a ranked team named in Cyrillic, one starting with ``=``, and a failed run with every escape."""
    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    store.ensure_task("task", "A task", "0" * 64)
    _record(store, "task", "Ёжики №7 ✨", "a" * 64, scores={"public": {"mae": 1.5}, "private": {"mae": 2.0}})
    _record(store, "task", '=HYPERLINK("http://x")', "b" * 64, scores={"public": {"mae": -1.5}})
    _record(store, "task", "@evil\u202eteam", "c" * 64, reason=EVIL_REASON)
    _record(store, "task", "+tab", "d" * 64, reason="\t-2+3 wrote\nacross lines")
    return store


def test_csv_export_shows_escapes_and_neutralises_formulas_in_every_text_cell(hostile_store: Store) -> None:
    import csv

    df = metric_table(None, hostile_store, task_id="task", metrics=[MAE])
    text = export(df, [MAE], "csv") or ""
    assert raw_controls(text) == []
    rows = list(csv.DictReader(io.StringIO(text)))
    assert "\\x1b[2J" in text and "\\u202e" in text and "\\rscore 0.99" in text
    teams = [row["team"] for row in rows]
    assert '\'=HYPERLINK("http://x")' in teams and "Ёжики №7 ✨" in teams and "'@evil\\u202eteam" in teams
    assert "'\t-2+3 wrote\nacross lines" in [row["reason"] for row in rows]  # newline kept in the quoted cell
    assert [row["mae"] for row in rows][:2] == ["-1.5", "1.5"]  # numbers stay numbers, negative ones too
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or cell == "-1.5"


def test_markdown_and_html_exports_show_escapes(hostile_store: Store) -> None:
    df = metric_table(None, hostile_store, task_id="task", metrics=[MAE])
    markdown = export(df, [MAE], "markdown") or ""
    assert raw_controls(markdown) == [] and "\\x1b]0;you have been pwned\\x07" in markdown
    assert "\\t-2+3 wrote\\nacross lines" in markdown  # one row per team: newline and tab escaped
    assert "Ёжики №7 ✨" in markdown and "\\|" in markdown  # the | between reasons does not split the row
    columns = markdown.splitlines()[0].count("|")
    assert all(line.count("|") - line.count("\\|") == columns for line in markdown.splitlines())
    page = export(df, [MAE], "html") or ""
    assert raw_controls(page) == [] and "\\x1b[2J" in page and "\\u202e" in page
    assert "=HYPERLINK(&quot;http://x&quot;)" in page or '=HYPERLINK("http://x")' in page


def test_json_and_parquet_keep_the_exact_text(hostile_store: Store, tmp_path: Path) -> None:
    df = metric_table(None, hostile_store, task_id="task", metrics=[MAE])
    records = json.loads(export(df, [MAE], "json") or "")
    assert {r["reason"] for r in records} >= {EVIL_REASON} and "@evil\u202eteam" in {r["team"] for r in records}
    export(df, [MAE], "parquet", tmp_path / "lb.parquet")
    assert EVIL_REASON in pd.read_parquet(tmp_path / "lb.parquet")["reason"].tolist()


def test_terminal_leaderboard_shows_escapes_and_display_names(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    spec = load_spec(task)
    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    store.ensure_task(spec.id, spec.title, spec.spec_hash)
    _record(store, spec.id, "チーム 東京", "a" * 64, scores={"public": {"mae": 1.0, "within_1": 1.0}})
    _record(store, spec.id, "evil\u202eteam", "c" * 64, reason=EVIL_REASON)
    store.close()
    result = CliRunner().invoke(app, ["leaderboard", str(task), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert raw_controls(result.output) == [], repr(result.output)
    assert "チーム 東京" in result.output and "evil\\u202eteam" in result.output
    assert "\\x1b[2J\\x1b[H" in result.output and "score 0.10\\rscore 0.99" in result.output


class _FailingUnlessNamed(FakeSandbox):
    """A fake sandbox whose runs write perfect predictions for a team named with ``word``, and fail otherwise."""

    def __init__(self, word: str, failure: Any) -> None:
        super().__init__(files=lambda req: {"predictions.csv": perfect_predictions()} if word in req.label else {})
        self._word, self._failure = word, failure

    def run(self, request: Any) -> Any:
        """The default result for the named team, ``failure`` for the others."""
        outcome = super().run(request)
        return outcome if self._word in request.label else self._failure


def test_harness_run_progress_lines_and_summary_show_escapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = write_toy_task(tmp_path / "task")
    subs = tmp_path / "subs"
    good = subs / "good"
    good.mkdir(parents=True)
    (good / "main.py").write_text("print('ok')\n")
    (good / "team.yaml").write_text("team: Ёжики №7 ✨\n", encoding="utf-8")
    evil = subs / "evil\x1b[2J"
    evil.mkdir()
    (evil / "main.py").write_text("raise ValueError\n")
    (subs / ".git").mkdir()
    box = _FailingUnlessNamed("Ёжики", make_result(exit_code=1, log=f"Traceback\n{EVIL_REASON}\n"))
    monkeypatch.setitem(SANDBOXES, "fake", lambda: box)
    result = CliRunner().invoke(
        app, ["run", str(task), str(subs), "--home", str(tmp_path / "home"), "--sandbox", "fake"]
    )
    assert result.exit_code == 0, result.output
    assert raw_controls(result.output) == [], repr(result.output)
    assert "Ёжики №7 ✨" in result.output and "succeeded" in result.output
    assert "evil_[2J" in result.output and "failed" in result.output  # the entry's name, made a display name
    assert "\\x1b[2J\\x1b[H" in result.output  # the reason on its progress line
    assert "1 hidden name(s) skipped (starting with '.'): .git" in result.output


def test_report_tables_links_labels_and_log_tails_show_escapes(tmp_path: Path) -> None:
    table = pd.DataFrame({"team": ["@evil\u202eteam", "Ёжики №7 ✨"], "reason": [EVIL_REASON, ""], "n": [1, 2]})
    page = plain_table(table).to_html()
    assert raw_controls(page) == [] and "\\x1b]0;you have been pwned\\x07" in page and "Ёжики №7 ✨" in page
    assert plain_label("a\x1b[2J$x$\n") == "a\\x1b[2J\\$x\\$\\n"

    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    store.ensure_task("task", "A task", "0" * 64)
    _record(store, "task", "evil\u202eteam\x1b[2J", "c" * 64, reason=EVIL_REASON)
    runs = store.runs("task")
    store.close()
    links = artifact_links_html(runs)
    assert raw_controls(links) == [] and "evil\\u202eteam\\x1b[2J" in links

    log = tmp_path / "log.txt"
    log.write_text("epoch 1\n" + "\n".join(HOSTILE) + "\n", encoding="utf-8")
    tail = log_tail(log, 50)
    assert raw_controls(tail) == []
    assert "score 0.10\\r\nscore 0.99" in tail  # what a carriage return would overwrite stays on its own line
    assert "wrong\\x08\\x08\\x08\\x08\\x08right" in tail and "\\x1b[2J" in tail and "name \\u202eexe.txt" in tail


def test_harness_check_output_shows_escapes_in_terminal_and_html() -> None:
    from rich.console import Console

    result = CheckResult(
        task_id="task",
        submission="sub\x1b[2J.ipynb",
        status=Status.FAILED,
        reason=f"cell #2 of your notebook raised {EVIL_REASON}",
        problems=[f"cell #2 of your notebook raised {EVIL_REASON}", "missing column 'y\u202e'"],
        resources=pd.DataFrame(
            {"used": [1.0, 10.0], "limit": [60.0, 512.0], "share": [1 / 60, 10 / 512]}, index=["time_s", "memory_mb"]
        ),
        warnings=["note: team.yaml: ignored unknown key(s) x\x1b[31m"],
        artifacts_dir="/tmp/art\rifacts",
    )
    for text in (str(result), result._repr_html_()):
        assert raw_controls(text) == [], repr(text)
        assert "\\x1b[2J\\x1b[H" in text and "y\\u202e" in text and "x\\x1b[31m" in text and "art\\rifacts" in text
    console = Console(file=io.StringIO(), force_terminal=False, width=200, color_system=None)
    console.print(result)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert raw_controls(shown) == [] and "\\x1b]0;you have been pwned\\x07" in shown


def test_log_lines_quoting_a_hostile_file_name_show_escapes(tmp_path: Path) -> None:
    import logging

    from harness.cli import VisibleFormatter

    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "notes\x1b[2J\u202e.txt").write_text("not a submission")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(VisibleFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("harness.submission.entries")
    logger.addHandler(handler)
    try:
        assert iter_entries(subs) == []
    finally:
        logger.removeHandler(handler)
    said = stream.getvalue()
    assert "ignoring" in said and "notes\\x1b[2J\\u202e.txt" in said and raw_controls(said) == []


def test_the_markdown_export_escapes_html_in_team_text() -> None:
    from harness.ranking import _markdown_cell

    cell = _markdown_cell("<img src=x onerror=alert(1)> & co | ltd")
    assert cell == "&lt;img src=x onerror=alert(1)&gt; &amp; co \\| ltd"


def test_a_narrow_terminal_never_crops_a_number_for_a_long_team_name(tmp_path: Path) -> None:
    task = write_toy_task(tmp_path / "task")
    spec = load_spec(task)
    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'results.sqlite'}")
    store.ensure_task(spec.id, spec.title, spec.spec_hash)
    long_name = "Die Datenwissenschaftler aus Berlin-Kreuzberg und Umgebung"
    _record(store, spec.id, long_name, "a" * 64, scores={"public": {"mae": 12346.788, "within_1": 0.123}})
    store.close()
    result = CliRunner().invoke(app, ["leaderboard", str(task), "--home", str(home)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "12346.788" in result.output and "0.123" in result.output  # whole, not cropped to "12" or "0."
