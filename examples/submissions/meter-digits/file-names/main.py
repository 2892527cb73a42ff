"""Broken on purpose: writes the image file names (``m0a1b2c3d4e.png``) as ids instead of the ids themselves.

Every id is unknown, so the harness must report the run as invalid_output naming the first unknown and missing ids.
"""

import os
from pathlib import Path

import pandas as pd

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))

test = pd.read_csv(input_dir / "test.csv")
output_dir.mkdir(parents=True, exist_ok=True)
pd.DataFrame({"id": test["id"] + ".png", "digit": 0}).to_csv(output_dir / "predictions.csv", index=False)
