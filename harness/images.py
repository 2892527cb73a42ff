"""Build task images offline: a base image plus the task's Python packages, installed from wheels.

Nothing is pulled and image builds run with network mode ``none``:

1. **Base.** ``offline`` (default): a Debian bookworm root file system made with
   ``debootstrap --variant=minbase --include=python3,python3-venv,python3-pip`` (only Debian's package mirror is
   needed) and imported with ``docker import`` as :data:`BASE_TAG`; built once, then reused by tag. Or any image
   already present locally, such as ``python:3.11-slim`` (``harness image build --base python:3.11-slim``).
2. **Wheels.** ``pip download`` on the host fetches wheels for CPython 3.11 on manylinux x86_64 (the
   bookworm Python) into a cache folder, one folder per package set. Packages published only as source (sdist)
   are refused with a clear message: building them would need a compiler and network inside the build.
3. **Task image.** A two-stage Dockerfile copies the wheels in, creates ``/opt/venv``, installs with
   ``pip install --no-index --find-links``, registers the ``python3`` Jupyter kernel, and copies the venv into a
   clean stage with the user ``team`` (uid 1000, HOME ``/home/team``). The package list is
   :func:`harness.stack.task_packages`: ipykernel and papermill (notebooks run inside the image), the task's stack
   (by default the pinned data-science stack, matplotlib's inline backend included) and the task's own packages.
   The image also carries a stand-in ``harness`` module whose ``check(...)`` only says that self-checks do nothing
   in the judges' run, the kernel's message packer that survives any text a team prints (with its
   ``/opt/venv/etc/ipython`` config; :mod:`harness.stack`), and ``MPLCONFIGDIR=/tmp/matplotlib`` (the root file
   system is read-only).

The image carries the label :data:`LABEL_INPUTS_HASH`: a sha256 of every input (base image id, sorted package
list, the recipe: Dockerfile text, which names the digest of those added files, and :data:`RECIPE_VERSION`; not the
task's id). When the task's tag already has
that hash, the image is reused (seconds, no download); when another local image has it (another task with the same
package set), that image is tagged for this task too, without a second build; a changed package list, base or
recipe rebuilds it. Unpinned packages resolve to their newest wheels at build time; the reused image keeps the
versions it was built with, listed in the label :data:`LABEL_RESOLVED` (``name==version`` of every wheel
installed), which :func:`harness.image_io.sandbox_packages` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from harness.errors import ImageError
from harness.sandbox.docker import DockerAPI
from harness.settings import DEFAULT_DEBIAN_MIRROR, get_settings
from harness.spec import TaskSpec
from harness.stack import (
    ALWAYS_PACKAGES,
    image_packages,
    sandbox_support_digest,
    task_packages,
    write_kernel_config,
    write_noop_harness,
)

__all__ = [
    "ALWAYS_PACKAGES",
    "BASE_TAG",
    "LABEL_INPUTS_HASH",
    "RECIPE_VERSION",
    "BuiltImage",
    "ImageAPI",
    "build_task_image",
    "cache_dir",
    "download_wheels",
    "ensure_base_image",
    "image_packages",
    "inputs_hash",
    "render_dockerfile",
    "resolved_versions",
    "wheel_cache_dir",
]

logger = logging.getLogger(__name__)

Echo = Callable[[str], Any]


class ImageAPI(Protocol):
    """The image calls of the engine layer (:class:`harness.sandbox.docker.DockerAPI` implements them)."""

    def image_id(self, ref: str) -> str | None: ...

    def inspect_image(self, ref: str) -> dict[str, Any]: ...

    def build_image(
        self, context_dir: Path, tag: str, labels: Mapping[str, str], network_mode: str = "none"
    ) -> Iterator[dict[str, Any]]: ...

    def import_image(self, chunks: Iterator[bytes], repository: str, tag: str, changes: list[str]) -> str: ...

    def remove_image(self, ref: str) -> None: ...

    def images_with_labels(self, labels: Mapping[str, str]) -> list[str]: ...

    def tag_image(self, ref: str, repository: str, tag: str) -> None: ...


#: Version of the image recipe; bump it to rebuild every task image.
RECIPE_VERSION = "3"
#: Version of the offline base recipe; bump it to bootstrap a new base.
BASE_RECIPE_VERSION = "1"
#: Tag of the offline base image.
BASE_TAG = f"harness-base/bookworm:{BASE_RECIPE_VERSION}"
#: The ``base`` value meaning "bootstrap a Debian base offline".
OFFLINE_BASE = "offline"
#: Image label holding the content hash of the image's inputs.
LABEL_INPUTS_HASH = "org.hackathon-harness.image.inputs-hash"
#: Image label naming the task whose build made the image (other tasks with the same inputs share it).
LABEL_TASK = "org.hackathon-harness.image.task"
#: Image label listing every installed distribution as ``name==version``, space-separated, sorted.
LABEL_RESOLVED = "org.hackathon-harness.image.resolved"
LABEL_PACKAGES = "org.hackathon-harness.image.packages"
LABEL_BASE = "org.hackathon-harness.image.base"

DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = DEFAULT_DEBIAN_MIRROR
#: Python of the images: wheels are fetched for it whatever Python runs the harness.
IMAGE_PYTHON = "3.11"
#: glibc of bookworm is 2.36: every manylinux wheel up to that works.
_GLIBC_MINOR = 36

_DOCKERFILE = """\
# syntax: classic builder; generated by harness.images (recipe {recipe}, sandbox files {support}). Network none.
FROM {base} AS build
COPY wheels /tmp/harness-wheels
COPY requirements.txt /tmp/harness-requirements.txt
COPY harness-stub /tmp/harness-stub
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check \\
      --find-links /tmp/harness-wheels -r /tmp/harness-requirements.txt \\
 && /opt/venv/bin/python -m ipykernel install --prefix /opt/venv --name python3 --display-name "Python 3 (task)" \\
 && cp -r /tmp/harness-stub/site/. \\
      "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/" \\
 && cp -r /tmp/harness-stub/prefix/. /opt/venv/ \\
 && /opt/venv/bin/python -c "import ipykernel, papermill, harness, harness_kernel_session; harness.check"

