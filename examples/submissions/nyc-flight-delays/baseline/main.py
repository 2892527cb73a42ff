"""Baseline for NYC flight delays: each flight's predicted arrival delay is its carrier's mean delay in train.csv.

Carriers absent from train.csv get the overall mean. Reads ``train.csv`` and ``test.csv`` from the input folder
(``$HARNESS_INPUT_DIR``, default ``/input``) and writes ``predictions.csv`` (columns ``id``, ``arr_delay``) into the
output folder (``$HARNESS_OUTPUT_DIR``, default ``/output``).
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["carrier", "arr_delay"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id", "carrier"])

overall = train["arr_delay"].mean()
per_carrier = train.groupby("carrier")["arr_delay"].mean()
predictions = pd.DataFrame({"id": test["id"], "arr_delay": test["carrier"].map(per_carrier).fillna(overall)})
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
print(f"baseline: {len(predictions):,} predictions from {len(per_carrier)} carrier means (overall {overall:.2f} min)")
