"""decaylab compare on the real 28x28 image sets with the CNN, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from decaylab.cli import main
from decaylab.lab.data import FASHION_MNIST_DIR

# Small settings: a few hundred training images, one epoch, one seed. The
# point is that the real files load offline and the CNN trains end to end.
TINY_IMAGE_RUN = [
    "--model", "cnn", "--epochs", "2", "--seeds", "1", "--train-examples", "400",
    "--batch-size", "50", "--lr", "0.05", "--drops", "1", "--sharpness-every", "8",
    "--sharpness-examples", "100", "--threads", "1", "--report", "off",
]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_compare_fashion_mnist_cnn(tmp_path):
    out = tmp_path / "fashion"

    assert main(["compare", "--dataset", "fashion-mnist", *TINY_IMAGE_RUN, "--out", str(out)]) == 0

    summary = _summary(out)
    assert summary["dataset"] == "fashion-mnist"
    assert summary["model"] == "cnn"
    assert len(summary["schedules"]) == 4
    for schedule in summary["schedules"]:
        assert schedule["diverged"] == 0
        assert schedule["metrics"]["final_test_accuracy"]["mean"] > 0.3


@pytest.mark.slow
def test_compare_mnist_cnn(tmp_path):
    pytest.importorskip("pureml")
    out = tmp_path / "mnist"

    assert main(["compare", "--dataset", "mnist", *TINY_IMAGE_RUN, "--out", str(out)]) == 0

    summary = _summary(out)
    assert summary["dataset"] == "mnist"
    for schedule in summary["schedules"]:
        assert schedule["diverged"] == 0
        assert schedule["metrics"]["final_test_accuracy"]["mean"] > 0.3
