"""Image inputs hash, reuse logic and offline wheel fetching, without Docker and without network.

The engine is a fake of the thin layer; wheels come from a local folder of tiny hand-made wheels through the real
``pip download`` (``PIP_NO_INDEX``: nothing is fetched from any index).
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ImageError
from harness.images import (
    ALWAYS_PACKAGES,
    LABEL_INPUTS_HASH,
    LABEL_RESOLVED,
    build_task_image,
    download_wheels,
    image_packages,
    inputs_hash,
    render_dockerfile,
    wheel_cache_dir,
)
from harness.spec import load_spec

FIXTURE_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "minimal"
BASE_ID = "sha256:" + "0b" * 32


def make_wheel(folder: Path, name: str, version: str = "1.0", tag: str = "py3-none-any") -> Path:
    """A minimal valid wheel (one module, no dependencies)."""
    path = folder / f"{name}-{version}-{tag}.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "VALUE = 1\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture()
def offline_pip(tmp_path: Path, monkeypatch: Any) -> Path:
    """pip sees only a local wheelhouse (with stand-ins for ipykernel and papermill); cache in tmp_path."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for name in ALWAYS_PACKAGES:
        make_wheel(house, name, "99.0")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return house


# --- hash and recipe ----------------------------------------------------------------------------------------


def test_image_packages_always_has_the_notebook_tools_sorted_and_unique() -> None:
    assert image_packages([]) == ("ipykernel", "papermill")
    assert image_packages(["pandas", " numpy ", "pandas", "", "papermill"]) == (
        "ipykernel",
        "numpy",
        "pandas",
        "papermill",
    )


def test_inputs_hash_ignores_order_and_duplicates() -> None:
    recipe = render_dockerfile("harness-base/bookworm:1")
    assert inputs_hash(BASE_ID, ["b", "a"], recipe) == inputs_hash(BASE_ID, ["a", "b", "a"], recipe)
    assert inputs_hash(BASE_ID, [], recipe) == inputs_hash(BASE_ID, list(ALWAYS_PACKAGES), recipe)


@pytest.mark.parametrize(
    "change",
    ["package added", "package pinned", "base rebuilt", "recipe changed"],
)
def test_inputs_hash_changes_with_every_input(change: str) -> None:
    recipe = render_dockerfile("harness-base/bookworm:1")
    before = inputs_hash(BASE_ID, ["pandas"], recipe)
    after = {
        "package added": lambda: inputs_hash(BASE_ID, ["pandas", "numpy"], recipe),
        "package pinned": lambda: inputs_hash(BASE_ID, ["pandas==2.2.2"], recipe),
        "base rebuilt": lambda: inputs_hash("sha256:" + "0c" * 32, ["pandas"], recipe),
        "recipe changed": lambda: inputs_hash(BASE_ID, ["pandas"], render_dockerfile("python:3.11-slim")),
    }[change]()
    assert after != before


def test_dockerfile_installs_offline_for_a_non_root_team_user() -> None:
    text = render_dockerfile("python:3.11-slim")
    assert text.count("FROM python:3.11-slim") == 2
    assert "--no-index" in text and "--find-links" in text
    assert "python3 -m venv /opt/venv" in text
    assert "ipykernel install --prefix /opt/venv --name python3" in text
    assert "useradd -u 1000 -g 1000 -d /home/team" in text
    assert "USER 1000:1000" in text
    assert "PATH=/opt/venv/bin:" in text


# --- reuse against a fake engine ----------------------------------------------------------------------------


class FakeImages:
    """The image calls of the thin layer: one base image present; builds are recorded."""

    def __init__(self, existing_labels: Mapping[str, str] | None = None) -> None:
        self.images: dict[str, dict[str, Any]] = {
            "harness-base/bookworm:1": {"Id": BASE_ID, "Config": {"Labels": {}}},
        }
        if existing_labels is not None:
            self.images["harness-task/minimal:latest"] = {
                "Id": "sha256:" + "11" * 32,
                "Config": {"Labels": dict(existing_labels)},
            }
        self.builds: list[dict[str, Any]] = []
        self.removed: list[str] = []
        self.tagged: list[tuple[str, str]] = []

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref.startswith("sha256:"):  # by id: with the tags that name it, as the engine answers
            tags = [name for name, info in self.images.items() if info["Id"] == ref]
            return {**self.images[tags[0]], "RepoTags": tags} if tags else {}
        return self.images.get(ref, {})

    def image_id(self, ref: str) -> str | None:
        return self.images.get(ref, {}).get("Id")

    def build_image(
        self, context_dir: Path, tag: str, labels: Mapping[str, str], network_mode: str = "none"
    ) -> Iterator[dict[str, Any]]:
        self.builds.append(
            {
                "tag": tag,
                "labels": dict(labels),
                "network_mode": network_mode,
                "files": sorted(str(p.relative_to(context_dir)) for p in context_dir.rglob("*")),
                "requirements": (context_dir / "requirements.txt").read_text(),
            }
        )
        self.images[tag] = {"Id": "sha256:" + "22" * 32, "Config": {"Labels": dict(labels)}}
        yield {"stream": "Step 1/2 : FROM base\n"}
        yield {"stream": "Successfully built\n"}

    def import_image(self, chunks: Iterator[bytes], repository: str, tag: str, changes: list[str]) -> str:
        raise AssertionError("the offline base exists; nothing is imported")

    def remove_image(self, ref: str) -> None:
        self.removed.append(ref)

    def images_with_labels(self, labels: Mapping[str, str]) -> list[str]:
        found = {
            info["Id"]
            for info in self.images.values()
            if all(info["Config"]["Labels"].get(k) == v for k, v in labels.items())
        }
        return sorted(found)

    def tag_image(self, ref: str, repository: str, tag: str) -> None:
        (info,) = {i["Id"]: i for i in self.images.values() if i["Id"] == ref}.values()
        self.images[f"{repository}:{tag}"] = info
        self.tagged.append((ref, f"{repository}:{tag}"))


