"""Build the Seattle weather data from the ``vega_datasets`` package, deterministically.

Usage::

    python prepare.py OUT_DIR

``OUT_DIR`` must be absent or empty. Nothing is downloaded: ``vega_datasets`` ships ``seattle-weather.csv`` (one row
per day of 2012-2015: 1,461 days) in the package itself (``local_data.seattle_weather()``). Two runs give
byte-identical files (``manifest.json`` lists each file's rows and sha256).

Each day gets a bucket 0-99 from a salted sha256 of its date (never numpy's RNG): buckets below TEST_PERCENT are
the judges' test days, the next VALIDATION_PERCENT the self-check's validation days, the rest training days. The
weather type drifts between years (``rain`` is common in 2012, rare after 2013), so days are drawn from every year
rather than holding out the last one. Layout written::

    public/                     the teams' starter kit
      train.csv                 training days, labelled (weather)
      test.csv                  validation days, features only (same file as validation_input/test.csv)
      validation.csv            validation days, labelled: test.csv plus weather
    validation_input/           mounted as input_dir for a self-check
      train.csv                 training days, labelled
      test.csv                  validation days, features only
    test_input/                 mounted as input_dir for the judges' run
      train.csv                 training and validation days, labelled
      test.csv                  test days, features only
    validation_reference.csv    id, weather, split (= validation)
    hidden/test_reference.csv   id, weather, split (public ~50% / private); never mounted
    manifest.json               every file with its row count and sha256

Ids are the dates (``2012-01-01``); every file is sorted by id. Features: precipitation (mm), temp_max and
temp_min (deg C), wind (m/s). The label ``weather`` is one of drizzle, fog, rain, snow, sun.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

#: Salt of the day buckets (train / validation / test) and of the public/private split.
SPLIT_SEED = "seattle-weather-2012-2015"
TEST_PERCENT = 30
VALIDATION_PERCENT = 20
#: Share of test days (percent) scored on the public leaderboard; the rest rank privately.
PUBLIC_PERCENT = 50
LABEL = "weather"
CLASSES = ["drizzle", "fog", "rain", "snow", "sun"]
FEATURES = ["precipitation", "temp_max", "temp_min", "wind"]


def bucket(ids: pd.Series, salt: str) -> np.ndarray:
    """A number 0-99 per id from a salted sha256 (stable across machines and library versions)."""
    return np.array([int.from_bytes(hashlib.sha256(f"{salt}:{i}".encode()).digest()[:8], "big") % 100 for i in ids])


def write_csv(frame: pd.DataFrame, path: Path, manifest: dict[str, dict[str, object]], root: Path) -> None:
    """Write ``frame`` as UTF-8 CSV with ``\\n`` line ends and record it in ``manifest``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    path.write_bytes(data)
    manifest[path.relative_to(root).as_posix()] = {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()}


def load_days() -> pd.DataFrame:
    """The 1,461 days: ``id`` (YYYY-MM-DD), the features and ``weather``, sorted by id."""
    from vega_datasets import local_data

    days = local_data.seattle_weather()
    days = days.assign(id=pd.to_datetime(days["date"]).dt.strftime("%Y-%m-%d"))[["id", *FEATURES, LABEL]]
    unknown = sorted(set(days[LABEL]) - set(CLASSES))
    if unknown or days["id"].duplicated().any():
        raise SystemExit(f"prepare.py: unexpected source data (labels {unknown}, or a repeated date)")
    return days.sort_values("id", kind="mergesort").reset_index(drop=True)


def build(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every file of the layout into ``out_dir``; return the manifest's ``files`` entry."""
    days = load_days()
    b = bucket(days["id"], SPLIT_SEED)
    test = b < TEST_PERCENT
    validation = (b >= TEST_PERCENT) & (b < TEST_PERCENT + VALIDATION_PERCENT)
    train = ~test & ~validation
    labelled, features = days, days[["id", *FEATURES]]
    manifest: dict[str, dict[str, object]] = {}

    for name, fit, predict in (("public", train, validation), ("validation_input", train, validation)):
        write_csv(labelled[fit], out_dir / name / "train.csv", manifest, out_dir)
        write_csv(features[predict], out_dir / name / "test.csv", manifest, out_dir)
    write_csv(labelled[validation], out_dir / "public" / "validation.csv", manifest, out_dir)
    write_csv(labelled[~test], out_dir / "test_input" / "train.csv", manifest, out_dir)
    write_csv(features[test], out_dir / "test_input" / "test.csv", manifest, out_dir)

    validation_ref = days.loc[validation, ["id", LABEL]].assign(split="validation")
    write_csv(validation_ref, out_dir / "validation_reference.csv", manifest, out_dir)
    test_ref = days.loc[test, ["id", LABEL]]
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
        "source": f"vega_datasets {version('vega_datasets')}",
        "split_seed": SPLIT_SEED,
        "test_percent": TEST_PERCENT,
        "validation_percent": VALIDATION_PERCENT,
        "public_percent": PUBLIC_PERCENT,
        "files": dict(sorted(files.items())),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for name, info in sorted(files.items()):
        print(f"{name}: {info['rows']:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
