"""Build the meter-digits data from scikit-learn's bundled handwritten digits, deterministically.

Usage::

    python prepare.py OUT_DIR

``OUT_DIR`` must be absent or empty. Nothing is downloaded: scikit-learn ships the 1,797 8x8 digit images of the
UCI "Optical Recognition of Handwritten Digits" set (``sklearn.datasets.load_digits``), framed here as the digits
read off water meters. Each image is written as an 8x8 greyscale PNG (Pillow; pixel value ``round(v * 255 / 16)``
of the source's 0-16 scale, white ink on black) named after its id. Two runs give byte-identical files
(``manifest.json`` lists each CSV's rows and each file's sha256).

The source orders the images 0, 1, 2, ..., 9, 0, 1, ... (its index gives the label away), so ids are salted sha256
prefixes (``m`` + 10 hex digits) and every file is sorted by id. Each image gets a bucket 0-99 from its id:
below TEST_PERCENT for the judges' test, the next VALIDATION_PERCENT for the self-check, the rest for training.
Layout written::

    public/                     the teams' starter kit
      train.csv                 id, digit: the training images
      test.csv                  id: the self-check's images (same file as validation_input/test.csv)
      validation.csv            id, digit: test.csv with the labels
      images/<id>.png           every image of train.csv and test.csv
    validation_input/           mounted as input_dir for a self-check: train.csv, test.csv, images/ as in public/
    test_input/                 mounted as input_dir for the judges' run
      train.csv                 id, digit: the training and self-check images
      test.csv                  id: the judged images
      images/<id>.png           every image of train.csv and test.csv
    validation_reference.csv    id, digit, split (= validation)
    hidden/test_reference.csv   id, digit, split (public ~50% / private); never mounted
    manifest.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

SPLIT_SEED = "meter-digits-uci"
TEST_PERCENT = 30
VALIDATION_PERCENT = 20
PUBLIC_PERCENT = 50
LABEL = "digit"


def bucket(values: list[str] | pd.Series, salt: str) -> np.ndarray:
    """A number 0-99 per value from a salted sha256 (stable across machines and library versions)."""
    return np.array([int.from_bytes(hashlib.sha256(f"{salt}:{v}".encode()).digest()[:8], "big") % 100 for v in values])


def write_csv(frame: pd.DataFrame, path: Path, manifest: dict[str, dict[str, object]], root: Path) -> None:
    """Write ``frame`` as UTF-8 CSV with ``\\n`` line ends and record it in ``manifest``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    path.write_bytes(data)
    manifest[path.relative_to(root).as_posix()] = {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()}


def png_bytes(image: np.ndarray) -> bytes:
    """One 8x8 image (0-16 floats) as greyscale PNG bytes (0-255)."""
    from PIL import Image

    pixels = np.rint(image * 255.0 / 16.0).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", optimize=False, compress_level=9)
    return out.getvalue()


def write_images(
    ids: pd.Series, pngs: dict[str, bytes], folder: Path, manifest: dict[str, dict[str, object]], root: Path
) -> None:
    """Write ``folder/<id>.png`` for every id and record each file in ``manifest`` (its bytes and sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id in sorted(ids):
        data = pngs[image_id]
        path = folder / f"{image_id}.png"
        path.write_bytes(data)
        manifest[path.relative_to(root).as_posix()] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every file of the layout into ``out_dir``; return the manifest's ``files`` entry."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    ids = [f"m{hashlib.sha256(f'{SPLIT_SEED}:{i}'.encode()).hexdigest()[:10]}" for i in range(len(digits.target))]
    if len(set(ids)) != len(ids):
        raise SystemExit("prepare.py: two images got the same id; change SPLIT_SEED")
    table = pd.DataFrame({"id": ids, LABEL: digits.target.astype("int64")})
    pngs = {i: png_bytes(image) for i, image in zip(ids, digits.images, strict=True)}
    table = table.sort_values("id", kind="mergesort").reset_index(drop=True)
    b = bucket(table["id"], SPLIT_SEED)
    test = b < TEST_PERCENT
    validation = (b >= TEST_PERCENT) & (b < TEST_PERCENT + VALIDATION_PERCENT)
    train = ~test & ~validation
    manifest: dict[str, dict[str, object]] = {}

    for name in ("public", "validation_input"):
        write_csv(table[train], out_dir / name / "train.csv", manifest, out_dir)
        write_csv(table.loc[validation, ["id"]], out_dir / name / "test.csv", manifest, out_dir)
        write_images(table.loc[train | validation, "id"], pngs, out_dir / name / "images", manifest, out_dir)
    write_csv(table[validation], out_dir / "public" / "validation.csv", manifest, out_dir)
    write_csv(table[~test], out_dir / "test_input" / "train.csv", manifest, out_dir)
    write_csv(table.loc[test, ["id"]], out_dir / "test_input" / "test.csv", manifest, out_dir)
    write_images(table["id"], pngs, out_dir / "test_input" / "images", manifest, out_dir)

    write_csv(table[validation].assign(split="validation"), out_dir / "validation_reference.csv", manifest, out_dir)
    test_ref = table[test]
    public = bucket(test_ref["id"], SPLIT_SEED + ":public") < PUBLIC_PERCENT
    test_ref = test_ref.assign(split=np.where(public, "public", "private"))
    write_csv(test_ref, out_dir / "hidden" / "test_reference.csv", manifest, out_dir)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to fill (absent or empty)")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    if out_dir.exists() and any(out_dir.iterdir()):
        parser.error(f"{out_dir} is not empty; give an absent or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = build(out_dir)
    manifest = {
        "source": f"scikit-learn {version('scikit-learn')} load_digits; Pillow {version('pillow')}",
        "split_seed": SPLIT_SEED,
        "test_percent": TEST_PERCENT,
        "validation_percent": VALIDATION_PERCENT,
        "public_percent": PUBLIC_PERCENT,
        "files": dict(sorted(files.items())),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for name, info in sorted(files.items()):
        if "rows" in info:
            print(f"{name}: {info['rows']:,} rows")
    for folder in sorted({name.rsplit("/", 1)[0] for name in files if name.endswith(".png")}):
        print(f"{folder}/: {sum(n.startswith(folder + '/') for n in files):,} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
