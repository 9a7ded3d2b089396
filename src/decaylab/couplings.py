"""Framework-free maths of the couplings between a schedule and its optimizer."""

from __future__ import annotations

from decaylab._validation import check_all, real

__all__ = [
    "adam_stability_threshold",
    "compensated_weight_decay",
    "momentum_correction",
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
    """Return ``wd_t = weight_decay * initial_lr / lr``, which holds ``lr * wd`` constant.

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
            "compensated_weight_decay: lr is 0, so no finite weight decay holds lr * wd "
            "constant; give the schedule a min_lr > 0 or use the 'follow' policy"
        )
    return float(values["weight_decay"] * values["initial_lr"] / values["lr"])
