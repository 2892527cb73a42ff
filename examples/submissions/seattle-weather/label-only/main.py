"""Broken on purpose: writes the most frequent class as a label column ``weather`` instead of probabilities.

The harness must report the run as invalid_output naming the missing columns ``p_drizzle`` ... ``p_sun``.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["weather"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id"])
output_dir.mkdir(parents=True, exist_ok=True)
pd.DataFrame({"id": test["id"], "weather": train["weather"].mode()[0]}).to_csv(
    output_dir / "predictions.csv", index=False
)
