"""The leaderboard table's width, computed from the cell text, agrees with rich's own measurement of the table."""

from __future__ import annotations

import io
import random

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from harness.cli_output import _minimum_width

WORDS = ["team-00001", "succeeded", "provenance unknown", "", "  ", "0.123", "[0.1, 0.2]", "12-15", "1 = leader",
         "équipe", "チーム名", "a\nlonger second line", "x" * 30, "tab\there", "12346.788"]  # fmt: skip


def _table(rng: random.Random) -> tuple[Table, list[list[str]]]:
    n_columns = rng.randint(1, 6)
    table = Table(title="board", title_justify="left")
    cells: list[list[str]] = []
    n_rows = rng.randint(0, 12)
    for index in range(n_columns):
        table.add_column(
            rng.choice(WORDS[:3]) + str(index),
            justify=rng.choice(["left", "right"]),
            no_wrap=rng.random() < 0.5,
            min_width=rng.choice([None, 4, 12]),
            overflow="fold",
        )
        cells.append([" ".join(rng.choices(WORDS, k=rng.randint(0, 3))) for _ in range(n_rows)])
    for row in zip(*cells, strict=True):
        table.add_row(*row)
    return table, cells


def test_minimum_width_is_richs_measurement() -> None:
    console = Console(width=80, soft_wrap=True, markup=False)
    rng = random.Random(13)
    for _ in range(300):
        table, cells = _table(rng)
        expected = Measurement.get(console, console.options.update_width(10_000), table).minimum
        assert _minimum_width(table, cells) == expected


def test_a_colon_or_another_table_is_left_to_rich() -> None:
    table = Table()
    table.add_column("team")
    table.add_row(":smile:")  # rich may print an emoji for it: its width is rich's to say
    assert _minimum_width(table, [[":smile:"]]) is None
    wide = Table(padding=(0, 2))
    wide.add_column("team")
    wide.add_row("a")
    assert _minimum_width(wide, [["a"]]) is None


def test_at_the_whole_width_no_unwrapped_cell_is_cut_and_no_column_vanishes() -> None:
    """Printed at the width counting no-wrap columns whole (what the leaderboard prints at when the terminal is
    narrower), every no-wrap cell shows whole and every column keeps its width: rich's own minimum (widest word)
    let it shrink a team column to nothing beside intervals, in a piped 80-column log."""
    rng = random.Random(29)
    for _ in range(200):
        table, cells = _table(rng)
        width = _minimum_width(table, cells, whole_no_wrap=True)
        assert width is not None
        out = io.StringIO()
        Console(file=out, width=width, soft_wrap=True, markup=False).print(table)
        text = out.getvalue()
        for column, texts in zip(table.columns, cells, strict=True):
            if column.no_wrap:
                for cell in texts:
                    for line in cell.splitlines():
                        if "\t" not in line:  # rich expands tabs: not the text it was given
                            assert line.strip() in text, (line, text)
        top_border = next(line for line in text.splitlines() if line.startswith("┏"))
        assert "┳┳" not in top_border and "┏┳" not in top_border, text  # no column of width 0
