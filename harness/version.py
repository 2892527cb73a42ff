"""The harness's one version.

It is read from the installed distribution's metadata (``pyproject.toml``'s ``[project] version``, the one place it
is written), so a wheel, an editable install and the provenance of every run agree. A source tree that was never
installed (no metadata) reports ``0+unknown`` rather than a made-up number.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["DISTRIBUTION", "__version__"]

#: The distribution name in ``pyproject.toml``.
DISTRIBUTION = "hackathon-harness"

try:
    __version__: str = version(DISTRIBUTION)
except PackageNotFoundError:  # pragma: no cover - a bare source tree on sys.path
    __version__ = "0+unknown"
