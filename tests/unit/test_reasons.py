"""The hints a failed run's reason adds (harness.reasons), from realistic tracebacks; no kernel, no Docker."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from harness.notebooks import cell_name, read_executed
from harness.reasons import (
    PACKAGE_LIST,
    ReasonContext,
    hint_for,
    last_exception,
    missing_column_hint,
    missing_module_hint,
    network_hint,
    readme_inputs_section,
    removed_api_hint,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("ipykernel", "numpy==2.4.6", "pandas==3.1.1", "papermill", "pyarrow==26.0.1", "scikit-learn==1.9.1")

KEYERROR_TRACEBACK = """\
Traceback (most recent call last):
  File "/submission/main.py", line 9, in <module>
    y = train["dep_delay"]
        ~~~~~^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/pandas/core/frame.py", line 4330, in __getitem__
    indexer = self.columns.get_loc(key)
  File "/opt/venv/lib/python3.11/site-packages/pandas/core/indexes/base.py", line 3823, in get_loc
    raise KeyError(key) from err
KeyError: 'dep_delay'
"""

APPEND_TRACEBACK = """\
Traceback (most recent call last):
  File "/submission/main.py", line 12, in <module>
    rows = rows.append(extra)
  File "/opt/venv/lib/python3.11/site-packages/pandas/core/generic.py", line 6434, in __getattr__
    return object.__getattribute__(self, name)
