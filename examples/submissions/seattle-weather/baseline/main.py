"""Baseline for Seattle weather: every day gets the class frequencies of train.csv, whatever its measurements.

A class absent from train.csv gets probability 0. Reads ``train.csv`` and ``test.csv`` from the input folder
(``$HARNESS_INPUT_DIR``, default ``/input``) and writes ``predictions.csv`` (``id``, ``p_drizzle`` ... ``p_sun``)
into the output folder (``$HARNESS_OUTPUT_DIR``, default ``/output``).
"""

import os
from pathlib import Path

import pandas as pd

CLASSES = ["drizzle", "fog", "rain", "snow", "sun"]
input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["weather"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id"])

frequency = train["weather"].value_counts(normalize=True).reindex(CLASSES, fill_value=0.0)
predictions = pd.DataFrame({"id": test["id"]})
for name, share in frequency.items():
    predictions[f"p_{name}"] = share
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
print(f"baseline: {len(predictions):,} days, class frequencies {frequency.round(3).to_dict()}")
