"""Exponential decay in four equivalent parametrisations."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Optional

import numpy as np

from decaylab._validation import InvalidParameterError, Rule, check_all, real
from decaylab.schedules.base import FLOOR_BELOW_PEAK, FloatArray, Schedule

__all__ = ["ExponentialDecay"]

_LR_RULE = real(0.0)
_POSITIVE = real(0.0, low_open=True)
_UNIT_FACTOR = real(0.0, 1.0, low_open=True)

# Each parametrisation is a tuple of parameter names given together.
_FORMS: tuple[tuple[str, ...], ...] = (
    ("rate",),
    ("factor",),
    ("half_life",),
    ("decay_rate", "decay_steps"),
)
_FORM_TEXT = "exactly one of rate, factor, half_life, or the pair decay_rate and decay_steps"


class ExponentialDecay(Schedule):
    """Exponential decay: ``lr(t) = max(min_lr, initial_lr * exp(-rate * t))``.

    Give exactly one parametrisation. All four evaluate
    ``exp((t / period) * ln(base))`` with the form's own base and period,
    the expression :class:`StepDecay` uses for its levels, so a twin written
    as ``decay_rate=gamma, decay_steps=T`` equals ``StepDecay(gamma=gamma,
    step_size=T)`` bit for bit at every drop:

    ========================== =============================== ==============
    given                      ``lr(t) / initial_lr``          rule
    ========================== =============================== ==============
    ``rate``                   ``exp(-rate * t)``              > 0
    ``factor``                 ``factor ** t``                 in (0, 1]
    ``half_life``              ``0.5 ** (t / half_life)``      > 0
    ``decay_rate, decay_steps`` ``decay_rate ** (t / decay_steps)`` (0, 1], > 0
    ========================== =============================== ==============

    The last form is the ``decay_rate``/``decay_steps`` convention of Keras'
    ``ExponentialDecay`` and Optax's ``exponential_decay`` (without their
    staircase option; use :class:`StepDecay` for that). The twin that
    :func:`decaylab.match_half_life` builds from ``StepDecay(gamma=g,
    step_size=T)`` uses ``decay_rate=g, decay_steps=T``, so the two agree
    exactly at every drop.

    Equality compares the parameters as given: ``half_life=30`` and the
    same ``rate`` written out are different values that compute the same LR
    up to rounding. Use :func:`decaylab.compare_schedules` to compare curves.

    >>> e = ExponentialDecay(initial_lr=0.1, half_life=30)
    >>> e(0), e(30), e(60)
    (0.1, 0.05, 0.025)
    >>> round(e.rate * 30, 12) == round(math.log(2), 12)
    True
    """

    kind: ClassVar[str] = "exponential"
    rules: ClassVar[dict[str, Rule]] = {
        "initial_lr": _LR_RULE,
        "rate": _POSITIVE,
        "factor": _UNIT_FACTOR,
        "half_life": _POSITIVE,
        "decay_rate": _UNIT_FACTOR,
        "decay_steps": _POSITIVE,
        "min_lr": _LR_RULE,
    }
    relations = (FLOOR_BELOW_PEAK,)
    example: ClassVar[dict[str, object]] = {"initial_lr": 0.1, "half_life": 30.0, "min_lr": 0.0}
    defaults: ClassVar[dict[str, object]] = {"min_lr": 0.0}
    # Parametrisations that break the "exactly one" rule, for generated tests.
    invalid_forms: ClassVar[tuple[dict[str, Any], ...]] = (
        {"half_life": None},
        {"rate": 0.1},
        {"half_life": None, "decay_rate": 0.5},
        {"half_life": None, "decay_steps": 10},
        {"factor": 0.9, "decay_rate": 0.5, "decay_steps": 10},
    )

    _rate: float
    _period: float
    _log_base: float

    def __init__(
        self,
        initial_lr: float,
        *,
        rate: Optional[float] = None,
        factor: Optional[float] = None,
        half_life: Optional[float] = None,
        decay_rate: Optional[float] = None,
        decay_steps: Optional[float] = None,
        min_lr: float = 0.0,
    ) -> None:
        given = {
            "rate": rate,
            "factor": factor,
            "half_life": half_life,
            "decay_rate": decay_rate,
            "decay_steps": decay_steps,
        }
        named = tuple(name for name, value in given.items() if value is not None)
        if named not in _FORMS:
            shown = ", ".join(f"{name}={given[name]!r}" for name in named) or "none"
            raise InvalidParameterError(
                f"ExponentialDecay: give {_FORM_TEXT}; got {shown}",
                named[0] if named else "rate",
            )
        rules = {name: self.rules[name] for name in ("initial_lr", *named, "min_lr")}
        params: dict[str, Any] = {"initial_lr": initial_lr, **{n: given[n] for n in named}}
        params["min_lr"] = min_lr
        checked = check_all("ExponentialDecay", rules, self.relations, params)
        object.__setattr__(self, "_params", checked)
        object.__setattr__(self, "_form", named)
        object.__setattr__(self, "_rate", self._derive_rate())
        period, log_base = self._evaluation_form()
        object.__setattr__(self, "_period", period)
        object.__setattr__(self, "_log_base", log_base)

    def _evaluation_form(self) -> tuple[float, float]:
        """Return ``(period, ln(base))`` with ``lr(t) = initial_lr * exp((t / period) ln(base))``."""
        p = self._params
        if "rate" in p:
            return 1.0, -float(p["rate"])
        if "factor" in p:
            return 1.0, math.log(p["factor"])
        if "half_life" in p:
            return float(p["half_life"]), math.log(0.5)
        return float(p["decay_steps"]), math.log(p["decay_rate"])

    def _derive_rate(self) -> float:
        p = self._params
        if "rate" in p:
            return float(p["rate"])
        if "factor" in p:
            return -math.log(p["factor"])
        if "half_life" in p:
            return math.log(2.0) / float(p["half_life"])
        return -math.log(p["decay_rate"]) / float(p["decay_steps"])

    @property
    def rate(self) -> float:
        """Continuous decay rate per update: ``lr(t) = initial_lr * exp(-rate * t)``."""
        return float(self._rate)

    @property
    def factor(self) -> float:
        """Multiplier per update: ``lr(t + 1) / lr(t)`` above the floor."""
        if "factor" in self._params:
            return float(self._params["factor"])
        return math.exp(-self._rate)

    @property
    def half_life(self) -> float:
        """Updates for the LR to halve (``inf`` when ``factor == 1``)."""
        if "half_life" in self._params:
            return float(self._params["half_life"])
        return math.log(2.0) / self._rate if self._rate > 0 else math.inf

    @property
    def lifetime(self) -> float:
        """Updates for the LR to fall by ``e``: ``1 / rate`` (``inf`` when ``rate == 0``)."""
        return 1.0 / self._rate if self._rate > 0 else math.inf

    def multiplier(self, t: float) -> float:
        """Return ``lr(t) / initial_lr`` without the floor, by the form's own power.

        Integer multiples of the form's period are exact here:
        ``multiplier(decay_steps) == decay_rate`` and
        ``multiplier(half_life) == 0.5``. :func:`decaylab.quantize` relies on it.
        """
        p = self._params
        if "rate" in p:
            return math.exp(-p["rate"] * t)
        if "factor" in p:
            return float(p["factor"] ** t)
        if "half_life" in p:
            return float(0.5 ** (t / p["half_life"]))
        return float(p["decay_rate"] ** (t / p["decay_steps"]))

    def _unfloored(self, t: float) -> float:
        return self.initial_lr * math.exp((t / self._period) * self._log_base)

    def _lr_scalar(self, t: float) -> float:
        return max(self.min_lr, self._unfloored(t))

    def _lr_array(self, t: FloatArray) -> FloatArray:
        values = np.divide(t, self._period)
        values *= self._log_base
        np.exp(values, out=values)
        values *= self.initial_lr
        return np.maximum(values, self.min_lr, out=values)

    def _area(self, horizon: int) -> float:
        above = _steps_above_floor(self, horizon)
        if self._rate == 0.0:
            geometric = self.initial_lr * above
        else:
            # sum_{t < above} exp(-rate t), with expm1 for small rates.
            geometric = self.initial_lr * math.expm1(-self._rate * above) / math.expm1(-self._rate)
        return geometric + self.min_lr * (horizon - above)

    def _stretch(self, factor: int) -> ExponentialDecay:
        p = self._params
        if "rate" in p:
            form: dict[str, float] = {"rate": p["rate"] / factor}
        elif "factor" in p:
            form = {"decay_rate": p["factor"], "decay_steps": float(factor)}
        elif "half_life" in p:
            form = {"half_life": p["half_life"] * factor}
        else:
            form = {"decay_rate": p["decay_rate"], "decay_steps": p["decay_steps"] * factor}
        return ExponentialDecay(self.initial_lr, min_lr=self.min_lr, **form)


def _steps_above_floor(schedule: ExponentialDecay, horizon: int) -> int:
    """Count integer ``t < horizon`` whose unfloored LR exceeds the floor.

    The estimate from logarithms is corrected with the evaluated values, so
    the count agrees with the schedule itself.
    """
    lr0, floor, rate = schedule.initial_lr, schedule.min_lr, schedule.rate
    if lr0 <= floor:
        return 0
    if floor <= 0.0 or rate == 0.0:
        return horizon
    t = min(horizon, max(0, math.ceil((math.log(lr0) - math.log(floor)) / rate)))
    while t > 0 and not schedule._unfloored(t - 1) > floor:
        t -= 1
    while t < horizon and schedule._unfloored(t) > floor:
        t += 1
    return t
