"""The sandbox kernel's message packer (harness.stack), in a real ipykernel: lone surrogates never stall a cell.

jupyter_client's own packer raises on a lone surrogate inside the kernel's IOPub thread; the output is lost and now
and then the messages queued behind it too (a finished cell then waits out the run's time limit). The kernel here is
started as in every sandbox: the packer module on its path and ``KERNEL_CONFIG_SOURCE`` as its kernel config.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager
from jupyter_client.session import json_packer, json_unpacker

from harness.stack import KERNEL_CONFIG_SOURCE, KERNEL_SESSION_MODULE, write_kernel_config, write_noop_harness


def _load_pack(site: Path) -> Any:
    namespace: dict[str, Any] = {}
    exec((site / f"{KERNEL_SESSION_MODULE}.py").read_text(encoding="utf-8"), namespace)
    return namespace["pack"]


def test_the_packer_sends_what_jupyter_client_sends_for_ordinary_text(tmp_path: Path) -> None:
    write_noop_harness(tmp_path)
    pack = _load_pack(tmp_path)
    message = {"name": "stdout", "text": "héllo ✨ 東京\n", "n": [1, 2.5, None, True], "nested": {"a": "b"}}
    assert pack(message) == json_packer(message)


@pytest.mark.parametrize("text", ["\ud800", "\udcff", "a\udfffb", "\ud83d\ude00 pair kept? no: lone \ud83d"])
def test_the_packer_replaces_each_surrogate_and_never_raises(tmp_path: Path, text: str) -> None:
    write_noop_harness(tmp_path)
    with pytest.raises(UnicodeEncodeError):
        json_packer({"text": "\ud800"})  # what the kernel's IOPub thread met before
    sent = _load_pack(tmp_path)({"text": text})
    sent.decode("utf-8")  # strict: valid UTF-8 whatever the text
    received = json_unpacker(sent)["text"]
    assert received == "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def test_the_kernel_config_names_the_packer(tmp_path: Path) -> None:
    path = write_kernel_config(tmp_path / "venv")
    assert path == tmp_path / "venv" / "etc" / "ipython" / "ipython_kernel_config.py"
    assert f'c.Session.packer = "{KERNEL_SESSION_MODULE}.pack"' in path.read_text(encoding="utf-8")


@pytest.fixture()
def kernel(tmp_path: Path) -> Iterator[Any]:
    """A real python3 kernel configured as in a sandbox (profile config instead of ``sys.prefix/etc/ipython``)."""
    site = tmp_path / "site"
    write_noop_harness(site)
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG_SOURCE, encoding="utf-8")
    manager = KernelManager()
    manager.kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    manager.start_kernel(env={"IPYTHONDIR": str(tmp_path / "ipython"), "PYTHONPATH": str(site), "PATH": "/usr/bin"})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _run(client: Any, code: str) -> tuple[str, list[dict[str, Any]]]:
    """Execute ``code``; its reply status and the IOPub outputs up to the idle status (15 s at most)."""
    msg_id = client.execute(code)
    reply = client.get_shell_msg(timeout=15)
    outputs = []
    while True:
        msg = client.get_iopub_msg(timeout=15)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        if msg["msg_type"] in ("stream", "execute_result", "display_data", "error"):
            outputs.append({"type": msg["msg_type"], **msg["content"]})
    return reply["content"]["status"], outputs


def test_a_real_kernel_sends_lone_surrogates_as_replacement_characters(kernel: Any) -> None:
    status, outputs = _run(kernel, "get_ipython().kernel.session.packer")
    assert status == "ok" and f"{KERNEL_SESSION_MODULE}.pack" in json.dumps(outputs)
    code = (
        "import sys\nprint('out \\ud800')\nsys.stderr.write('err \\udcff\\n')\n"
        "class Shown:\n    def __repr__(self):\n        return 'result \\udfff'\nShown()"
    )
    status, outputs = _run(kernel, code)
    assert status == "ok"
    text = "".join(o.get("text", "") for o in outputs)
    assert "out \ufffd" in text and "err \ufffd" in text
    assert any(o.get("data", {}).get("text/plain") == "result \ufffd" for o in outputs)
    status, outputs = _run(kernel, "print('after')")  # the kernel goes on answering
    assert status == "ok" and outputs[0]["text"] == "after\n"


def test_the_packer_of_a_binary_dump_needs_no_more_memory_than_a_clean_message(tmp_path: Path) -> None:
    """A dump of binary data decoded with surrogateescape (millions of surrogates) must not multiply the memory.

    Substituting over the whole text at once took five times the memory of packing the same text already cleaned
    (238 MB against 46 MB for 15 M characters): a team printing such a dump reached a small memory limit there.
    """
    import os
    import tracemalloc

    write_noop_harness(tmp_path)
    pack = _load_pack(tmp_path)
    garbage = os.urandom(2_000_000).decode("utf-8", "surrogateescape")
    cleaned = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in garbage)

    def peak(function: Any, message: dict[str, str]) -> tuple[int, bytes]:
        tracemalloc.start()
        try:
            sent = function(message)
            return tracemalloc.get_traced_memory()[1], sent
        finally:
            tracemalloc.stop()

    clean_peak, expected = peak(json_packer, {"text": cleaned})
    garbage_peak, sent = peak(pack, {"text": garbage})
    assert sent == expected
    assert garbage_peak <= 1.5 * clean_peak, (garbage_peak, clean_peak)
