"""Gradient noise scale on linear regression, where G and Sigma have closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from decaylab.torch.noise import (
    GradientNoiseMonitor,
    gradient_noise_scale,
    noise_scale_components,
    sgd_temperature,
)

torch.set_num_threads(2)
DIMENSION = 5
NOISE_STD = 0.5


def half_mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return 0.5 * (outputs.squeeze(-1) - targets).square().mean()


@pytest.fixture(scope="module")
def regression():
    """Gaussian inputs, y = x . w_star + noise, and a model at w = w_star + delta."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(20000, DIMENSION, generator=generator, dtype=torch.float64)
    w_star = torch.randn(DIMENSION, generator=generator, dtype=torch.float64)
    targets = inputs @ w_star + NOISE_STD * torch.randn(
        20000, generator=generator, dtype=torch.float64
    )
    delta = torch.tensor([0.3, -0.2, 0.1, 0.0, 0.25], dtype=torch.float64)
    model = nn.Linear(DIMENSION, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + delta)[None, :])
    return model, inputs, targets, delta


def empirical_moments(model, inputs, targets) -> tuple[float, float]:
    """|G|^2 and tr(Sigma) of the per-example gradients (x . w - y) x of the data set."""
    residuals = (inputs @ model.weight.detach()[0]) - targets
    per_example = residuals[:, None] * inputs
    mean = per_example.mean(dim=0)
    trace = float(per_example.square().sum(dim=1).mean() - mean.square().sum())
    return float(mean.square().sum()), trace


def test_components_invert_expected_norms():
    gradient_sq, trace = 2.5, 40.0
    small, large = 8, 64

    estimate = noise_scale_components(
        gradient_sq + trace / small, gradient_sq + trace / large, small, large
    )

    assert estimate == pytest.approx((gradient_sq, trace), rel=1e-12)
    assert gradient_noise_scale(
        gradient_sq + trace / small, gradient_sq + trace / large, small, large
    ) == pytest.approx(16.0)


def test_noise_scale_nan_without_signal():
    # |G|^2 estimate = (8 * 0.1 - 4 * 1.0) / 4 < 0.
    assert math.isnan(gradient_noise_scale(1.0, 0.1, 4, 8))


def test_monitor_matches_closed_form_moments(regression):
    model, inputs, targets, _ = regression
    expected_gradient_sq, expected_trace = empirical_moments(model, inputs, targets)
    monitor = GradientNoiseMonitor(
        model,
        half_mse,
        inputs,
        targets,
        small_batch_size=16,
        large_batch_size=256,
        every=1,
        ema_decay=0.995,
    )

    for step in range(400):
        row = monitor.after_step(step)

    assert row["grad_sq_norm"] == pytest.approx(expected_gradient_sq, rel=0.1)
    assert row["noise_trace"] == pytest.approx(expected_trace, rel=0.05)
    assert row["noise_scale"] == pytest.approx(expected_trace / expected_gradient_sq, rel=0.15)


def test_dataset_moments_match_gaussian_population(regression):
    model, inputs, targets, delta = regression
    distance_sq = float(delta.square().sum())

    gradient_sq, trace = empirical_moments(model, inputs, targets)

    # For x ~ N(0, I): G = delta and tr(Sigma) = d (|delta|^2 + sigma^2) + |delta|^2.
    assert gradient_sq == pytest.approx(distance_sq, rel=0.1)
    assert trace == pytest.approx(DIMENSION * (distance_sq + NOISE_STD**2) + distance_sq, rel=0.05)


def test_single_pair_is_unbiased(regression):
    model, inputs, targets, _ = regression
    expected_gradient_sq, expected_trace = empirical_moments(model, inputs, targets)
    monitor = GradientNoiseMonitor(
        model, half_mse, inputs, targets, small_batch_size=8, large_batch_size=32
    )

    pairs = [noise_scale_components(*monitor.squared_norms(), 8, 32) for _ in range(600)]
    mean_gradient_sq = sum(pair[0] for pair in pairs) / len(pairs)
    mean_trace = sum(pair[1] for pair in pairs) / len(pairs)

    assert mean_gradient_sq == pytest.approx(expected_gradient_sq, rel=0.2)
    assert mean_trace == pytest.approx(expected_trace, rel=0.05)


def test_monitor_cadence_temperature_and_grad_untouched(regression):
    model, inputs, targets, _ = regression
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    model.weight.grad = torch.full_like(model.weight, 7.0)
    monitor = GradientNoiseMonitor(
        model,
        half_mse,
        inputs,
        targets,
        small_batch_size=4,
        large_batch_size=16,
        every=5,
        optimizer=optimizer,
        train_batch_size=32,
    )

    rows = [monitor.after_step(step) for step in range(11)]

    assert [bool(row) for row in rows] == [True] + [False] * 4 + [True] + [False] * 4 + [True]
    assert rows[0]["temperature"] == pytest.approx(0.2 / 32)
    assert set(rows[0]) == {"noise_scale", "noise_trace", "grad_sq_norm", "temperature"}
    assert torch.equal(model.weight.grad, torch.full_like(model.weight, 7.0))
    model.weight.grad = None


def test_seeded_draws_repeat(regression):
    model, inputs, targets, _ = regression

    def first_row() -> dict[str, float]:
        monitor = GradientNoiseMonitor(
            model, half_mse, inputs, targets, small_batch_size=4, large_batch_size=8, seed=3
        )
        return monitor.measure()

    assert first_row() == first_row()


def test_sgd_temperature():
    assert sgd_temperature(0.5, 128) == pytest.approx(0.00390625)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((1.0, 0.5, 8, 8), "small_batch_size must be < large_batch_size"),
        ((-1.0, 0.5, 4, 8), "sq_norm_small must be a finite number >= 0; got -1.0"),
        ((1.0, math.nan, 4, 8), "sq_norm_large must be a finite number >= 0; got nan"),
        ((1.0, 0.5, 0, 8), "small_batch_size must be an integer >= 1; got 0"),
    ],
)
def test_invalid_estimator_arguments_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        noise_scale_components(*arguments)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"small_batch_size": 4, "large_batch_size": 6}, "multiple of small_batch_size"),
        ({"small_batch_size": 4, "large_batch_size": 4}, "multiple of small_batch_size"),
        (
            {"small_batch_size": 4, "large_batch_size": 8, "every": 0},
            "every must be an integer >= 1; got 0",
        ),
        (
            {"small_batch_size": 4, "large_batch_size": 8, "ema_decay": 1.0},
            r"ema_decay must be a number in \[0, 1\)",
        ),
        (
            {"small_batch_size": 4, "large_batch_size": 8, "train_batch_size": 32},
            "both optimizer and train_batch_size",
        ),
    ],
)
def test_invalid_monitor_options_rejected(options, message, regression):
    model, inputs, targets, _ = regression

    with pytest.raises(ValueError, match=message):
        GradientNoiseMonitor(model, half_mse, inputs, targets, **options)


def test_mismatched_data_rejected(regression):
    model, inputs, targets, _ = regression

    with pytest.raises(ValueError, match="same number"):
        GradientNoiseMonitor(
            model, half_mse, inputs, targets[:10], small_batch_size=2, large_batch_size=4
        )


def test_sgd_temperature_rejects_zero_batch():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1; got 0"):
        sgd_temperature(0.1, 0)
