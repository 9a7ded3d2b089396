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
    "have a finite value, the verdict is inconclusive, and so it is when every "
    "value is exactly 0 (all seeds equal). If every seed's value "
    "has the predicted sign, the claim is supported. If every seed's value "
    "has the opposite sign, it is not supported. Otherwise the range of the "
    "seeds covers zero and the verdict is inconclusive. A claim that predicts "
    "only a difference, not its sign, is supported when all seeds share one "
    "sign and is inconclusive otherwise. Mean, sample standard deviation "
    "(ddof=1), range, paired t statistic and the exact sign-test p-value are "
    "reported beside each verdict, but only the sign rule sets it. A verdict "
    "therefore reports whether the seeds agree, not statistical significance: "
    "with n seeds the smallest one-sided sign-test p is 2^-n (0.25 for 2 "
    "seeds, 0.125 for 3) and the smallest two-sided one is 2^(1-n), so "
    "p < 0.05 needs at least 5 seeds for a predicted sign and 6 for a "
    "difference alone."
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
    def all_zero(self) -> bool:
        """True when there is at least one value and every value is exactly 0."""
        return self.n > 0 and all(v == 0.0 for v in self.values)

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
        """Format mean ± std, n, range, paired t and sign-test p; t is "n/a" where undefined."""
        if self.n == 0:
            return "no finite values"
        t = self.t_statistic
        t_text = "n/a" if math.isnan(t) else f"{t:.3g}"
        return (
            f"mean {self.mean:+.{digits}g} ± {self.std:.{digits}g} (n={self.n}, range "
            f"[{self.low:+.{digits}g}, {self.high:+.{digits}g}], paired t = {t_text}, "
            f"sign test p = {self.sign_test_p(expected_sign):.3g})"
        )


def smallest_sign_test_p(n: int, expected_sign: int) -> float:
    """Return the smallest exact sign-test p-value that ``n`` non-zero values can reach.

    One-sided (``expected_sign`` +-1): ``2^-n``; two-sided (0): ``min(1, 2^(1-n))``.

    >>> smallest_sign_test_p(3, +1), smallest_sign_test_p(3, 0)
    (0.125, 0.25)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if expected_sign == 0:
        return min(1.0, 2.0 ** (1 - n))
    return 2.0 ** -n


def agreement_note(n: int, expected_sign: int) -> str:
    """Return the sentence that a verdict from ``n`` agreeing seeds is not a significance test."""
    sided = "two-sided" if expected_sign == 0 else "one-sided"
    p = smallest_sign_test_p(n, expected_sign)
    return (
        f"this verdict reports that the {n} seeds agree, not statistical significance: "
        f"with {n} seeds the smallest {sided} sign-test p is {p:.3g}"
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
    verdict, finding, n = apply_sign_rule(values, expected_sign)
    if verdict in (SUPPORTED, NOT_SUPPORTED):
        return verdict, f"{finding}; {agreement_note(n, expected_sign)}"
    return verdict, finding


def apply_sign_rule(values: Sequence[float], expected_sign: int) -> tuple[str, str, int]:
    """Return ``(verdict, finding, n)`` by the sign rule, without the agreement note.

    ``n`` counts the finite values. :func:`decide` adds the note; a claim that
    decides several parts at once adds it once for all of them.
    """
    if expected_sign not in (-1, 0, 1):
        raise ValueError(f"expected_sign must be -1, 0 or +1, got {expected_sign!r}")
    stat = SeedStatistic.of(values)
    if stat.n < 2:
        return INCONCLUSIVE, f"only {stat.n} seed(s) with a finite value; at least 2 are needed", stat.n
    if stat.all_zero:
        return INCONCLUSIVE, f"all {stat.n} seeds equal: every value is exactly 0, so no sign is seen", stat.n
    if expected_sign == 0:
        if stat.low > 0 or stat.high < 0:
            return SUPPORTED, f"all {stat.n} seeds differ with the same sign", stat.n
        return INCONCLUSIVE, f"the seeds' range [{stat.low:+.3g}, {stat.high:+.3g}] covers zero", stat.n
    signed_low = min(v * expected_sign for v in stat.values)
    signed_high = max(v * expected_sign for v in stat.values)
    if signed_low > 0:
        return SUPPORTED, f"all {stat.n} seeds have the predicted sign", stat.n
    if signed_high < 0:
        return NOT_SUPPORTED, f"all {stat.n} seeds have the opposite sign", stat.n
    return INCONCLUSIVE, f"the seeds' range [{stat.low:+.3g}, {stat.high:+.3g}] covers zero", stat.n


def combine(verdicts: Sequence[str]) -> str:
    """Combine the verdicts of a claim's parts: any refuted part refutes the claim."""
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


def combine_parts(parts: Sequence[tuple[str, int]], expected_sign: int) -> tuple[str, str]:
    """Combine ``(verdict, n)`` parts decided by :func:`apply_sign_rule`.

    Returns the combined verdict and the agreement note for it, taken from
    the smallest ``n`` among the parts that set it, or ``""`` when the
    combined verdict is inconclusive.
    """
    verdict = combine([part_verdict for part_verdict, _ in parts])
    if verdict not in (SUPPORTED, NOT_SUPPORTED):
        return verdict, ""
    n = min(part_n for part_verdict, part_n in parts if part_verdict == verdict)
    return verdict, agreement_note(n, expected_sign)
