"""Pure parts of the one-submission pipeline: commands, notebook output caps, failure reasons (no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from harness.notebooks import NOTEBOOK_OUTPUTS_PER_CELL, read_executed
from harness.pipeline import build_command, truncate_notebook_outputs
from harness.spec import load_spec
from harness.submission import OpenedSubmission

MINIMAL = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"


def _notebook_failure(path: Path) -> str:
    """The failure reason of an executed notebook file (the pipeline asks the parsed notebook once per run)."""
    return read_executed(path).failure()


def _last_started_cell(path: Path) -> str:
    """The stopped-run cell of an executed notebook file."""
    return read_executed(path).last_started_cell


def _opened(kind: str, entry: str) -> OpenedSubmission:
    return OpenedSubmission(
        root=Path("/tmp/x"), kind=kind, entry=entry, content_hash="0" * 64, team=None, n_files=1, n_bytes=1, notes=()
    )


def test_notebook_command_injects_the_folders_after_the_parameters_cell() -> None:
    spec = load_spec(MINIMAL)
    argv = build_command(spec, _opened("notebook", "solution.ipynb"))
    # papermill runs under the capping runner (its source in the argv); the executed notebook goes to its own area
    assert argv[:2] == ("python", "-c") and "papermill.main(" in argv[2]
    assert json.loads(argv[3])["max_bytes"] == 16 * 1024 * 1024
    assert argv[4:6] == ("/submission/solution.ipynb", "/notebook/executed.ipynb")
    params = json.loads(argv[argv.index("--parameters_yaml") + 1])
    assert params == {"input_dir": "/input", "output_dir": "/output"}
    assert argv[argv.index("--kernel") + 1] == "python3"


def test_script_command_is_the_specs() -> None:
    spec = load_spec(MINIMAL)
    assert build_command(spec, _opened("script", "main.py")) == ("python", "main.py")


def _write(path: Path, cells: list[nbformat.NotebookNode]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def _stream(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def test_outputs_are_capped_per_output_and_per_cell(tmp_path: Path) -> None:
    big = nbformat.v4.new_code_cell("print(...)")
    big.outputs = [_stream("x" * 50_000)]
    many = nbformat.v4.new_code_cell("for i in ...: print(i)")
    many.outputs = [_stream("y" * 10_000) for _ in range(20)]
    path = _write(tmp_path / "nb.ipynb", [big, many])
    cut = truncate_notebook_outputs(path, cap_chars=20_000, cell_cap_chars=60_000)
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].outputs[0].text
    assert first.startswith("x" * 20_000) and "[harness: output truncated at 20000 characters]" in first
    texts = [o.text for o in nb.cells[1].outputs]
    assert sum(len(t) for t in texts[:-1]) == 60_000  # six outputs of 10,000 characters fit the cell's budget
    assert "14 more outputs of this cell dropped" in texts[-1]
    assert cut == 1 + 14


def test_a_cell_keeps_a_bounded_number_of_outputs(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("display(...)")
    cell.outputs = [_stream(".") for _ in range(NOTEBOOK_OUTPUTS_PER_CELL + 30)]
    path = _write(tmp_path / "nb.ipynb", [cell])
    truncate_notebook_outputs(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert len(outputs) == NOTEBOOK_OUTPUTS_PER_CELL + 1
    assert "30 more outputs" in outputs[-1].text


def test_an_unreadable_notebook_is_kept_as_evidence(tmp_path: Path) -> None:
    path = tmp_path / "partial.ipynb"
    path.write_text('{"cells": [')
    assert truncate_notebook_outputs(path) == 0
    assert path.read_text() == '{"cells": ['


def test_failure_names_the_cell_as_the_executed_notebook_and_papermills_log_do(tmp_path: Path) -> None:
    intro = nbformat.v4.new_markdown_cell("# intro")
    error_marker = nbformat.v4.new_markdown_cell("<span>An Exception was encountered</span>")
    error_marker.metadata["tags"] = ["papermill-error-cell-tag"]
    params = nbformat.v4.new_code_cell("input_dir = 'data'")
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("input_dir = '/input'")
    injected.metadata["tags"] = ["injected-parameters"]
    ok = nbformat.v4.new_code_cell("x = 1")
    bad = nbformat.v4.new_code_cell("x['y']")
    bad.outputs = [nbformat.v4.new_output("error", ename="TypeError", evalue="not subscriptable", traceback=[])]
    bad.metadata["papermill"] = {"status": "running"}
    path = _write(tmp_path / "executed.ipynb", [error_marker, intro, params, injected, ok, bad])
    # no execution count yet: its position among all cells, injected one included, papermill's banner not
    where = "Cell 5 of the executed notebook (counting all its cells from the top, as papermill's log does)"
    assert _notebook_failure(path) == f"{where} raised TypeError: not subscriptable"
    assert _last_started_cell(path) == f" while {where} was running"
    bad.execution_count = 3
    path = _write(tmp_path / "executed.ipynb", [error_marker, intro, params, injected, ok, bad])
    where = "In [3] of the executed notebook (Cell 5 in papermill's log)"
    assert _notebook_failure(path) == f"{where} raised TypeError: not subscriptable"
    assert _last_started_cell(path) == f" while {where} was running"
