"""Process facts shared by the store's lease and the sandbox's orphan clean-up."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as existing).

    Used to tell a crashed harness process (its lease and containers may be taken over) from a live one.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
