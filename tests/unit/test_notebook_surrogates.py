"""A submitted notebook whose file holds a lone surrogate (an unpaired ``\\ud800`` JSON escape) is refused at intake.

Jupyter can neither save nor run such text: papermill's first save of the notebook raised UnicodeEncodeError, and the
run was recorded ``failed`` with that traceback, naming no cell. Paired escapes (an emoji) are ordinary text.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from harness.errors import SubmissionError
from harness.notebooks import check_notebook


def _write(path: Path, source: str, **metadata: object) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('input_dir = "data"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nb.metadata.update(metadata)
    path.write_text(json.dumps(nb))  # ensure_ascii: a lone surrogate becomes a \\udXXX escape in the file
    return path


@pytest.mark.parametrize(
    ("source", "metadata", "where"),
    [
        ("text = '\ud800'", {}, "in the source of cell 2"),
        ("x = 1", {"kernelspec": {"name": "python3", "display_name": "Py \udcff"}}, "at metadata/kernelspec/"),
        ("x = 1", {"k\udfff": 1}, "at metadata (a key)"),
    ],
)
def test_a_lone_surrogate_in_the_file_is_refused_saying_where(
    tmp_path: Path, source: str, metadata: dict[str, object], where: str
) -> None:
    path = _write(tmp_path / "team.ipynb", source, **metadata)
    with pytest.raises(SubmissionError) as caught:
        check_notebook(path, "team.ipynb", "python3", path)
    message = str(caught.value)
    assert "'team.ipynb' is not a valid notebook: a lone surrogate (U+D" in message
    assert where in message, message


def test_paired_escapes_and_escaped_text_are_ordinary(tmp_path: Path) -> None:
    path = _write(tmp_path / "team.ipynb", "print('\U0001f600', '\\\\ud800')")
    assert "\\ud83d\\ude00" in path.read_text()  # written as a pair of escapes
    name, _notes = check_notebook(path, "team.ipynb", "python3", path)
    assert name is None
