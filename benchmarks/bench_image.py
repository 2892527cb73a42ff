"""Image size and build time without and with the data-science stack.

Builds the minimal fixture task's image twice under throw-away tags, forced and without the engine's layer cache
(so the build really runs): once with ``image.stack: none`` (ipykernel and papermill only: the image before the
stack) and once with the default ``data-science`` stack, then prints a markdown table. Wheels come from the wheel
cache when present (the first run downloads them; that time is printed separately). The throw-away tags are
removed afterwards.

Usage: ``python benchmarks/bench_image.py``. Needs a Docker engine and the offline base image (``harness image
build`` makes it once, as root).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.images import build_task_image, download_wheels
from harness.sandbox.engine import DockerAPI
from harness.spec import load_spec
from harness.stack import task_packages

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_TASK = ROOT / "tests" / "fixtures" / "tasks" / "minimal"


class _NoCacheAPI(DockerAPI):
    """The engine layer, building without the engine's layer cache (a forced build would otherwise reuse it)."""

    def build_image(
        self,
        context_dir: Path,
        tag: str,
        labels: Mapping[str, str],
        network_mode: str = "none",
        *,
        nocache: bool = True,
    ) -> Iterator[dict[str, Any]]:
        yield from super().build_image(context_dir, tag, labels, network_mode, nocache=True)


def _task(folder: Path, stack: str) -> Path:
    task = folder / stack
    shutil.copytree(FIXTURE_TASK, task, ignore=shutil.ignore_patterns("data", "__pycache__"))
    raw = yaml.safe_load((task / "task.yaml").read_text())
    raw["id"] = f"bench-image-{stack}-{uuid.uuid4().hex[:6]}"
    raw["image"] = {"stack": stack, "packages": []}
    (task / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return task


def main() -> None:
    api = _NoCacheAPI(timeout_s=900)  # removing a 1 GB image takes minutes on a loaded machine
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        for stack in ("none", "data-science"):
            spec = load_spec(_task(Path(tmp), stack))
            started = time.monotonic()
            wheels = download_wheels(task_packages(spec.image), echo=lambda m: print(m, file=sys.stderr))
            fetch_s = time.monotonic() - started
            wheel_mb = sum(p.stat().st_size for p in wheels.glob("*.whl")) / 1e6
            try:
                built = build_task_image(spec, force=True, api=api, echo=lambda m: print(m, file=sys.stderr))
                size_mb = float(api.inspect_image(built.tag).get("Size", 0)) / 1e6
                rows.append((stack, len(list(wheels.glob("*.whl"))), wheel_mb, fetch_s, built.duration_s, size_mb))
            finally:
                try:
                    api.remove_image(spec.image_tag)
                except Exception as exc:  # measured anyway; say what is left behind
                    print(f"could not remove {spec.image_tag}: {exc}", file=sys.stderr)
    print("| stack | wheels | wheels (MB) | wheel fetch (s) | build (s) | image size (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for stack, count, wheel_mb, fetch_s, build_s, size_mb in rows:
        print(f"| `{stack}` | {count} | {wheel_mb:.0f} | {fetch_s:.1f} | {build_s:.1f} | {size_mb:.0f} |")


if __name__ == "__main__":
    main()
