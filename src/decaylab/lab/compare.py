"""The comparison grid: every schedule times every seed, resume and summary.

:func:`plan_comparison` does everything that can fail on bad input (options,
data, schedules, model) before any file is written. :func:`prepare_out_dir`
creates or reopens the run folder, and :func:`run_comparison` trains the
missing runs and writes ``summary.json``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import decaylab as dl
from decaylab.lab.config import CompareConfig, ConfigError, config_differences, config_to_toml
from decaylab.lab.data import Dataset, load_dataset
from decaylab.lab.models import build_model, count_parameters
from decaylab.lab.store import (
    commit_run_folder,
    finished_run_ids,
    new_run_folder,
    remove_partial_runs,
    write_json_atomic,
    write_text_atomic,
)
from decaylab.lab.train import steps_per_epoch, train_run

__all__ = [
    "ComparisonPlan",
    "PlannedSchedule",
    "build_summary",
    "compare",
    "plan_comparison",
    "plan_schedules",
    "prepare_out_dir",
    "run_comparison",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"
METRICS = (
    "final_test_accuracy", "final_test_loss", "final_train_loss", "final_sharpness",
    "max_sharpness_ratio",
)
_TWINS = {
    "half-life": ("exp-half-life", "half-life twin"),
    "final-lr": ("exp-final-lr", "final-lr twin"),
    "area": ("exp-area", "area twin"),
}


@dataclass(frozen=True)
class PlannedSchedule:
    """A schedule of the comparison, in step time, with its name and role."""

    name: str
    role: str
    schedule: dl.Schedule


@dataclass(frozen=True)
class ComparisonPlan:
    """Everything a comparison needs, validated: config, data and schedules."""

    config: CompareConfig
    data: Dataset
    steps_per_epoch: int
    horizon: int
    num_parameters: int
    schedules: tuple[PlannedSchedule, ...]

    def runs(self) -> Iterator[tuple[PlannedSchedule, int]]:
        """Yield ``(schedule, seed)`` for every run, schedule by schedule."""
        for planned in self.schedules:
            for seed in range(self.config.seeds):
                yield planned, seed


def plan_comparison(config: CompareConfig) -> ComparisonPlan:
    """Load the data and build the schedules and a model; write nothing.

    Raises ``ValueError`` (or ``TypeError``) for any bad input, so a caller
    can reject it before creating an output folder.
    """
    data = load_dataset(
        config.dataset,
        data_dir=config.data_dir or None,
        test_fraction=config.test_fraction,
        split_seed=config.split_seed,
        label_column=config.label_column,
        train_examples=config.train_examples,
    )
    train_size = len(data.y_train)
    if config.batch_size > train_size:
        raise ConfigError(
            f"batch_size {config.batch_size} exceeds the {train_size} training examples of "
            f"{config.dataset!r}; use --batch-size {train_size} or less"
        )
    model = build_model(
        config.model, data.input_shape, data.num_classes, hidden=config.hidden, is_image=data.is_image
    )
    if config.tensorboard:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "tensorboard is on but the tensorboard package is missing; "
                "pip install 'decaylab[tensorboard]' or drop --tensorboard"
            ) from None

    per_epoch = steps_per_epoch(train_size, config.batch_size)
    horizon = per_epoch * config.epochs
    schedules = plan_schedules(config, per_epoch, horizon)
    if config.wd_policy == "constant":
        _check_positive_lr(schedules, horizon)
    return ComparisonPlan(config, data, per_epoch, horizon, count_parameters(model), schedules)


def _check_positive_lr(schedules: tuple[PlannedSchedule, ...], horizon: int) -> None:
    """Reject a schedule that reaches LR 0, where weight decay cannot follow ``1 / lr``."""
    times = np.arange(horizon, dtype=np.float64)
    for planned in schedules:
        zeros = np.flatnonzero(planned.schedule(times) <= 0.0)
        if zeros.size:
            raise ConfigError(
                f"wd_policy 'constant' scales weight decay by 1 / lr, but schedule "
                f"{planned.name!r} has lr 0 at step {int(zeros[0])}; start the warm-up above 0 "
                "(e.g. --schedule 'warmup(step(...), steps=N, start_lr=0.001)' instead of "
                "--warmup) or use --wd-policy follow"
            )


def plan_schedules(
    config: CompareConfig, steps_per_epoch: int, horizon: int
) -> tuple[PlannedSchedule, ...]:
    """Build the schedules of a comparison, all counting optimizer updates.

    Without ``config.schedule`` the base is ``StepDecay(lr, gamma, T)`` with
    ``T = decay_steps // (drops + 1) + 1``, where ``decay_steps`` is the
    horizon less the warm-up: exactly ``drops`` drops happen by the horizon.
    Twins match the base (or the first user spec) over ``decay_steps``;
    ``warmup`` then wraps every schedule.

    >>> config = CompareConfig(lr=0.4, gamma=0.5, drops=2)
    >>> [(p.name, p.role) for p in plan_schedules(config, 10, 300)][:2]
    [('step', 'base'), ('exp-half-life', 'half-life twin')]
    """
    decay_steps = horizon - config.warmup
    if decay_steps < 1:
        raise ConfigError(
            f"warmup {config.warmup} steps leaves no updates of the {horizon}-step run; "
            f"use --warmup {horizon - 1} or less"
        )

    if config.schedule:
        planned = [
            PlannedSchedule(f"s{index}", "user", _parse_spec(text, config, steps_per_epoch))
            for index, text in enumerate(config.schedule, start=1)
        ]
    else:
        step_size = _step_size(decay_steps, config.drops)
        if config.drops * step_size >= decay_steps:
            raise ConfigError(
                f"drops {config.drops} do not fit in a run of {decay_steps} updates after the "
                f"warm-up, because the step schedule then drops every {step_size} updates "
                f"(updates // (drops + 1) + 1). Every run of {_min_fitting_steps(config.drops)} "
                f"or more updates fits {config.drops} drops; use fewer --drops, more --epochs "
                "or a smaller --batch-size"
            )
        base = dl.StepDecay(initial_lr=config.lr, gamma=config.gamma, step_size=step_size)
        planned = [PlannedSchedule("step", "base", base)]

    reference = planned[0].schedule
    if config.match and not isinstance(reference, (dl.StepDecay, dl.MultiStepDecay)):
        raise ConfigError(
            f"match {','.join(config.match)} needs a step schedule to match; the first "
            f"schedule is {reference.to_spec()}; give a step(...) spec first or use --match none"
        )
    for method in config.match:
        name, role = _TWINS[method]
        planned.append(PlannedSchedule(name, role, _match(method, reference, decay_steps)))

    if config.warmup:
        planned = [
            PlannedSchedule(p.name, p.role, dl.Warmup(p.schedule, steps=config.warmup))
            for p in planned
        ]
    return tuple(planned)


def _step_size(decay_steps: int, drops: int) -> int:
    # NOTE: the + 1 rejects some short runs where evenly spaced drops would
    # fit, such as 2 drops in 6 updates (at t = 2 and 4). Dropping it would
    # change the step size, and so the results, of every default run.
    return decay_steps // (drops + 1) + 1


def _min_fitting_steps(drops: int) -> int:
    # Every run of n >= (drops + 1) ** 2 updates fits: q = n // (drops + 1)
    # is then >= drops + 1, so drops * (q + 1) < (drops + 1) * q <= n.
    # Shorter runs may fit or not, so the bound is one past the longest misfit.
    longest_misfit = max(
        (n for n in range(1, (drops + 1) ** 2) if drops * _step_size(n, drops) >= n), default=0
    )
    return longest_misfit + 1


def _parse_spec(text: str, config: CompareConfig, steps_per_epoch: int) -> dl.Schedule:
    schedule = dl.parse_schedule(text)
    if config.schedule_unit == "epoch":
        schedule = dl.epochs_to_steps(schedule, steps_per_epoch)
    return schedule


def _match(method: str, step: Any, horizon: int) -> dl.Schedule:
    if method == "half-life":
        return dl.match_half_life(step)
    if method == "final-lr":
        # The run's last update is t = horizon - 1, so that LR is the final one.
        return dl.match_final_lr(step, max(1, horizon - 1))
    return dl.match_area(step, horizon)


def prepare_out_dir(out_dir: Path, config: CompareConfig, *, resume: bool) -> None:
    """Create ``out_dir`` with ``config.toml``, or check it for ``resume``.

    Raises ``ValueError`` without touching the folder when it is not empty
    and ``resume`` is false, when ``resume`` finds a ``config.toml`` that
    differs in a key that changes results, or when the folder cannot be
    created or written.
    """
    _check_writable(out_dir)
    stored_path = out_dir / CONFIG_FILE
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not resume:
            raise ConfigError(
                f"output folder {out_dir} exists and is not empty; pass --resume to continue "
                "it or choose another --out"
            )
        if not stored_path.is_file():
            raise ConfigError(
                f"cannot resume {out_dir}: it has no {CONFIG_FILE}, so it is not a "
                "decaylab compare folder"
            )
        from decaylab.lab.config import read_config_file

        changed = config_differences(read_config_file(stored_path), config)
        if changed:
            raise ConfigError(
                f"cannot resume {out_dir}: option {changed[0]!r} differs from its "
                f"{CONFIG_FILE} (all differing: {', '.join(changed)}); leave those options "
                "out to use the stored values, or choose another --out"
            )
        return

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create output folder {out_dir}: {error}") from None
    write_text_atomic(stored_path, config_to_toml(config))


def _check_writable(out_dir: Path) -> None:
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot create output folder {out_dir}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {out_dir} is not writable: no write permission on {existing}")


def run_comparison(
    plan: ComparisonPlan, out_dir: Path, *, progress: bool | None = None
) -> Path:
    """Train every run missing from ``out_dir/runs`` and write ``summary.json``.

    Finished runs (folders with ``run.json``) are kept untouched; partial
    folders of an interrupted run are deleted and trained again. A run that
    raises, ``KeyboardInterrupt`` included, has its partial folder deleted
    before the exception propagates. Returns the summary path. ``progress`` shows tqdm bars on stderr (None: only on a
    terminal).
    """
    from tqdm.auto import tqdm

    runs_dir = out_dir / "runs"
    runs_dir.mkdir(exist_ok=True)
    remove_partial_runs(runs_dir)
    finished = finished_run_ids(runs_dir)
    all_runs = list(plan.runs())
    missing = [(p, seed) for p, seed in all_runs if _run_id(p, seed) not in finished]
    logger.info(
        "comparison in %s: %d runs, %d finished before, %d to train",
        out_dir, len(all_runs), len(all_runs) - len(missing), len(missing),
    )

    started = time.perf_counter()
    disable = None if progress is None else not progress
    with tqdm(total=len(all_runs), initial=len(all_runs) - len(missing), desc="runs",
              unit="run", disable=disable, position=0) as overall:
        for planned, seed in missing:
            run_id = _run_id(planned, seed)
            partial = new_run_folder(runs_dir, run_id)
            try:
                with tqdm(total=plan.horizon, desc=run_id, unit="step", leave=False,
                          disable=disable, position=1, mininterval=0.5) as bar:
                    train_run(plan.config, plan.data, planned.schedule, schedule_name=planned.name,
                              seed=seed, run_dir=partial, progress=bar.update)
                commit_run_folder(partial, run_id)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            overall.update(1)
    logger.info("trained %d runs in %.1f s", len(missing), time.perf_counter() - started)

    summary = build_summary(plan, _read_results(runs_dir, all_runs))
    path = out_dir / SUMMARY_FILE
    write_json_atomic(path, summary)
    return path


def _run_id(planned: PlannedSchedule, seed: int) -> str:
    return f"{planned.name}-seed{seed}"


def _read_results(
    runs_dir: Path, runs: list[tuple[PlannedSchedule, int]]
) -> dict[str, dict[str, Any]]:
    import json

    results = {}
    for planned, seed in runs:
        run_id = _run_id(planned, seed)
        results[run_id] = json.loads((runs_dir / run_id / "run.json").read_text(encoding="utf-8"))
    return results


def build_summary(plan: ComparisonPlan, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Build ``summary.json``: the setup, then per schedule its runs and metrics.

    ``results`` maps run ids to their ``run.json`` contents. Each metric has
    the mean and sample standard deviation (ddof=1; 0.0 for one value) of
    the finite values; diverged runs appear as NaN in ``values``.
    """
    import torch

    config = plan.config
    schedules = []
    for planned in plan.schedules:
        runs = [results[_run_id(planned, seed)] for seed in range(config.seeds)]
        schedules.append({
            "name": planned.name,
            "role": planned.role,
            "spec": planned.schedule.to_spec(),
            "schedule": planned.schedule.to_dict(),
            "unit": "step",
            "integrated_lr": dl.integrated_lr(planned.schedule, plan.horizon),
            "diverged": sum(run["status"] == "diverged" for run in runs),
            "runs": [_run_entry(run) for run in runs],
            "metrics": {name: _metric([_finished_value(run, name) for run in runs])
                        for name in METRICS},
        })
    return {
        "decaylab_version": _version(),
        "torch_version": torch.__version__,
        "torch_threads": config.threads,
        "dataset": config.dataset,
        "model": config.model,
        "optimizer": config.optimizer,
        "epochs": config.epochs,
        "seeds": config.seeds,
        "batch_size": config.batch_size,
        "steps_per_epoch": plan.steps_per_epoch,
        "horizon": plan.horizon,
        "sharpness_every": config.sharpness_every,
        "momentum": config.momentum,
        "train_examples": len(plan.data.y_train),
        "test_examples": len(plan.data.y_test),
        "num_classes": plan.data.num_classes,
        "num_parameters": plan.num_parameters,
        "schedules": schedules,
    }


