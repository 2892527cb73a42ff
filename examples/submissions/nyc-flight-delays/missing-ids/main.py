"""Broken on purpose: predicts each flight's mean delay for its carrier, destination and departure hour, but joins
those means with an inner merge, so flights whose combination never occurs in train.csv silently vanish.

The harness must report the run as invalid_output with the number of missing ids and the first one.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

KEYS = ["carrier", "dest", "hour"]
train = pd.read_csv(input_dir / "train.csv", usecols=[*KEYS, "arr_delay"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id", *KEYS])
means = train.groupby(KEYS, as_index=False)["arr_delay"].mean()
predicted = test.merge(means, on=KEYS, how="inner")  # the bug: how="left" plus a fillna was meant
output_dir.mkdir(parents=True, exist_ok=True)
predicted[["id", "arr_delay"]].to_csv(output_dir / "predictions.csv", index=False)
