"""Linear warm-up in front of any schedule."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from decaylab._validation import InvalidParameterError, InvalidParameterTypeError, Rule, integer, real
from decaylab.schedules.base import FloatArray, Schedule

__all__ = ["Warmup"]


class Warmup(Schedule):
    """A linear ramp from ``start_lr`` to ``schedule(0)``, then ``schedule(t - steps)``.

    ``lr(t) = start_lr + (schedule(0) - start_lr) * t / steps`` for
    ``t < steps``, and ``schedule(t - steps)`` from ``t == steps`` on, so
    the hand-over has no extra plateau. ``initial_lr`` is the wrapped
    schedule's (the peak that a Scheduler scales param groups by) and the
    floor ``min_lr`` applies after the ramp. ``steps=0`` is the wrapped
    schedule itself.

    Parameters: ``schedule`` a :class:`Schedule`, ``steps`` an integer >= 0,
    ``start_lr`` in [0, schedule(0)].

    >>> from decaylab import StepDecay
    >>> w = Warmup(StepDecay(initial_lr=0.1, gamma=0.5, step_size=30), steps=5)
    >>> w(0), w(4), w(5), w(35)
    (0.0, 0.08, 0.1, 0.05)
    """

    kind: ClassVar[str] = "warmup"
    nested: ClassVar[tuple[str, ...]] = ("schedule",)
    rules: ClassVar[dict[str, Rule]] = {"steps": integer(0), "start_lr": real(0.0)}
    example: ClassVar[dict[str, object]] = {"steps": 5, "start_lr": 0.0}
    defaults: ClassVar[dict[str, object]] = {"start_lr": 0.0}

    _peak: float

    def __init__(self, schedule: Schedule, steps: int, start_lr: float = 0.0) -> None:
        if not isinstance(schedule, Schedule):
            raise InvalidParameterTypeError(
                f"Warmup: schedule must be a decaylab Schedule; got {schedule!r} "
                f"of type {type(schedule).__name__}",
                "schedule",
            )
        params: dict[str, Any] = {"schedule": schedule, "steps": steps, "start_lr": start_lr}
        self._store(params)
        peak = schedule(0)
        if self._params["start_lr"] > peak:
            raise InvalidParameterError(
                f"Warmup: start_lr must not exceed the wrapped schedule's first LR "
                f"schedule(0)={peak!r}; got start_lr={start_lr!r}",
                "start_lr",
            )
        object.__setattr__(self, "_peak", peak)

    @property
    def schedule(self) -> Schedule:
        """The wrapped schedule, started at ``t == steps``."""
        return self._params["schedule"]  # type: ignore[no-any-return]

    @property
    def steps(self) -> int:
        """Length of the ramp in updates."""
        return int(self._params["steps"])

    @property
    def start_lr(self) -> float:
        """LR of the first update."""
        return float(self._params["start_lr"])

    @property
    def initial_lr(self) -> float:
        """The wrapped schedule's initial LR (the peak after the ramp)."""
        return self.schedule.initial_lr

    @property
    def min_lr(self) -> float:
        """The wrapped schedule's floor, applied after the ramp."""
        return self.schedule.min_lr

    def _lr_scalar(self, t: float) -> float:
        if t >= self.steps:
            return self.schedule._lr_scalar(t - self.steps)
        return self.start_lr + (self._peak - self.start_lr) * (t / self.steps)

    def _lr_array(self, t: FloatArray) -> FloatArray:
        after = self.schedule._lr_array(np.maximum(t - self.steps, 0.0))
        if self.steps == 0:
            return after
        ramp = self.start_lr + (self._peak - self.start_lr) * (t / self.steps)
        return np.where(t < self.steps, ramp, after)

    def _area(self, horizon: int) -> float:
        ramp_steps = min(horizon, self.steps)
        # sum_{t < n} (start + (peak - start) t / steps) for n = ramp_steps
        ramp = ramp_steps * self.start_lr
        if ramp_steps:
            slope = (self._peak - self.start_lr) / self.steps
            ramp += slope * ramp_steps * (ramp_steps - 1) / 2.0
        return ramp + self.schedule._area(max(0, horizon - self.steps))

    def _stretch(self, factor: int) -> "Warmup":
        return Warmup(self.schedule._stretch(factor), self.steps * factor, self.start_lr)
