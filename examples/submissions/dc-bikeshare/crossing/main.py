"""Broken on purpose: writes the quantiles in the wrong order (q10 holds the 90 % quantile and q90 the 10 %).

The rows cross (q10 > q90), so the harness must report the run as invalid_output naming the first id and both
values.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["hr", "bikers"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id", "hr"])
profile = train.groupby("hr")["bikers"].quantile([0.9, 0.5, 0.1]).unstack()  # wrong order
predictions = pd.DataFrame(profile.reindex(test["hr"]).to_numpy(), columns=["q10", "q50", "q90"])
predictions.insert(0, "id", test["id"].to_numpy())
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
