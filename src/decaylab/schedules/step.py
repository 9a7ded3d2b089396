"""Step decay: the LR is multiplied by ``gamma`` at fixed or listed steps."""

from __future__ import annotations

import bisect
import math
from typing import ClassVar, Sequence

import numpy as np

from decaylab._validation import Rule, increasing_integers, integer, real
from decaylab.schedules.base import FLOOR_BELOW_PEAK, FloatArray, Schedule

__all__ = ["StepDecay", "MultiStepDecay"]

_LR_RULE = real(0.0)
_MAX_LEVEL_TABLE = 1 << 16


class StepDecay(Schedule):
    """Step decay: ``lr(t) = max(min_lr, initial_lr * gamma ** floor(t / step_size))``.

    Values are computed as ``exp(k * ln(gamma))`` with ``k`` the number of
    drops, the same expression the exponential twins use, so a step
    schedule and its half-life twin agree bit for bit at every drop.

    ``t`` counts updates already done; the drop happens *at*
    ``t == k * step_size``, so the first ``step_size`` updates use
    ``initial_lr``. Past any horizon the LR keeps falling towards ``min_lr``.

    Parameters: ``initial_lr`` >= 0, ``gamma`` in (0, 1], ``step_size`` an
    integer >= 1, ``min_lr`` in [0, initial_lr].

    >>> s = StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    >>> s(29), s(30), s(60)
    (0.1, 0.05, 0.025)
    >>> s([0, 29.5, 30])
    array([0.1 , 0.1 , 0.05])
    """

    kind: ClassVar[str] = "step"
    rules: ClassVar[dict[str, Rule]] = {
        "initial_lr": _LR_RULE,
        "gamma": real(0.0, 1.0, low_open=True),
        "step_size": integer(1),
        "min_lr": _LR_RULE,
    }
    relations = (FLOOR_BELOW_PEAK,)
    example: ClassVar[dict[str, object]] = {
        "initial_lr": 0.1,
        "gamma": 0.5,
        "step_size": 30,
        "min_lr": 0.0,
    }
    defaults: ClassVar[dict[str, object]] = {"min_lr": 0.0}

    def __init__(
        self, initial_lr: float, gamma: float, step_size: int, min_lr: float = 0.0
    ) -> None:
        self._store(
            {"initial_lr": initial_lr, "gamma": gamma, "step_size": step_size, "min_lr": min_lr}
        )

    @property
    def gamma(self) -> float:
        """Multiplier applied at each drop."""
        return float(self._params["gamma"])

    @property
    def step_size(self) -> int:
        """Updates between drops."""
        return int(self._params["step_size"])

    def drops(self, horizon: int) -> list[int]:
        """Return the steps ``t < horizon`` at which the LR drops (``t = k * step_size``)."""
        return list(range(self.step_size, horizon, self.step_size))

    def _lr_scalar(self, t: float) -> float:
        drops = math.floor(t / self.step_size)
        return max(self.min_lr, self.initial_lr * math.exp(drops * math.log(self.gamma)))

    def _lr_array(self, t: FloatArray) -> FloatArray:
        drops = np.divide(t, float(self.step_size))
        np.floor(drops, out=drops)
        return _levels_at(self.initial_lr, self.gamma, self.min_lr, drops)

    def _area(self, horizon: int) -> float:
        full, remainder = divmod(horizon, self.step_size)
        levels = _plateau_sum(self.initial_lr, self.gamma, self.min_lr, full)
        return self.step_size * levels + remainder * self._lr_scalar(float(full * self.step_size))

    def _stretch(self, factor: int) -> StepDecay:
        return StepDecay(self.initial_lr, self.gamma, self.step_size * factor, self.min_lr)


