"""flatness_summary on exact quadratics and a digits MLP."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from decaylab.torch.flatness import FlatnessSummary, flatness_summary

torch.set_num_threads(2)


def test_quadratic_profile_is_exact_parabola(make_quadratic):
    diagonal = torch.tensor([3.0, 1.0, -0.5, 0.25], dtype=torch.float64)
    matrix = torch.diag(diagonal)
    model, loss_fn, batches = make_quadratic(matrix)
    weight = model.weight.detach().clone()

    summary = flatness_summary(
        model, loss_fn, batches, radius=2.0, n_points=9, tol=1e-10, n_probes=8
    )

    v = summary.eigenvector
    slope = float(v @ matrix @ weight)
    base = float(0.5 * weight @ matrix @ weight)
    assert summary.lambda_max == pytest.approx(3.0, rel=1e-10)
    assert summary.trace == pytest.approx(3.75, rel=1e-12)
    assert summary.base_loss == pytest.approx(base, rel=1e-12)
    assert summary.alphas == pytest.approx([-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0])
    for alpha, loss in zip(summary.alphas, summary.losses):
        assert loss == pytest.approx(base + alpha * slope + 0.5 * 3.0 * alpha**2, rel=1e-10)


def test_weights_and_mode_restored(tanh_mlp, digits_batches):
    tanh_mlp.train()
    before = [p.detach().clone() for p in tanh_mlp.parameters()]

    summary = flatness_summary(
        tanh_mlp, nn.functional.cross_entropy, digits_batches, n_points=5, n_probes=4
    )

    assert all(torch.equal(p, b) for p, b in zip(tanh_mlp.parameters(), before))
    assert tanh_mlp.training
    assert summary.losses[2] == pytest.approx(summary.base_loss, rel=1e-12)
    assert summary.n_hvp >= 4 + 1


def test_weights_restored_when_loss_raises(make_quadratic):
    model, loss_fn, batches = make_quadratic(torch.eye(3, dtype=torch.float64))
    before = model.weight.detach().clone()
    calls = {"count": 0}

    def failing_loss(weight, targets):
        calls["count"] += 1
        if not torch.is_grad_enabled() and calls["count"] > 3:
            raise RuntimeError("loss failed")
        return loss_fn(weight, targets)

    with pytest.raises(RuntimeError, match="loss failed"):
        flatness_summary(model, failing_loss, batches, alphas=[0.5, 1.0, 2.0], n_probes=2)

    assert torch.equal(model.weight.detach(), before)


def test_trained_mlp_profile_is_lowest_near_zero(make_tanh_mlp, digits_batches):
    model = make_tanh_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    inputs = torch.cat([x for x, _ in digits_batches])
    targets = torch.cat([y for _, y in digits_batches])
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()

    summary = flatness_summary(
        model, nn.functional.cross_entropy, digits_batches, radius=0.1, n_points=5
    )

    # Near a minimum, L(w + a v) - L(w) is about lambda_max a^2 / 2 along the top direction.
    rise = [loss - summary.base_loss for loss in summary.losses]
    expected = [0.5 * summary.lambda_max * alpha**2 for alpha in summary.alphas]
    assert rise[0] == pytest.approx(expected[0], rel=0.2)
    assert rise[-1] == pytest.approx(expected[-1], rel=0.2)
    assert summary.trace > summary.lambda_max


def test_to_dict_is_plain_numbers(make_quadratic):
    model, loss_fn, batches = make_quadratic(torch.eye(2, dtype=torch.float64))

    summary = flatness_summary(model, loss_fn, batches, n_points=3, n_probes=2)
    data = summary.to_dict()

    assert isinstance(summary, FlatnessSummary)
    assert set(data) == {
        "lambda_max",
        "trace",
        "trace_stderr",
        "alphas",
        "losses",
        "base_loss",
        "n_hvp",
    }
    assert data["losses"] == list(summary.losses)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alphas": []}, "alphas must be a non-empty list of finite numbers"),
        ({"alphas": [0.0, math.nan]}, "alphas must be a non-empty list of finite numbers"),
        ({"radius": 0.0}, "radius must be a finite number > 0; got 0.0"),
        ({"n_points": 1}, "n_points must be an integer >= 2; got 1"),
        ({"tol": -1.0}, "tol must be a finite number > 0"),
    ],
)
def test_invalid_options_rejected(options, message, make_quadratic):
    model, loss_fn, batches = make_quadratic(torch.eye(2, dtype=torch.float64))

    with pytest.raises(ValueError, match=message):
        flatness_summary(model, loss_fn, batches, **options)


def test_empty_batches_rejected(make_quadratic):
    model, loss_fn, _ = make_quadratic(torch.eye(2, dtype=torch.float64))

    with pytest.raises(ValueError, match="batches is empty"):
        flatness_summary(model, loss_fn, [])
