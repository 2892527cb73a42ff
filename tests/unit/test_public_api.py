"""The public API of ``import harness``: each name is what its docs say, also after every submodule was imported."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import harness


def test_public_names_stay_functions_after_every_submodule_is_imported() -> None:
    for info in pkgutil.walk_packages(harness.__path__, "harness."):
        importlib.import_module(info.name)  # a submodule named like a public function would shadow it
    for name in ("check", "evaluate_many", "leaderboard", "load_spec", "write_report"):
        assert inspect.isfunction(getattr(harness, name)), name
    assert inspect.isclass(harness.TaskSpec) and issubclass(harness.HarnessError, Exception)
    assert harness.__version__ and set(harness.__all__) >= {"check", "leaderboard", "write_report"}
