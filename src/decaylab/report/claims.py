"""The measured claims of a comparison report and their verdicts.

Each claim is computed from the schedules and the run folder's CSVs, stated
with its numbers, and given one verdict by :func:`decide`, the single
decision rule for quantities measured once per seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import decaylab as dl
from decaylab.report.load import RunFolder, RunRecord, ScheduleRecord

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
SKIPPED = "skipped"

DECISION_RULE = (
    "A quantity measured once per seed (a paired difference between two "
    "schedules at the same seed, or a change around an LR drop) decides a "
    "claim that predicts its sign as follows. With fewer than 2 seeds that "
    "have a finite value, the verdict is inconclusive. If every seed's value "
    "has the predicted sign, the claim is supported. If every seed's value "
    "has the opposite sign, it is not supported. Otherwise the range of the "
    "seeds covers zero and the verdict is inconclusive. A claim that predicts "
    "only a difference, not its sign, is supported when all seeds share one "
    "sign and is inconclusive otherwise. Mean, sample standard deviation "
    "(ddof=1), range, paired t statistic and the exact sign-test p-value are "
    "reported beside each verdict, but only the sign rule sets it."
)

_EXACT_RTOL = 1e-9


@dataclass(frozen=True)
class SeedStatistic:
    """Summary of one quantity measured once per seed (non-finite values dropped)."""

    values: tuple[float, ...]
    n: int
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> SeedStatistic:
        finite = tuple(float(v) for v in values if math.isfinite(v))
        if not finite:
            return cls(finite, 0, math.nan, math.nan, math.nan, math.nan)
        array = np.asarray(finite)
        std = float(array.std(ddof=1)) if array.size > 1 else 0.0
        return cls(finite, array.size, float(array.mean()), std, float(array.min()), float(array.max()))

    @property
    def t_statistic(self) -> float:
        """Paired t statistic ``mean / (std / sqrt(n))``; NaN for n < 2 or zero spread."""
        if self.n < 2 or self.std == 0.0:
            return math.nan
        return self.mean / (self.std / math.sqrt(self.n))

    def sign_test_p(self, expected_sign: int) -> float:
        """Exact sign-test p-value, one-sided for ``expected_sign`` +-1, two-sided for 0."""
        if self.n == 0:
            return math.nan
        positive = sum(v > 0 for v in self.values)
        upper = sum(math.comb(self.n, k) for k in range(positive, self.n + 1)) / 2**self.n
        lower = sum(math.comb(self.n, k) for k in range(0, positive + 1)) / 2**self.n
        if expected_sign > 0:
            return upper
        if expected_sign < 0:
            return lower
        return min(1.0, 2.0 * min(upper, lower))

    def describe(self, expected_sign: int, digits: int = 4) -> str:
        if self.n == 0:
            return "no finite values"
        return (
            f"mean {self.mean:+.{digits}g} ± {self.std:.{digits}g} (n={self.n}, range "
            f"[{self.low:+.{digits}g}, {self.high:+.{digits}g}], paired t = {self.t_statistic:.3g}, "
            f"sign test p = {self.sign_test_p(expected_sign):.3g})"
        )


def decide(values: Sequence[float], expected_sign: int) -> tuple[str, str]:
    """Return ``(verdict, reason)`` for per-seed ``values`` by the sign rule.

    ``expected_sign`` is +1 or -1 for a claim that predicts the sign, 0 for a
    claim that predicts only a difference. The full rule is ``DECISION_RULE``.

    >>> decide([0.2, 0.1, 0.3], +1)[0]
    'supported'
    >>> decide([0.2, -0.1, 0.3], +1)[0]
    'inconclusive'
    >>> decide([-0.2, -0.1], +1)[0]
    'not supported'
    >>> decide([0.2], +1)[0]
    'inconclusive'
    """
    if expected_sign not in (-1, 0, 1):
        raise ValueError(f"expected_sign must be -1, 0 or +1, got {expected_sign!r}")
    stat = SeedStatistic.of(values)
    if stat.n < 2:
        return INCONCLUSIVE, f"only {stat.n} seed(s) with a finite value; at least 2 are needed"
    if expected_sign == 0:
        if stat.low > 0 or stat.high < 0:
            return SUPPORTED, f"all {stat.n} seeds differ with the same sign"
        return INCONCLUSIVE, f"the seeds' range [{stat.low:+.3g}, {stat.high:+.3g}] covers zero"
    signed_low = min(v * expected_sign for v in stat.values)
    signed_high = max(v * expected_sign for v in stat.values)
    if signed_low > 0:
        return SUPPORTED, f"all {stat.n} seeds have the predicted sign"
    if signed_high < 0:
        return NOT_SUPPORTED, f"all {stat.n} seeds have the opposite sign"
    return INCONCLUSIVE, f"the seeds' range [{stat.low:+.3g}, {stat.high:+.3g}] covers zero"


def combine(verdicts: Sequence[str]) -> str:
    """Combine the verdicts of a claim's parts: any refuted part refutes the claim."""
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    """One claim: what it states, the verdict, why, and the numbers behind it."""

    key: str
    title: str
    statement: str
    verdict: str
    reason: str
    evidence: tuple[str, ...] = ()
    numbers: dict[str, float] = field(default_factory=dict)


