"""The terminal renderings of the ``harness`` command: the leaderboard table and the lines that follow it.

Kept apart from :mod:`harness.cli` (argument parsing, one library call per command, exit codes) so that module stays
about commands. Team text is made visible (:func:`harness.text.visible`) before it reaches the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from harness.text import visible

__all__ = ["DEFAULT_TOP", "compute_leaderboard", "print_leaderboard"]


def _minimum_width(table: Table, cells: list[list[str]], *, whole_no_wrap: bool = False) -> int | None:
    """The narrowest width (terminal cells) ``table`` renders in without cropping, as rich's ``Measurement.get`` of
    it would say without a width limit, computed from the plain cell text (one pass; rich measures every cell three
    times, a second for 1,000 rows); ``None`` when a cell has a ``:`` (rich may read ``:name:`` as an emoji) or the
    table is not the plain one built here, so the caller asks rich.

    Args:
        table: the table, its columns added (headers, ``min_width``, no fixed ``width``), with the default box and
            padding of one cell left and right.
        cells: the column's cell texts per column, in the columns' order (the rows added to ``table``).
        whole_no_wrap: count a ``no_wrap`` column by its widest whole line, not its widest word. rich measures
            such a column by its widest word, but printed narrower than its lines it shrinks the other columns
            to make room (a team column of width 0 under intervals at 80 columns): this is the width below which
            that happens.
    """
    plain = table.padding == (0, 1, 0, 1) and table.pad_edge and not table.collapse_padding
    plain = plain and table.width is None and table.min_width is None and table.show_header and not table.show_footer
    if not plain:
        return None
    total = (2 if table.box and table.show_edge else 0) + (len(table.columns) - 1 if table.box else 0)
    for column, texts in zip(table.columns, cells, strict=True):
        if column.width is not None or column.max_width is not None or not isinstance(column.header, str):
            return None
        widest = 0  # rich's Text measure: the widest word, or the widest line of a cell without words
        for text in (column.header, *texts):
            if ":" in text:
                return None
            words = text.splitlines() if whole_no_wrap and column.no_wrap else text.split() or text.splitlines()
            widest = max(widest, max((cell_len(word) for word in words), default=0))
        total += max(widest + 2, 0 if column.min_width is None else column.min_width + 2)
    return total


#: Rows of the terminal table by default (``harness leaderboard --top``): rich draws about 1,000 rows a second
#: here, and a judge reads the head of the board in a terminal; every export (csv, html, ...) keeps every row.
DEFAULT_TOP = 100


def print_leaderboard(
    console: Console, df: Any, spec: Any, *, split: str, wide: bool = False, top: int = DEFAULT_TOP
) -> None:
    """The leaderboard as a terminal table that stays readable at 80 columns.

    Ranks, teams, metrics and statuses form the table (its first ``top`` rows, then a line saying how many more
    there are and how to see them); the reasons of rows that are not ranked follow it, one line each, for every
    such row. ``wide`` adds the submission hash, timings and submission time. Team text (names, reasons) is made
    visible (:func:`harness.text.visible`): control and bidirectional characters show as escapes.

    Args:
        console: where to print (the CLI's standard-output console).
        df: :func:`harness.leaderboard`'s table (with its optional ``stale``, interval and ``similar_to`` columns).
        spec: the task spec (its metrics name the columns).
        split: the split shown, for the title.
        wide: add the submission hash, timings and submission time.
        top: rows of the table (the board's order: ranked rows first); ``0`` or less: every row.
    """
    import pandas as pd

    from harness.ranking import display_table

    shown = display_table(df, spec.metrics)
    columns = ["rank", "team", *[m.name for m in spec.metrics], "status"]
    if "stale" in shown and shown["stale"].fillna("").astype(bool).any():
        columns.append("stale")  # what changed since these scores were made (see `harness rescore`)
    if "similar_to" in shown and shown["similar_to"].fillna("").astype(str).str.len().gt(0).any():
        columns.append("similar_to")  # judges only (`harness leaderboard --similar`)
    if "ci" in shown:  # paired bootstrap intervals of the primary metric (harness.ranking_intervals)
        columns[2 + len(spec.metrics) : 2 + len(spec.metrics)] = ["ci", "ranks", "group"]
    if wide:
        columns += ["submission", "identical_to", "duration_s", "peak_memory_mb", "submitted_at"]
    labels = {m.name: m.label or m.name for m in spec.metrics}
    table = Table(title=f"{spec.title}: {split} leaderboard ({len(shown)} teams)", title_justify="left")
    drawn = shown if top <= 0 else shown.iloc[:top]
    for column in columns:
        header = labels.get(column, column)
        numeric = column in labels or column in ("rank", "duration_s", "peak_memory_mb")
        table.add_column(
            header,
            justify="right" if numeric else "left",
            # a number or an interval folded over two lines reads as two numbers (21. / 795): never wrap them
            no_wrap=numeric or column in ("rank", "status", "ci", "ranks", "group"),  # a long team name folds
            min_width=4 if column == "rank" else 12 if column == "team" else None,
            overflow="fold",
        )
    cells = [["" if pd.isna(value) else visible(str(value), keep="") for value in drawn[c]] for c in columns]
    for row in zip(*cells, strict=True):
        table.add_row(*row)
    # every number and interval whole, long team names folded: the width that needs, measured without a limit
    needed = _minimum_width(table, cells, whole_no_wrap=True)
    if needed is None:
        needed = Measurement.get(console, console.options.update_width(10_000), table).minimum
    if needed > console.width:  # narrower than that, rich would crop numbers into other numbers (12346.788 -> 12)
        Console(file=console.file, width=needed, soft_wrap=True, markup=False).print(table)
    else:
        console.print(table)
    if len(drawn) < len(shown):
        console.print(
            f"{len(shown) - len(drawn)} more team(s) not shown: --top 0 shows every row, --format csv/html exports "
            "them all",
            highlight=False,
            markup=False,
        )
    unranked = shown[shown["rank"].isna()]
    if len(unranked):
        console.print("not ranked:", style="bold")
        for _, row in unranked.iterrows():
            said = visible(f"  {row['team']}: {row['status']}: {row['reason']}", keep="")
            console.print(said, highlight=False, markup=False)
    identical = shown[shown["identical_to"].astype(bool)]
    for _, row in identical.iterrows():
        said = visible(f"  {row['team']}: same content as {row['identical_to']}", keep="")
        console.print(said, highlight=False, markup=False)
    unavailable = df.attrs.get("intervals", {}).get("unavailable", "")
    if unavailable:
        console.print(visible(f"no intervals: {unavailable}", keep=""), highlight=False, markup=False)
    if "intervals" in df and df["intervals"].notna().any():
        from harness.ranking_intervals import separability

        console.print(f"ci, ranks, group: {df['intervals'].dropna().iloc[0]}", highlight=False, markup=False)
        console.print(visible(separability(df), keep=""), highlight=False, markup=False)
    if "similar_to" in shown:
        for _, row in shown[shown["similar_to"].fillna("").astype(str).str.len().gt(0)].iterrows():
            said = visible(f"  {row['team']}: similar to {row['similar_to']}", keep="")
            console.print(said, highlight=False, markup=False)


def compute_leaderboard(
    console: Console,
    err_console: Console,
    print_stale: Callable[[list[str]], None],
    *,
    task: str,
    fmt: str,
    output: Path | None,
    db: str | None,
    home: Path | None,
    split: str,
    selection: str | None,
    similar: bool,
    intervals: bool,
    wide: bool,
    top: int,
    read: list[Path],
    recording: Any = None,
) -> Any:
    """Compute, print or export a leaderboard (``harness leaderboard``'s work, its options as the command takes
    them): stale lines through ``print_stale``, the table or a text export on ``console``, a file export's note on
    ``err_console``. The files the board was computed from are appended to ``read``; a snapshot's ``recording``
    (:class:`harness.board_snapshot.Recording`) notes the image's id first.

    Returns:
        The task's :class:`~harness.spec.TaskSpec`.

    Raises:
        SpecError, HarnessError: as :func:`harness.ranking.leaderboard_and_stale`.
    """
    from harness.ranking import export, leaderboard_and_stale, resolve_task

    spec = resolve_task(task)
    if recording is not None:
        recording.note_image(spec.image_tag)
    df, stale = leaderboard_and_stale(  # the runs read once for the board and its stale warnings
        spec,
        db_url=db,
        home=home,
        split=split,
        selection=selection,  # type: ignore[arg-type]
        similar=similar,
        intervals=intervals,
        read=read,
    )
    print_stale(stale)
    if fmt != "table":
        text = export(df, spec.metrics, fmt, output)
        if text is not None:
            console.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            err_console.print(f"wrote {fmt} leaderboard of {spec.id} ({split}) to {output}")
        return spec
    print_leaderboard(console, df, spec, split=split, wide=wide, top=top)
    return spec