FROM {base}
USER root
ENV LANG=C.UTF-8 \\
    VIRTUAL_ENV=/opt/venv \\
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 \\
    MPLCONFIGDIR=/tmp/matplotlib \\
    HOME=/home/team
COPY --from=build /opt/venv /opt/venv
RUN (getent group 1000 >/dev/null || groupadd -g 1000 team) \\
 && (getent passwd 1000 >/dev/null || useradd -u 1000 -g 1000 -d /home/team -M -s /bin/sh team) \\
 && mkdir -p /home/team /submission /input /output \\
 && chown 1000:1000 /home/team /output \\
 && chmod 0700 /home/team \\
 && /opt/venv/bin/jupyter kernelspec list
USER 1000:1000
WORKDIR /home/team
"""


@dataclass(frozen=True)
class BuiltImage:
    """A task image ready to run.

    Attributes:
        tag: local tag, e.g. ``harness-task/nyc-flight-delays:latest``.
        image_id: the image's id (``sha256:...``).
        reused: ``True`` when an image with the same inputs existed and nothing was built.
        duration_s: seconds this call took.
    """

    tag: str
    image_id: str
    reused: bool
    duration_s: float


def cache_dir() -> Path:
    """Folder for wheels and locks: ``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hackathon-harness``
    (``~/.cache/hackathon-harness``); see :class:`harness.settings.Settings`."""
    return get_settings().cache_folder()


def render_dockerfile(base_ref: str) -> str:
    """The task image's Dockerfile for a base image reference."""
    return _DOCKERFILE.format(base=base_ref, recipe=RECIPE_VERSION, support=sandbox_support_digest())


