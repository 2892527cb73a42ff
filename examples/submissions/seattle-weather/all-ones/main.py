"""Degenerate on purpose: probability 1.0 for every class on every day (each row sums to 5).

scikit-learn's ``log_loss`` only warns on such rows and scores them about 2e-16, which would rank first; the
harness must refuse the file as invalid_output, naming the first id and its row sum.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

test = pd.read_csv(input_dir / "test.csv", usecols=["id"])
predictions = pd.DataFrame({"id": test["id"]})
for name in ["drizzle", "fog", "rain", "snow", "sun"]:
    predictions[f"p_{name}"] = 1.0
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