def _run_entry(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("run_id", "seed", "status", "diverged_at_step", "wall_time_s", *METRICS, "final_ceiling")
    return {key: run[key] for key in keys}


def _finished_value(run: dict[str, Any], name: str) -> float:
    return float(run[name]) if run["status"] == "finished" else math.nan


def _metric(values: list[float]) -> dict[str, Any]:
    finite = np.array([value for value in values if math.isfinite(value)], dtype=np.float64)
    mean = float(finite.mean()) if finite.size else math.nan
    if finite.size > 1:
        std = float(finite.std(ddof=1))
    else:
        std = 0.0 if finite.size == 1 else math.nan
    return {"mean": mean, "std": std, "values": [float(value) for value in values]}


def _version() -> str:
    try:
        return metadata.version("decaylab")
    except metadata.PackageNotFoundError:
        return getattr(dl, "__version__", "unknown")


def compare(
    config: CompareConfig, out_dir: Path, *, resume: bool = False, progress: bool | None = None
) -> Path:
    """Plan, prepare ``out_dir`` and run a comparison; return the summary path.

    The report is not written here; call ``decaylab.report.write_report``.
    """
    plan = plan_comparison(config)
    prepare_out_dir(out_dir, config, resume=resume)
    return run_comparison(plan, out_dir, progress=progress)