def inputs_hash(base_image_id: str, packages: Iterable[str], dockerfile: str) -> str:
    """sha256 (hex) of everything an image is built from; equal hashes mean the image can be reused.

    Args:
        base_image_id: id of the base image (``sha256:...``), not its tag: a rebuilt base changes it.
        packages: pip requirement strings; order and duplicates do not matter.
        dockerfile: the rendered recipe (see :func:`render_dockerfile`).
    """
    payload = {
        "recipe": RECIPE_VERSION,
        "base": base_image_id,
        "packages": list(image_packages(packages)),
        "dockerfile": dockerfile,
        "python": IMAGE_PYTHON,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _wheel_platforms() -> list[str]:
    plats = [f"manylinux_2_{minor}_x86_64" for minor in range(_GLIBC_MINOR, 4, -1)]
    return [*plats, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def wheel_cache_dir(packages: Iterable[str]) -> Path:
    """The cache folder of a package set's wheels (complete when it holds a ``.complete`` file).

    Args:
        packages: pip requirement strings; :data:`ALWAYS_PACKAGES` are added, order does not matter.
    """
    pkgs = list(image_packages(packages))
    key = hashlib.sha256(json.dumps([IMAGE_PYTHON, _wheel_platforms(), pkgs]).encode()).hexdigest()[:16]
    return cache_dir() / "wheels" / key


def download_wheels(packages: Iterable[str], *, echo: Echo = print) -> Path:
    """Fetch wheels for CPython 3.11 / manylinux x86_64 into the cache (once per package set).

    Args:
        packages: pip requirement strings; :data:`ALWAYS_PACKAGES` are added.
        echo: progress messages.

    Returns:
        The folder holding every wheel the set needs (with dependencies).

    Raises:
        ImageError: pip found no wheel for a package (sdist-only, or no build for this platform), or pip failed.
    """
    pkgs = image_packages(packages)
    dest = wheel_cache_dir(pkgs)
    root, key = dest.parent, dest.name
    if (dest / ".complete").is_file():
        logger.debug("wheels for %s reused from %s", pkgs, dest)
        return dest
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=root))
    echo(f"downloading wheels for {', '.join(pkgs)} (CPython {IMAGE_PYTHON}, manylinux x86_64)")
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        IMAGE_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ]
    for plat in _wheel_platforms():
        argv += ["--platform", plat]
    argv += ["--dest", str(partial), *pkgs]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        missing = [
            line.split(" for ", 1)[-1].strip()
            for line in proc.stderr.splitlines()
            if "No matching distribution found for" in line
        ]
        if missing:
            raise ImageError(
                f"no wheel of {', '.join(missing)} for CPython {IMAGE_PYTHON} on manylinux x86_64. Task images are "
                "built offline from wheels only, so packages published only as source (sdist) cannot be "
                "installed: pin a version that has a wheel, or build a wheel yourself and put it in a folder "
                f"pip finds (PIP_FIND_LINKS). pip said: {proc.stderr.strip()[-800:]}"
            )
        raise ImageError(f"pip download failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    (partial / ".complete").write_text("\n".join(pkgs) + "\n")
    try:
        partial.rename(dest)
    except OSError:  # another process completed the same set first
        shutil.rmtree(partial, ignore_errors=True)
    return dest


def resolved_versions(wheels: Path) -> tuple[str, ...]:
    """``name==version`` of every wheel in a folder (what an install from it gives), sorted by name.

    Args:
        wheels: a folder of ``*.whl`` files (a :func:`download_wheels` folder).
    """
    found = {}
    for wheel in wheels.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return tuple(f"{name}=={version}" for name, version in sorted(found.items()))


def _tar_chunks(rootfs: Path, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    proc = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        while chunk := proc.stdout.read(chunk_bytes):
            yield chunk
    finally:
        proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise ImageError(f"tar of the base root file system failed (exit {rc}): {err[-500:]}")
        if proc.stderr:
            proc.stderr.close()


def ensure_base_image(echo: Echo = print, *, api: ImageAPI | None = None) -> str:
    """Make sure the offline base image exists; bootstrap it with debootstrap once.

    The mirror is ``$HARNESS_DEBIAN_MIRROR`` or ``http://deb.debian.org/debian`` (only Debian's package mirror
    is contacted; no image registry). Takes about a minute and 300 MB the first time.

    Args:
        echo: progress messages.
        api: engine layer (default: connect from the environment).

    Returns:
        The base image's tag (:data:`BASE_TAG`).

    Raises:
        EngineUnavailableError: no engine answers.
        ImageError: not root, debootstrap is missing or failed, or the import failed.
    """
    api = api or DockerAPI()
    if api.image_id(BASE_TAG):
        return BASE_TAG
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / "base-image.lock")):
        if api.image_id(BASE_TAG):
            return BASE_TAG
        if os.geteuid() != 0:
            raise ImageError(
                f"the offline base image {BASE_TAG} is missing and bootstrapping it needs root (debootstrap): "
                "run `harness image build` once as root, or pass --base with an image you have locally "
                "(e.g. python:3.11-slim)"
            )
        if not shutil.which("debootstrap"):
            raise ImageError(
                "debootstrap is not installed: `apt-get install -y debootstrap` "
                "(as root), or pass --base with a local image"
            )
        mirror = get_settings().debian_mirror
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="harness-rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            echo(f"bootstrapping Debian {DEBIAN_SUITE} (minbase + python3) from {mirror}; about a minute, once")
            proc = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,python3-pip",
                    DEBIAN_SUITE,
                    str(rootfs),
                    mirror,
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise ImageError(
                    f"debootstrap failed (exit {proc.returncode}); its log ends with: "
                    f"{(proc.stdout + proc.stderr).strip()[-1500:]}"
                )
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / junk).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            echo(f"importing the root file system as {BASE_TAG}")
            repository, tag = BASE_TAG.rsplit(":", 1)
            api.import_image(
                _tar_chunks(rootfs),
                repository,
                tag,
                changes=[
                    "ENV LANG=C.UTF-8",
                    'CMD ["/bin/bash"]',
                    f"LABEL org.hackathon-harness.image.base-recipe={BASE_RECIPE_VERSION}",
                ],
            )
        if not api.image_id(BASE_TAG):
            raise ImageError(f"docker import did not produce {BASE_TAG}")
        logger.info("base image %s built in %.1f s", BASE_TAG, time.monotonic() - started)
        return BASE_TAG