class MultiStepDecay(Schedule):
    """Step decay at listed milestones.

    ``lr(t) = max(min_lr, initial_lr * gamma ** n(t))`` where ``n(t)`` counts
    the milestones ``<= t``: the drop happens *at* ``t == milestone``. After
    the last milestone the LR stays constant. With milestones ``T, 2T, ...,
    kT`` it equals ``StepDecay(step_size=T)`` for every ``t < (k + 1) T``.

    >>> m = MultiStepDecay(initial_lr=0.1, gamma=0.1, milestones=[30, 60, 80])
    >>> m(29), m(30), m(80), m(10**6)
    (0.1, 0.010000000000000002, 0.00010000000000000003, 0.00010000000000000003)
    """

    kind: ClassVar[str] = "multistep"
    rules: ClassVar[dict[str, Rule]] = {
        "initial_lr": _LR_RULE,
        "gamma": real(0.0, 1.0, low_open=True),
        "milestones": increasing_integers(0),
        "min_lr": _LR_RULE,
    }
    relations = (FLOOR_BELOW_PEAK,)
    example: ClassVar[dict[str, object]] = {
        "initial_lr": 0.1,
        "gamma": 0.1,
        "milestones": [30, 60, 80],
        "min_lr": 0.0,
    }
    defaults: ClassVar[dict[str, object]] = {"min_lr": 0.0}

    def __init__(
        self,
        initial_lr: float,
        gamma: float,
        milestones: Sequence[int],
        min_lr: float = 0.0,
    ) -> None:
        self._store(
            {"initial_lr": initial_lr, "gamma": gamma, "milestones": milestones, "min_lr": min_lr}
        )

    @property
    def gamma(self) -> float:
        """Multiplier applied at each milestone."""
        return float(self._params["gamma"])

    @property
    def milestones(self) -> tuple[int, ...]:
        """Steps at which the LR drops, strictly increasing."""
        return tuple(self._params["milestones"])

    def drops(self, horizon: int) -> list[int]:
        """Return the milestones ``< horizon``."""
        return [m for m in self.milestones if m < horizon]

    def _lr_scalar(self, t: float) -> float:
        drops = bisect.bisect_right(self.milestones, t)
        return max(self.min_lr, self.initial_lr * math.exp(drops * math.log(self.gamma)))

    def _lr_array(self, t: FloatArray) -> FloatArray:
        drops = np.searchsorted(np.asarray(self.milestones, dtype=np.float64), t, side="right")
        return _levels_at(self.initial_lr, self.gamma, self.min_lr, drops)

    def _area(self, horizon: int) -> float:
        bounds = [0, *[m for m in self.milestones if m < horizon], horizon]
        total = 0.0
        for start, stop in zip(bounds, bounds[1:]):
            total += (stop - start) * self._lr_scalar(float(start))
        return total

    def _stretch(self, factor: int) -> MultiStepDecay:
        milestones = [m * factor for m in self.milestones]
        return MultiStepDecay(self.initial_lr, self.gamma, milestones, self.min_lr)


def _levels_at(
    initial_lr: float, gamma: float, min_lr: float, drops: np.ndarray
) -> FloatArray:
    """Return ``max(min_lr, initial_lr * exp(drops * ln(gamma)))`` elementwise.

    Few distinct drop counts appear in a long array, so the levels are
    computed once each and gathered. That is about twice as fast as one
    ``exp`` per element and gives the same values. Very large counts fall
    back to the direct formula.
    """
    log_gamma = math.log(gamma)
    count = int(drops.max()) + 1 if drops.size else 0
    if count > max(drops.size, _MAX_LEVEL_TABLE):
        levels = np.exp(drops * log_gamma)
        levels *= initial_lr
        return np.maximum(levels, min_lr, out=levels)
    table = np.exp(np.arange(count, dtype=np.float64) * log_gamma)
    table *= initial_lr
    np.maximum(table, min_lr, out=table)
    return np.take(table, drops.astype(np.intp))


def _plateau_sum(initial_lr: float, gamma: float, min_lr: float, count: int) -> float:
    """Return the sum over ``k < count`` of ``max(min_lr, initial_lr * gamma ** k)``."""
    if count <= 0:
        return 0.0
    above = _levels_above_floor(initial_lr, gamma, min_lr, count)
    if gamma == 1.0:
        geometric = initial_lr * above
    else:
        geometric = initial_lr * (1.0 - gamma**above) / (1.0 - gamma)
    return geometric + min_lr * (count - above)


def _levels_above_floor(initial_lr: float, gamma: float, min_lr: float, count: int) -> int:
    """Count the ``k < count`` whose level ``initial_lr * gamma ** k`` exceeds ``min_lr``.

    The estimate from logarithms is corrected with the same expression the
    schedule evaluates, so the count agrees with :meth:`StepDecay._lr_scalar`.
    """
    if min_lr <= 0.0 or gamma == 1.0:
        return count if initial_lr > min_lr else 0
    if initial_lr <= min_lr:
        return 0
    k = min(count, max(0, math.ceil((math.log(min_lr) - math.log(initial_lr)) / math.log(gamma))))
    log_gamma = math.log(gamma)
    while k > 0 and not initial_lr * math.exp((k - 1) * log_gamma) > min_lr:
        k -= 1
    while k < count and initial_lr * math.exp(k * log_gamma) > min_lr:
        k += 1
    return k
