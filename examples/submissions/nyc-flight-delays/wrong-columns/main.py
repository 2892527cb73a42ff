"""Broken on purpose: writes the right rows under the wrong column names (``flight_id``, ``delay``).

The harness must report the run as invalid_output naming the missing columns ``id`` and ``arr_delay``.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["arr_delay"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id"])
output_dir.mkdir(parents=True, exist_ok=True)
pd.DataFrame({"flight_id": test["id"], "delay": train["arr_delay"].median()}).to_csv(
    output_dir / "predictions.csv", index=False
)
