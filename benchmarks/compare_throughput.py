"""Wall time of ``decaylab compare`` against a bare PyTorch loop doing the same training.

The lab side calls ``decaylab.lab.compare`` (plan, run folder, every run
and ``summary.json``, but no report) into a fresh temporary folder per
round. The bare loop does the same training in plain PyTorch. It loads
digits through ``load_dataset`` (the same split) and builds the same
``Flatten-Linear-Tanh-Linear`` stack after the same ``torch.manual_seed``.
It shuffles with the same seeded generator and trains with SGD under
torch's ``StepLR`` (the step schedule) or ``ExponentialLR`` (the twins,
with the factors decaylab matched). Like the lab, it reads each update's
loss with ``.item()`` and evaluates train loss, test loss and test
accuracy after every epoch. It keeps results in memory and writes no files.

Three measurements, each interleaved over rounds:

- the default grid (4 schedules) with fewer seeds per round, lab with the
  sharpness probe on (every 10 updates), lab with it off, and the bare loop;
- scaling: 1, 2, 4 and 8 runs (one schedule, ``seeds`` = runs, probe on);
- once: the full default command ``decaylab compare`` (12 runs, report
  included, a new process) against the bare loop over the same 12 runs.

Run: ``.venv/bin/python -m benchmarks.compare_throughput``
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ExponentialLR, LRScheduler, StepLR

import decaylab as dl
from benchmarks._harness import Recorder, Stats, goal, interleaved, load_average, parse_options
from decaylab.lab.compare import compare, plan_comparison
from decaylab.lab.config import CompareConfig
from decaylab.lab.data import load_dataset

COMMAND = ".venv/bin/python -m benchmarks.compare_throughput"
GOAL_RATIO = 1.1
RUN_COUNTS = (1, 2, 4, 8)
CLI = Path(sys.executable).with_name("decaylab")


def torch_scheduler(schedule: dl.Schedule, optimizer: torch.optim.Optimizer) -> LRScheduler:
    """Return torch's scheduler with the LRs of a planned step or exponential schedule."""
    if isinstance(schedule, dl.StepDecay):
        return StepLR(optimizer, step_size=schedule.step_size, gamma=schedule.gamma)
    if isinstance(schedule, dl.ExponentialDecay):
        return ExponentialLR(optimizer, gamma=schedule.factor)
    raise TypeError(f"no torch scheduler for {schedule.to_spec()}")


