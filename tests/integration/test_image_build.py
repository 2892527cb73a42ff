"""`harness image build` through the real CLI and engine: reuse by inputs hash, rebuild on a changed package list.

Everything is offline: pip reads only local folders (the wheel cache of the session's test image and a tiny
hand-made wheel); builds run with network none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.images import download_wheels, image_packages
from harness.sandbox.base import Limits, RunRequest
from harness.sandbox.docker import DockerAPI, DockerSandbox

pytestmark = pytest.mark.integration


def make_wheel(folder: Path, name: str, version: str = "1.0") -> None:
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        zf.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")


def _dangling_build_stages(client: Any) -> set[str]:
    return {image.id for image in client.images.list(filters={"dangling": True, "label": BUILD_STAGE_LABEL})}


@pytest.fixture()
def task_copy(tmp_path: Path, minimal_task_dir: Path, docker_api: DockerAPI, docker_client: Any) -> Iterator[Path]:
    """A copy of the minimal task under a fresh id; its image and the build stages it left are removed afterwards."""
    stages_before = _dangling_build_stages(docker_client)
    task_id = f"minimal-cli-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / task_id
    shutil.copytree(minimal_task_dir, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["id"] = task_id
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    yield folder
    docker_api.remove_image(f"harness-task/{task_id}:latest")
    for image_id in _dangling_build_stages(docker_client) - stages_before:  # made by this test's builds
        docker_client.images.remove(image_id, force=True)


#: Label of the wheel-holding build stage of a task image (see harness.images.render_dockerfile).
BUILD_STAGE_LABEL = "org.hackathon-harness.image.base-recipe=1"


@pytest.fixture()
def offline_env(tmp_path: Path, test_image: str) -> dict[str, str]:
    """Environment for the CLI: pip sees only the session's wheels and a local wheelhouse; a private cache."""
    base_wheels = download_wheels(image_packages([]), echo=lambda _m: None)  # present since test_image
    house = tmp_path / "wheelhouse"
    house.mkdir()
    make_wheel(house, "tinypkg")
    env = dict(os.environ)
    env.pop("PIP_EXTRA_INDEX_URL", None)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=f"{base_wheels} {house}",
        HARNESS_CACHE_DIR=str(tmp_path / "cache"),
    )
    return env


def cli_build(task_dir: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "image", "build", str(task_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return " ".join(proc.stdout.split())  # rich wraps long lines when stdout is not a terminal


def test_second_build_reuses_and_a_changed_package_list_rebuilds(
    task_copy: Path, offline_env: dict[str, str], docker_api: DockerAPI, tmp_path: Path
) -> None:
    tag = f"harness-task/{task_copy.name}:latest"
    first = cli_build(task_copy, offline_env)
    # the same package set as the minimal task: its image is tagged for this task too, not built again
    assert re.match(rf"reused image {re.escape(tag)} \(sha256:\w+\) in [\d.]+ s", first), first
    assert docker_api.image_id(tag) == docker_api.image_id("harness-task/minimal:latest")

    second = cli_build(task_copy, offline_env)
    assert second.startswith(f"reused image {tag}"), second
    seconds = float(re.search(r"in ([\d.]+) s", second).group(1))  # type: ignore[union-attr]
    assert seconds < 10
    first_id = docker_api.image_id(tag)

    spec = yaml.safe_load((task_copy / "task.yaml").read_text())
    spec["image"]["packages"] = ["tinypkg"]
    (task_copy / "task.yaml").write_text(yaml.safe_dump(spec))
    third = cli_build(task_copy, offline_env)
    assert third.startswith(f"built image {tag}"), third
    assert docker_api.image_id(tag) != first_id

    output = tmp_path / "output"
    output.mkdir()
    result = DockerSandbox(work_dir=tmp_path).run(
        RunRequest(
            image=tag,
            command=("python", "-c", "import tinypkg, papermill, ipykernel; print(tinypkg.VALUE)"),
            output_dir=output,
            workdir="/home/team",
            limits=Limits(time_s=60, memory_mb=256),
        )
    )
    assert result.ok, result.log
    assert result.log.strip() == "42"


def test_a_missing_registry_base_is_not_pulled(task_copy: Path, offline_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "image", "build", str(task_copy), "--base", "python:3.11-slim-nope"],
        capture_output=True,
        text=True,
        env=offline_env,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr
    assert "never pulled" in " ".join(proc.stderr.split())
