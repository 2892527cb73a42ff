"""Degenerate on purpose: the same forecast for every hour, the 10/50/90 % quantiles of all of train.csv.

Valid, but it ignores the hour of the day: it must score far worse than the baseline.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["bikers"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id"])
q10, q50, q90 = train["bikers"].quantile([0.1, 0.5, 0.9])
predictions = pd.DataFrame({"id": test["id"], "q10": q10, "q50": q50, "q90": q90})
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
