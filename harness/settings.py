"""One typed settings object: every choice the harness takes from the environment (``HARNESS_`` prefix).

| variable | field | meaning |
| --- | --- | --- |
| ``HARNESS_HOME`` | ``home`` | harness home: the SQLite store file and the artifacts (default ``./.harness``) |
| ``HARNESS_DB_URL`` | ``db_url`` | SQLAlchemy URL of the results store (beaten by ``--db`` and ``--home``) |
| ``HARNESS_TASKS`` | ``tasks`` | a folder of tasks where task ids are looked up before ``./task_specs`` |
| ``HARNESS_CACHE_DIR`` | ``cache_dir`` | wheels and build locks (default ``$XDG_CACHE_HOME/hackathon-harness``) |
| ``HARNESS_DEBIAN_MIRROR`` | ``debian_mirror`` | the Debian mirror ``debootstrap`` reads for the offline base |
| ``HARNESS_SESSION_ID`` | ``session_id`` | tags a session's containers and scratch folders (letters, digits, ``-_``) |
| ``HARNESS_PROGRESS`` | ``progress`` | any non-empty value: show progress bars even when stderr is not a terminal |

The environment is read when :func:`get_settings` is called (not cached: a test or a notebook may change it), and
nowhere else in the package. The variables the harness *sets* for team code (``HARNESS_INPUT_DIR``,
``HARNESS_OUTPUT_DIR``, ...) are not settings and are ignored here.

"Which store" is decided once, by :meth:`Settings.store_url`, for the CLI, the leaderboard and the reports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DEBIAN_MIRROR", "ENV_PREFIX", "STORE_FILE", "Settings", "get_settings"]

ENV_PREFIX = "HARNESS_"
#: The SQLite file of a harness home.
STORE_FILE = "results.sqlite"
#: Only Debian's package mirror is reachable on machines without a registry; it is all debootstrap needs.
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"


class Settings(BaseSettings):
    """Environment-driven choices, typed; see the module docstring for the variables.

    Attributes:
        home: harness home (relative paths are resolved against the working folder by :meth:`home_dir`).
        db_url: results store URL from the environment, or ``None``.
        tasks: extra folder of tasks for task-id lookup, or ``None``.
        cache_dir: wheel cache and locks; ``None`` means ``$XDG_CACHE_HOME/hackathon-harness``.
        debian_mirror: mirror URL for ``debootstrap``.
        session_id: a sanitised tag (at most 64 of ``[A-Za-z0-9_-]``), ``""`` when unset.
        progress: force progress bars on a non-terminal stderr.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Path(".harness")
    db_url: str | None = None
    tasks: Path | None = None
    cache_dir: Path | None = None
    debian_mirror: str = DEFAULT_DEBIAN_MIRROR
    session_id: str = ""
    progress: bool = False

    @field_validator("db_url", "tasks", "cache_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("home", mode="before")
    @classmethod
    def _empty_home_is_the_default(cls, value: Any) -> Any:
        # HARNESS_HOME= (empty) must not put the store and every artifact into the working folder itself.
        return ".harness" if value == "" else value

    @field_validator("home", "tasks", "cache_dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None  # a quoted '~/x' is the home folder, not ./~

    @field_validator("debian_mirror", mode="before")
    @classmethod
    def _empty_mirror_is_default(cls, value: Any) -> Any:
        return DEFAULT_DEBIAN_MIRROR if value == "" else value

    @field_validator("session_id", mode="before")
    @classmethod
    def _sanitise_session(cls, value: Any) -> str:
        return "".join(c for c in str(value or "") if c.isalnum() or c in "-_")[:64]

    @field_validator("progress", mode="before")
    @classmethod
    def _any_text_is_true(cls, value: Any) -> bool:
        # As before the settings object: any non-empty value turns progress on ("0" included).
        return bool(value) if not isinstance(value, str) else bool(value.strip())

    def home_dir(self, home: Path | None = None) -> Path:
        """The harness home as an absolute path: an explicit ``home`` (``--home``), else :attr:`home`."""
        return Path(home if home is not None else self.home).resolve()

    def store_url(self, db_url: str | None = None, home: Path | None = None) -> str:
        """The results store's URL, most explicit first.

        ``db_url`` (``--db``), else the SQLite file of an explicitly given ``home`` (``--home``), else
        ``$HARNESS_DB_URL``, else ``results.sqlite`` in :attr:`home`.
        """
        if db_url:
            return db_url
        if home is not None:
            return f"sqlite:///{Path(home).resolve() / STORE_FILE}"
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.home_dir() / STORE_FILE}"

    def cache_folder(self) -> Path:
        """Folder for wheels and locks: :attr:`cache_dir`, else ``$XDG_CACHE_HOME/hackathon-harness``."""
        if self.cache_dir is not None:
            return self.cache_dir
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")  # not ours: the XDG convention
        return Path(xdg) / "hackathon-harness"


def get_settings() -> Settings:
    """The settings as the environment says now.

    Raises:
        pydantic.ValidationError: a variable holds a value of the wrong type (the message names it).
    """
    return Settings()
