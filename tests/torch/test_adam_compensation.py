"""AdamCompensated driven by the Scheduler keeps Adam's update RMS flat from the first step.

With pure-noise gradients and bias correction, Adam's per-coordinate
update RMS starts at ``lr`` and falls to ``sqrt((1 - beta1) / (1 + beta1))
* lr`` (about 0.229 lr for ``beta1 = 0.9``), a shrink of about 4.4x during
the first ~50 updates. ``AdamCompensated`` divides the LR by that
transient, so the RMS should stay at its final value throughout.
"""

from __future__ import annotations

import pytest
import torch

import decaylab as dl
from decaylab.torch import Scheduler

needs_adam_compensated = pytest.mark.skipif(
    not hasattr(dl, "AdamCompensated"),
    reason="decaylab.AdamCompensated is not in the core yet",
)

COORDINATES = 20_000
STEPS = 200
LR = 1e-3
CURVATURE = 1e-3


def update_rms(optimizer_cls, schedule=None, **kwargs):
    """Return the per-coordinate RMS of each update on a noisy quadratic.

    The loss is ``0.5 * CURVATURE * |w|^2`` and each gradient adds unit
    Gaussian noise, so with ``w`` near 0 the gradient is noise-dominated
    (signal-to-noise ratio about 0).
    """
    torch.manual_seed(0)
    torch.set_num_threads(1)
    w = torch.zeros(COORDINATES, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_cls([w], lr=LR, **kwargs)
    scheduler = Scheduler(optimizer, schedule) if schedule is not None else None
    noise = torch.Generator().manual_seed(1)
    rms = []
    for _ in range(STEPS):
        before = w.detach().clone()
        w.grad = CURVATURE * w.detach() + torch.randn(
            COORDINATES, generator=noise, dtype=torch.float64
        )
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        rms.append((w.detach() - before).pow(2).mean().sqrt().item())
    return rms


def final_value(rms):
    return sum(rms[-20:]) / 20


@needs_adam_compensated
@pytest.mark.parametrize(
    "optimizer_cls, kwargs",
    [(torch.optim.Adam, {}), (torch.optim.AdamW, {"weight_decay": 0.01})],
)
def test_compensated_update_rms_flat(optimizer_cls, kwargs):
    constant = dl.StepDecay(initial_lr=LR, gamma=1.0, step_size=1)
    schedule = dl.AdamCompensated(constant, beta1=0.9, beta2=0.999, bias_correction=True, snr=0.0)
    rms = update_rms(optimizer_cls, schedule, betas=(0.9, 0.999), **kwargs)
    final = final_value(rms)
    for step, value in enumerate(rms):
        assert value == pytest.approx(final, rel=0.05), f"update {step}"


@pytest.mark.parametrize(
    "optimizer_cls, kwargs",
    [(torch.optim.Adam, {}), (torch.optim.AdamW, {"weight_decay": 0.01})],
)
def test_constant_lr_update_rms_shrinks(optimizer_cls, kwargs):
    rms = update_rms(optimizer_cls, betas=(0.9, 0.999), **kwargs)
    final = final_value(rms)
    assert rms[0] == pytest.approx(LR, rel=1e-5)
    assert rms[0] / final == pytest.approx((1.9 / 0.1) ** 0.5, rel=0.05)
