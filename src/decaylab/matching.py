"""Relations between step decay and exponential decay.

A step schedule ``lr0 * gamma ** floor(t / T)`` has three natural
exponential twins ``lr0 * exp(-rate * t)``:

- **half-life** twin, ``rate = -ln(gamma) / T``: the same decay per plateau,
  equal to the step schedule at every drop and below it in between;
- **final-LR** twin: the same LR at ``t = horizon``;
- **area** twin: the same integrated LR ``sum_{t < horizon} lr(t)``.

Conversely :func:`quantize` turns an exponential into its sample-and-hold
step schedule, ``gamma = factor ** T``. Each twin keeps the step schedule's
``initial_lr`` and ``min_lr``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from decaylab._validation import check_all, integer
from decaylab.schedules import ExponentialDecay, MultiStepDecay, Schedule, StepDecay

__all__ = [
    "compare_schedules",
    "epochs_to_steps",
    "half_life_area_ratio",
    "integrated_lr",
    "match_area",
    "match_final_lr",
    "match_half_life",
    "quantize",
]

_HORIZON = integer(1)


def integrated_lr(schedule: Schedule, horizon: int) -> float:
    """Return ``sum(schedule(t) for t in range(horizon))``, in closed form where one exists.

    >>> integrated_lr(StepDecay(initial_lr=0.1, gamma=0.5, step_size=30), 60)
    4.5
    """
    _check_schedule("integrated_lr", schedule)
    horizon = check_all("integrated_lr", {"horizon": integer(0)}, (), {"horizon": horizon})[
        "horizon"
    ]
    return schedule._area(horizon)


def match_half_life(step: StepDecay | MultiStepDecay) -> ExponentialDecay:
    """Return the exponential with the same decay per plateau: ``rate = -ln(gamma) / T``.

    The twin is written as ``decay_rate=gamma, decay_steps=T`` so that it
    equals the step schedule exactly at every drop ``t = k T``. A
    :class:`MultiStepDecay` is accepted when its milestones are ``T, 2T,
    ..., kT`` (then it is a step schedule up to ``(k + 1) T``); other
    milestones have no single period to match.

    >>> s = StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    >>> e = match_half_life(s)
    >>> e.half_life, e(30) == s(30), e(15) < s(15)
    (30.0, True, True)
    """
    gamma, period = _step_period(step)
    if gamma == 1.0:
        raise ValueError(
            "match_half_life: the step schedule has gamma=1.0 and never decays; "
            "there is no decaying exponential to match"
        )
    return ExponentialDecay(
        step.initial_lr, decay_rate=gamma, decay_steps=period, min_lr=step.min_lr
    )


def match_final_lr(step: StepDecay | MultiStepDecay, horizon: int) -> ExponentialDecay:
    """Return the exponential whose LR at ``t = horizon`` equals the step schedule's.

    The match uses the unfloored level ``initial_lr * gamma ** n`` (``n``
    drops at or before ``horizon``) and the twin is written as
    ``decay_rate=gamma ** n, decay_steps=horizon``, so the two agree at
    ``horizon`` up to the last bits. Without a drop by then the twin is
    constant.

    >>> s = StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    >>> match_final_lr(s, 90)(90), s(90)
    (0.0125, 0.0125)
    """
    _check_step_like("match_final_lr", step)
    horizon = check_all("match_final_lr", {"horizon": _HORIZON}, (), {"horizon": horizon})[
        "horizon"
    ]
    drops = len(step.drops(horizon + 1))
    level = step.gamma ** float(drops)
    if level <= 0.0:
        raise ValueError(
            f"match_final_lr: gamma ** {drops} underflows to 0 at horizon={horizon}; "
            "use a shorter horizon or a gamma closer to 1"
        )
    return ExponentialDecay(
        step.initial_lr, decay_rate=level, decay_steps=float(horizon), min_lr=step.min_lr
    )


def match_area(step: StepDecay | MultiStepDecay, horizon: int) -> ExponentialDecay:
    """Return the exponential with the same integrated LR over ``t = 0 .. horizon-1``.

    The rate is the root of a strictly decreasing function (the closed-form
    area of the candidate), found by bisection to the last bit of a double.
    Without a drop before ``horizon`` the twin is constant (``factor=1``).

    >>> s = StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    >>> e = match_area(s, 90)
    >>> abs(integrated_lr(e, 90) - integrated_lr(s, 90)) < 1e-12
    True
    """
    _check_step_like("match_area", step)
    horizon = check_all("match_area", {"horizon": _HORIZON}, (), {"horizon": horizon})["horizon"]
    target = step._area(horizon)
    lr0, floor = step.initial_lr, step.min_lr
    constant = ExponentialDecay(lr0, factor=1.0, min_lr=floor)
    if floor >= lr0 or target >= constant._area(horizon):
        return constant

    def area(rate: float) -> float:
        return ExponentialDecay(lr0, rate=rate, min_lr=floor)._area(horizon)

    low, high = 0.0, 1.0
    while area(high) > target:
        low, high = high, high * 2.0
        if high > 1e300:
            raise ValueError(
                f"match_area: no exponential from initial_lr={lr0!r} reaches the "
                f"integrated LR {target!r} over horizon={horizon}"
            )
    for _ in range(2000):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if area(middle) > target:
            low = middle
        else:
            high = middle
    rate = low if abs(area(low) - target) <= abs(area(high) - target) else high
    return ExponentialDecay(lr0, rate=rate, min_lr=floor)


def quantize(exp: ExponentialDecay, step_size: int) -> StepDecay:
    """Return the sample-and-hold step schedule of ``exp``: ``gamma = factor ** step_size``.

    The step schedule keeps the value ``exp(k T)`` over ``[k T, (k + 1) T)``, so it is
    never below ``exp`` and equals it at every drop.
    ``quantize(match_half_life(s), s.step_size) == s`` for every step
    schedule ``s`` with ``gamma < 1``.

    >>> quantize(ExponentialDecay(initial_lr=0.1, half_life=30), 30)
    StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    """
    if not isinstance(exp, ExponentialDecay):
        raise TypeError(
            f"quantize: expected an ExponentialDecay; got {type(exp).__name__}. "
            "Build one with decaylab.ExponentialDecay or decaylab.match_half_life"
        )
    step_size = check_all("quantize", {"step_size": integer(1)}, (), {"step_size": step_size})[
        "step_size"
    ]
    gamma = exp.multiplier(step_size)
    if gamma <= 0.0:
        raise ValueError(
            f"quantize: factor ** step_size underflows to 0 for step_size={step_size}; "
            "use a smaller step_size"
        )
    return StepDecay(exp.initial_lr, gamma, step_size, min_lr=exp.min_lr)


def half_life_area_ratio(gamma: float, step_size: int) -> float:
    """Return the integrated-LR ratio of a step schedule to its half-life twin.

    Over each full plateau (no floor) the step schedule sums ``T * lr`` and
    its twin ``lr * (1 - gamma) / (1 - gamma ** (1 / T))``, so the ratio is
    ``T (1 - gamma ** (1/T)) / (1 - gamma)``, independent of the plateau.

    >>> round(half_life_area_ratio(0.5, 30), 6)
    1.370402
    """
    values = check_all(
        "half_life_area_ratio",
        {"gamma": StepDecay.rules["gamma"], "step_size": integer(1)},
        (),
        {"gamma": gamma, "step_size": step_size},
    )
    gamma, period = float(values["gamma"]), int(values["step_size"])
    if gamma == 1.0:
        return 1.0
    log_gamma = math.log(gamma)
    return period * -math.expm1(log_gamma / period) / -math.expm1(log_gamma)


def compare_schedules(a: Schedule, b: Schedule, horizon: int) -> dict[str, Any]:
    """Compare two schedules over ``t = 0 .. horizon-1``.

    Returns a dict with ``horizon``, ``integrated_lr_a``, ``integrated_lr_b``,
    ``area_ratio`` (a over b), ``max_ratio``, ``min_ratio`` and
    ``mean_log_ratio`` of ``a(t) / b(t)`` over the steps where both are
    positive. ``ratio_steps`` counts those steps, and the three ratios are NaN
    when there is none. ``fraction_a_greater`` and ``fraction_equal`` cover
    all steps, and ``max_abs_difference`` is the largest ``|a(t) - b(t)|``.

    >>> s = StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    >>> c = compare_schedules(s, match_half_life(s), 90)
    >>> c["min_ratio"], round(c["max_ratio"], 6), c["fraction_a_greater"] > 0.9
    (1.0, 1.95432, True)
    """
    _check_schedule("compare_schedules", a)
    _check_schedule("compare_schedules", b)
    horizon = check_all("compare_schedules", {"horizon": _HORIZON}, (), {"horizon": horizon})[
        "horizon"
    ]
    times = np.arange(horizon, dtype=np.float64)
    values_a, values_b = a(times), b(times)
    positive = (values_a > 0.0) & (values_b > 0.0)
    area_a, area_b = a._area(horizon), b._area(horizon)

    if positive.any():
        log_ratios = np.log(values_a[positive]) - np.log(values_b[positive])
        with np.errstate(over="ignore"):
            ratios = np.exp(log_ratios)
        max_ratio, min_ratio = float(ratios.max()), float(ratios.min())
        mean_log_ratio = float(np.mean(log_ratios))
    else:
        max_ratio = min_ratio = mean_log_ratio = math.nan
    return {
        "horizon": horizon,
        "integrated_lr_a": area_a,
        "integrated_lr_b": area_b,
        "area_ratio": area_a / area_b if area_b > 0 else math.nan,
        "max_ratio": max_ratio,
        "min_ratio": min_ratio,
        "mean_log_ratio": mean_log_ratio,
        "ratio_steps": int(positive.sum()),
        "fraction_a_greater": float(np.mean(values_a > values_b)),
        "fraction_equal": float(np.mean(values_a == values_b)),
        "max_abs_difference": float(np.max(np.abs(values_a - values_b))),
    }


def epochs_to_steps(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """Return ``schedule`` with time counted in updates instead of epochs.

    The result ``r`` satisfies ``r(t) == schedule(t / steps_per_epoch)`` up
    to rounding: step sizes, milestones, half-lives and warm-up lengths are
    multiplied by ``steps_per_epoch``.

    >>> epochs_to_steps(StepDecay(initial_lr=0.1, gamma=0.5, step_size=10), 45)
    StepDecay(initial_lr=0.1, gamma=0.5, step_size=450)
    """
    _check_schedule("epochs_to_steps", schedule)
    factor = check_all(
        "epochs_to_steps", {"steps_per_epoch": integer(1)}, (), {"steps_per_epoch": steps_per_epoch}
    )["steps_per_epoch"]
    return schedule._stretch(factor)


def _check_schedule(owner: str, schedule: Any) -> None:
    if not isinstance(schedule, Schedule):
        raise TypeError(f"{owner}: expected a decaylab Schedule; got {type(schedule).__name__}")


def _check_step_like(owner: str, step: Any) -> None:
    if not isinstance(step, (StepDecay, MultiStepDecay)):
        raise TypeError(
            f"{owner}: expected a StepDecay or MultiStepDecay; got {type(step).__name__}. "
            "Matching needs a schedule with discrete drops"
        )


def _step_period(step: StepDecay | MultiStepDecay) -> tuple[float, int]:
    _check_step_like("match_half_life", step)
    if isinstance(step, StepDecay):
        return step.gamma, step.step_size
    milestones = step.milestones
    period = milestones[0]
    if period == 0 or any(m != period * (i + 1) for i, m in enumerate(milestones)):
        raise ValueError(
            f"match_half_life: MultiStepDecay milestones {list(milestones)} are not evenly "
            "spaced from 0 (T, 2T, 3T, ...), so there is no single period to match; "
            "use match_final_lr or match_area with a horizon"
        )
    return step.gamma, period