def skipped(key: str, title: str, statement: str, reason: str) -> Claim:
    return Claim(key, title, statement, SKIPPED, reason)


# -- shared lookups ------------------------------------------------------


def base_schedule(folder: RunFolder) -> ScheduleRecord | None:
    """Return the step schedule the twins were matched to (role ``base``)."""
    return folder.schedule_with_role("base")


def comparison_schedules(folder: RunFolder, base: ScheduleRecord) -> list[ScheduleRecord]:
    """Return the twins of ``base``, or every exponential schedule when no twin exists."""
    twins = [r for r in folder.schedules if r.role.endswith("twin")]
    if twins:
        return twins
    return [
        r for r in folder.schedules
        if r is not base and isinstance(r.schedule, dl.ExponentialDecay)
    ]


def drop_steps(schedule: dl.Schedule, horizon: int) -> np.ndarray:
    """Return the updates ``t`` in ``[1, horizon)`` whose LR is below ``lr(t - 1)``."""
    lr = schedule(np.arange(horizon, dtype=np.float64))
    return np.flatnonzero(lr[1:] < lr[:-1]) + 1


def drop_windows(drops: np.ndarray, horizon: int, fraction: float) -> list[tuple[int, int]]:
    """Return ``(drop, width)`` pairs: the width is ``fraction`` of the gap to the nearest
    neighbouring drop or end of the run, at least 1 step."""
    bounds = [0, *[int(d) for d in drops], horizon]
    out = []
    for i in range(1, len(bounds) - 1):
        gap = min(bounds[i] - bounds[i - 1], bounds[i + 1] - bounds[i])
        out.append((bounds[i], max(1, int(gap * fraction))))
    return out


def window_median(series: np.ndarray, start: int, stop: int) -> float:
    """Median of the finite positive values in ``series[start:stop]``; NaN when fewer
    than half the window is usable (a diverged run's tail, for instance)."""
    window = series[max(0, start):stop]
    usable = window[np.isfinite(window) & (window > 0)]
    if usable.size == 0 or usable.size < (stop - max(0, start)) / 2:
        return math.nan
    return float(np.median(usable))


def window_mean(series: np.ndarray, start: int, stop: int) -> float:
    """Mean of the finite values in ``series[start:stop]`` (probe rows); NaN if none."""
    window = series[max(0, start):stop]
    usable = window[np.isfinite(window)]
    return float(usable.mean()) if usable.size else math.nan


def paired_runs(
    a: ScheduleRecord, b: ScheduleRecord
) -> list[tuple[int, RunRecord, RunRecord]]:
    """Return ``(seed, run_a, run_b)`` for every seed present in both schedules."""
    pairs = []
    for run_a in a.runs:
        run_b = b.run_for_seed(run_a.seed)
        if run_b is not None:
            pairs.append((run_a.seed, run_a, run_b))
    return pairs


def finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# -- claim (a): schedule arithmetic ----------------------------------------


