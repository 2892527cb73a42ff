"""The sandbox kernel's packer (harness.stack) with the older jupyter_client a task may pin in ``image.packages``.

jupyter_client 6.x has neither ``jsonutil.json_default`` nor ``jsonutil.json_clean`` (7.0 has the first only); a
packer importing them fails, and with it the image build's import check (``harness image build`` refused such a
task) and every kernel start. Each version's wheel is downloaded once (pip, no dependencies) and imported from the
zip ahead of the harness's own jupyter_client; the image test builds a real task image that pins 6.1.12.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.sandbox.docker import DockerAPI
from harness.stack import KERNEL_SESSION_MODULE, write_noop_harness

pytestmark = pytest.mark.integration

OLD_JUPYTER_CLIENTS = ["6.1.12", "7.0.0"]


@pytest.fixture(scope="session")
def old_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """version -> the jupyter_client wheel of that version (downloaded with pip from the package index)."""
    folder = tmp_path_factory.mktemp("jupyter-client-wheels")
    wheels = {}
    for version in OLD_JUPYTER_CLIENTS:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(folder)]
        proc = subprocess.run(
            [*pip, f"jupyter_client=={version}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"pip download jupyter_client=={version} failed: {proc.stderr[-2000:]}"
        (wheel,) = folder.glob(f"jupyter_client-{version}-*.whl")
        wheels[version] = wheel
    return wheels


_PROBE = """
import datetime, json, sys
import jupyter_client, jupyter_client.session as session
import harness_kernel_session as packer
ordinary = {"text": "h\\u00e9llo \\u2728", "n": [1, 2.5, None, True], "t": datetime.datetime(2020, 1, 2)}
nan_raises = []
for pack in (session.json_packer, packer.pack):
    try:
        pack({"x": float("nan")})
        nan_raises.append(False)
    except ValueError:
        nan_raises.append(True)
print(json.dumps({
    "version": jupyter_client.__version__,
    "same": packer.pack(ordinary) == session.json_packer(ordinary),
    "lone": packer.pack({"text": "a\\ud800b\\udcff"}).decode("utf-8"),
    "nan_raises": nan_raises,
}))
"""


@pytest.mark.parametrize("version", OLD_JUPYTER_CLIENTS)
def test_the_packer_imports_and_packs_with_an_older_jupyter_client(
    version: str, old_wheels: dict[str, Path], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    write_noop_harness(site)
    env = {"PYTHONPATH": f"{old_wheels[version]}:{site}", "PATH": "/usr/bin", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = json.loads(proc.stdout)
    assert probe["version"] == version
    assert probe["same"]  # what that version's json_packer sends for ordinary text
    assert probe["lone"] == '{"text": "a\ufffdb\ufffd"}'
    assert probe["nan_raises"][0] == probe["nan_raises"][1]  # NaN: as that version's json_packer does


@pytest.fixture()
def pinned_task(tmp_path: Path, minimal_task: Path, docker_api: DockerAPI, docker_client: Any) -> Iterator[Path]:
    """A copy of the prepared minimal task pinning jupyter_client 6.1.12; its image and build stages are removed."""
    stages = {"dangling": True, "label": "org.hackathon-harness.image.base-recipe=1"}
    before = {image.id for image in docker_client.images.list(filters=stages)}
    task_id = f"minimal-jc6-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / task_id
    shutil.copytree(minimal_task, folder)
    raw = yaml.safe_load((folder / "task.yaml").read_text())
    raw["id"] = task_id
    raw["image"]["packages"] = ["jupyter_client==6.1.12"]
    (folder / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    yield folder
    docker_api.remove_image(f"harness-task/{task_id}:latest")
    for image_id in {image.id for image in docker_client.images.list(filters=stages)} - before:
        docker_client.images.remove(image_id, force=True)


def test_a_task_pinning_jupyter_client_6_builds_and_its_kernel_sends_lone_surrogates(
    pinned_task: Path, docker_api: DockerAPI, tmp_path: Path
) -> None:
    from harness.images import build_task_image
    from harness.selfcheck import check
    from harness.spec import load_spec

    build_task_image(load_spec(pinned_task), api=docker_api, echo=lambda _msg: None)  # raised ImageError before
    notebook = json.loads((pinned_task / "starter" / "solution.ipynb").read_text())
    probe = "import jupyter_client\nprint(jupyter_client.__version__, get_ipython().kernel.session.packer)\n"
    probe += "print('lone \\ud800')"
    notebook["cells"].append(
        {"cell_type": "code", "execution_count": None, "id": "probe", "metadata": {}, "outputs": [], "source": probe}
    )
    path = tmp_path / "solution.ipynb"
    path.write_text(json.dumps(notebook))
    result = check(pinned_task, path, artifacts_dir=tmp_path / "artifacts")
    assert result.ok, str(result)
    executed = json.loads((tmp_path / "artifacts" / "executed.ipynb").read_text(encoding="utf-8"))
    text = "".join("".join(o.get("text", "")) for o in executed["cells"][-1]["outputs"])
    assert text == f"6.1.12 {KERNEL_SESSION_MODULE}.pack\nlone \ufffd\n"
