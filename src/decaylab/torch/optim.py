"""VelocitySGD: momentum SGD with the LR inside the buffer, and momentum correction.

PyTorch's SGD keeps the LR outside its buffer ``b``::

    g' = g + wd * w
    b_1 = g'                      (first update: no dampening)
    b_t = beta * b_{t-1} + (1 - dampening) * g'
    w  <- w - lr_t * b_t                       (Nesterov: w - lr_t * (g' + beta * b_t))

This optimizer keeps the velocity ``v_t = lr_t * b_t`` instead, as Keras,
Caffe and MXNet do. Substituting gives the rule it runs::

    v_1 = lr_0 * g'
    v_t = beta' * v_{t-1} + (1 - dampening) * lr_t * g'
    w  <- w - v_t                              (Nesterov: w - lr_t * g' - beta * v_t)

with ``beta' = beta * lr_t / lr_{t-1}``. With ``momentum_correction=True``
that factor is used on every update where the LR changed (``beta`` itself
otherwise), so the trajectory equals ``torch.optim.SGD``'s under any
schedule, up to rounding. With ``False``, ``beta' = beta`` always and the
velocity still carries the old LR for about ``1 / (1 - beta)`` updates
after a drop, which overshoots.

Each parameter's state contains ``momentum_buffer`` (the velocity) and
``velocity_lr``, the LR the velocity was last scaled with, so a parameter
that skipped updates (no gradient) is corrected by its own ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Union

import torch
from torch.optim import Optimizer

from decaylab._validation import check_all, real

__all__ = ["VelocitySGD"]

Params = Union[Iterable[torch.Tensor], Iterable[dict[str, Any]]]

_RULES = {
    "lr": real(0.0),
    "momentum": real(0.0, 1.0, high_open=True),
    "dampening": real(0.0, 1.0),
    "weight_decay": real(0.0),
}


class VelocitySGD(Optimizer):
    """SGD with momentum in velocity form: ``v <- beta' v + lr (g + wd w); w <- w - v``.

    ``momentum_correction=True`` rescales the velocity by ``lr_t /
    lr_{t-1}`` on updates where the LR changed, which makes the
    trajectory equal ``torch.optim.SGD``'s with the same arguments. The
    exception is an LR of exactly 0: the velocity is then 0 while SGD's
    buffer still accumulates gradients, so the two differ once the LR
    becomes positive again (the velocity restarts from 0).

    >>> import torch
    >>> w = torch.zeros(1, requires_grad=True)
    >>> opt = VelocitySGD([w], lr=0.1, momentum=0.9)
    >>> for lr in (0.1, 0.01):
    ...     opt.param_groups[0]["lr"] = lr
    ...     w.grad = torch.ones(1)
    ...     opt.step()
    >>> round(w.item(), 6)
    -0.119
    """

    def __init__(
        self,
        params: Params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        momentum_correction: bool = True,
    ) -> None:
        values = check_all(
            "VelocitySGD",
            _RULES,
            (),
            {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay},
        )
        for name, flag in (("nesterov", nesterov), ("momentum_correction", momentum_correction)):
            if not isinstance(flag, bool):
                raise TypeError(f"VelocitySGD: {name} must be a bool; got {flag!r}")
        if nesterov and (values["momentum"] <= 0.0 or values["dampening"] != 0.0):
            raise ValueError(
                "VelocitySGD: nesterov=True needs momentum > 0 and dampening == 0, as in "
                f"torch.optim.SGD; got momentum={momentum!r}, dampening={dampening!r}"
            )
        defaults = dict(values, nesterov=nesterov, momentum_correction=momentum_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update; ``closure`` re-evaluates the loss, as in torch.optim.SGD."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        lr = float(group["lr"])
        grads: list[torch.Tensor] = [p.grad for p in params if p.grad is not None]
        if group["weight_decay"] != 0.0:
            grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))

        beta = group["momentum"]
        if beta == 0.0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return

        velocities = self._advance_velocities(group, params, grads, lr)
        if group["nesterov"]:
            torch._foreach_add_(params, grads, alpha=-lr)
            torch._foreach_add_(params, velocities, alpha=-beta)
        else:
            torch._foreach_sub_(params, velocities)

    def _advance_velocities(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        lr: float,
    ) -> list[torch.Tensor]:
        """Update each velocity in place and return them, in ``params`` order."""
        beta = group["momentum"]
        continuing: list[torch.Tensor] = []
        continuing_grads: list[torch.Tensor] = []
        factors: list[float] = []
        velocities: list[torch.Tensor] = []
        for param, grad in zip(params, grads):
            state = self.state[param]
            velocity = state.get("momentum_buffer")
            if velocity is None:
                # First update: SGD's buffer is g' without dampening, so v = lr * g'.
                velocity = torch.mul(grad, lr).detach()
                state["momentum_buffer"] = velocity
            else:
                continuing.append(velocity)
                continuing_grads.append(grad)
                factors.append(_momentum_factor(group, beta, lr, state["velocity_lr"]))
            state["velocity_lr"] = lr
            velocities.append(velocity)

        if continuing:
            if all(factor == factors[0] for factor in factors):
                torch._foreach_mul_(continuing, factors[0])
            else:
                torch._foreach_mul_(continuing, factors)
            torch._foreach_add_(continuing, continuing_grads, alpha=(1.0 - group["dampening"]) * lr)
        return velocities


def _momentum_factor(group: dict[str, Any], beta: float, lr: float, previous_lr: float) -> float:
    """Return ``beta' = beta * lr / previous_lr`` when corrected and the LR changed, else ``beta``.

    A ``previous_lr`` of 0 left a zero velocity, so ``beta`` is used, as
    :func:`decaylab.momentum_correction` does.
    """
    # NOTE: after an LR of exactly 0 this differs from torch.optim.SGD, whose buffer
    # kept the gradients seen at lr 0; matching it would need SGD's buffer stored too.
    if not group["momentum_correction"] or lr == previous_lr or previous_lr == 0.0:
        return float(beta)
    return float(beta * lr / previous_lr)
