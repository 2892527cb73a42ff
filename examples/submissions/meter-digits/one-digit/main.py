"""Degenerate on purpose: answers the most frequent training digit for every image, without looking at it.

Valid, but it must score far worse than the baseline (accuracy about 0.1, macro F1 about 0.02).
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv")
test = pd.read_csv(input_dir / "test.csv")
output_dir.mkdir(parents=True, exist_ok=True)
pd.DataFrame({"id": test["id"], "digit": int(train["digit"].mode()[0])}).to_csv(
    output_dir / "predictions.csv", index=False
)
