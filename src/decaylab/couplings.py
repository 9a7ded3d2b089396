"""Framework-free maths of the couplings between a schedule and its optimizer."""

from __future__ import annotations

from typing import Any, Union, overload

import numpy as np

from decaylab._adam_moments import (
    ADAM_EXACT_STEPS,
    FloatArray,
    IntArray,
    _check_adam_steps,
    _update_rms,
    settled_steps,
)
from decaylab._validation import Rule, boolean, check_all, real, real_or_inf

__all__ = [
    "ADAM_EXACT_STEPS",
    "ADAM_PARAMETER_RULES",
    "adam_stability_threshold",
    "adam_update_rms",
    "adam_update_rms_limit",
    "compensated_weight_decay",
    "momentum_correction",
    "settled_steps",
    "stability_threshold",
]

_LR = real(0.0, low_open=True)
_BETA = real(0.0, 1.0, high_open=True)


def stability_threshold(lr: float, momentum: float = 0.0, nesterov: bool = False) -> float:
    """Return the largest curvature that gradient descent at ``lr`` keeps stable.

    On a quadratic with curvature ``lambda``, the iteration diverges iff
    ``lambda`` exceeds this threshold:

    - plain gradient descent: ``2 / lr``;
    - heavy-ball momentum ``beta`` in PyTorch's convention
      (``b <- beta b + g; w <- w - lr b``): ``2 (1 + beta) / lr``;
    - Nesterov momentum: ``(2 + 2 beta) / (lr (1 + 2 beta))``.

    >>> stability_threshold(0.1)
    20.0
    >>> stability_threshold(0.1, momentum=0.9)
    38.0
    >>> round(stability_threshold(0.1, momentum=0.9, nesterov=True), 6)
    13.571429
    """
    values = check_all(
        "stability_threshold", {"lr": _LR, "momentum": _BETA}, (), {"lr": lr, "momentum": momentum}
    )
    lr, beta = values["lr"], values["momentum"]
    if nesterov:
        return float((2.0 + 2.0 * beta) / (lr * (1.0 + 2.0 * beta)))
    return float(2.0 * (1.0 + beta) / lr)


def adam_stability_threshold(lr: float, beta1: float = 0.9) -> float:
    """Return the ceiling ``(2 + 2 beta1) / ((1 - beta1) lr)`` for Adam.

    It bounds the *preconditioned* sharpness ``lambda_max(P^-1 H)``, with
    ``P = diag(sqrt(v_hat) + eps)`` from Adam's second-moment estimate: the
    stability limit of heavy-ball momentum in Adam's exponential-average
    form, which Adam's preconditioned sharpness settles near (Cohen et al.,
    2022, "Adaptive gradient methods at the edge of stability").

    >>> round(adam_stability_threshold(0.001), 6)
    38000.0
    """
    values = check_all(
        "adam_stability_threshold", {"lr": _LR, "beta1": _BETA}, (), {"lr": lr, "beta1": beta1}
    )
    lr, beta1 = values["lr"], values["beta1"]
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)


def momentum_correction(momentum: float, lr: float, previous_lr: float) -> float:
    """Return the momentum ``beta' = beta * lr / previous_lr`` for the update where the LR changed.

    In the velocity form ``v <- beta v + lr g; w <- w - v`` the buffer
    carries the old LR. Scaling it by ``lr / previous_lr`` on the changing
    update makes the trajectory equal PyTorch's form ``b <- beta b + g;
    w <- w - lr b``. A ``previous_lr`` of 0 leaves an empty buffer, so the
    factor is ``beta`` itself.

    >>> momentum_correction(0.9, 0.01, 0.1)
    0.09000000000000001
    """
    values = check_all(
        "momentum_correction",
        {"momentum": _BETA, "lr": real(0.0), "previous_lr": real(0.0)},
        (),
        {"momentum": momentum, "lr": lr, "previous_lr": previous_lr},
    )
    if values["previous_lr"] == 0.0:
        return float(values["momentum"])
    return float(values["momentum"] * values["lr"] / values["previous_lr"])


def compensated_weight_decay(weight_decay: float, initial_lr: float, lr: float) -> float:
    """Return ``wd_t = weight_decay * initial_lr / lr``, which keeps ``lr * wd`` constant.

    Decoupled weight decay shrinks weights by ``lr_t * wd`` per update, so
    under a decaying schedule the shrinkage falls with the LR. Scheduling
    ``wd`` inversely to the LR keeps it at ``initial_lr * weight_decay``.
    Raises ``ValueError`` when ``lr`` is 0, where no finite ``wd`` does it.

    >>> compensated_weight_decay(0.01, 0.1, 0.025)
    0.04
    """
    values = check_all(
        "compensated_weight_decay",
        {"weight_decay": real(0.0), "initial_lr": real(0.0), "lr": real(0.0)},
        (),
        {"weight_decay": weight_decay, "initial_lr": initial_lr, "lr": lr},
    )
    if values["lr"] == 0.0:
        raise ValueError(
            "compensated_weight_decay: lr is 0, so no finite weight decay keeps lr * wd "
            "constant; give the schedule a min_lr > 0 or use the 'follow' policy"
        )
    return float(values["weight_decay"] * values["initial_lr"] / values["lr"])


# -- Adam's update RMS ---------------------------------------------------------
# The moment arithmetic and its derivation are in decaylab._adam_moments.

