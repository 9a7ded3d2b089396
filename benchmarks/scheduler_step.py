"""Per-call cost of ``Scheduler.step()`` against torch's schedulers and a hand-written floor.

Four param groups (LRs 0.1, 0.05, 0.02, 0.01) on one SGD optimizer. Each
contender is stepped ``calls`` times in one timed loop, on a fresh
optimizer and scheduler per round, so the LR never underflows and no
state carries over. The floor computes the closed form and writes the
four groups by hand, with no scheduler object at all. An empty loop of
the same length is timed too; every figure includes its cost.

Run: ``.venv/bin/python -m benchmarks.scheduler_step``
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import ExponentialLR, LRScheduler, MultiStepLR, StepLR

import decaylab as dl
from benchmarks._harness import Recorder, Stats, goal, interleaved, parse_options, time_ns
from decaylab.torch import Scheduler

COMMAND = ".venv/bin/python -m benchmarks.scheduler_step"
GROUP_LRS = (0.1, 0.05, 0.02, 0.01)
GAMMA = 0.5
STEP_SIZE = 1000
MILESTONES = (3000, 6000, 9000, 12000)
HALF_LIFE = 1000
GOAL_RATIO = 0.5


def make_optimizer() -> torch.optim.SGD:
    """Build SGD over four param groups of one weight each."""
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in GROUP_LRS]
    return torch.optim.SGD(groups, lr=GROUP_LRS[0])


def ready(scheduler: LRScheduler) -> LRScheduler:
    """Take one gradient-free optimizer step, so neither library warns about the call order."""
    scheduler.optimizer.step()
    return scheduler


def schedule_of(kind: str) -> dl.Schedule:
    """Return the decaylab schedule of ``kind`` (step, multistep or exponential)."""
    if kind == "step":
        return dl.StepDecay(initial_lr=GROUP_LRS[0], gamma=GAMMA, step_size=STEP_SIZE)
    if kind == "multistep":
        return dl.MultiStepDecay(initial_lr=GROUP_LRS[0], gamma=GAMMA, milestones=list(MILESTONES))
    return dl.ExponentialDecay(initial_lr=GROUP_LRS[0], half_life=HALF_LIFE)


def torch_scheduler(kind: str, optimizer: torch.optim.Optimizer) -> LRScheduler:
    """Return torch's scheduler that gives the same LRs as ``schedule_of(kind)``."""
    if kind == "step":
        return StepLR(optimizer, step_size=STEP_SIZE, gamma=GAMMA)
    if kind == "multistep":
        return MultiStepLR(optimizer, milestones=list(MILESTONES), gamma=GAMMA)
    return ExponentialLR(optimizer, gamma=GAMMA ** (1.0 / HALF_LIFE))


def floor_step(kind: str, optimizer: torch.optim.Optimizer) -> Callable[[int], None]:
    """Return ``write(t)``: the closed form at ``t`` written into each group by hand."""
    groups = optimizer.param_groups
    bases = [group["lr"] for group in groups]
    log_gamma = math.log(GAMMA)
    rate = -log_gamma / HALF_LIFE

    if kind == "step":
        def write(t: int) -> None:
            factor = math.exp(log_gamma * (t // STEP_SIZE))
            for group, base in zip(groups, bases):
                group["lr"] = base * factor
    elif kind == "multistep":
        def write(t: int) -> None:
            drops = sum(1 for milestone in MILESTONES if t >= milestone)
            factor = math.exp(log_gamma * drops)
            for group, base in zip(groups, bases):
                group["lr"] = base * factor
    else:
        def write(t: int) -> None:
            factor = math.exp(-rate * t)
            for group, base in zip(groups, bases):
                group["lr"] = base * factor
    return write


def per_call_ns(build: Callable[[], Callable[[], None]], calls: int) -> Callable[[], float]:
    """Return a contender: build fresh state (untimed), then time ``calls`` calls."""
    def run() -> float:
        step = build()

        def loop() -> None:
            for _ in range(calls):
                step()
        return time_ns(loop) / calls
    return run


def contenders_for(kind: str, calls: int) -> dict[str, Callable[[], float]]:
    """Return the timed contenders for one schedule kind."""
    def decaylab_build() -> Callable[[], None]:
        return ready(Scheduler(make_optimizer(), schedule_of(kind))).step

    def torch_build() -> Callable[[], None]:
        return ready(torch_scheduler(kind, make_optimizer())).step

    def floor_build() -> Callable[[], None]:
        write = floor_step(kind, make_optimizer())
        counter = iter(range(1, calls + 1))
        return lambda: write(next(counter))

    def empty_build() -> Callable[[], None]:
        return lambda: None

    return {
        "decaylab": per_call_ns(decaylab_build, calls),
        "torch": per_call_ns(torch_build, calls),
        "floor": per_call_ns(floor_build, calls),
        "empty_call": per_call_ns(empty_build, calls),
    }


def check_same_lrs(kind: str, steps: int) -> float:
    """Return the max relative LR difference, decaylab vs torch, over ``steps`` steps."""
    opt_a, opt_b = make_optimizer(), make_optimizer()
    ours = ready(Scheduler(opt_a, schedule_of(kind)))
    theirs = ready(torch_scheduler(kind, opt_b))
    worst = 0.0
    for _ in range(steps):
        ours.step()
        theirs.step()
        for a, b in zip(opt_a.param_groups, opt_b.param_groups):
            worst = max(worst, abs(a["lr"] - b["lr"]) / b["lr"])
    return worst


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the recorded results."""
    options = parse_options(__doc__.splitlines()[0], argv)
    recorder = Recorder("scheduler_step", COMMAND, options)
    calls = 200 if options.smoke else 20_000
    repeats = options.repeats or (2 if options.smoke else 25)
    recorder["settings"] = {"param_groups": len(GROUP_LRS), "calls_per_round": calls,
                            "rounds": repeats, "step_size": STEP_SIZE, "gamma": GAMMA,
                            "milestones": list(MILESTONES), "half_life": HALF_LIFE}

    kinds: dict[str, Any] = {}
    goals = []
    peers = {"step": "StepLR", "multistep": "MultiStepLR", "exponential": "ExponentialLR"}
    for kind, peer in peers.items():
        stats: dict[str, Stats] = interleaved(contenders_for(kind, calls), repeats, warmups=1)
        versus_torch = stats["decaylab"].median / stats["torch"].median
        kinds[kind] = {
            "peer": f"torch.optim.lr_scheduler.{peer}",
            "ns_per_call": stats,
            "ratio_to_torch": versus_torch,
            "ratio_to_floor": stats["decaylab"].median / stats["floor"].median,
            "max_relative_lr_difference": check_same_lrs(kind, min(calls, 5000)),
        }
        goals.append(goal(f"Scheduler.step() vs {peer}", versus_torch, GOAL_RATIO, "x torch"))
    recorder["results"] = kinds
    recorder["goals"] = goals
    recorder.finish()
    return recorder.data


if __name__ == "__main__":
    main()
