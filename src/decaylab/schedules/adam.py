"""Adam warm-up compensation: a schedule that cancels the transient in Adam's step size."""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np

from decaylab._validation import InvalidParameterError, InvalidParameterTypeError, Rule
from decaylab.couplings import (
    ADAM_PARAMETER_RULES,
    adam_update_rms,
    adam_update_rms_limit,
    settled_steps,
)
from decaylab.schedules.base import FloatArray, Schedule, check_times

__all__ = ["AdamCompensated"]

_TABLE_LIMIT = 1 << 20  # maximum number of stored factors; later steps evaluate the model


class AdamCompensated(Schedule):
    """A schedule scaled so that Adam's expected step size follows it.

    ``lr(t) = schedule(t) * r_inf / r_{floor(t) + 1}``, where ``r_k =
    adam_update_rms(k, beta1, beta2, bias_correction, snr)`` is the RMS of
    Adam's update per unit LR at Adam step ``k`` and ``r_inf`` its limit.
    Adam's expected step ``lr(t) * r_{t+1}`` is then ``schedule(t) * r_inf``
    at every update: the transient of Adam's moment estimates is cancelled.

    Time ``t`` counts updates already done, so update ``t`` is Adam step
    ``t + 1``. A fractional ``t`` uses the Adam step of the update in
    progress, ``floor(t) + 1``; ``t`` must count updates, not epochs.

    From ``t = settle_steps`` on, ``r_{t+1}`` equals ``r_inf`` to double
    precision and the value is ``schedule(t)`` itself. Before that the value
    follows ``r_inf / r_{t+1}``, which is not monotone in general: with bias
    correction and ``snr = 0`` it rises from ``r_inf`` (0.229 at the default
    betas) to 1; at ``snr = 0.5`` it overshoots 1 by 0.9 % near ``t = 38``.

    ``initial_lr`` is the wrapped schedule's. ``min_lr`` is the wrapped
    floor times the smallest factor ``r_inf / r_k``, a lower bound of every
    value.

    >>> from decaylab import StepDecay
    >>> s = AdamCompensated(StepDecay(initial_lr=0.1, gamma=0.5, step_size=30_000))
    >>> round(s(0), 5), round(s(9), 5), s.settle_steps, s(50_000)
    (0.02293, 0.06947, 41568, 0.05)
    >>> AdamCompensated(StepDecay(0.1, 0.5, 30), snr=math.inf)(0)
    0.1
    """

    kind: ClassVar[str] = "adam_compensated"
    nested: ClassVar[tuple[str, ...]] = ("schedule",)
    rules: ClassVar[dict[str, Rule]] = {
        name: ADAM_PARAMETER_RULES[name] for name in ("beta1", "beta2", "bias_correction", "snr")
    }
    example: ClassVar[dict[str, object]] = {
        "beta1": 0.9,
        "beta2": 0.999,
        "bias_correction": True,
        "snr": 0.0,
    }
    defaults: ClassVar[dict[str, object]] = dict(example)

    _model: dict[str, Any]
    _limit: float
    _factors: FloatArray
    _settle: int

    def __init__(
        self,
        schedule: Schedule,
        beta1: float = 0.9,
        beta2: float = 0.999,
        bias_correction: bool = True,
        snr: float = 0.0,
    ) -> None:
        if not isinstance(schedule, Schedule):
            raise InvalidParameterTypeError(
                f"AdamCompensated: schedule must be a decaylab Schedule; got {schedule!r} "
                f"of type {type(schedule).__name__}",
                "schedule",
            )
        params: dict[str, Any] = {
            "schedule": schedule,
            "beta1": beta1,
            "beta2": beta2,
            "bias_correction": bias_correction,
            "snr": snr,
        }
        checked = self._store(params)
        if checked["beta2"] == 0.0 and checked["beta1"] > 0.0 and math.isfinite(checked["snr"]):
            raise InvalidParameterError(
                "AdamCompensated: beta2=0 with beta1 > 0 gives Adam's update an infinite RMS "
                f"for random gradients, so there is nothing finite to compensate; got beta2=0.0, "
                f"beta1={checked['beta1']!r}, snr={checked['snr']!r}. Use beta2 > 0 or snr=inf",
                "beta2",
            )

        model = {name: checked[name] for name in ("beta1", "beta2", "bias_correction", "snr")}
        settle = settled_steps(checked["beta1"], checked["beta2"])
        stored = min(settle - 1, _TABLE_LIMIT)
        limit = adam_update_rms_limit(checked["beta1"], checked["beta2"], checked["snr"])
        factors = limit / adam_update_rms(np.arange(1, stored + 1), **model)
        factors.setflags(write=False)
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_limit", limit)
        object.__setattr__(self, "_factors", factors)
        object.__setattr__(self, "_settle", settle)

    @property
    def schedule(self) -> Schedule:
        """The schedule that Adam's effective step follows."""
        return self._params["schedule"]  # type: ignore[no-any-return]

    @property
    def settle_steps(self) -> int:
        """First ``t`` from which the value is ``schedule(t)`` itself (the transient is over)."""
        return int(self._settle) - 1

    @property
    def initial_lr(self) -> float:
        """The wrapped schedule's initial LR."""
        return self.schedule.initial_lr

    @property
    def min_lr(self) -> float:
        """The wrapped schedule's floor times the smallest compensation factor."""
        smallest = min(float(self._factors.min(initial=1.0)), 1.0)
        return self.schedule.min_lr * smallest

    def factor(self, t: float) -> float:
        """Return ``r_inf / r_{floor(t) + 1}``, the multiplier on ``schedule(t)``.

        >>> from decaylab import StepDecay
        >>> round(AdamCompensated(StepDecay(0.1, 0.5, 30)).factor(0), 4)
        0.2293
        """
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"AdamCompensated.factor: t must be a number; got {t!r}")
        return float(self._factors_at(check_times(np.array([t], dtype=np.float64)))[0])

    def _lr_scalar(self, t: float) -> float:
        value = self.schedule._lr_scalar(t)
        index = int(t)
        if index >= self.settle_steps:
            return value
        if index < self._factors.size:
            return value * float(self._factors[index])
        return value * float(self._factors_at(np.array([t]))[0])

    def _lr_array(self, t: FloatArray) -> FloatArray:
        return self.schedule._lr_array(t) * self._factors_at(t)

    def _factors_at(self, t: FloatArray) -> FloatArray:
        """Factors at checked times, from the table, the model past it, or 1 once settled."""
        index = np.floor(t)
        out = np.ones_like(t)
        stored = index < self._factors.size
        out[stored] = self._factors[index[stored].astype(np.int64)]
        modelled = ~stored & (index < self.settle_steps)
        if modelled.any():
            steps = index[modelled].astype(np.int64) + 1
            out[modelled] = self._limit / adam_update_rms(steps, **self._model)
        return out
