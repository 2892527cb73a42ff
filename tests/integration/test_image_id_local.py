"""The task image's id as the stale check asks for it (one plain request on the local socket, no docker SDK)
agrees with the docker SDK's answer."""

from __future__ import annotations

from pathlib import Path

from harness.board_snapshot import local_image_id
from harness.provenance import current_image_id
from harness.sandbox.docker import DockerAPI
from harness.spec import load_spec


def test_the_local_socket_and_the_sdk_tell_the_same_image_id(
    docker_api: DockerAPI, test_image: str, minimal_task_dir: Path
) -> None:
    spec = load_spec(minimal_task_dir)
    assert spec.image_tag == test_image
    found = docker_api.image_id(test_image)
    assert found and found.startswith("sha256:")
    assert current_image_id(spec) == local_image_id(test_image) == found
    missing = "harness-test/never-built:none"
    assert local_image_id(missing) is None and docker_api.image_id(missing) is None