def bare_model(inputs: int, hidden: int, classes: int) -> nn.Sequential:
    """Build the lab's default MLP in plain torch (same layers and order)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def bare_comparison(config: CompareConfig) -> list[float]:
    """Train every (schedule, seed) of ``config`` in a plain loop; return final test accuracies."""
    torch.set_num_threads(config.threads)
    data = load_dataset(config.dataset, split_seed=config.split_seed)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    inputs = math.prod(data.input_shape)
    plan = plan_comparison(config)
    loss_fn = nn.CrossEntropyLoss()
    accuracies = []
    for planned, seed in plan.runs():
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = bare_model(inputs, config.hidden[0], data.num_classes)
        optimizer = torch.optim.SGD(model.parameters(), lr=planned.schedule.initial_lr)
        scheduler = torch_scheduler(planned.schedule, optimizer)
        losses = []
        epoch_rows = []
        for _ in range(config.epochs):
            model.train()
            order = torch.randperm(len(y_train), generator=generator)
            for start in range(0, len(y_train), config.batch_size):
                indices = order[start : start + config.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_train[indices]), y_train[indices])
                losses.append(loss.item())
                loss.backward()
                optimizer.step()
                scheduler.step()
            model.eval()
            with torch.no_grad():
                train_loss = loss_fn(model(x_train), y_train).item()
                logits = model(x_test)
                test_loss = loss_fn(logits, y_test).item()
                accuracy = (logits.argmax(dim=1) == y_test).float().mean().item()
            epoch_rows.append((train_loss, test_loss, accuracy))
        accuracies.append(epoch_rows[-1][2])
    return accuracies


def lab_comparison(config: CompareConfig) -> float:
    """Run ``compare`` into a fresh temporary folder; return its wall time in seconds."""
    with tempfile.TemporaryDirectory(prefix="decaylab-bench-") as folder:
        start = time.perf_counter()
        compare(config, Path(folder) / "run", progress=False)
        return time.perf_counter() - start


def timed_bare(config: CompareConfig) -> float:
    """Return the wall time in seconds of :func:`bare_comparison`."""
    start = time.perf_counter()
    bare_comparison(config)
    return time.perf_counter() - start


def full_default_once(threads: int, smoke: bool) -> dict[str, Any]:
    """Time the default ``decaylab compare`` command once, and the bare loop over its runs."""
    config = CompareConfig(threads=threads)
    arguments = ["--threads", str(threads)]
    if smoke:
        config = dataclasses.replace(config, epochs=4, seeds=1, sharpness_examples=100, report=False)
        arguments += ["--epochs", "4", "--seeds", "1", "--sharpness-examples", "100", "--report", "off"]
    with tempfile.TemporaryDirectory(prefix="decaylab-bench-") as folder:
        command = [str(CLI), "compare", "--out", str(Path(folder) / "run"), *arguments]
        load_before = load_average()
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        cli_seconds = time.perf_counter() - start
    # The bare loop also runs as a new process, so both pay Python and torch start-up.
    script = ("from benchmarks.compare_throughput import bare_comparison; "
              "from decaylab.lab.config import CompareConfig; "
              f"bare_comparison(CompareConfig(threads={threads}, epochs={config.epochs}, "
              f"seeds={config.seeds}))")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parent.parent)
    bare_seconds = time.perf_counter() - start
    return {
        "command": " ".join(["decaylab", *command[1:3], "DIR", *arguments]),
        "runs": config.seeds * 4,
        "cli_s": cli_seconds,
        "bare_process_s": bare_seconds,
        "ratio": cli_seconds / bare_seconds,
        "load_average": [load_before, load_average()],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the recorded results."""
    options = parse_options(__doc__.splitlines()[0], argv)
    recorder = Recorder("compare_throughput", COMMAND, options)
    repeats = options.repeats or (1 if options.smoke else 5)
    epochs = 4 if options.smoke else CompareConfig().epochs
    grid = CompareConfig(epochs=epochs, seeds=1, threads=options.threads)
    if options.smoke:
        grid = dataclasses.replace(grid, sharpness_examples=100)
    run_counts = RUN_COUNTS[:2] if options.smoke else RUN_COUNTS
    recorder["settings"] = {"grid": {"epochs": epochs, "seeds": 1, "schedules": 4,
                                     "sharpness_every": grid.sharpness_every},
                            "rounds": repeats, "threads": options.threads}

    contenders: dict[str, Callable[[], float]] = {
        "lab, probe every 10": lambda: lab_comparison(grid),
        "lab, probe off": lambda: lab_comparison(dataclasses.replace(grid, sharpness_every=0)),
        "bare loop": lambda: timed_bare(grid),
    }
    grid_stats: dict[str, Stats] = interleaved(contenders, repeats, warmups=0)
    bare = grid_stats["bare loop"].median
    grid_rows = {label: {"s": value, "ratio_to_bare": value.median / bare}
                 for label, value in grid_stats.items()}

    scaling: dict[str, Callable[[], float]] = {}
    for runs in run_counts:
        config = dataclasses.replace(grid, seeds=runs, match=())
        scaling[f"lab, {runs} runs"] = (lambda c: lambda: lab_comparison(c))(config)
        scaling[f"bare, {runs} runs"] = (lambda c: lambda: timed_bare(c))(config)
    scaling_stats = interleaved(scaling, max(1, repeats - 2), warmups=0)
    scaling_rows = {
        str(runs): {
            "lab_s": scaling_stats[f"lab, {runs} runs"],
            "bare_s": scaling_stats[f"bare, {runs} runs"],
            "lab_s_per_run": scaling_stats[f"lab, {runs} runs"].median / runs,
        }
        for runs in run_counts
    }

    full = full_default_once(options.threads, options.smoke)
    recorder["results"] = {"grid": grid_rows, "scaling": scaling_rows, "full_default": full}
    probe_on, probe_off = grid_stats["lab, probe every 10"].median, grid_stats["lab, probe off"].median
    recorder["goals"] = [
        goal("compare / bare loop, probe on", grid_rows["lab, probe every 10"]["ratio_to_bare"],
             GOAL_RATIO, "x bare",
             reason=f"the sharpness probe alone adds {probe_on - probe_off:.2f} s, "
                    f"{(probe_on - probe_off) / bare * 100:.0f} % of the bare loop's time"),
        goal("compare / bare loop, probe off", grid_rows["lab, probe off"]["ratio_to_bare"],
             GOAL_RATIO, "x bare",
             reason="beyond the bare loop's work the lab runs StepMonitor on every update, "
                    "writes one steps.csv row per update and one epochs.csv row per epoch, and "
                    "creates and commits a run folder per run"),
    ]
    recorder.finish()
    return recorder.data


if __name__ == "__main__":
    main()
