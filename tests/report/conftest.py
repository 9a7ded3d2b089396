"""Synthetic run folders with known properties, shaped like ``decaylab compare`` output.

The displacement of each run is ``lr(t) * g(t)`` times a little multiplicative
noise, where ``g`` falls slowly and is shared by all schedules, so a step
schedule's m_t has clean plateaus and drops and an exponential's slides.
Sharpness is ``level * ceiling(t)``, so ``level < 1`` stays under the ceiling
and sharpness rises after each LR drop (the ceiling is ``3.8 / lr``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="decaylab-mpl-"))

import decaylab as dl  # noqa: E402

STEP_HEADER = ["step", "epoch", "lr", "displacement", "grad_norm", "step_ratio",
               "train_loss", "sharpness", "ceiling"]
EPOCH_HEADER = ["epoch", "step", "train_loss", "test_loss", "test_accuracy"]
TWIN_ROLES = {"half-life": "half-life twin", "final-lr": "final-lr twin", "area": "area twin"}


def build_run_folder(
    root: Path,
    *,
    seeds: int = 3,
    epochs: int = 6,
    steps_per_epoch: int = 50,
    step_size: int = 100,
    gamma: float = 0.5,
    initial_lr: float = 0.1,
    twins: tuple[str, ...] = ("half-life",),
    swap_displacement: bool = False,
    probe_every: int | None = 10,
    final_probe: bool = False,
    sharpness_level: float | dict[str, float] = 0.8,
    sharpness_follows_lr: bool = False,
    accuracy_offset: dict[str, list[float]] | None = None,
    diverge: dict[str, int] | None = None,
    noise: float = 0.03,
    warmup: int = 0,
    base_role: str = "base",
) -> Path:
    """Write a complete run folder under ``root`` and return it.

    ``swap_displacement`` gives the step runs the twin's m_t shape and the
    twins the step shape. ``sharpness_follows_lr`` makes sharpness fall after
    each drop. ``accuracy_offset`` adds per-seed offsets to a schedule's final
    accuracy. ``diverge`` maps a run id to the update it diverges at.
    ``warmup`` wraps every schedule in the same linear warm-up, as the lab does.
    ``final_probe`` adds a probe after the last update ``horizon - 1``, so the
    final sharpness is measured there.
    """
    horizon = epochs * steps_per_epoch
    step = dl.StepDecay(initial_lr=initial_lr, gamma=gamma, step_size=step_size)
    schedules: dict[str, tuple[str, dl.Schedule]] = {"step": (base_role, step)}
    decay_steps = horizon - warmup
    matchers = {
        "half-life": lambda: dl.match_half_life(step),
        "final-lr": lambda: dl.match_final_lr(step, decay_steps),
        "area": lambda: dl.match_area(step, decay_steps),
    }
    for twin in twins:
        schedules[f"exp-{twin}"] = (TWIN_ROLES[twin], matchers[twin]())
    if warmup:
        schedules = {name: (role, dl.Warmup(s, steps=warmup)) for name, (role, s) in schedules.items()}
    accuracy_offset = accuracy_offset or {}
    diverge = diverge or {}
    times = np.arange(horizon, dtype=np.float64)
    shapes = {name: schedule(times) for name, (_, schedule) in schedules.items()}
    if swap_displacement and len(schedules) > 1:
        first_twin = next(name for name in schedules if name != "step")
        shapes["step"], shapes[first_twin] = shapes[first_twin], shapes["step"]

    entries = []
    for name, (role, schedule) in schedules.items():
        level = sharpness_level[name] if isinstance(sharpness_level, dict) else sharpness_level
        runs = []
        for seed in range(seeds):
            run_id = f"{name}-seed{seed}"
            final = _write_run(
                root / "runs" / run_id, run_id, name, seed, schedule(times), shapes[name],
                steps_per_epoch, epochs, probe_every, final_probe, level, sharpness_follows_lr,
                accuracy_offset.get(name, [0.0] * seeds)[seed], diverge.get(run_id), noise,
            )
            runs.append(final)
        entries.append(_schedule_entry(name, role, schedule, horizon, runs))

    summary = {
        "decaylab_version": "0.1.0", "torch_version": "2.13.0+cpu", "torch_threads": 2,
        "dataset": "digits", "model": "mlp", "optimizer": "momentum",
        "epochs": epochs, "seeds": seeds, "batch_size": 32, "steps_per_epoch": steps_per_epoch,
        "horizon": horizon, "sharpness_every": probe_every or 0, "schedules": entries,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (root / "config.toml").write_text(
        f'dataset = "digits"\nmodel = "mlp"\noptimizer = "momentum"\nepochs = {epochs}\n'
        f"seeds = {seeds}\nbatch_size = 32\n", encoding="utf-8")
    return root


def _write_run(
    folder: Path, run_id: str, name: str, seed: int, lr: np.ndarray, shape: np.ndarray,
    steps_per_epoch: int, epochs: int, probe_every: int | None, final_probe: bool, level: float,
    follows_lr: bool, accuracy_offset: float, diverged_at: int | None, noise: float,
) -> dict[str, Any]:
    rng = np.random.default_rng(1000 + seed)
    horizon = lr.size
    t = np.arange(horizon)
    drift = np.exp(-t / (4.0 * horizon))
    displacement = shape * drift * np.exp(noise * rng.standard_normal(horizon))
    grad_norm = drift * (1.0 + 0.1 * rng.random(horizon))
    train_loss = 2.0 * np.exp(-t / (0.3 * horizon)) + 0.05
    peak = lr.max()
    # A warm-up from 0 makes lr(0) = 0: the ceiling is then infinite, as in a real run,
    # and the synthetic sharpness is held at its value for the smallest positive LR.
    with np.errstate(divide="ignore", invalid="ignore"):
        ceiling = 3.8 / lr
        step_ratio = displacement / (lr * grad_norm)
    if follows_lr:
        sharpness = level * 3.8 / peak * lr / peak
    else:
        sharpness = level * 3.8 / np.maximum(lr, lr[lr > 0].min())
    sharpness = sharpness * np.exp(noise * rng.standard_normal(horizon))
    last = horizon if diverged_at is None else diverged_at + 1
    probes = [i for i in range(horizon)
              if (probe_every and i % probe_every == 0) or (final_probe and i == horizon - 1)]

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "steps.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(STEP_HEADER)
        for i in range(last):
            probe = i in probes
            broken = diverged_at is not None and i == diverged_at
            row = [i, i // steps_per_epoch, lr[i], displacement[i], grad_norm[i],
                   step_ratio[i], train_loss[i], "", ""]
            if probe:
                row[7:9] = [sharpness[i], ceiling[i]]
            if broken:
                row[3], row[6] = "inf", "nan"
                row[7] = "nan" if probe else ""
            writer.writerow(row)

    accuracy = 0.9 + 0.01 * seed + accuracy_offset
    finished_epochs = epochs if diverged_at is None else diverged_at // steps_per_epoch
    with (folder / "epochs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(EPOCH_HEADER)
        for epoch in range(1, finished_epochs + 1):
            fraction = epoch / epochs
            writer.writerow([epoch, epoch * steps_per_epoch, train_loss[epoch * steps_per_epoch - 1],
                             0.1 + 0.8 * (1 - fraction) + 0.01 * seed, accuracy * (0.5 + 0.5 * fraction)])

    status = "finished" if diverged_at is None else "diverged"
    final_sharpness = float(sharpness[probes[-1]]) if probes else math.nan
    run = {
        "run_id": run_id, "seed": seed, "status": status, "diverged_at_step": diverged_at,
        "final_test_accuracy": accuracy if status == "finished" else math.nan,
        "final_test_loss": 0.1 + 0.01 * seed if status == "finished" else math.nan,
        "final_train_loss": float(train_loss[-1]) if status == "finished" else math.nan,
        "final_sharpness": final_sharpness if status == "finished" else math.nan,
        "final_ceiling": float(ceiling[-1]),
    }
    info = {"run_id": run_id, "schedule": name, "seed": seed, "status": status,
            "diverged_at_step": diverged_at, "wall_time_s": 0.5}
    (folder / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return run


def _schedule_entry(name: str, role: str, schedule: dl.Schedule, horizon: int,
                    runs: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = {}
    for key in ("final_test_accuracy", "final_test_loss", "final_train_loss", "final_sharpness"):
        values = [run[key] for run in runs]
        finite = [v for v in values if math.isfinite(v)]
        metrics[key] = {
            "mean": float(np.mean(finite)) if finite else math.nan,
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0,
            "values": values,
        }
    return {
        "name": name, "role": role, "spec": schedule.to_spec(), "schedule": schedule.to_dict(),
        "unit": "step", "integrated_lr": dl.integrated_lr(schedule, horizon),
        "diverged": sum(run["status"] == "diverged" for run in runs), "runs": runs,
        "metrics": metrics,
    }


@pytest.fixture(scope="session")
def build_folder() -> Callable[..., Path]:
    """Return :func:`build_run_folder` for fixtures of a wider scope than ``make_folder``."""
    return build_run_folder


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """Return a factory: ``make_folder(**options)`` writes a fresh run folder."""
    counter = iter(range(1000))

    def factory(**options: Any) -> Path:
        return build_run_folder(tmp_path / f"run{next(counter)}", **options)

    return factory
