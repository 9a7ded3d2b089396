"""Flatness of a trained model: top curvature, Hessian trace and a 1-D loss profile."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from decaylab._validation import InvalidParameterError, check_all, integer, real
from decaylab.torch._monitor import Batch, LossFn, check_batches, eval_mode, trainable_parameters
from decaylab.torch.curvature import (
    DEFAULT_HVP_METHOD,
    HVPMethod,
    hessian_trace,
    top_hessian_eigenvalues,
)

__all__ = ["FlatnessSummary", "flatness_summary"]


@dataclass(frozen=True)
class FlatnessSummary:
    """Flatness measures at one set of weights ``w``.

    ``lambda_max`` is the top Hessian eigenvalue and ``eigenvector`` its
    unit eigenvector ``v`` (trainable parameters, ``model.parameters()``
    order). ``trace`` and ``trace_stderr`` are the Hutchinson estimate of
    the Hessian trace and its standard error. ``losses[i]`` is the loss at
    ``w + alphas[i] * v`` and ``base_loss`` the loss at ``w``. ``n_hvp``
    counts the Hessian-vector products spent.
    """

    lambda_max: float
    eigenvector: torch.Tensor
    trace: float
    trace_stderr: float
    alphas: tuple[float, ...]
    losses: tuple[float, ...]
    base_loss: float
    n_hvp: int

    def to_dict(self) -> dict[str, object]:
        """Return the plain-number fields (the eigenvector left out), for JSON."""
        return {
            "lambda_max": self.lambda_max,
            "trace": self.trace,
            "trace_stderr": self.trace_stderr,
            "alphas": list(self.alphas),
            "losses": list(self.losses),
            "base_loss": self.base_loss,
            "n_hvp": self.n_hvp,
        }


def flatness_summary(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Sequence[Batch],
    *,
    alphas: Sequence[float] | None = None,
    radius: float = 1.0,
    n_points: int = 21,
    tol: float = 1e-4,
    n_probes: int = 100,
    seed: int = 0,
    method: HVPMethod = DEFAULT_HVP_METHOD,
) -> FlatnessSummary:
    """Measure ``lambda_max``, the Hessian trace and the loss along the top eigenvector.

    The loss is the example-weighted batch loss of
    :mod:`decaylab.torch.curvature`, evaluated in eval mode. The profile
    grid is ``alphas`` when given, else ``n_points`` evenly spaced values
    in ``[-radius, radius]`` (parameter-space distance, since ``v`` has unit
    norm). Near a minimum the profile is about ``base_loss + lambda_max *
    alpha**2 / 2``. The weights are restored exactly (copied back) after
    the profile, even when ``loss_fn`` raises.

    >>> model = nn.Linear(2, 1, bias=False).double()
    >>> _ = model.weight.data.zero_()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> loss_fn = lambda out, y: 0.5 * ((out - y) ** 2).sum()
    >>> batches = [(x, torch.zeros(2, 1))]
    >>> summary = flatness_summary(model, loss_fn, batches, alphas=[-1.0, 0.0, 1.0], n_probes=4)
    >>> summary.lambda_max, summary.trace, summary.losses
    (4.0, 5.0, (2.0, 0.0, 2.0))
    """
    grid = _profile_grid(alphas, radius, n_points)
    checked = check_batches(batches, "flatness_summary")
    params = trainable_parameters(model, "flatness_summary")

    eigvals, eigvecs, eigen_hvps = top_hessian_eigenvalues(
        model, loss_fn, checked, k=1, tol=tol, seed=seed, method=method
    )
    trace = hessian_trace(model, loss_fn, checked, n_probes=n_probes, seed=seed, method=method)
    direction = eigvecs[0]

    saved = [p.detach().clone() for p in params]
    losses: list[float] = []
    try:
        with torch.no_grad(), eval_mode(model):
            base_loss = _weighted_loss(model, loss_fn, checked)
            for alpha in grid:
                offset = 0
                for p, original in zip(params, saved):
                    step = direction[offset : offset + p.numel()].view_as(p)
                    p.copy_(original + alpha * step)
                    offset += p.numel()
                losses.append(_weighted_loss(model, loss_fn, checked))
    finally:
        with torch.no_grad():
            for p, original in zip(params, saved):
                p.copy_(original)

    return FlatnessSummary(
        lambda_max=float(eigvals[0]),
        eigenvector=direction,
        trace=trace.estimate,
        trace_stderr=trace.stderr,
        alphas=tuple(grid),
        losses=tuple(losses),
        base_loss=base_loss,
        n_hvp=eigen_hvps + trace.n_hvp,
    )


def _profile_grid(alphas: Sequence[float] | None, radius: float, n_points: int) -> list[float]:
    if alphas is not None:
        grid = [float(alpha) for alpha in alphas]
        if not grid or not all(math.isfinite(alpha) for alpha in grid):
            raise InvalidParameterError(
                "flatness_summary: alphas must be a non-empty list of finite numbers; "
                f"got {list(alphas)}",
                "alphas",
            )
        return grid
    values = check_all(
        "flatness_summary",
        {"radius": real(0.0, low_open=True), "n_points": integer(2)},
        (),
        {"radius": radius, "n_points": n_points},
    )
    return np.linspace(-values["radius"], values["radius"], values["n_points"]).tolist()


def _weighted_loss(model: nn.Module, loss_fn: LossFn, batches: list[Batch]) -> float:
    total = sum(len(inputs) for inputs, _ in batches)
    return sum(
        len(inputs) / total * float(loss_fn(model(inputs), targets)) for inputs, targets in batches
    )
