"""Shared fixtures of the lab tests: tiny configurations and data files."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_files import write_npz


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    return write_npz(tmp_path / "blobs.npz")


@pytest.fixture
def tiny_options(npz_file: Path) -> dict[str, object]:
    """Options of a comparison that runs in well under a second per run."""
    return {
        "dataset": str(npz_file), "epochs": 3, "seeds": 2, "batch_size": 16,
        "lr": 0.1, "hidden": "8", "sharpness_every": 3, "sharpness_examples": 20,
        "threads": 1, "report": False,
    }
