"""Task images beyond building: export and import as a file (teams without root get the organisers' image), and
the list of packages an image holds (the teams' ``SANDBOX_PACKAGES.md``).

* :func:`save_task_image` writes ``docker save`` of a task's image to a tar file; :func:`load_image_file` loads
  one (``docker load``) and checks it holds a harness task image. Neither needs root, debootstrap or a registry.
* :func:`sandbox_packages` reads the ``name==version`` list a built image carries in its label
  :data:`harness.images.LABEL_RESOLVED`; :func:`packages_markdown` renders it for teams.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from harness.errors import ImageError
from harness.images import LABEL_INPUTS_HASH, LABEL_RESOLVED
from harness.sandbox.engine import DockerAPI
from harness.spec import TaskSpec
from harness.stack import project_name, task_packages

__all__ = ["PACKAGES_FILE", "load_image_file", "packages_markdown", "sandbox_packages", "save_task_image"]

#: File name of the package list in a starter kit.
PACKAGES_FILE = "SANDBOX_PACKAGES.md"


class ImageFileAPI(Protocol):
    """The engine calls used here (:class:`harness.sandbox.engine.DockerAPI` implements them)."""

    def inspect_image(self, ref: str) -> dict[str, Any]: ...

    def save_image(self, ref: str) -> Any: ...

    def load_image(self, data: Any) -> list[dict[str, Any]]: ...


def _labels(info: dict[str, Any]) -> dict[str, str]:
    return dict((info.get("Config") or {}).get("Labels") or {})


def _task_image(spec: TaskSpec, api: ImageFileAPI) -> dict[str, Any]:
    info = api.inspect_image(spec.image_tag)
    if not info:
        raise ImageError(
            f"the image {spec.image_tag} of task {spec.id!r} is not on this machine: build it with "
            f"`harness image build {spec.task_dir}`, or load the organisers' file with `harness image load FILE`"
        )
    return info


def save_task_image(spec: TaskSpec, file: str | Path, *, api: ImageFileAPI | None = None) -> tuple[Path, int]:
    """Export a task's image to a tar file that :func:`load_image_file` (or ``docker load``) reads.

    Args:
        spec: the task (its image :attr:`TaskSpec.image_tag` must exist locally).
        file: the file to write (replaced atomically; its folder must exist).
        api: engine layer (default: connect from the environment).

    Returns:
        (the file, its size in bytes).

    Raises:
        EngineUnavailableError: no engine answers.
        ImageError: the image is missing (the message says how to build or load it), or the file cannot be written.
    """
    api = api or DockerAPI()
    _task_image(spec, api)
    target = Path(file).resolve()
    if not target.parent.is_dir():
        raise ImageError(f"cannot write {target}: the folder {target.parent} does not exist")
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in api.save_image(spec.image_tag):
                out.write(chunk)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target, target.stat().st_size


def load_image_file(file: str | Path, *, api: ImageFileAPI | None = None) -> list[str]:
    """Load an image file written by :func:`save_task_image` (``docker load``); no root or registry needed.

    Args:
        file: the tar file.
        api: engine layer (default: connect from the environment).

    Returns:
        The image names (``repository:tag``) or ids the file held, as the engine reports them.

    Raises:
        EngineUnavailableError: no engine answers.
        ImageError: the file is missing, the engine refused it (not an image archive), or the image loaded is not
            a harness task image.
    """
    path = Path(file)
    if not path.is_file():
        raise ImageError(f"no image file {path}: give the .tar file `harness image save` wrote")
    api = api or DockerAPI()
    with path.open("rb") as data:
        try:
            messages = api.load_image(data)
        except Exception as exc:  # the engine's refusal, mapped by the engine layer
            raise ImageError(f"{path} could not be loaded as an image archive: {exc}") from None
    names: list[str] = []
    for message in messages:
        if "error" in message:
            raise ImageError(f"{path} could not be loaded as an image archive: {message['error']}")
        stream = str(message.get("stream") or "")
        for prefix in ("Loaded image: ", "Loaded image ID: "):
            if stream.startswith(prefix):
                names.append(stream[len(prefix) :].strip())
    if not names:
        raise ImageError(f"{path} held no image the engine reported loading")
    for name in names:
        if LABEL_INPUTS_HASH not in _labels(api.inspect_image(name)):
            raise ImageError(f"{path} loaded {name}, which is not a task image made by `harness image build`")
    return names


def sandbox_packages(spec: TaskSpec, *, api: ImageFileAPI | None = None) -> tuple[str, ...]:
    """Every distribution installed in a task's built image, as ``name==version``, sorted by name.

    Read from the image's label :data:`harness.images.LABEL_RESOLVED` (written at build time from the wheels
    installed): no container runs.

    Raises:
        EngineUnavailableError: no engine answers.
        ImageError: the image is missing, or was built by an older harness without the label (rebuild it).
    """
    api = api or DockerAPI()
    labels = _labels(_task_image(spec, api))
    resolved = labels.get(LABEL_RESOLVED, "").split()
    if not resolved:
        raise ImageError(
            f"the image {spec.image_tag} has no package list (built by an older harness): rebuild it with "
            f"`harness image build {spec.task_dir} --force`"
        )
    return tuple(resolved)


def packages_markdown(spec: TaskSpec, resolved: tuple[str, ...] | None) -> str:
    """The teams' page listing the sandbox's packages (``SANDBOX_PACKAGES.md``).

    Args:
        spec: the task.
        resolved: ``name==version`` of every installed distribution (:func:`sandbox_packages`), or ``None`` when
            the image is not built: the page then lists the task's requirements and says versions are unresolved.
    """
    requested = {project_name(req) for req in task_packages(spec.image)}
    lines = [
        f"# Python packages in the sandbox of task `{spec.id}`",
        "",
        "Your notebook or script runs in the judges' sandbox with exactly these packages (CPython 3.11, Linux). "
        "Nothing else can be imported, and nothing can be installed at run time: the sandbox has no network, so "
        "`pip install` or `%pip install` in a submission changes nothing. Write code for these versions.",
        "",
    ]
    if resolved is None:
        lines += [
            "The task image was not built when this page was written, so these are the task's requirements "
            "(exact versions where pinned); dependencies are not listed.",
            "",
            "| requirement |",
            "| --- |",
            *(f"| `{req}` |" for req in task_packages(spec.image)),
        ]
    else:
        lines += [
            f"Generated from the task's image `{spec.image_tag}`. Packages marked *requested* are the ones the task "
            "asks for; the others are their dependencies.",
            "",
            "| package | version | |",
            "| --- | --- | --- |",
        ]
        for item in resolved:
            name, _, version = item.partition("==")
            mark = "requested" if project_name(name) in requested else ""
            lines.append(f"| `{name}` | {version} | {mark} |")
    lines += [
        "",
        "`import harness` inside the sandbox gives a stand-in whose `harness.check(...)` does nothing but say so: a "
        "self-check cell left in your notebook is harmless in the judges' run.",
        "",
    ]
    return "\n".join(lines)
