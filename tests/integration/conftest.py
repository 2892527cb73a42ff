"""Fixtures of the integration tests: a real Docker engine, a real task image, and leak checks.

* ``docker_client`` (session): a ``docker.DockerClient`` connected to the engine (API version negotiated).
* ``docker_api`` (session): the harness's thin engine layer, :class:`harness.sandbox.docker.DockerAPI`.
* ``test_image`` (session): the tag (``str``) of the image of ``tests/fixtures/tasks/minimal`` (no extra packages:
  Python 3.11 in /opt/venv with ipykernel and papermill), built once per session; reused when unchanged.
* ``minimal_task_dir``: the fixture task folder.
* ``minimal_task`` (session): a prepared copy of it (data built by its prepare.py) in a temporary folder; tests
  that change its task.yaml copy it first.
* ``ds_task`` (session): a prepared copy of the minimal task with the default data-science stack (id
  ``minimal-ds``, roomier limits) and its image, built once per session; the NYC task has the same package set,
  so both share that one image.
* an autouse check that each test leaves behind no container labelled ``org.hackathon-harness=1`` of this session,
  no output mount or scratch folder of this session, and no child process.

The session is tagged with ``$HARNESS_SESSION_ID`` (set here; inherited by subprocesses such as the ``harness``
CLI), so the checks see only what this test session made, even when other sessions use the same engine.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import EngineUnavailableError
from harness.sandbox.docker import CONTAINER_LABEL, CONTAINER_LABEL_SESSION, SESSION_ENV, DockerAPI

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MINIMAL_TASK = FIXTURES / "tasks" / "minimal"

os.environ.setdefault(SESSION_ENV, f"pytest-{uuid.uuid4().hex[:10]}")


def _session() -> str:
    return os.environ[SESSION_ENV]


@pytest.fixture(scope="session")
def docker_api() -> DockerAPI:
    """The harness's thin engine layer; the session fails with the engine's help text when none answers."""
    try:
        return DockerAPI()
    except EngineUnavailableError as exc:
        pytest.fail(f"integration tests need a Docker engine: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def docker_client(docker_api: DockerAPI) -> Iterator[Any]:
    """A ``docker.DockerClient`` on the same engine (for assertions that need the SDK's object model)."""
    import docker

    client = docker.DockerClient(version="auto")
    yield client
    client.close()


@pytest.fixture(scope="session")
def minimal_task_dir() -> Path:
    """The folder of the minimal fixture task (task.yaml, evaluator.py)."""
    return MINIMAL_TASK


@pytest.fixture(scope="session")
def minimal_task(tmp_path_factory: pytest.TempPathFactory, minimal_task_dir: Path) -> Path:
    """A prepared copy of the minimal fixture task (its data built by its prepare.py), shared by the session."""
    import shutil

    from harness.tasks import prepare_task

    folder = tmp_path_factory.mktemp("task") / "minimal"
    shutil.copytree(minimal_task_dir, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    prepare_task(folder, echo=lambda _msg: None)
    return folder


@pytest.fixture(scope="session")
def test_image(docker_api: DockerAPI) -> str:
    """Tag of the minimal task's image, built once per session (offline base; ipykernel and papermill only)."""
    from harness.images import build_task_image
    from harness.spec import load_spec

    built = build_task_image(load_spec(MINIMAL_TASK), api=docker_api, echo=lambda _msg: None)
    return built.tag


@pytest.fixture(scope="session")
def ds_task(tmp_path_factory: pytest.TempPathFactory, minimal_task_dir: Path, docker_api: DockerAPI) -> Path:
    """A prepared copy of the minimal task with the data-science stack, and its image (built once per session)."""
    import shutil

    import yaml

    from harness.images import build_task_image
    from harness.spec import load_spec
    from harness.tasks import prepare_task

    folder = tmp_path_factory.mktemp("task") / "minimal-ds"
    shutil.copytree(minimal_task_dir, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    raw = yaml.safe_load((folder / "task.yaml").read_text())
    raw["id"] = "minimal-ds"
    raw["image"] = {"packages": []}  # the default stack: data-science
    raw["limits"].update(time_s=180, memory_mb=1024, pids=128)
    (folder / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    prepare_task(folder, echo=lambda _msg: None)
    build_task_image(load_spec(folder), api=docker_api, echo=lambda _msg: None)
    return folder


def _session_containers(api: DockerAPI) -> set[str]:
    return set(api.list_containers({CONTAINER_LABEL: "1", CONTAINER_LABEL_SESSION: _session()}))


def _session_mounts() -> set[str]:
    marker = f"harness-output-{_session()}-"
    with open("/proc/self/mounts") as fh:
        return {line.split()[1] for line in fh if marker in line}


def _session_scratch() -> set[str]:
    marker = f"harness-output-{_session()}-"
    return {str(p) for p in Path(tempfile.gettempdir()).glob(f"{marker}*")}


def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            out.add(int(entry.name))
    return out


_ENGINE: list[DockerAPI | None] = []


def _engine() -> DockerAPI | None:
    """The engine if one answers (tests that need only kernels run without Docker; their containers: none)."""
    if not _ENGINE:
        try:
            _ENGINE.append(DockerAPI())
        except EngineUnavailableError:
            _ENGINE.append(None)
    return _ENGINE[0]


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Fail a test that leaves a container, an output mount, a scratch folder or a child process behind."""
    before_children = _children()
    yield
    engine = _engine()
    containers = _session_containers(engine) if engine else set()
    mounts = _session_mounts()
    scratch = _session_scratch()
    children = _children() - before_children
    if engine:
        for container in containers:  # clean up so one leak does not fail every later test
            engine.remove(container)
    problems = []
    if containers:
        problems.append(f"containers left: {sorted(containers)}")
    if mounts:
        problems.append(f"mounts left: {sorted(mounts)}")
    if scratch:
        problems.append(f"scratch folders left: {sorted(scratch)}")
    if children:
        problems.append(f"child processes left: {sorted(children)}")
    assert not problems, "; ".join(problems)
