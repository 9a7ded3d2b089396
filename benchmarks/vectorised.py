"""Evaluating a schedule over 10**7 steps at once, against stepping torch's scheduler.

decaylab evaluates ``schedule(t)`` for a float64 array ``t = 0 .. N-1``
(the array is built before the clock starts). The peer steps torch's
``StepLR``, ``MultiStepLR`` or ``ExponentialLR`` through the same horizon
on a one-group SGD optimizer and reads the group's LR after each step
into a list, which is what a user must do to get the same array. Torch is
stepped through the whole horizon once per schedule (no extrapolation).
The schedules are chosen so that no LR underflows within the horizon.

Run: ``.venv/bin/python -m benchmarks.vectorised``
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import ExponentialLR, LRScheduler, MultiStepLR, StepLR

import decaylab as dl
from benchmarks._harness import Recorder, Stats, goal, load_average, parse_options

COMMAND = ".venv/bin/python -m benchmarks.vectorised"
HORIZON = 10**7
SMOKE_HORIZON = 10**4
INITIAL_LR = 0.1
GOAL_SECONDS = 0.1


def schedules(horizon: int) -> dict[str, tuple[dl.Schedule, Any]]:
    """Return ``kind -> (decaylab schedule, torch scheduler factory)`` for ``horizon`` steps."""
    period = horizon // 10
    milestones = [horizon // 4, horizon // 2, 3 * horizon // 4]
    return {
        "step": (
            dl.StepDecay(initial_lr=INITIAL_LR, gamma=0.5, step_size=period),
            lambda opt: StepLR(opt, step_size=period, gamma=0.5),
        ),
        "multistep": (
            dl.MultiStepDecay(initial_lr=INITIAL_LR, gamma=0.1, milestones=milestones),
            lambda opt: MultiStepLR(opt, milestones=milestones, gamma=0.1),
        ),
        "exponential": (
            dl.ExponentialDecay(initial_lr=INITIAL_LR, half_life=period),
            lambda opt: ExponentialLR(opt, gamma=0.5 ** (1.0 / period)),
        ),
    }


def torch_lrs(factory: Any, horizon: int) -> tuple[float, np.ndarray]:
    """Step a fresh torch scheduler through ``horizon`` steps; return (seconds, LRs)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=INITIAL_LR)
    scheduler: LRScheduler = factory(optimizer)
    optimizer.step()
    group = optimizer.param_groups[0]
    lrs = []
    append, step = lrs.append, scheduler.step

    start = time.perf_counter()
    for _ in range(horizon):
        append(group["lr"])
        step()
    seconds = time.perf_counter() - start
    return seconds, np.asarray(lrs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the recorded results."""
    options = parse_options(__doc__.splitlines()[0], argv)
    recorder = Recorder("vectorised", COMMAND, options)
    horizon = SMOKE_HORIZON if options.smoke else HORIZON
    repeats = options.repeats or (2 if options.smoke else 15)
    steps = np.arange(horizon, dtype=np.float64)
    recorder["settings"] = {"horizon": horizon, "rounds_decaylab": repeats,
                            "torch_passes": 1, "extrapolated": False}

    results: dict[str, Any] = {}
    goals = []
    for kind, (schedule, factory) in schedules(horizon).items():
        schedule(steps[:10])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            values = schedule(steps)
            times.append(time.perf_counter() - start)
        ours = Stats.of(times)

        load_before = load_average()
        torch_seconds, reference = torch_lrs(factory, horizon)
        difference = np.abs(values - reference) / reference
        results[kind] = {
            "schedule": schedule.to_spec(),
            "decaylab_s": ours,
            "torch_s": torch_seconds,
            "torch_load_average": [load_before, load_average()],
            "speedup": torch_seconds / ours.median,
            "max_relative_difference": float(difference.max()),
            "at_max_difference_step": int(difference.argmax()),
        }
        goals.append(goal(f"{kind}: 10^7 steps evaluated", ours.median, GOAL_SECONDS, "s"))

    recorder["results"] = results
    recorder["goals"] = goals
    recorder.finish()
    return recorder.data


if __name__ == "__main__":
    main()
