"""Argument and state checks for :class:`decaylab.torch.Scheduler`.

Everything here runs at construction or when a state dict is loaded,
never inside ``Scheduler.step()``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim import Optimizer

from decaylab._validation import integer
from decaylab.schedules.base import Schedule, schedule_from_dict

UNITS = ("step", "epoch")
POLICIES = ("follow", "constant")
STATE_KEYS = ("step", "schedules", "per_group", "unit", "steps_per_epoch",
              "weight_decay", "base_lrs", "base_weight_decays")

# Optimizers that add weight_decay * w to the gradient before an adaptive
# preconditioner unless the group sets decoupled_weight_decay=True.
_ADAPTIVE_COUPLED = (
    torch.optim.Adam,
    torch.optim.Adagrad,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
)

COUPLED_WEIGHT_DECAY_WARNING = (
    "weight_decay='constant' holds lr * weight_decay fixed, but this optimizer adds "
    "weight_decay * w to the gradient before its adaptive preconditioner, so "
    "lr * weight_decay is not the per-update shrinkage. Use AdamW (or "
    "decoupled_weight_decay=True) or weight_decay='follow'."
)


class CoupledWeightDecayWarning(UserWarning):
    """``weight_decay='constant'`` used with L2 inside an adaptive preconditioner."""


def check_schedules(
    schedule: Any, n_groups: int
) -> tuple[Schedule | None, list[Schedule]]:
    if isinstance(schedule, Schedule):
        if schedule.initial_lr == 0.0:
            raise ValueError(
                f"Scheduler: the schedule's initial_lr is 0, so group LRs cannot be scaled by "
                f"schedule(t) / initial_lr; got {schedule!r}. Give it initial_lr > 0, or pass "
                "one schedule per param group to use the schedules' own values"
            )
        return schedule, [schedule] * n_groups
    if not isinstance(schedule, (list, tuple)):
        raise TypeError(
            "Scheduler: schedule must be a decaylab Schedule or a list of them, one per "
            f"param group; got {type(schedule).__name__}"
        )
    for index, item in enumerate(schedule):
        if not isinstance(item, Schedule):
            raise TypeError(
                f"Scheduler: schedule[{index}] must be a decaylab Schedule; got "
                f"{type(item).__name__}"
            )
    if len(schedule) != n_groups:
        raise ValueError(
            f"Scheduler: got {len(schedule)} schedules but the optimizer has {n_groups} "
            "param groups; pass one schedule per group, or a single schedule to scale "
            "every group's own LR"
        )
    return None, list(schedule)


def check_unit(unit: Any, steps_per_epoch: Any) -> tuple[str, int | None]:
    if unit not in UNITS:
        raise ValueError(f"Scheduler: unit must be one of {UNITS}; got {unit!r}")
    if unit == "step":
        if steps_per_epoch is not None:
            raise ValueError(
                f"Scheduler: steps_per_epoch={steps_per_epoch!r} is only used with "
                "unit='epoch'; drop it or pass unit='epoch'"
            )
        return unit, None
    if steps_per_epoch is None:
        raise ValueError(
            "Scheduler: unit='epoch' needs steps_per_epoch, the number of optimizer "
            "updates per epoch (an integer >= 1)"
        )
    return unit, int(integer(1).check("Scheduler", "steps_per_epoch", steps_per_epoch))


def check_policy(policy: Any) -> str:
    if policy not in POLICIES:
        raise ValueError(f"Scheduler: weight_decay must be one of {POLICIES}; got {policy!r}")
    return str(policy)


def check_count(name: str, value: Any) -> int:
    return int(integer(0).check("Scheduler", name, value))


def check_base_lr(index: int, base: Any) -> float:
    value = float(base)
    if not value >= 0.0 or value == float("inf"):
        raise ValueError(
            f"Scheduler: param group {index} has initial_lr {base!r}; it must be a finite "
            "number >= 0"
        )
    return value


def warn_if_coupled(optimizer: Optimizer) -> None:
    if not isinstance(optimizer, _ADAPTIVE_COUPLED):
        return
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0.0) > 0.0 and not group.get("decoupled_weight_decay"):
            warnings.warn(
                f"{COUPLED_WEIGHT_DECAY_WARNING} (optimizer: {type(optimizer).__name__})",
                CoupledWeightDecayWarning,
                stacklevel=3,
            )
            return


def check_state(state_dict: Any) -> int:
    """Return the saved step count after checking the state dict's shape."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"Scheduler.load_state_dict: expected a dict from Scheduler.state_dict(); got "
            f"{type(state_dict).__name__}"
        )
    missing = [key for key in STATE_KEYS if key not in state_dict]
    if missing:
        raise ValueError(
            f"Scheduler.load_state_dict: missing keys {missing}; expected a dict from "
            "decaylab's Scheduler.state_dict()"
        )
    step = state_dict["step"]
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(
            f"Scheduler.load_state_dict: state_dict['step'] must be an integer >= 0; got "
            f"{step!r}"
        )
    return int(step)


def load_schedules(saved: Any) -> list[Schedule]:
    if not isinstance(saved, (list, tuple)):
        raise ValueError(
            f"Scheduler.load_state_dict: state_dict['schedules'] must be a list of schedule "
            f"dicts; got {type(saved).__name__}"
        )
    schedules = []
    for index, data in enumerate(saved):
        try:
            schedules.append(schedule_from_dict(data))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Scheduler.load_state_dict: state_dict['schedules'][{index}] is not a valid "
                f"schedule: {error}"
            ) from error
    return schedules
