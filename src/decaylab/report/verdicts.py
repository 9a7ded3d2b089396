"""Verdicts for quantities measured once per seed: the report's one decision rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
        """Exact sign-test p-value over the non-zero values, one-sided for ``expected_sign``
        +-1 and two-sided for 0; 1.0 when every value is zero."""
        nonzero = [v for v in self.values if v != 0.0]
        if not nonzero:
            return math.nan if self.n == 0 else 1.0
        n, positive = len(nonzero), sum(v > 0 for v in nonzero)
        upper = sum(math.comb(n, k) for k in range(positive, n + 1)) / float(1 << n)
        lower = sum(math.comb(n, k) for k in range(0, positive + 1)) / float(1 << n)
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
