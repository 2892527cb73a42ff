"""Broken on purpose: maps each flight to its destination's mean delay, leaving NaN for destinations absent from
train.csv and for flights of carrier 'OO' (a forgotten fillna).

The harness must report the run as invalid_output with the number of NaN values and the first id.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

train = pd.read_csv(input_dir / "train.csv", usecols=["dest", "arr_delay"])
test = pd.read_csv(input_dir / "test.csv", usecols=["id", "dest", "carrier"])
per_dest = train.groupby("dest")["arr_delay"].mean()
predicted = test["dest"].map(per_dest).where(test["carrier"] != "OO", np.nan)  # the bug: no fillna
output_dir.mkdir(parents=True, exist_ok=True)
pd.DataFrame({"id": test["id"], "arr_delay": predicted}).to_csv(output_dir / "predictions.csv", index=False)