def _expected_hash() -> str:
    return inputs_hash(BASE_ID, [], render_dockerfile("harness-base/bookworm:1"))


def test_same_inputs_reuse_the_image_without_building(offline_pip: Path) -> None:
    engine = FakeImages(existing_labels={LABEL_INPUTS_HASH: _expected_hash()})
    built = build_task_image(load_spec(FIXTURE_TASK), api=engine, echo=lambda _m: None)
    assert built.reused and engine.builds == []
    assert built.tag == "harness-task/minimal:latest"
    assert built.image_id == "sha256:" + "11" * 32
    assert not wheel_cache_dir([]).exists()  # reuse never even fetches wheels


def test_changed_inputs_rebuild_offline(offline_pip: Path) -> None:
    engine = FakeImages(existing_labels={LABEL_INPUTS_HASH: "an-older-hash"})
    messages: list[str] = []
    built = build_task_image(load_spec(FIXTURE_TASK), api=engine, echo=messages.append)
    assert not built.reused
    (build,) = engine.builds
    assert build["network_mode"] == "none"
    assert build["labels"][LABEL_INPUTS_HASH] == _expected_hash()
    assert build["requirements"] == "ipykernel\npapermill\n"
    assert "Dockerfile" in build["files"]
    assert "wheels/ipykernel-99.0-py3-none-any.whl" in build["files"]
    assert any(m.startswith("Step 1/2") for m in messages)
    assert engine.removed == ["sha256:" + "11" * 32]  # the replaced image does not linger untagged


def test_a_task_with_the_same_package_set_shares_the_built_image_by_tag(offline_pip: Path, tmp_path: Path) -> None:
    engine = FakeImages()
    first = build_task_image(load_spec(FIXTURE_TASK), api=engine, echo=lambda _m: None)
    other = tmp_path / "other-task"
    shutil.copytree(FIXTURE_TASK, other)
    raw = yaml.safe_load((other / "task.yaml").read_text())
    raw["id"] = "other"
    (other / "task.yaml").write_text(yaml.safe_dump(raw))
    second = build_task_image(load_spec(other), api=engine, echo=lambda _m: None)
    assert len(engine.builds) == 1  # one build for both tasks
    assert second.reused and second.image_id == first.image_id and second.tag == "harness-task/other:latest"
    assert engine.tagged == [(first.image_id, "harness-task/other:latest")]


def test_a_rebuild_keeps_the_old_image_while_another_task_shares_it(offline_pip: Path, tmp_path: Path) -> None:
    engine = FakeImages()
    shared = build_task_image(load_spec(FIXTURE_TASK), api=engine, echo=lambda _m: None)
    other = tmp_path / "other-task"
    shutil.copytree(FIXTURE_TASK, other)
    raw = yaml.safe_load((other / "task.yaml").read_text())
    raw["id"] = "other"
    (other / "task.yaml").write_text(yaml.safe_dump(raw))
    build_task_image(load_spec(other), api=engine, echo=lambda _m: None)  # tagged: shares the minimal image
    make_wheel(offline_pip, "tinypkg")
    raw["image"]["packages"] = ["tinypkg"]
    (other / "task.yaml").write_text(yaml.safe_dump(raw))
    engine.build_image = _build_with_id(engine, "sha256:" + "33" * 32)  # type: ignore[method-assign]
    rebuilt = build_task_image(load_spec(other), api=engine, echo=lambda _m: None)
    assert rebuilt.image_id != shared.image_id and not rebuilt.reused
    assert engine.removed == []  # the minimal task still uses the image the other task left
    assert engine.image_id("harness-task/minimal:latest") == shared.image_id


