"""Build the DC bike-share forecasting data from the ``ISLP`` package, deterministically.

Usage::

    python prepare.py OUT_DIR

``OUT_DIR`` must be absent or empty. Nothing is downloaded: ``ISLP`` ships ``Bikeshare.csv`` (Capital Bikeshare,
Washington DC, every hour of 2011 with at least one rental: 8,645 hours) in its ``data`` folder. The file is read
directly, without importing ``ISLP`` (its ``__init__`` pulls in torch-based modules in some versions; install it
with ``pip install --no-deps ISLP``). Two runs give byte-identical files (``manifest.json`` lists rows and sha256).

The task is a forecast with a time-based split and no look-ahead: the last FORECAST_DAYS days of the year are
forecast hour by hour from every hour before them, and the self-check does the same for the FORECAST_DAYS days
before those. Forecast files hold only what is known in advance (the calendar), never the weather or the rentals
of the hours to forecast. Layout written::

    public/                     the teams' starter kit
      train.csv                 history before the self-check window, labelled (casual, registered, bikers)
      test.csv                  self-check window: calendar and horizon only (same as validation_input/test.csv)
      validation.csv            self-check window, labelled: every column of train.csv plus horizon
    validation_input/           mounted as input_dir for a self-check
      train.csv, test.csv       as in public/
    test_input/                 mounted as input_dir for the judges' run
      train.csv                 every hour before the judged window (the self-check window included)
      test.csv                  judged window (the last FORECAST_DAYS days): calendar and horizon only
    validation_reference.csv    id, bikers, split (= validation)
    hidden/test_reference.csv   id, bikers, split (public ~50% / private, by a salted hash of the id); never mounted
    manifest.json               every file with its row count and sha256

Ids are the hour, ``YYYY-MM-DDTHH`` (``2011-12-11T00``); every file is sorted by id. ``horizon`` is the number of
hours from the last hour of ``train.csv``'s period (the window's first hour is 1, its last FORECAST_DAYS * 24);
hours without any rental are absent from the source, so some horizons are missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

#: Salt of the public/private split of the judged window (a salted sha256 of each hour's id).
SPLIT_SEED = "dc-bikeshare-2011"
PUBLIC_PERCENT = 50
#: Days forecast in each window (three weeks).
FORECAST_DAYS = 21
LABEL = "bikers"
#: Known in advance: written to the forecast files.
CALENDAR = ["season", "mnth", "day", "hr", "holiday", "weekday", "workingday"]
#: Observed only when the hour has passed: written to train.csv (and validation.csv) only.
OBSERVED = ["weathersit", "temp", "atemp", "hum", "windspeed", "casual", "registered", LABEL]


def source_file() -> Path:
    """``Bikeshare.csv`` of the installed ``ISLP`` package (found without importing it)."""
    spec = find_spec("ISLP")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("prepare.py: the package ISLP is not installed; pip install --no-deps ISLP")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "Bikeshare.csv"


def write_csv(frame: pd.DataFrame, path: Path, manifest: dict[str, dict[str, object]], root: Path) -> None:
    """Write ``frame`` as UTF-8 CSV with ``\\n`` line ends and record it in ``manifest``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    path.write_bytes(data)
    manifest[path.relative_to(root).as_posix()] = {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()}


def load_hours() -> pd.DataFrame:
    """Every hour of the source with ``id``, the calendar and the observed columns, sorted by time."""
    hours = pd.read_csv(source_file())
    hours["hr"] = hours["hr"].astype("int64")
    start = pd.Timestamp("2011-01-01")
    time = start + pd.to_timedelta(hours["day"] - 1, unit="D") + pd.to_timedelta(hours["hr"], unit="h")
    hours.insert(0, "id", time.dt.strftime("%Y-%m-%dT%H"))
    hours["time"] = time
    if hours["id"].duplicated().any() or (time.dt.year != 2011).any():
        raise SystemExit("prepare.py: unexpected source data (a repeated hour, or one outside 2011)")
    return hours.sort_values("time", kind="mergesort").reset_index(drop=True)


def window(hours: pd.DataFrame, first_day: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(history mask, window mask, horizon in hours) of the FORECAST_DAYS days starting at day ``first_day``."""
    inside = (hours["day"] >= first_day) & (hours["day"] < first_day + FORECAST_DAYS)
    origin = pd.Timestamp("2011-01-01") + pd.Timedelta(days=first_day - 1) - pd.Timedelta(hours=1)
    horizon = ((hours["time"] - origin) / pd.Timedelta(hours=1)).round().astype("int64")
    return hours["day"] < first_day, inside, horizon


def build(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every file of the layout into ``out_dir``; return the manifest's ``files`` entry."""
    hours = load_hours()
    last_day = int(hours["day"].max())
    test_first = last_day - FORECAST_DAYS + 1
    validation_first = test_first - FORECAST_DAYS
    labelled = ["id", *CALENDAR, *OBSERVED]
    manifest: dict[str, dict[str, object]] = {}

    history, inside, horizon = window(hours, validation_first)
    forecast = hours.loc[inside, ["id"]].assign(horizon=horizon[inside]).join(hours.loc[inside, CALENDAR])
    for name in ("public", "validation_input"):
        write_csv(hours.loc[history, labelled], out_dir / name / "train.csv", manifest, out_dir)
        write_csv(forecast, out_dir / name / "test.csv", manifest, out_dir)
    validation = hours.loc[inside, labelled].assign(horizon=horizon[inside])
    write_csv(validation, out_dir / "public" / "validation.csv", manifest, out_dir)
    validation_ref = hours.loc[inside, ["id", LABEL]].assign(split="validation")
    write_csv(validation_ref, out_dir / "validation_reference.csv", manifest, out_dir)

    history, inside, horizon = window(hours, test_first)
    forecast = hours.loc[inside, ["id"]].assign(horizon=horizon[inside]).join(hours.loc[inside, CALENDAR])
    write_csv(hours.loc[history, labelled], out_dir / "test_input" / "train.csv", manifest, out_dir)
    write_csv(forecast, out_dir / "test_input" / "test.csv", manifest, out_dir)
    test_ref = hours.loc[inside, ["id", LABEL]]
    bucket = np.array(
        [int.from_bytes(hashlib.sha256(f"{SPLIT_SEED}:{i}".encode()).digest()[:8], "big") % 100 for i in test_ref["id"]]
    )
    test_ref = test_ref.assign(split=np.where(bucket < PUBLIC_PERCENT, "public", "private"))
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
        "source": f"ISLP {version('ISLP')} (data/Bikeshare.csv)",
        "split_seed": SPLIT_SEED,
        "public_percent": PUBLIC_PERCENT,
        "forecast_days": FORECAST_DAYS,
        "files": dict(sorted(files.items())),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for name, info in sorted(files.items()):
        print(f"{name}: {info['rows']:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
