"""The sandbox kernel's start and shutdown (harness.stack ``configure``), in a real ipykernel.

* A kernel started by the harness's notebook runner (``HARNESS_BATCH_KERNEL=1``) runs without ipykernel's
  debugger (debugpy's import cost about 60 ms of CPU at every kernel start), hides the variable from the team's
  code, and still lets the team import debugpy itself; any other kernel keeps its debugger.
* Every sandbox kernel joins its control thread when its main loop ends, before the exit handlers stop the IOPub
  thread: ipykernel 7.4 otherwise now and then ignored a shutdown request until SIGTERM 2.5 s later (7 of 96
  trivial notebooks run 4 at a time), while the control thread waited on a flush the stopped IOPub thread never ran.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from harness.stack import KERNEL_CONFIG_SOURCE, write_noop_harness


@contextmanager
def _kernel(tmp_path: Path, *, batch: bool) -> Iterator[tuple[KernelManager, Any]]:
    """A real python3 kernel configured as in a sandbox (profile config instead of ``sys.prefix/etc/ipython``)."""
    site = tmp_path / "site"
    write_noop_harness(site)
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG_SOURCE, encoding="utf-8")
    env = {"IPYTHONDIR": str(tmp_path / "ipython"), "PYTHONPATH": str(site), "PATH": "/usr/bin"}
    if batch:
        env["HARNESS_BATCH_KERNEL"] = "1"
    manager = KernelManager()
    manager.kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield manager, client
    finally:
        client.stop_channels()
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)


def _printed(client: Any, code: str) -> str:
    """What ``code`` printed (stdout), after checking it ran without error."""
    msg_id = client.execute(code)
    reply = client.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "ok", reply["content"]
    text = []
    while True:
        msg = client.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(text)
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            text.append(msg["content"]["text"])


def test_a_batch_kernel_runs_without_the_debugger_yet_debugpy_stays_importable(tmp_path: Path) -> None:
    with _kernel(tmp_path, batch=True) as (_manager, client):
        info = client.kernel_info(reply=True, timeout=30)["content"]
        assert "debugger" not in info.get("supported_features", []) and not info.get("debugger")
        code = (
            "import os, sys\n"
            "print(os.environ.get('HARNESS_BATCH_KERNEL'), 'debugpy' in sys.modules)\n"
            "import debugpy\n"
            "print(debugpy.__name__, any('harness' in type(f).__module__ for f in sys.meta_path))"
        )
        assert _printed(client, code) == "None False\ndebugpy False\n"


def test_a_batch_kernel_leaves_nothing_of_its_own_on_the_teams_import_path(tmp_path: Path) -> None:
    """The team's code finds the import machinery of any other kernel: no harness finder left on
    ``sys.meta_path`` (one stayed first there for the whole run until the team imported debugpy itself)."""
    code = "import sys\nprint([type(f).__module__ + '.' + type(f).__qualname__ for f in sys.meta_path])"
    with _kernel(tmp_path / "batch", batch=True) as (_manager, client):
        batch = _printed(client, code)
    with _kernel(tmp_path / "other", batch=False) as (_manager, client):
        other = _printed(client, code)
    assert "harness" not in batch and batch == other, (batch, other)


def test_any_other_kernel_keeps_its_debugger(tmp_path: Path) -> None:
    with _kernel(tmp_path, batch=False) as (_manager, client):
        info = client.kernel_info(reply=True, timeout=30)["content"]
        assert "debugger" in info.get("supported_features", []) or info.get("debugger") is True
        assert _printed(client, "import sys\nprint('debugpy' in sys.modules)") == "True\n"


def test_a_kernel_exits_by_itself_on_its_shutdown_request(tmp_path: Path) -> None:
    """Graceful shutdowns end with exit status 0 (a kernel that ignored the request would end by SIGTERM, -15),
    each kernel's start loop being the harness's, which joins the control thread before the exit handlers."""
    for attempt in range(5):
        with _kernel(tmp_path / str(attempt), batch=attempt % 2 == 0) as (manager, client):
            patched = "from ipykernel.kernelapp import IPKernelApp as A\nprint(getattr(A.start, 'harness_patched', 0))"
            assert _printed(client, patched) == "True\n"
            _printed(client, "print('some output before the end')")
            process = manager.provisioner.process  # type: ignore[union-attr]
            manager.shutdown_kernel(now=False)
            assert process.returncode == 0, f"attempt {attempt}: the kernel ended with {process.returncode}"