def claim_area_factor(folder: RunFolder) -> Claim:
    """Claim (a): step never below its half-life twin and ahead by the plateau factor.

    On a full plateau ``[kT, (k+1)T)`` the step schedule sums ``T * lr0 g^k``
    and its half-life twin ``lr0 g^k (1 - g) / (1 - g^(1/T))``, so their ratio
    is ``T (1 - g^(1/T)) / (1 - g)`` whatever ``k`` is (without a floor).
    """
    title = "Step LR versus its half-life twin"
    statement = (
        "The step schedule's LR is never below its half-life twin's, and on each full "
        "plateau its integrated LR exceeds the twin's by the factor T(1 - g^(1/T))/(1 - g)."
    )
    base = base_schedule(folder)
    twin = folder.schedule_with_role("half-life twin")
    if base is None or twin is None:
        missing = "step schedule (role 'base')" if base is None else "half-life twin"
        return skipped("a", title, statement, f"the run folder has no {missing}")
    step = base.schedule
    if not isinstance(step, dl.StepDecay):
        return skipped("a", title, statement,
                       f"the base schedule is {type(step).__name__}, not StepDecay, so it has no single T")
    horizon, size, gamma = folder.horizon, step.step_size, step.gamma
    plateaus = horizon // size
    if plateaus == 0:
        return skipped("a", title, statement,
                       f"the horizon {horizon} is shorter than one plateau (T = {size})")

    times = np.arange(horizon, dtype=np.float64)
    min_ratio = float(np.min(step(times) / twin.schedule(times)))
    factor = size * (1.0 - gamma ** (1.0 / size)) / (1.0 - gamma)
    ratios = []
    for k in range(plateaus):
        step_area = dl.integrated_lr(step, (k + 1) * size) - dl.integrated_lr(step, k * size)
        twin_area = dl.integrated_lr(twin.schedule, (k + 1) * size) - dl.integrated_lr(twin.schedule, k * size)
        ratios.append(step_area / twin_area)
    deviation = max(abs(r / factor - 1.0) for r in ratios)
    total_ratio = dl.integrated_lr(step, horizon) / dl.integrated_lr(twin.schedule, horizon)
    matched = dl.match_half_life(step)(times)
    twin_error = float(np.max(np.abs(twin.schedule(times) / matched - 1.0)))
    recorded_error = _recorded_lr_error([base, twin], horizon)

    never_below = min_ratio >= 1.0 - 1e-12
    verdict = SUPPORTED if never_below and deviation <= _EXACT_RTOL else NOT_SUPPORTED
    reason = (
        f"min step/twin LR ratio {min_ratio:.12g} {'>=' if never_below else '<'} 1 and the "
        f"largest relative deviation of a plateau ratio from the factor is {deviation:.2g} "
        f"(tolerance {_EXACT_RTOL:g})"
    )
    evidence = (
        f"T = {size}, g = {gamma:g}: closed-form factor T(1 - g^(1/T))/(1 - g) = {factor:.10g}",
        f"measured ratio on each of {plateaus} full plateau(s): "
        + ", ".join(f"{r:.10g}" for r in ratios),
        f"ratio of integrated LR over the whole horizon ({horizon} updates): {total_ratio:.10g}",
        f"min over t of step(t)/twin(t): {min_ratio:.10g}",
        f"the recorded twin differs from match_half_life(step) by at most {twin_error:.2g} (relative)",
        f"LR column of steps.csv versus schedule(step): max relative deviation {recorded_error:.2g}",
    )
    numbers = {
        "factor": factor, "max_plateau_deviation": deviation, "min_ratio": min_ratio,
        "total_ratio": total_ratio, "twin_error": twin_error, "recorded_lr_error": recorded_error,
    }
    return Claim("a", title, statement, verdict, reason, evidence, numbers)


def _recorded_lr_error(records: Sequence[ScheduleRecord], horizon: int) -> float:
    worst = 0.0
    for record in records:
        expected = record.schedule(np.arange(horizon, dtype=np.float64))
        for run in record.runs:
            recorded = run.series("lr", horizon)
            usable = np.isfinite(recorded) & (expected > 0)
            if usable.any():
                error = np.abs(recorded[usable] / expected[usable] - 1.0)
                worst = max(worst, float(error.max()))
    return worst