def _build_with_id(engine: FakeImages, image_id: str) -> Any:
    original = engine.build_image

    def build(context_dir: Path, tag: str, labels: Mapping[str, str], network_mode: str = "none") -> Iterator[Any]:
        yield from original(context_dir, tag, labels, network_mode)
        engine.images[tag] = {**engine.images[tag], "Id": image_id}

    return build


def test_the_build_labels_every_installed_version(offline_pip: Path) -> None:
    engine = FakeImages()
    build_task_image(load_spec(FIXTURE_TASK), api=engine, echo=lambda _m: None)
    (build,) = engine.builds
    assert build["labels"][LABEL_RESOLVED] == "ipykernel==99.0 papermill==99.0"
    assert "harness-stub/site/harness/__init__.py" in build["files"]  # the stand-in harness module
    assert "harness-stub/site/harness_kernel_session.py" in build["files"]  # the kernel's packer and its config
    assert "harness-stub/prefix/etc/ipython/ipython_kernel_config.py" in build["files"]


def test_force_rebuilds_even_when_unchanged(offline_pip: Path) -> None:
    engine = FakeImages(existing_labels={LABEL_INPUTS_HASH: _expected_hash()})
    built = build_task_image(load_spec(FIXTURE_TASK), api=engine, force=True, echo=lambda _m: None)
    assert not built.reused and len(engine.builds) == 1


def test_a_registry_base_must_already_be_local(offline_pip: Path) -> None:
    engine = FakeImages()
    with pytest.raises(ImageError, match="not present locally and images are never pulled"):
        build_task_image(load_spec(FIXTURE_TASK), base="python:3.11-slim", api=engine, echo=lambda _m: None)


# --- wheels -------------------------------------------------------------------------------------------------


def test_wheels_for_cpython_311_manylinux_are_fetched_once(offline_pip: Path) -> None:
    make_wheel(offline_pip, "tinypkg", "1.0", "cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(offline_pip, "tinypkg", "2.0", "cp312-cp312-manylinux_2_17_x86_64")  # wrong Python: ignored
    make_wheel(offline_pip, "tinypkg", "3.0", "cp311-cp311-macosx_11_0_arm64")  # wrong platform: ignored
    folder = download_wheels(["tinypkg"], echo=lambda _m: None)
    names = sorted(p.name for p in folder.glob("*.whl"))
    assert names == [
        "ipykernel-99.0-py3-none-any.whl",
        "papermill-99.0-py3-none-any.whl",
        "tinypkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]
    assert folder == wheel_cache_dir(["tinypkg"])
    for wheel in offline_pip.glob("*.whl"):
        wheel.unlink()  # the second call must not need pip at all
    assert download_wheels(["tinypkg"], echo=lambda _m: None) == folder


def test_a_source_only_package_fails_with_a_clear_message(offline_pip: Path) -> None:
    (offline_pip / "sdistonly-1.0.tar.gz").write_bytes(b"not really a tarball")
    with pytest.raises(ImageError) as info:
        download_wheels(["sdistonly"], echo=lambda _m: None)
    message = str(info.value)
    assert "no wheel of sdistonly" in message
    assert "source (sdist)" in message
    assert not wheel_cache_dir(["sdistonly"]).exists()


# --- save, load and the package list against a fake engine -----------------------------------------------------


class FakeImageFiles(FakeImages):
    """FakeImages plus docker save/load: a saved file is the image's id, loading it restores the tag."""

    def save_image(self, ref: str) -> Iterator[bytes]:
        yield self.images[ref]["Id"].encode()
        yield b"|" + ref.encode()

    def load_image(self, data: Any) -> list[dict[str, Any]]:
        raw = data.read().decode()
        if "|" not in raw:
            return [{"error": "invalid tar header"}]
        image_id, ref = raw.split("|")
        self.images[ref] = {"Id": image_id, "Config": {"Labels": {LABEL_INPUTS_HASH: "h"}}}
        return [{"stream": f"Loaded image: {ref}\n"}]


def test_save_then_load_restores_the_task_image(offline_pip: Path, tmp_path: Path) -> None:
    from harness.image_io import load_image_file, sandbox_packages, save_task_image

    engine = FakeImageFiles()
    spec = load_spec(FIXTURE_TASK)
    built = build_task_image(spec, api=engine, echo=lambda _m: None)
    path, size = save_task_image(spec, tmp_path / "image.tar", api=engine)
    assert size > 0 and sandbox_packages(spec, api=engine) == ("ipykernel==99.0", "papermill==99.0")
    del engine.images[spec.image_tag]
    with pytest.raises(ImageError, match="harness image build"):
        sandbox_packages(spec, api=engine)
    assert load_image_file(path, api=engine) == [spec.image_tag]
    assert engine.image_id(spec.image_tag) == built.image_id
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"junk")
    with pytest.raises(ImageError, match="could not be loaded"):
        load_image_file(junk, api=engine)
