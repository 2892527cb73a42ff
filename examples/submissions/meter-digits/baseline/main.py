"""Baseline for meter digits: each image gets the digit whose mean training image is nearest (Euclidean distance).

Reads ``train.csv`` (id, digit), ``test.csv`` (id) and ``images/<id>.png`` from the input folder
(``$HARNESS_INPUT_DIR``, default ``/input``) with Pillow and writes ``predictions.csv`` (``id``, ``digit``) into the
output folder (``$HARNESS_OUTPUT_DIR``, default ``/output``).
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

input_dir = Path(os.environ.get("HARNESS_INPUT_DIR", "/input"))
output_dir = Path(os.environ.get("HARNESS_OUTPUT_DIR", "/output"))


def pixels(ids: pd.Series) -> np.ndarray:
    """One row of 64 pixel values (0-255) per id."""
    return np.stack([np.asarray(Image.open(input_dir / "images" / f"{i}.png"), dtype=float).ravel() for i in ids])


train = pd.read_csv(input_dir / "train.csv")
test = pd.read_csv(input_dir / "test.csv")
X_train, X_test = pixels(train["id"]), pixels(test["id"])
digits = np.arange(10)
centroids = np.stack([X_train[train["digit"].to_numpy() == d].mean(axis=0) for d in digits])
distances = ((X_test[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
predictions = pd.DataFrame({"id": test["id"], "digit": digits[distances.argmin(axis=1)]})
output_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(output_dir / "predictions.csv", index=False)
print(f"baseline: {len(predictions):,} images read by the nearest of 10 mean images")