ADAM_PARAMETER_RULES: dict[str, Rule] = {
    "beta1": _BETA,
    "beta2": _BETA,
    "bias_correction": boolean(),
    "snr": real_or_inf(0.0),
    "eps": real(0.0),
}

@overload
def adam_update_rms(
    t: int | np.integer[Any],
    beta1: float = ...,
    beta2: float = ...,
    bias_correction: bool = ...,
    snr: float = ...,
    eps: float = ...,
) -> float: ...


@overload
def adam_update_rms(
    t: IntArray,
    beta1: float = ...,
    beta2: float = ...,
    bias_correction: bool = ...,
    snr: float = ...,
    eps: float = ...,
) -> FloatArray: ...


def adam_update_rms(
    t: Union[int, np.integer[Any], IntArray],
    beta1: float = 0.9,
    beta2: float = 0.999,
    bias_correction: bool = True,
    snr: float = 0.0,
    eps: float = 0.0,
) -> Union[float, FloatArray]:
    """Compute the RMS of one coordinate of Adam's update at step ``t``, in units of lr.

    The update is ``m_hat / (sqrt(v_hat) + eps)`` (``m`` and ``v`` without
    the ``1 - beta**t`` division when ``bias_correction`` is false). The
    gradients are i.i.d. Gaussian with ``mean / std = snr`` (``snr=inf``: a
    constant gradient), and ``eps`` is measured in units of the gradient
    RMS ``sqrt(mean**2 + std**2)``. The value is ``sqrt(E[update**2])``:

    - constant gradient: exact, ``(1 - beta1**t) / (sqrt(1 - beta2**t) + eps)``
      without bias correction and ``1 / (1 + eps)`` with it;
    - random gradient, ``t <= ADAM_EXACT_STEPS`` (16384 when
      ``beta2 < 0.98``) or ``beta1**t`` and ``beta2**t`` below ``2**-60``
      (then the value is the limit): exact, from
      ``E[m**2 / v] = integral over s > 0 of E[m**2 exp(-s v)]``, whose
      integrand is a product of one-dimensional Gaussian expectations in
      closed form, by the trapezoid rule in ``ln s`` (relative error below
      1e-8);
    - random gradient, later steps: the ratio ``E[m**2] / E[v]`` with the
      second-order delta-method terms ``- Cov(m**2, v) / E[v]**2 +
      E[m**2] Var(v) / E[v]**3``, all from exact Gaussian moments. At
      ``beta2 = 0.999`` it is within 2e-5 of the exact value from ``t = 200``
      on, so the hand-over at step 1025 is smooth to that level. Over
      ``beta2`` in [0.98, 0.9999] the largest measured error is 6e-4.

    The plain ratio ``sqrt(E[m**2] / E[v])`` misses by up to 5 % at
    ``snr = 0.5``, ``t = 5``, because ``m`` and ``v`` are then strongly
    correlated. The pure-noise ratio
    ``sqrt((1 - beta1)(1 + beta1**t) / ((1 + beta1)(1 - beta1**t)))`` with
    bias correction stays within 5e-4 of the exact value.

    ``beta2 = 0`` with ``beta1 > 0`` and a finite ``snr`` has an infinite
    RMS at ``eps = 0``, because ``v = g_t**2`` can be near 0 while ``m``
    still contains older gradients. The result is ``inf`` from ``t = 2`` on.

    ``t`` is an integer >= 1 or an integer numpy array (elementwise).
    Raises ``ValueError``/``TypeError`` naming the invalid parameter.

    >>> round(adam_update_rms(1), 6), round(adam_update_rms(2), 3), round(adam_update_rms(10), 3)
    (1.0, 0.708, 0.33)
    >>> round(adam_update_rms(12, bias_correction=False, snr=float("inf")), 2)
    6.57
    >>> adam_update_rms(np.array([1, 1000]), snr=float("inf"))
    array([1., 1.])
    """
    params = check_all(
        "adam_update_rms",
        ADAM_PARAMETER_RULES,
        (),
        {"beta1": beta1, "beta2": beta2, "bias_correction": bias_correction, "snr": snr, "eps": eps},
    )
    steps, scalar = _check_adam_steps(t)
    if steps.size == 0:
        return np.zeros(np.shape(t))
    values = _update_rms(steps.astype(np.float64), **params)
    return float(values[0]) if scalar else values.reshape(np.shape(t))


def adam_update_rms_limit(
    beta1: float = 0.9, beta2: float = 0.999, snr: float = 0.0, eps: float = 0.0
) -> float:
    """Compute ``adam_update_rms(t)`` as ``t`` grows without bound.

    Bias correction no longer matters there. The value is
    ``adam_update_rms(settled_steps(beta1, beta2))``: exact for ``snr=inf``
    or when that step is within the exact range of :func:`adam_update_rms`,
    and the delta-method value otherwise.

    >>> round(adam_update_rms_limit(), 4), adam_update_rms_limit(snr=float("inf"))
    (0.2294, 1.0)
    """
    params = check_all(
        "adam_update_rms_limit",
        {name: ADAM_PARAMETER_RULES[name] for name in ("beta1", "beta2", "snr", "eps")},
        (),
        {"beta1": beta1, "beta2": beta2, "snr": snr, "eps": eps},
    )
    settled = float(settled_steps(params["beta1"], params["beta2"]))
    return float(_update_rms(np.array([settled]), bias_correction=True, **params)[0])
