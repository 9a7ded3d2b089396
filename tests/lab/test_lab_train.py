"""One run of decaylab.lab.train: files, determinism and divergence."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import pytest

import decaylab as dl
from decaylab.lab.config import config_from_mapping
from decaylab.lab.data import load_dataset
from decaylab.lab.train import (
    EPOCH_COLUMNS,
    SHARP_START_RATIO,
    SHARP_START_WARNING,
    STEP_COLUMNS,
    steps_per_epoch,
    train_run,
)


def _run(options: dict, run_dir: Path, schedule: dl.Schedule, seed: int = 0):
    config = config_from_mapping(options)
    data = load_dataset(config.dataset)
    run_dir.mkdir()
    return train_run(config, data, schedule, schedule_name="step", seed=seed, run_dir=run_dir)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_run_writes_steps_epochs_and_run_json(tiny_options: dict, tmp_path: Path) -> None:
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=4)
    result = _run(tiny_options, tmp_path / "run", schedule)

    per_epoch = steps_per_epoch(36, 16)
    steps = _rows(tmp_path / "run" / "steps.csv")
    assert tuple(steps[0]) == STEP_COLUMNS
    assert len(steps) == 3 * per_epoch == result.steps
    assert [int(row["step"]) for row in steps] == list(range(3 * per_epoch))
    for row in steps:
        assert float(row["lr"]) == pytest.approx(schedule(int(row["step"])), rel=1e-12)
    probed = [int(row["step"]) for row in steps if row["sharpness"]]
    last = 3 * per_epoch - 1
    assert probed == [step for step in range(last + 1) if step % 3 == 0 or step == last]
    assert all(row["ceiling"] for row in steps if row["sharpness"])

    epochs = _rows(tmp_path / "run" / "epochs.csv")
    assert tuple(epochs[0]) == EPOCH_COLUMNS
    assert [int(row["epoch"]) for row in epochs] == [0, 1, 2, 3]
    assert [int(row["step"]) for row in epochs] == [0, per_epoch, 2 * per_epoch, 3 * per_epoch]

    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["diverged_at_step"] is None
    assert record["run_id"] == "step-seed0"
    assert record["final_test_accuracy"] == float(epochs[-1]["test_accuracy"])
    assert record["final_sharpness"] == float(steps[-1]["sharpness"])
    assert record["final_ceiling"] == float(steps[-1]["ceiling"])
    assert record["initial_sharpness_ratio"] == pytest.approx(
        float(steps[0]["sharpness"]) / float(steps[0]["ceiling"]))
    assert record["spec"] == schedule.to_spec()


def test_final_sharpness_measured_after_last_update(tiny_options: dict, tmp_path: Path) -> None:
    # The run has 9 updates, fewer than sharpness_every, so the periodic
    # probe fires only after update 0.
    options = {**tiny_options, "sharpness_every": 100}
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=4)
    result = _run(options, tmp_path / "run", schedule)

    steps = _rows(tmp_path / "run" / "steps.csv")
    assert [int(row["step"]) for row in steps if row["sharpness"]] == [0, 8]
    assert result.final_sharpness == float(steps[-1]["sharpness"])
    assert result.final_sharpness != float(steps[0]["sharpness"])
    # The ceiling is 2 / lr with the LR of the last update, t = 8.
    assert result.final_ceiling == pytest.approx(2 / schedule(8))


def test_last_probe_step_measured_once(
    tiny_options: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decaylab.torch.sharpness import SharpnessProbe

    calls = []
    measure = SharpnessProbe.measure

    def counting_measure(self, loss=None):
        calls.append(loss)
        return measure(self, loss)

    monkeypatch.setattr(SharpnessProbe, "measure", counting_measure)
    # 9 updates with sharpness_every 4: probes after updates 0, 4 and 8.
    _run({**tiny_options, "sharpness_every": 4}, tmp_path / "run",
         dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=4))
    steps = _rows(tmp_path / "run" / "steps.csv")
    assert [int(row["step"]) for row in steps if row["sharpness"]] == [0, 4, 8]
    assert len(calls) == 3


def test_sharp_start_warns_once(
    tiny_options: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # At lr 5 the first probe of this tiny MLP finds sharpness about 3.6
    # times the ceiling 2 / lr.
    with caplog.at_level(logging.WARNING, logger="decaylab.lab.train"):
        result = _run({**tiny_options, "lr": 5.0}, tmp_path / "sharp",
                      dl.StepDecay(initial_lr=5.0, gamma=0.5, step_size=4))
    warnings = [record for record in caplog.records if record.msg == SHARP_START_WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("run step-seed0: the first sharpness probe is 3.57 times")
    assert "lower --lr" in message
    assert result.initial_sharpness_ratio > SHARP_START_RATIO
    record = json.loads((tmp_path / "sharp" / "run.json").read_text())
    assert record["initial_sharpness_ratio"] == result.initial_sharpness_ratio

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="decaylab.lab.train"):
        calm = _run(tiny_options, tmp_path / "calm", dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=4))
    assert not [record for record in caplog.records if record.msg == SHARP_START_WARNING]
    assert calm.initial_sharpness_ratio < 1


def test_run_is_deterministic(tiny_options: dict, tmp_path: Path) -> None:
    schedule = dl.ExponentialDecay(initial_lr=0.1, half_life=5)
    _run(tiny_options, tmp_path / "a", schedule, seed=4)
    _run(tiny_options, tmp_path / "b", schedule, seed=4)
    _run(tiny_options, tmp_path / "c", schedule, seed=5)
    for name in ("steps.csv", "epochs.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "steps.csv").read_bytes() != (tmp_path / "c" / "steps.csv").read_bytes()


@pytest.mark.parametrize("sharpness_every", [3, 0])
def test_diverged_run_recorded(tiny_options: dict, tmp_path: Path, sharpness_every: int) -> None:
    # Without the probe, the non-finite minibatch loss is what stops the run.
    options = {**tiny_options, "epochs": 5, "sharpness_every": sharpness_every}
    result = _run(options, tmp_path / "run", dl.StepDecay(initial_lr=1e38, gamma=1.0, step_size=50))

    assert result.status == "diverged"
    assert result.diverged_at_step is not None
    assert 0 < result.diverged_at_step < 5 * steps_per_epoch(36, 16)
    assert math.isnan(result.final_test_accuracy)
    assert math.isnan(result.final_sharpness)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "diverged"
    assert record["diverged_at_step"] == result.diverged_at_step
    steps = _rows(tmp_path / "run" / "steps.csv")
    assert int(steps[-1]["step"]) <= result.diverged_at_step
    if sharpness_every == 0:
        assert not math.isfinite(float(steps[-1]["train_loss"]))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "velocity", "adam", "adamw"])
def test_every_optimizer_trains(tiny_options: dict, tmp_path: Path, optimizer: str) -> None:
    options = {**tiny_options, "optimizer": optimizer, "weight_decay": 0.01, "epochs": 1}
    result = _run(options, tmp_path / "run", dl.StepDecay(initial_lr=0.05, gamma=0.5, step_size=2))
    assert result.status == "finished"
    assert math.isfinite(result.final_test_loss)


def test_tensorboard_events_written(tiny_options: dict, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    options = {**tiny_options, "tensorboard": True, "epochs": 1}
    _run(options, tmp_path / "run", dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=2))
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    assert events[0].stat().st_size > 0
