"""Baseline for DC bike-share: each hour's forecast is the 10/50/90 % quantiles of the rentals at the same hour of
the day over the last four weeks of train.csv (working days and weekends alike).

Reads ``train.csv`` and ``test.csv`` from the input folder (``$HARNESS_INPUT_DIR``, default ``/input``) and writes
``predictions.csv`` (``id``, ``q10``, ``q50``, ``q90``) into the output folder (``$HARNESS_OUTPUT_DIR``, default
``/output``).
"""

import os
from pathlib import Path

import pandas as pd

LEVELS = [0.1, 0.5, 0.9]
input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["day", "hr", "bikers"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id", "hr"])

recent = train[train["day"] > train["day"].max() - 28]
profile = recent.groupby("hr")["bikers"].quantile(LEVELS).unstack()  # one row per hour of the day
forecast = profile.reindex(test["hr"]).to_numpy()
predictions = pd.DataFrame(forecast, columns=["q10", "q50", "q90"])
predictions.insert(0, "id", test["id"].to_numpy())
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
print(f"baseline: {len(predictions):,} hours forecast from {len(recent):,} recent hours")
