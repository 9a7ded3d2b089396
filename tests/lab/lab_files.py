"""Small data files for the lab tests, written by the tests themselves."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzip-compressed for ``.gz`` names."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return path


def write_idx_folder(folder: Path, train: int = 20, test: int = 10, classes: int = 3) -> Path:
    """Write a small MNIST-like IDX data set into ``folder``."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8) % classes
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def write_npz(path: Path, count: int = 60, features: int = 5, classes: int = 3) -> Path:
    """Write a learnable ``.npz`` data set with arrays ``X`` and ``y``."""
    rng = np.random.default_rng(3)
    labels = np.arange(count) % classes
    centres = rng.normal(size=(classes, features)) * 3
    np.savez(path, X=centres[labels] + rng.normal(size=(count, features)), y=labels)
    return path
