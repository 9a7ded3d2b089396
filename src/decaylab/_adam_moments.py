"""Moments of Adam's update under i.i.d. Gaussian gradients.

The private arithmetic behind :func:`decaylab.adam_update_rms`: an exact
integral for ``E[m**2 / v]`` over the first steps and a second-order delta
method after them.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Adam with gradients g_1, g_2, ... keeps m_t = beta1 m_{t-1} + (1 - beta1) g_t
# and v_t = beta2 v_{t-1} + (1 - beta2) g_t**2 from m_0 = v_0 = 0, so
#
#     m_t = sum_k a_k g_{t-k},  a_k = (1 - beta1) beta1**k,
#     v_t = sum_k w_k g_{t-k}**2,  w_k = (1 - beta2) beta2**k,  k = 0 .. t-1.
#
# With eps = 0 the update m_hat / sqrt(v_hat) does not depend on the gradient
# scale, so the maths below uses gradients normalised to E[g**2] = 1:
# mean**2 = snr**2 / (1 + snr**2), variance = 1 / (1 + snr**2).

ADAM_EXACT_STEPS = 1024
"""Adam steps up to which :func:`adam_update_rms` integrates ``E[m**2 / v]`` exactly."""

# The delta method needs a concentrated v. From beta2 = 0.98 on, its measured error
# past step 1024 is at most 6e-4 (beta1 in {0, 0.5, 0.9, 0.99}, snr in {0, 0.5, 1, 2}).
_DELTA_MIN_BETA2 = 0.98
_EXACT_STEPS_SMALL_BETA2 = 16384
_QUADRATURE_NODES_PER_UNIT = 8  # trapezoid nodes per unit of ln(s)
_QUADRATURE_CHUNK = 64  # s nodes per block, which bounds memory at 64 x steps floats
_SETTLED_POWER = 2.0**-60  # beta**t below this changes no double-precision value


IntArray = NDArray[np.integer[Any]]
FloatArray = NDArray[np.float64]


def settled_steps(beta1: float, beta2: float) -> int:
    """Return the first Adam step from which ``beta1**t`` and ``beta2**t`` are below ``2**-60``.

    From that step on every quantity of the model equals its limit to double
    precision.

    >>> settled_steps(0.9, 0.999)
    41569
    """
    largest = max(beta1, beta2)
    if largest == 0.0:
        return 1
    return max(1, math.ceil(math.log(_SETTLED_POWER) / math.log(largest)))


def _check_adam_steps(t: Any) -> tuple[IntArray, bool]:
    """Return ``t`` as an int64 array and whether it was a scalar, raising on invalid steps."""
    if isinstance(t, np.ndarray):
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
            raise TypeError(
                f"adam_update_rms: t must be an integer Adam step >= 1 or an integer array; "
                f"got an array of dtype {t.dtype}"
            )
        steps = t.astype(np.int64).ravel()
        if steps.size and steps.min() < 1:
            raise ValueError(
                f"adam_update_rms: t must contain Adam steps >= 1 (the first update is "
                f"step 1); got {int(steps.min())}"
            )
        return steps, False
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(
            f"adam_update_rms: t must be an integer Adam step >= 1; got {t!r} of type "
            f"{type(t).__name__}"
        )
    if t < 1:
        raise ValueError(
            f"adam_update_rms: t must be an integer Adam step >= 1 (the first update is "
            f"step 1); got {t!r}"
        )
    return np.array([int(t)], dtype=np.int64), True


def _update_rms(
    t: FloatArray, beta1: float, beta2: float, bias_correction: bool, snr: float, eps: float
) -> FloatArray:
    """RMS of the update at checked float steps ``t`` (a 1-D array)."""
    grows_m = 1.0 - _powers(beta1, t)
    grows_v = 1.0 - _powers(beta2, t)
    mean_v_hat = np.ones_like(t) if bias_correction else grows_v

    if math.isinf(snr):
        rms_without_eps = np.ones_like(t) if bias_correction else grows_m / np.sqrt(grows_v)
    elif beta2 == 0.0 and beta1 > 0.0:
        if eps > 0.0:
            raise ValueError(
                "adam_update_rms: beta2=0 with beta1 > 0 and eps > 0 is not modelled; "
                f"got beta1={beta1!r}, beta2=0.0, eps={eps!r}. Use eps=0 (the RMS is then "
                "infinite) or beta2 > 0"
            )
        rms_without_eps = np.where(t == 1.0, 1.0 if bias_correction else 1.0 - beta1, math.inf)
    else:
        second_moment = _ratio_second_moment(t, beta1, beta2, snr)
        if bias_correction:
            second_moment = second_moment * grows_v / grows_m**2
        rms_without_eps = np.sqrt(second_moment)

    if eps == 0.0:
        return rms_without_eps
    # NOTE: for a random gradient, eps > 0 scales the eps = 0 value by
    # sqrt(E[v_hat]) / (sqrt(E[v_hat]) + eps). Against Monte Carlo this misses by up
    # to 17 % at t = 1 for eps in [0.01, 1]; weighting the s-integral by the Laplace
    # kernel of (sqrt(v) + eps)**-2 would make it exact.
    root = np.sqrt(mean_v_hat)
    return rms_without_eps * root / (root + eps)


def _powers(beta: float, t: FloatArray) -> FloatArray:
    """``beta**t`` for steps ``t >= 1``, without warnings on underflow or ``beta = 0``."""
    if beta == 0.0:
        return np.zeros_like(t)
    with np.errstate(under="ignore"):
        return np.exp(t * math.log(beta))


def _ratio_second_moment(t: FloatArray, beta1: float, beta2: float, snr: float) -> FloatArray:
    """``E[m_t**2 / v_t]`` (no bias correction) for a random gradient, ``beta2 > 0``."""
    settled = settled_steps(beta1, beta2)
    if beta2 >= _DELTA_MIN_BETA2:
        exact_until = min(settled, ADAM_EXACT_STEPS)
    else:
        # NOTE: past 16384 steps (beta1 > 0.9974 with beta2 < 0.98) the delta method
        # is used although v is not concentrated, so the value is an estimate.
        exact_until = min(settled, _EXACT_STEPS_SMALL_BETA2)
    table = _exact_second_moments(int(min(t.max(), exact_until)), beta1, beta2, snr)

    inside = t <= exact_until
    out = np.empty_like(t)
    out[inside] = table[t[inside].astype(np.int64) - 1]
    later = ~inside
    if exact_until == settled:
        out[later] = table[-1]
    elif later.any():
        out[later] = _delta_second_moment(t[later], beta1, beta2, snr)
    return out


def _moments(snr: float) -> tuple[float, float]:
    """Return ``(mean**2, variance)`` of a gradient with ``E[g**2] = 1`` and ``mean / std = snr``."""
    if snr <= 1.0:
        variance = 1.0 / (1.0 + snr * snr)
        return snr * snr * variance, variance
    inverse = 1.0 / snr
    variance = inverse * inverse / (1.0 + inverse * inverse)
    return 1.0 / (1.0 + inverse * inverse), variance


@lru_cache(maxsize=64)
def _exact_second_moments(steps: int, beta1: float, beta2: float, snr: float) -> FloatArray:
    """``E[m_t**2 / v_t]`` for ``t = 1 .. steps``, exact up to quadrature error.

    ``1 / v = integral of exp(-s v) ds`` over ``s > 0``. With independent
    gradients ``E[m**2 exp(-s v)]`` factorises over the steps: for
    ``g ~ N(mu, sigma**2)`` and ``c = s w`` (``q = 1 / (1 + 2 c sigma**2)``),
    ``E[exp(-c g**2)] = sqrt(q) exp(-c mu**2 q)``, and relative to it
    ``E[g exp(-c g**2)]`` is ``mu q`` and ``E[g**2 exp(-c g**2)]`` is
    ``sigma**2 q + mu**2 q**2``. The sums over steps are prefix sums over the
    age ``k``, so one pass gives every ``t``.
    """
    mean_sq, variance = _moments(snr)
    ages = np.arange(steps, dtype=np.float64)
    a = (1.0 - beta1) * _powers_from_zero(beta1, ages)
    w = (1.0 - beta2) * _powers_from_zero(beta2, ages)

    # s * E[v] spans [e**-40, e**40] with E[v] in [w_0, 1]; the upper end also
    # covers the s**(-(t + 2) / 2) tail of t = 2, whose scale is 1 / sqrt(w_0 w_1).
    low = -40.0
    high = 40.0 - math.log(w[0]) - min(2.0 * math.log(beta2), 0.0) if steps > 1 else 40.0
    high = min(high, 40.0 - math.log(w[0]) + 60.0)
    spacing = 1.0 / _QUADRATURE_NODES_PER_UNIT
    log_s = np.arange(low, high + spacing, spacing)

    integral = np.zeros(steps)
    for start in range(0, log_s.size, _QUADRATURE_CHUNK):
        s = np.exp(log_s[start : start + _QUADRATURE_CHUNK])[:, None]
        c = s * w[None, :]
        q = 1.0 / (1.0 + 2.0 * c * variance)
        log_phi = 0.5 * np.log(q) - c * mean_sq * q
        first = math.sqrt(mean_sq) * q
        second = variance * q + mean_sq * q * q

        log_product = np.cumsum(log_phi, axis=1)
        squares = np.cumsum(a * a * second, axis=1)
        linear = np.cumsum(a * first, axis=1)
        linear_squares = np.cumsum(a * a * first * first, axis=1)
        with np.errstate(under="ignore"):
            integrand = np.exp(log_product) * (squares + linear * linear - linear_squares)
        integral += (s * integrand).sum(axis=0) * spacing

    # t = 1 in closed form: m**2 / v = a_0**2 / w_0 for every nonzero gradient.
    integral[0] = a[0] * a[0] / w[0]
    integral.setflags(write=False)
    return integral


def _powers_from_zero(beta: float, ages: FloatArray) -> FloatArray:
    """``beta**k`` for ``k = 0, 1, ...`` with ``0**0 = 1``."""
    out = np.zeros_like(ages)
    out[0] = 1.0
    if beta > 0.0:
        with np.errstate(under="ignore"):
            out[1:] = np.exp(ages[1:] * math.log(beta))
    return out


def _delta_second_moment(t: FloatArray, beta1: float, beta2: float, snr: float) -> FloatArray:
    """``E[m**2 / v]`` by the second-order delta method with exact Gaussian moments.

    ``E[X / Y] ~ E[X] / E[Y] - Cov(X, Y) / E[Y]**2 + E[X] Var(Y) / E[Y]**3``
    with ``X = m**2``, ``Y = v``. With ``A = sum a_k = 1 - beta1**t``,
    ``Var(g**2) = 2 sigma**4 + 4 mu**2 sigma**2`` and ``Cov(g, g**2) = 2 mu sigma**2``:
    ``Var(v) = Var(g**2) sum w_k**2`` and
    ``Cov(m**2, v) = sum_k w_k (a_k**2 Var(g**2) + 4 mu**2 sigma**2 a_k (A - a_k))``.
    """
    mean_sq, variance = _moments(snr)
    total_a = 1.0 - _powers(beta1, t)
    mean_m_sq = mean_sq * total_a**2 + variance * (1.0 - beta1) * (
        1.0 - _powers(beta1 * beta1, t)
    ) / (1.0 + beta1)
    mean_v = 1.0 - _powers(beta2, t)

    var_g_sq = 2.0 * variance * variance + 4.0 * mean_sq * variance
    sum_ww = _weighted_sum((1.0 - beta2) ** 2, beta2 * beta2, t)
    sum_waa = _weighted_sum((1.0 - beta2) * (1.0 - beta1) ** 2, beta2 * beta1 * beta1, t)
    sum_wa = _weighted_sum((1.0 - beta2) * (1.0 - beta1), beta2 * beta1, t)
    var_v = var_g_sq * sum_ww
    cov = var_g_sq * sum_waa + 4.0 * mean_sq * variance * (total_a * sum_wa - sum_waa)
    result: FloatArray = mean_m_sq / mean_v - cov / mean_v**2 + mean_m_sq * var_v / mean_v**3
    return result


def _weighted_sum(scale: float, ratio: float, t: FloatArray) -> FloatArray:
    """``scale * sum_{k < t} ratio**k`` for ``0 <= ratio < 1``."""
    return scale * (1.0 - _powers(ratio, t)) / (1.0 - ratio)