def _resolve_base(base: str, api: ImageAPI, echo: Echo) -> tuple[str, str]:
    ref = ensure_base_image(echo, api=api) if base == OFFLINE_BASE else base
    image_id = api.image_id(ref)
    if not image_id:
        raise ImageError(
            f"base image {ref!r} is not present locally and images are never pulled: load or pull "
            f"it yourself (e.g. `docker pull {ref}` where a registry is reachable), or use the "
            "default offline base"
        )
    return ref, image_id


def build_task_image(
    spec: TaskSpec, *, base: str | None = None, force: bool = False, echo: Echo = print, api: ImageAPI | None = None
) -> BuiltImage:
    """Build (or reuse) the image of a task, offline.

    An image with the same inputs hash made for another task (the same package set, base and recipe) is tagged
    :attr:`TaskSpec.image_tag` as well, without building (``reused`` is then ``True``).

    Args:
        spec: the task; :func:`harness.stack.task_packages` of its ``image`` are installed, its ``image.base`` is
            the default base.
        base: override the base: ``"offline"`` or a local image reference such as ``"python:3.11-slim"``.
        force: rebuild even when an image with the same inputs hash exists.
        echo: progress messages (the CLI passes its stderr console).
        api: engine layer (default: connect from the environment).

    Returns:
        The :class:`BuiltImage` tagged :attr:`TaskSpec.image_tag`.

    Raises:
        EngineUnavailableError: no engine answers.
        ImageError: the base is missing, a package has no suitable wheel, or the build failed (the message
            ends with the build's last lines).
    """
    started = time.monotonic()
    api = api or DockerAPI()
    tag = spec.image_tag
    base_ref, base_id = _resolve_base(base or spec.image.base, api, echo)
    packages = task_packages(spec.image)
    dockerfile = render_dockerfile(base_ref)
    digest = inputs_hash(base_id, packages, dockerfile)
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f"image-{digest[:16]}.lock")), FileLock(str(lock_dir / f"image-{spec.id}.lock")):
        existing = api.inspect_image(tag)
        labels = (existing.get("Config") or {}).get("Labels") or {}
        if existing and labels.get(LABEL_INPUTS_HASH) == digest and not force:
            echo(f"image {tag} is up to date (inputs {digest[:12]}): reused")
            return BuiltImage(tag, str(existing["Id"]), True, time.monotonic() - started)
        twins = [] if force else api.images_with_labels({LABEL_INPUTS_HASH: digest})
        if twins:
            repository, name = tag.rsplit(":", 1)
            api.tag_image(twins[0], repository, name)
            echo(f"image {tag}: the same inputs (inputs {digest[:12]}) were built already; tagged, not rebuilt")
            _drop_replaced(api, existing.get("Id"), twins[0], tag)
            return BuiltImage(tag, twins[0], True, time.monotonic() - started)
        wheels = download_wheels(packages, echo=echo)
        with tempfile.TemporaryDirectory(prefix="harness-build-") as tmp:
            context = Path(tmp)
            shutil.copytree(wheels, context / "wheels", ignore=shutil.ignore_patterns(".complete"))
            (context / "requirements.txt").write_text("\n".join(packages) + "\n")
            (context / "Dockerfile").write_text(dockerfile)
            write_noop_harness(context / "harness-stub" / "site")
            write_kernel_config(context / "harness-stub" / "prefix")
            echo(f"building {tag} from {base_ref} with {len(packages)} package(s), network none")
            image_labels = {
                LABEL_INPUTS_HASH: digest,
                LABEL_TASK: spec.id,
                LABEL_PACKAGES: " ".join(packages),
                LABEL_RESOLVED: " ".join(resolved_versions(wheels)),
                LABEL_BASE: base_ref,
            }
            _stream_build(api, context, tag, image_labels, echo)
        image_id = api.image_id(tag)
        if not image_id:
            raise ImageError(f"the build reported success but {tag} does not exist")
        _drop_replaced(api, existing.get("Id"), image_id, tag)
        duration = time.monotonic() - started
        logger.info("built %s (%s) in %.1f s", tag, image_id, duration)
        return BuiltImage(tag, image_id, False, duration)


def _drop_replaced(api: ImageAPI, previous: Any, image_id: str, tag: str) -> None:
    """Remove the image ``tag`` named before, unless it is the new one, another tag still names it (another task
    with the same inputs shares it) or a container uses it (the engine refuses: kept, logged)."""
    if previous and previous != image_id:
        if api.inspect_image(str(previous)).get("RepoTags"):
            logger.info("kept the replaced image %s of %s: other tags name it", previous, tag)
            return
        try:
            api.remove_image(str(previous))
        except Exception as exc:
            logger.info("kept the replaced image %s of %s: %s", previous, tag, exc)


def _stream_build(api: ImageAPI, context: Path, tag: str, labels: dict[str, str], echo: Echo) -> None:
    tail: list[str] = []
    for message in api.build_image(context, tag, labels, network_mode="none"):
        if "error" in message:
            detail = message.get("errorDetail", {}).get("message") or message["error"]
            raise ImageError(f"building {tag} failed: {detail.strip()}\n" + "".join(tail[-20:]))
        line = message.get("stream") or ""
        if line:
            tail.append(line)
            del tail[:-40]
            if line.startswith("Step "):
                echo(line.rstrip())
            logger.debug("build %s: %s", tag, line.rstrip())