AttributeError: 'DataFrame' object has no attribute 'append'
"""

GROUPBY_TRACEBACK = """\
  File "/opt/venv/lib/python3.11/site-packages/pandas/core/groupby/ops.py", line 569, in cython_operation
    return values._groupby_op(
  File "/opt/venv/lib/python3.11/site-packages/pandas/core/arrays/arrow/array.py", line 3771, in _groupby_op
    raise TypeError(
TypeError: dtype 'str' does not support operation 'mean'
"""

URLERROR_LOG = """\
loading
Traceback (most recent call last):
  File "/usr/lib/python3.11/urllib/request.py", line 1348, in do_open
    h.request(req.get_method(), req.selector, req.data, headers,
socket.gaierror: [Errno -3] Temporary failure in name resolution

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/submission/main.py", line 4, in <module>
    flights = pd.read_csv("https://example.org/flights.csv")
  File "/usr/lib/python3.11/urllib/request.py", line 1351, in do_open
    raise URLError(err)
urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>
"""


@pytest.fixture
def context(tmp_path: Path) -> ReasonContext:
    """A context like the NYC task's: train.csv with the target, test.csv without it, a weather table."""
    inputs = tmp_path / "input"
    inputs.mkdir()
    (inputs / "train.csv").write_text("id,year,month,carrier,origin,arr_delay\nr1,2013,1,UA,EWR,3\n")
    (inputs / "test.csv").write_text("id,year,month,carrier,origin\nr2,2013,9,AA,JFK\n")
    (inputs / "weather.csv").write_text("origin,time_hour,temp\nEWR,2013-01-01T05:00:00Z,39\n")
    return ReasonContext(inputs, PACKAGES, "Columns of train.csv and test.csv")


# -- missing modules -----------------------------------------------------------------------------------------


def test_a_missing_module_names_the_package_the_list_and_that_nothing_installs() -> None:
    hint = missing_module_hint("xgboost", ReasonContext(packages=PACKAGES))
    assert hint.startswith("'xgboost' is not in the sandbox")
    assert PACKAGE_LIST in hint and "SANDBOX_PACKAGES.md" in hint
    assert "no network" in hint and "!pip install does nothing" in hint


def test_a_missing_module_with_another_pip_name_names_that_package() -> None:
    assert "'cv2' (package opencv-python) is not in the sandbox" in missing_module_hint("cv2", ReasonContext())


def test_a_removed_submodule_of_an_installed_package_names_its_version() -> None:
    hint = missing_module_hint("sklearn.externals", ReasonContext(packages=PACKAGES))
    assert "'sklearn.externals' does not exist in the sandbox's scikit-learn 1.9.1" in hint


def test_importing_the_harness_in_a_submission_says_to_remove_that_cell() -> None:
    hint = hint_for("ModuleNotFoundError", "No module named 'harness'", "", "", ReasonContext())
    assert "harness itself is not in the sandbox" in hint and "harness.check" in hint


# -- KeyError on an input column -----------------------------------------------------------------------------


def test_a_removed_column_names_the_file_it_was_read_from_and_its_columns(context: ReasonContext) -> None:
    source = 'train = pd.read_csv(f"{input_dir}/train.csv")\ny = train["dep_delay"]'
    hint = missing_column_hint("'dep_delay'", KEYERROR_TRACEBACK, source, context)
    assert hint == (
        "'dep_delay' is not a column of train.csv in input_dir (its columns: id, year, month, carrier, origin, "
        'arr_delay); see the section "Columns of train.csv and test.csv" of the task\'s README.md'
    )


def test_the_target_read_from_test_csv_says_which_files_have_it(context: ReasonContext) -> None:
    source = "test = pd.read_csv(input_dir + '/test.csv')\nprint(test['arr_delay'].mean())"
    hint = missing_column_hint("'arr_delay'", KEYERROR_TRACEBACK, source, context)
    assert hint.startswith(
        "'arr_delay' is not a column of test.csv in input_dir (its columns: id, year, month, carrier, origin); "
        "train.csv has it; see the section"
    )
    unknown = missing_column_hint("'arr_delay'", KEYERROR_TRACEBACK, "x = 1", context)
    assert unknown.startswith("'arr_delay' is a column of train.csv only, not of test.csv, weather.csv; see")


def test_a_list_of_columns_not_in_index_is_read_too(context: ReasonContext) -> None:
    hint = missing_column_hint("\"['dep_delay'] not in index\"", KEYERROR_TRACEBACK, "x = 1", context)
    assert hint.startswith("'dep_delay' is not a column of any file in input_dir (test.csv, train.csv, weather.csv)")


def test_a_keyerror_outside_pandas_on_no_input_column_gets_no_hint(context: ReasonContext) -> None:
    assert missing_column_hint("'colour'", 'File "main.py"\n    d["colour"]\nKeyError: \'colour\'', "", context) == ""
    assert missing_column_hint("3", KEYERROR_TRACEBACK, "", context) == ""


def test_the_readme_section_on_inputs_is_found_in_the_nyc_task() -> None:
    assert readme_inputs_section(REPO / "task_specs" / "nyc-flight-delays") == "Columns of train.csv and test.csv"
    assert readme_inputs_section(REPO / "no-such-task") == ""


# -- pandas and numpy APIs removed ---------------------------------------------------------------------------


def test_dataframe_append_says_what_replaced_it_and_the_sandboxs_pandas() -> None:
    evalue = "'DataFrame' object has no attribute 'append'"
    hint = removed_api_hint("AttributeError", evalue, APPEND_TRACEBACK, ReasonContext(packages=PACKAGES))
    assert (
        hint == "DataFrame.append was removed in pandas 2.0 (use pd.concat([df, other])); the sandbox runs pandas 3.1.1"
    )


def test_groupby_mean_over_text_columns_says_numeric_only_and_the_version() -> None:
    evalue = "dtype 'str' does not support operation 'mean'"
    hint = removed_api_hint("TypeError", evalue, GROUPBY_TRACEBACK, ReasonContext(packages=PACKAGES))
    assert "numeric_only=True" in hint and hint.endswith("the sandbox runs pandas 3.1.1")
    older = "agg function failed [how->mean,dtype->object]"
    assert "numeric_only=True" in removed_api_hint("TypeError", older, GROUPBY_TRACEBACK, ReasonContext())


def test_numpy_aliases_removed_and_an_unpinned_version_points_to_the_list() -> None:
    hint = removed_api_hint("AttributeError", "module 'numpy' has no attribute 'float'.", "", ReasonContext())
    assert hint.startswith("numpy.float was removed (use float or np.float64)")
    assert f"the sandbox's numpy version is in {PACKAGE_LIST}" in hint


def test_an_attribute_error_of_the_teams_own_objects_gets_no_hint() -> None:
    assert removed_api_hint("AttributeError", "'Model' object has no attribute 'fit'", "", ReasonContext()) == ""
    assert removed_api_hint("TypeError", "unsupported operand type(s)", "", ReasonContext()) == ""


# -- network -------------------------------------------------------------------------------------------------


def test_a_network_read_says_there_is_no_network_and_names_the_input_files(context: ReasonContext) -> None:
    evalue = "<urlopen error [Errno -3] Temporary failure in name resolution>"
    hint = hint_for("URLError", evalue, "", "", context)
    assert hint == network_hint(context)
    assert hint == (
        "the sandbox has no network, by design: read the task's data from input_dir (test.csv, train.csv, "
        "weather.csv) instead of downloading it"
    )
    assert hint_for("ConnectionError", "HTTPSConnectionPool(host='x.org', port=443)", "", "", context) == hint
    assert hint_for("OSError", "[Errno -2] Name or service not known", "", "", context) == hint


# -- scripts' logs -------------------------------------------------------------------------------------------


def test_the_last_exception_of_a_chained_traceback_is_the_one_named() -> None:
    found = last_exception(URLERROR_LOG)
    assert found is not None
    ename, evalue, traceback = found
    assert (ename, evalue) == ("URLError", "<urlopen error [Errno -3] Temporary failure in name resolution>")
    assert traceback.startswith("Traceback") and "main.py" in traceback
    assert last_exception("no traceback here\n") is None
    assert last_exception(KEYERROR_TRACEBACK)[:2] == ("KeyError", "'dep_delay'")  # type: ignore[index]


# -- cells named as the team sees them -----------------------------------------------------------------------


def test_cell_names_use_the_execution_count_and_papermills_position() -> None:
    assert cell_name(18, 10) == "In [10] of the executed notebook (Cell 18 in papermill's log)"
    assert cell_name(4, None).startswith("Cell 4 of the executed notebook (counting all its cells")


def test_a_notebook_failure_gets_the_hint_and_keeps_the_exception_line(tmp_path: Path, context: ReasonContext) -> None:
    params = nbformat.v4.new_code_cell("input_dir = 'data'", execution_count=1)
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("input_dir = '/input'", execution_count=2)
    injected.metadata["tags"] = ["injected-parameters"]
    read = nbformat.v4.new_code_cell("import pandas as pd\ntrain = pd.read_csv(f'{input_dir}/train.csv')")
    read.execution_count = 3
    bad = nbformat.v4.new_code_cell("train['dep_delay'].mean()", execution_count=4)
    bad.outputs = [
        nbformat.v4.new_output(
            "error", ename="KeyError", evalue="'dep_delay'", traceback=["\x1b[31mKeyError\x1b[0m", "pandas/core"]
        )
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# flights"), params, injected, read, bad]
    nbformat.write(nb, tmp_path / "executed.ipynb")
    reason = read_executed(tmp_path / "executed.ipynb").failure(context)
    assert reason.startswith(
        "In [4] of the executed notebook (Cell 5 in papermill's log) raised KeyError: 'dep_delay'; 'dep_delay' is "
        "not a column of train.csv in input_dir (its columns: id,"
    )


# -- what the pipeline gives the hints -------------------------------------------------------------------------


def test_the_pipelines_context_has_the_phases_inputs_the_image_packages_and_the_readme_section(tmp_path: Path) -> None:
    from harness.pipeline import reason_context
    from harness.spec import load_spec

    nyc = reason_context(load_spec(REPO / "task_specs" / "nyc-flight-delays"), tmp_path)
    assert nyc.input_dir == tmp_path and nyc.readme_section == "Columns of train.csv and test.csv"
    assert nyc.version("pandas") == "3.1.1" and nyc.has("papermill") and nyc.has("scikit_learn")
    minimal = reason_context(load_spec(REPO / "tests" / "fixtures" / "tasks" / "minimal"), tmp_path)
    assert minimal.readme_section == "" and minimal.version("pandas") is None and not minimal.has("pandas")


def test_a_scripts_reason_keeps_the_exception_line_and_adds_the_hint(tmp_path: Path, context: ReasonContext) -> None:
    from harness.pipeline import _script_hint
    from harness.submission import OpenedSubmission

    (tmp_path / "main.py").write_text('import pandas as pd\nflights = pd.read_csv("https://example.org/f.csv")\n')
    opened = OpenedSubmission(
        root=tmp_path, kind="script", entry="main.py", content_hash="0" * 64, team=None, n_files=1, n_bytes=1, notes=()
    )
    assert _script_hint(opened, URLERROR_LOG, context) == (
        "URLError: <urlopen error [Errno -3] Temporary failure in name resolution>; " + network_hint(context)
    )
    assert _script_hint(opened, "Traceback (most recent call last):\n  File x\nValueError: bad\n", context) == ""


def test_a_hinted_notebook_failure_keeps_only_the_first_line_of_a_long_message(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("np.float(1)", execution_count=3)
    evalue = "module 'numpy' has no attribute 'float'.\n`np.float` was a deprecated alias for the builtin `float`."
    cell.outputs = [nbformat.v4.new_output("error", ename="AttributeError", evalue=evalue, traceback=[])]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "executed.ipynb")
    reason = read_executed(tmp_path / "executed.ipynb").failure(ReasonContext(packages=PACKAGES))
    assert reason == (
        "In [3] of the executed notebook (Cell 1 in papermill's log) raised AttributeError: module 'numpy' has no "
        "attribute 'float'; numpy.float was removed (use float or np.float64); the sandbox runs numpy 2.4.6"
    )


# -- relative paths ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["train.csv", "data/train.csv", "../input/train.csv"])
def test_a_relative_path_to_an_input_file_says_to_read_it_from_input_dir(context: ReasonContext, path: str) -> None:
    evalue = f"[Errno 2] No such file or directory: '{path}'"
    hint = hint_for("FileNotFoundError", evalue, "", "", context)
    assert hint.startswith("train.csv is in input_dir, not in the folder your code runs in")
    assert "Path(input_dir) / 'train.csv'" in hint


def test_a_missing_file_that_is_not_an_input_gets_no_hint(context: ReasonContext) -> None:
    assert hint_for("FileNotFoundError", "[Errno 2] No such file or directory: 'model.pkl'", "", "", context) == ""
    assert (
        hint_for("FileNotFoundError", "[Errno 2] No such file or directory: '/data/train.csv'", "", "", context) == ""
    )


def test_a_file_name_too_long_for_the_file_system_gets_no_hint_and_no_crash(context: ReasonContext) -> None:
    evalue = "[Errno 2] No such file or directory: 'x/" + "a" * 300 + ".csv'"
    assert hint_for("FileNotFoundError", evalue, "", "", context) == ""


@pytest.mark.parametrize("path", [".", "./", ".."])
def test_the_current_or_parent_folder_is_not_an_input_file(context: ReasonContext, path: str) -> None:
    assert hint_for("FileNotFoundError", f"[Errno 2] No such file or directory: '{path}'", "", "", context) == ""


def test_a_path_python_shows_in_double_quotes_gets_the_hint(context: ReasonContext) -> None:
    (context.input_dir / "we'ird.csv").write_text("a\n1\n")  # type: ignore[operator]
    hint = hint_for("FileNotFoundError", '[Errno 2] No such file or directory: "we\'ird.csv"', "", "", context)
    assert hint.startswith("we'ird.csv is in input_dir")


def test_code_with_many_open_brackets_costs_linear_time(context: ReasonContext) -> None:
    import time

    started = time.perf_counter()
    hint_for("KeyError", "'dep_delay'", "site-packages/pandas/x.py", "a[" * 200_000, context)
    assert time.perf_counter() - started < 5  # quadratic, it took minutes
