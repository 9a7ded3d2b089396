"""Training overhead of StepMonitor and SharpnessProbe against a bare PyTorch loop.

Every contender trains a fresh copy of the lab's default model (same
initial weights, same batch order) for the lab's default horizon of 300
updates: plain SGD at LR 0.8 with torch's ``StepLR(step_size=101,
gamma=0.2)``, the default step schedule of ``decaylab compare``. The bare
loop is zero_grad, forward, loss, backward, ``optimizer.step()``,
``scheduler.step()``. The monitored loops add ``before_step`` and
``after_step`` calls of ``StepMonitor`` (every update) and/or
``SharpnessProbe`` on the lab's 1,000-example probe batch at a cadence of
``every`` updates (10 is the lab's default, 20 the class default).

Run: ``.venv/bin/python -m benchmarks.training_overhead``
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import StepLR

from benchmarks._harness import Recorder, Stats, goal, interleaved, parse_options, time_ns
from benchmarks._lab_model import DEFAULTS, LabSetup, batch_indices, lab_setup
from decaylab.torch.monitors import StepMonitor
from decaylab.torch.sharpness import SharpnessProbe

COMMAND = ".venv/bin/python -m benchmarks.training_overhead"
UPDATES = 300
STEP_SIZE = 101
CADENCES = (10, 20, 50, 100)
MONITOR_GOAL = 0.03
PROBE_GOAL = 0.10


def batch_plan(setup: LabSetup, updates: int) -> list[torch.Tensor]:
    """Return the shuffled batch indices of ``updates`` updates, epoch after epoch."""
    generator = torch.Generator().manual_seed(0)
    plan: list[torch.Tensor] = []
    while len(plan) < updates:
        plan.extend(batch_indices(len(setup.y_train), generator))
    return plan[:updates]


def make_contender(setup: LabSetup, plan: list[torch.Tensor], monitor: bool, every: int,
                   hvps: list[float]) -> Callable[[], float]:
    """Return a contender that trains a fresh model copy and returns its seconds per update.

    ``every = 0`` leaves the probe out. The probe's HVP counts go into ``hvps``.
    """
    initial = copy.deepcopy(setup.model.state_dict())

    def run() -> float:
        model = copy.deepcopy(setup.model)
        model.load_state_dict(initial)
        optimizer = torch.optim.SGD(model.parameters(), lr=DEFAULTS.lr)
        scheduler = StepLR(optimizer, step_size=STEP_SIZE, gamma=DEFAULTS.gamma)
        watchers: list[Any] = []
        if monitor:
            watchers.append(StepMonitor(model, optimizer))
        probe = None
        if every:
            probe = SharpnessProbe(model, setup.loss_fn, [setup.probe], optimizer, every=every)
            watchers.append(probe)
        loss_fn, x_train, y_train = setup.loss_fn, setup.x_train, setup.y_train

        def train() -> None:
            for step, indices in enumerate(plan):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x_train[indices]), y_train[indices]).backward()
                for watcher in watchers:
                    watcher.before_step(step)
                optimizer.step()
                for watcher in watchers:
                    row = watcher.after_step(step)
                    if "probe_hvps" in row:
                        hvps.append(row["probe_hvps"])
                scheduler.step()

        return time_ns(train) / len(plan) / 1e9

    return run


def make_goals(rows: dict[str, dict[str, Any]], bare: float) -> list[dict[str, Any]]:
    """State the overhead goals, with the per-update and per-probe cost behind each figure."""
    monitor = rows["StepMonitor"]
    added_us = (monitor["s_per_update"].median - bare) * 1e6
    probe = rows["SharpnessProbe every=10"]
    probe_ms = (probe["s_per_update"].median - bare) * 10 * 1e3
    slowest = rows[f"SharpnessProbe every={CADENCES[-1]}"]
    return [
        goal("StepMonitor overhead", monitor["overhead"], MONITOR_GOAL, "fraction",
             reason=f"it adds {added_us:.0f} µs per update (a foreach norm of the gradients read "
                    f"back as floats, and the row dict) to a {bare * 1e6:.0f} µs update"),
        goal("SharpnessProbe overhead at the lab's cadence (every=10)", probe["overhead"], PROBE_GOAL,
             "fraction",
             reason=f"one probe costs about {probe_ms:.1f} ms, {probe_ms / (bare * 1e3):.1f} bare "
                    f"updates ({probe['mean_probe_hvps']:.1f} HVPs on 1,000 examples plus the "
                    f"gradient graph), so even every={CADENCES[-1]} adds "
                    f"{slowest['overhead'] * 100:.0f} %"),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the recorded results."""
    options = parse_options(__doc__.splitlines()[0], argv)
    recorder = Recorder("training_overhead", COMMAND, options)
    updates = 20 if options.smoke else UPDATES
    repeats = options.repeats or (2 if options.smoke else 15)
    setup = lab_setup(0)
    plan = batch_plan(setup, updates)
    recorder["settings"] = {"updates": updates, "rounds": repeats, "batch_size": DEFAULTS.batch_size,
                            "probe_examples": len(setup.probe[1]), "lr": DEFAULTS.lr,
                            "step_lr": {"step_size": STEP_SIZE, "gamma": DEFAULTS.gamma}}

    hvps: dict[str, list[float]] = {}
    contenders: dict[str, Callable[[], float]] = {}
    for label, monitor, every in [("bare", False, 0), ("StepMonitor", True, 0),
                                  *[(f"SharpnessProbe every={n}", False, n) for n in CADENCES],
                                  ("StepMonitor + SharpnessProbe every=10", True, 10)]:
        hvps[label] = []
        contenders[label] = make_contender(setup, plan, monitor, every, hvps[label])
    stats: dict[str, Stats] = interleaved(contenders, repeats, warmups=1)

    bare = stats["bare"].median
    rows = {}
    for label, value in stats.items():
        rows[label] = {"s_per_update": value, "overhead": value.median / bare - 1.0,
                       "mean_probe_hvps": statistics.fmean(hvps[label]) if hvps[label] else None,
                       "probes_per_run": len(hvps[label]) / (repeats + 1) if hvps[label] else 0}
    recorder["results"] = rows
    recorder["goals"] = make_goals(rows, bare)
    recorder.finish()
    return recorder.data


if __name__ == "__main__":
    main()
