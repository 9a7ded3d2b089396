"""Framework-free maths of the couplings between a schedule and its optimizer."""

from __future__ import annotations

from decaylab._validation import check_all, real

__all__ = ["stability_threshold", "adam_stability_threshold"]

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
        return (2.0 + 2.0 * beta) / (lr * (1.0 + 2.0 * beta))
    return 2.0 * (1.0 + beta) / lr


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
