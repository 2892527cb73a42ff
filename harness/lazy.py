"""Lazily loaded package names (PEP 562): a package's ``__getattr__`` that imports each name from its submodule.

Used by packages whose names pull in heavy libraries (:mod:`harness.scoring`, :mod:`harness.store`), so that a
caller needing one light name (``harness leaderboard`` reading a SQLite store) does not import the rest.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module-level ``__getattr__`` of ``package``: ``name`` is imported from ``package.<homes[name]>``.

    A loaded name is kept in the package's namespace, so it is looked up once.

    Args:
        package: the package's ``__name__``.
        homes: name -> submodule (relative to ``package``) that defines it.

    Raises:
        AttributeError: (from the returned function) for a name ``homes`` does not list.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
