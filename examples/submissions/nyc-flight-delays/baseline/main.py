"""Baseline for NYC flight delays: each flight's predicted arrival delay is the median delay in train.csv of the
flights of its carrier, origin and scheduled hour.

The median, not the mean, because the task's primary metric is the mean absolute error, which a group's median
minimises (the mean is pulled up by a few very late flights). Groups absent from train.csv fall back to the
carrier and origin's median, then to the overall median. Reads ``train.csv`` and ``test.csv`` from the input
folder (``$HARNESS_INPUT_DIR``, default ``/input``) and writes ``predictions.csv`` (columns ``id``, ``arr_delay``)
into the output folder (``$HARNESS_OUTPUT_DIR``, default ``/output``).
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

keys = ["carrier", "origin", "hour"]
train = pd.read_csv(input_dir / "train.csv", usecols=[*keys, "arr_delay"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id", *keys])

overall = train["arr_delay"].median()
predicted = test.join(train.groupby(keys)["arr_delay"].median().rename("fine"), on=keys)
predicted = predicted.join(train.groupby(keys[:2])["arr_delay"].median().rename("coarse"), on=keys[:2])
arr_delay = predicted["fine"].fillna(predicted["coarse"]).fillna(overall)
predictions = pd.DataFrame({"id": test["id"], "arr_delay": arr_delay})
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
print(f"baseline: {len(predictions):,} predictions from carrier/origin/hour medians (overall {overall:.1f} min)")
