"""Every harness error survives pickling with its fields (they cross process and Dask boundaries) and maps to
its documented CLI exit code."""

from __future__ import annotations

import pickle

import pytest

from harness import errors
from harness.cli import _exit_code
from harness.errors import EXIT_CODES, HarnessError

CASES = [
    errors.HarnessError("root"),
    errors.SpecError("expected 'minimize' or 'maximize', got 'lower'", "task.yaml", "metrics[1].goal"),
    errors.SubmissionError("archive member '../x' leaves the submission folder", "team.zip"),
    errors.SandboxError("container could not start", 125, "tail of the log"),
    errors.EngineUnavailableError("no Docker engine answers", None, ""),
    errors.ImageError("image missing"),
    errors.InvalidOutputError("predictions.csv is invalid", ["lacks 3 of 10 ids; first missing: a"]),
    errors.EvaluatorError("evaluator exceeded its time limit of 120 s", "Traceback ..."),
    errors.StoreError("another harness run holds the lease"),
    errors.PrepareError("cannot install package 'nosuchpkg==1.0'", "task.yaml", "data.prepare_packages", "ERROR: ..."),
]


@pytest.mark.parametrize("error", CASES, ids=lambda e: type(e).__name__)
def test_error_pickles_with_its_fields_and_message(error: HarnessError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)
    assert str(copy) == str(error)


def test_messages_name_where_the_problem_is() -> None:
    assert str(CASES[1]) == "task.yaml: metrics[1].goal: expected 'minimize' or 'maximize', got 'lower'"
    assert str(CASES[2]) == "team.zip: archive member '../x' leaves the submission folder"
    assert str(CASES[6]).endswith("  - lacks 3 of 10 ids; first missing: a")
    assert str(CASES[9]) == "task.yaml: data.prepare_packages: cannot install package 'nosuchpkg==1.0'\nERROR: ..."


@pytest.mark.parametrize("error", CASES, ids=lambda e: type(e).__name__)
def test_each_error_has_its_documented_exit_code(error: HarnessError) -> None:
    assert _exit_code(error) == EXIT_CODES[type(error)]
    assert _exit_code(error) not in (0, 1)  # 0 is success, 1 is "worked, but the answer is no"
