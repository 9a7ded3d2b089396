"""Scheduler: a torch ``LRScheduler`` that writes a decaylab Schedule into param groups.

The step count ``t`` is the number of optimizer updates already done, and
every LR is the schedule's closed form at ``t``. Nothing multiplies the
previous LR. Call ``scheduler.step()`` once after each ``optimizer.step()``.
Under gradient accumulation that is once per optimizer update, not once
per micro-batch, so ``t`` stays the number of updates.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from decaylab.schedules.base import Schedule
from decaylab.torch._scheduler_checks import (
    COUPLED_WEIGHT_DECAY_WARNING,
    CoupledWeightDecayWarning,
    check_base_lr,
    check_count,
    check_policy,
    check_schedules,
    check_state,
    check_unit,
    load_schedules,
    warn_if_coupled,
)

__all__ = [
    "COUPLED_WEIGHT_DECAY_WARNING",
    "CoupledWeightDecayWarning",
    "SCHEDULER_BEFORE_OPTIMIZER_WARNING",
    "Scheduler",
]

logger = logging.getLogger(__name__)

Unit = Literal["step", "epoch"]
WeightDecayPolicy = Literal["follow", "constant"]
ScheduleArg = Union[Schedule, Sequence[Schedule]]

SCHEDULER_BEFORE_OPTIMIZER_WARNING = (
    "Scheduler.step() was called before optimizer.step(), so the first update skips "
    "lr(0). Call optimizer.step() first, then scheduler.step()."
)


class Scheduler(LRScheduler):
    """Write ``schedule(t)`` into an optimizer's param groups, ``t`` = updates done.

    One schedule scales each group's own initial LR: group ``i`` gets
    ``initial_lr_i * schedule(t) / schedule.initial_lr``, so a group whose
    LR equals ``schedule.initial_lr`` gets ``schedule(t)`` exactly. A list
    of schedules, one per group, sets each group's LR to its schedule's
    values (the optimizer's own LRs are then unused).

    ``unit="epoch"`` reads the schedule in epochs while the scheduler is
    still stepped once per update: it is evaluated at ``t /
    steps_per_epoch``, so step decay drops exactly at epoch boundaries and
    exponential decay is smooth within an epoch.

    ``weight_decay="follow"`` leaves each group's ``weight_decay`` alone,
    so the decoupled shrinkage ``lr * wd`` falls with the LR (PyTorch's
    AdamW). ``"constant"`` sets ``wd_t = wd_0 * lr_0 / lr_t`` per group,
    which keeps ``lr * wd`` at its initial value. It raises
    ``ValueError`` at any step where a group's LR is exactly 0.

    Each group stores its base LR as ``initial_lr`` (and, under
    ``"constant"``, its base weight decay as ``initial_weight_decay``), as
    torch's schedulers do. An existing ``initial_lr`` is kept, so an
    optimizer restored from a checkpoint keeps its base LRs.

    ``last_step`` resumes at a known number of updates: the LR written at
    construction is ``schedule(last_step)``, and the default ``None``
    starts at ``t = 0``. Unlike torch's ``last_epoch`` argument, no extra
    step is taken. When ``last_step > 0`` every group must already have
    ``initial_lr`` (load the optimizer's state dict first), because its
    current LR is a decayed one.

    A param group added after construction is scheduled from its own LR at
    the next ``step()`` when one schedule is shared. With one schedule per
    group it raises ``ValueError``.

    >>> import torch, decaylab as dl
    >>> w = torch.zeros(2, requires_grad=True)
    >>> opt = torch.optim.SGD([w], lr=0.1)
    >>> sched = Scheduler(opt, dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=2))
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"])
    ...     opt.step()
    ...     sched.step()
    >>> lrs
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleArg,
        unit: Unit = "step",
        steps_per_epoch: int | None = None,
        weight_decay: WeightDecayPolicy = "follow",
        last_step: int | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Scheduler: optimizer must be a torch.optim.Optimizer; got "
                f"{type(optimizer).__name__}"
            )
        groups = optimizer.param_groups
        self._shared, self._schedules = check_schedules(schedule, len(groups))
        self.unit, self.steps_per_epoch = check_unit(unit, steps_per_epoch)
        self._divisor = self.steps_per_epoch or 1
        self.weight_decay = check_policy(weight_decay)
        self._constant_wd = self.weight_decay == "constant"
        start = 0 if last_step is None else check_count("last_step", last_step)

        self._ratios: list[float] = []
        self._base_wds: list[float] = []
        self._tensor_lrs = False
        for index, group in enumerate(groups):
            self._bind_group(index, group, resuming=start > 0)
        if self._constant_wd:
            warn_if_coupled(optimizer)

        # The base class stores base_lrs, wraps optimizer.step to detect the
        # call order and calls step() once, which moves last_epoch to start.
        super().__init__(optimizer, last_epoch=start - 1)

    # -- the hot path -----------------------------------------------------

    def step(self, epoch: int | None = None) -> None:
        """Advance one update and write the new LRs.

        ``step(n)`` sets the count to ``n`` instead, like :meth:`set_step`.
        """
        if self._step_count == 1:
            self._warn_on_call_order()
        self._step_count += 1
        if epoch is None:
            self._apply(self.last_epoch + 1)
        else:
            self._apply(check_count("epoch", epoch))

    def _apply(self, step: int) -> None:
        groups = self.optimizer.param_groups
        ratios = self._ratios
        if len(groups) != len(ratios):
            self._bind_new_groups(groups)
        if self._constant_wd or self._tensor_lrs:
            self._apply_general(groups, self._lrs_at(step), step)
            return

        # The formula of _lrs_at, fused with the writes: this loop is the per-step cost.
        t = step / self._divisor
        lrs = []
        shared = self._shared
        if shared is not None:
            value = shared._lr_scalar(t)
            for group, ratio in zip(groups, ratios):
                lr = value * ratio
                group["lr"] = lr
                lrs.append(lr)
        else:
            for group, schedule in zip(groups, self._schedules):
                lr = schedule._lr_scalar(t)
                group["lr"] = lr
                lrs.append(lr)
        self.last_epoch = step
        self._last_lr = lrs  # type: ignore[assignment]

    def _apply_general(self, groups: list[dict[str, Any]], lrs: list[float], step: int) -> None:
        """Write LRs into tensor-valued groups and weight decay under 'constant'."""
        if self._constant_wd:
            self._write_weight_decay(groups, lrs, step)
        for group, lr in zip(groups, lrs):
            _write_lr(group, lr)
        self.last_epoch = step
        self._last_lr = lrs  # type: ignore[assignment]

    # -- reading and random access ------------------------------------------

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """Return the LRs written by the last step, one float per group (a copy)."""
        return [float(lr) for lr in self._last_lr]

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Return the LRs for the current step count; changes nothing."""
        return self.lr_at(self.last_epoch)

    def lr_at(self, step: int) -> list[float]:
        """Return the LRs the groups get after ``step`` updates; changes nothing."""
        return self._lrs_at(check_count("step", step))

    def _lrs_at(self, step: int) -> list[float]:
        t = step / self._divisor
        if self._shared is not None:
            value = self._shared._lr_scalar(t)
            return [value * ratio for ratio in self._ratios]
        return [schedule._lr_scalar(t) for schedule in self._schedules]

    def set_step(self, step: int) -> None:
        """Set the number of updates done to ``step`` and write its LRs (idempotent).

        Resuming from a known global step is ``set_step(epoch *
        steps_per_epoch)``, for example.
        """
        self._apply(check_count("step", step))

    # -- checkpoints ------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return the step count, schedule definitions, unit, policy and base values."""
        return {
            "step": self.last_epoch,
            "schedules": [s.to_dict() for s in self._defined_schedules()],
            "per_group": self._shared is None,
            "unit": self.unit,
            "steps_per_epoch": self.steps_per_epoch,
            "weight_decay": self.weight_decay,
            "base_lrs": self._base_lrs(),
            "base_weight_decays": list(self._base_wds) if self._base_wds else None,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the step count and rewrite every group's LR (and wd) from it.

        Every setting in ``state_dict`` must equal this scheduler's own; a
        difference raises ``ValueError`` naming both values. To continue a
        run under new settings, construct the scheduler with them and call
        ``set_step(state_dict["step"])`` instead.
        """
        step = check_state(state_dict)
        groups = self.optimizer.param_groups
        if len(groups) != len(self._ratios):
            self._bind_new_groups(groups)
        saved = load_schedules(state_dict["schedules"])
        self._compare("schedules", saved, self._defined_schedules())
        self._compare("per_group", state_dict["per_group"], self._shared is None)
        self._compare("unit", state_dict["unit"], self.unit)
        self._compare("steps_per_epoch", state_dict["steps_per_epoch"], self.steps_per_epoch)
        self._compare("weight_decay", state_dict["weight_decay"], self.weight_decay)
        self._compare("base_lrs", list(state_dict["base_lrs"]), self._base_lrs())
        saved_wds = state_dict["base_weight_decays"]
        self._compare("base_weight_decays", saved_wds, list(self._base_wds) or None)
        self.set_step(step)

    def _compare(self, key: str, saved: Any, current: Any) -> None:
        if saved != current:
            raise ValueError(
                f"Scheduler.load_state_dict: state_dict[{key!r}] is {saved!r} but this "
                f"Scheduler has {current!r}. Construct the Scheduler (and optimizer) with "
                "the saved settings, or keep the new ones and call "
                "set_step(state_dict['step']) instead of load_state_dict()"
            )

    # -- param groups -------------------------------------------------------

    def _defined_schedules(self) -> list[Schedule]:
        return [self._shared] if self._shared is not None else list(self._schedules)

    def _base_lrs(self) -> list[float]:
        return [float(group["initial_lr"]) for group in self.optimizer.param_groups]

    def _bind_group(self, index: int, group: dict[str, Any], resuming: bool) -> None:
        """Record a group's base LR (and base wd) and its scale factor."""
        if isinstance(group["lr"], torch.Tensor):
            self._tensor_lrs = True
        if self._shared is None:
            base = self._schedules[index].initial_lr
            group["initial_lr"] = base
            self._ratios.append(1.0)
        else:
            if resuming and "initial_lr" not in group:
                raise ValueError(
                    f"Scheduler: param group {index} has no 'initial_lr', but last_step > 0 "
                    "resumes a run whose current LR is already decayed. Load the optimizer's "
                    "state dict (it stores initial_lr) before constructing the Scheduler"
                )
            if "initial_lr" not in group:
                lr = group["lr"]
                group["initial_lr"] = lr.clone() if isinstance(lr, torch.Tensor) else lr
            base = check_base_lr(index, group["initial_lr"])
            self._ratios.append(base / self._shared.initial_lr)
        if self._constant_wd:
            self._base_wds.append(float(group.setdefault("initial_weight_decay",
                                                         group["weight_decay"])))

    def _bind_new_groups(self, groups: list[dict[str, Any]]) -> None:
        known = len(self._ratios)
        if self._shared is None or len(groups) < known:
            raise ValueError(
                f"Scheduler: the optimizer now has {len(groups)} param groups but the "
                f"Scheduler was built for {known}. With one schedule per group, or after "
                "removing a group, build a new Scheduler for the new groups"
            )
        for index in range(known, len(groups)):
            self._bind_group(index, groups[index], resuming=False)
            self.base_lrs.append(groups[index]["initial_lr"])
            logger.info("Scheduler: scheduling param group %d added after construction", index)

    def _write_weight_decay(self, groups: list[dict[str, Any]], lrs: list[float],
                            step: int) -> None:
        """Set ``wd_t = wd_0 * lr_0 / lr_t`` in each group, so ``lr_t * wd_t`` stays fixed.

        ``lr_0 / lr_t`` is taken from the schedule, ``initial_lr / schedule(t)``,
        so groups that share a schedule and a ``wd_0`` get the same float.
        """
        for index, lr in enumerate(lrs):
            if lr == 0.0:
                raise ValueError(
                    f"Scheduler: weight_decay='constant' is undefined at step {step}, where "
                    f"param group {index} has lr 0. Give the schedule a min_lr > 0 (or a "
                    "warm-up start_lr > 0), or use weight_decay='follow'"
                )
        t = step / self._divisor
        if self._shared is not None:
            scale = self._shared.initial_lr / self._shared._lr_scalar(t)
            scales = [scale] * len(groups)
        else:
            scales = [sched.initial_lr / sched._lr_scalar(t) for sched in self._schedules]
        for index, (group, scale) in enumerate(zip(groups, scales)):
            group["weight_decay"] = self._base_wds[index] * scale

    def _warn_on_call_order(self) -> None:
        if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
            warnings.warn(
                "optimizer.step was replaced after the Scheduler was constructed, so the "
                "call order cannot be checked. Call optimizer.step() before scheduler.step()",
                UserWarning,
                stacklevel=3,
            )
        elif not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(SCHEDULER_BEFORE_OPTIMIZER_WARNING, UserWarning, stacklevel=3)


def _write_lr(group: dict[str, Any], lr: float) -> None:
    """Write ``lr`` in place when the group keeps its LR as a tensor (compiled optimizers)."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr
