"""StepMonitor: displacement against brute-force copies, step ratios, drops and overshoot."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from decaylab.torch._monitor import Monitor
from decaylab.torch.monitors import StepMonitor
from decaylab.torch.optim import VelocitySGD

torch.set_num_threads(2)
cross_entropy = nn.functional.cross_entropy

OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.1),
    "sgd-weight-decay": lambda params: torch.optim.SGD(params, lr=0.1, weight_decay=0.01),
    "momentum": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    "momentum-weight-decay": lambda params: torch.optim.SGD(
        params, lr=0.1, momentum=0.9, weight_decay=0.01
    ),
    "momentum-dampening": lambda params: torch.optim.SGD(
        params, lr=0.1, momentum=0.9, dampening=0.3
    ),
    "nesterov": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True),
    "nesterov-weight-decay": lambda params: torch.optim.SGD(
        params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "sgd-foreach-off": lambda params: torch.optim.SGD(
        params, lr=0.1, momentum=0.9, nesterov=True, foreach=False
    ),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01),
    "adam-weight-decay": lambda params: torch.optim.Adam(params, lr=0.01, weight_decay=0.01),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1),
    "rmsprop": lambda params: torch.optim.RMSprop(params, lr=0.01, momentum=0.5),
    "velocity": lambda params: VelocitySGD(params, lr=0.1, momentum=0.9, weight_decay=0.01),
    "velocity-uncorrected": lambda params: VelocitySGD(
        params, lr=0.1, momentum=0.9, momentum_correction=False
    ),
    "velocity-nesterov": lambda params: VelocitySGD(params, lr=0.1, momentum=0.9, nesterov=True),
    "velocity-plain": lambda params: VelocitySGD(params, lr=0.1),
}


def run_steps(model, optimizer, monitor, batches, steps, lr_at=None):
    """Train with the monitor protocol; return rows and brute-force displacements."""
    rows, brute = [], []
    for step in range(steps):
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
        inputs, targets = batches[step % len(batches)]
        optimizer.zero_grad()
        cross_entropy(model(inputs), targets).backward()
        before = [p.detach().clone() for p in model.parameters()]
        monitor.before_step(step)
        optimizer.step()
        rows.append(monitor.after_step(step))
        brute.append(
            math.sqrt(
                sum(
                    float((p.detach() - b).square().sum())
                    for p, b in zip(model.parameters(), before)
                )
            )
        )
    return rows, brute


def linear_problem(dimension: int = 3):
    """A weight vector with loss g . w, so the gradient is the constant g."""
    weight = nn.Parameter(torch.zeros(dimension, dtype=torch.float64))
    gradient = torch.arange(1.0, dimension + 1.0, dtype=torch.float64)
    return weight, gradient


def linear_steps(weight, gradient, optimizer, monitor, lrs):
    rows = []
    for step, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        (gradient @ weight).backward()
        monitor.before_step(step)
        optimizer.step()
        rows.append(monitor.after_step(step))
    return rows


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("method", ["auto", "snapshot"])
def test_displacement_equals_brute_force(name, method, tanh_mlp, digits_batches):
    optimizer = OPTIMIZERS[name](tanh_mlp.parameters())
    monitor = StepMonitor(tanh_mlp, optimizer, method=method)

    rows, brute = run_steps(tanh_mlp, optimizer, monitor, digits_batches, 6)

    for row, expected in zip(rows, brute):
        assert row["displacement"] == pytest.approx(expected, rel=1e-10)
        assert row["displacement_g0"] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", ["momentum", "velocity", "velocity-uncorrected", "adamw"])
def test_displacement_exact_across_lr_drops(name, tanh_mlp, digits_batches):
    optimizer = OPTIMIZERS[name](tanh_mlp.parameters())
    monitor = StepMonitor(tanh_mlp, optimizer)

    rows, brute = run_steps(
        tanh_mlp, optimizer, monitor, digits_batches, 8, lr_at=lambda t: 0.1 * 0.5 ** (t // 3)
    )

    assert [row["displacement"] for row in rows] == pytest.approx(brute, rel=1e-10)
    assert [row["lr"] for row in rows] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]


def test_plain_sgd_step_ratio_is_one(tanh_mlp, digits_batches):
    optimizer = torch.optim.SGD(tanh_mlp.parameters(), lr=0.3)
    monitor = StepMonitor(tanh_mlp, optimizer)

    rows, _ = run_steps(tanh_mlp, optimizer, monitor, digits_batches, 5)

    for row in rows:
        assert row["step_ratio"] == pytest.approx(1.0, rel=1e-12)
        assert row["displacement"] == pytest.approx(0.3 * row["grad_norm"], rel=1e-12)
        assert row["lr"] == 0.3


def test_heavy_ball_ratio_follows_closed_form():
    weight, gradient = linear_problem()
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    monitor = StepMonitor([weight], optimizer)

    rows = linear_steps(weight, gradient, optimizer, monitor, [0.1] * 40)

    # b_t = g (1 - beta**(t+1)) / (1 - beta) with a constant gradient g.
    for step, row in enumerate(rows):
        assert row["step_ratio"] == pytest.approx((1 - 0.9 ** (step + 1)) / 0.1, rel=1e-10)


def test_group_rows_and_ratio_use_each_group_lr(tanh_mlp, digits_batches):
    optimizer = torch.optim.SGD(
        [
            {"params": tanh_mlp[0].parameters(), "lr": 0.2},
            {"params": tanh_mlp[2].parameters(), "lr": 0.05},
        ]
    )
    monitor = StepMonitor(tanh_mlp, optimizer)

    rows, brute = run_steps(tanh_mlp, optimizer, monitor, digits_batches, 3)

    for row, expected in zip(rows, brute):
        assert (row["lr"], row["lr_g0"], row["lr_g1"]) == (0.2, 0.2, 0.05)
        assert math.hypot(row["displacement_g0"], row["displacement_g1"]) == pytest.approx(
            expected, rel=1e-10
        )
        assert row["step_ratio"] == pytest.approx(1.0, rel=1e-12)


def test_parameter_without_gradient_does_not_move(digits_batches):
    torch.manual_seed(0)
    model = nn.ModuleDict({"used": nn.Linear(64, 10), "unused": nn.Linear(3, 3)}).double()
    model.forward = lambda inputs: model["used"](inputs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    monitor = StepMonitor(model, optimizer)

    rows, brute = run_steps(model, optimizer, monitor, digits_batches, 3)

    assert [row["displacement"] for row in rows] == pytest.approx(brute, rel=1e-10)


def test_pytorch_momentum_has_no_overshoot_after_drop():
    weight, gradient = linear_problem()
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    monitor = StepMonitor([weight], optimizer, settle_steps=150, window=10)

    linear_steps(weight, gradient, optimizer, monitor, [0.1] * 200 + [0.01] * 160)

    (drop,) = monitor.drops
    assert (drop.step, drop.lr_before, drop.lr_after, drop.status) == (200, 0.1, 0.01, "complete")
    assert drop.steady_state == pytest.approx(0.01 * gradient.norm().item() / 0.1, rel=1e-8)
    assert drop.overshoot_steps == pytest.approx(0.0, abs=1e-6)
    assert drop.peak_ratio == pytest.approx(1.0, rel=1e-6)


def test_uncorrected_velocity_overshoot_matches_closed_form():
    beta, lr_old, lr_new, settle = 0.9, 0.1, 0.01, 150
    weight, gradient = linear_problem()
    optimizer = VelocitySGD([weight], lr=lr_old, momentum=beta, momentum_correction=False)
    monitor = StepMonitor([weight], optimizer, settle_steps=settle, window=10)

    linear_steps(weight, gradient, optimizer, monitor, [lr_old] * 200 + [lr_new] * 160)

    (drop,) = monitor.drops
    # v decays from lr_old g / (1 - beta) to lr_new g / (1 - beta) as beta**(k + 1).
    excess_steps = (lr_old / lr_new - 1) * beta * (1 - beta**settle) / (1 - beta)
    assert drop.overshoot_steps == pytest.approx(excess_steps, rel=1e-5)
    assert drop.peak_ratio == pytest.approx(beta * lr_old / lr_new + (1 - beta), rel=1e-5)
    assert drop.overshoot == pytest.approx(drop.overshoot_steps * drop.steady_state, rel=1e-12)


def test_drop_pending_then_interrupted():
    weight, gradient = linear_problem()
    optimizer = torch.optim.SGD([weight], lr=0.1)
    monitor = StepMonitor([weight], optimizer, settle_steps=5, window=5)

    linear_steps(weight, gradient, optimizer, monitor, [0.1] * 3 + [0.05] * 4)
    pending = monitor.drops
    linear_steps(weight, gradient, optimizer, monitor, [0.01] * 2)

    assert pending[0].status == "pending"
    assert math.isnan(pending[0].overshoot)
    assert [drop.status for drop in monitor.drops] == ["interrupted", "pending"]


def test_slow_exponential_decay_has_no_drops():
    weight, gradient = linear_problem()
    optimizer = torch.optim.SGD([weight], lr=0.1)
    monitor = StepMonitor([weight], optimizer, drop_threshold=0.05)

    linear_steps(weight, gradient, optimizer, monitor, [0.1 * 0.99**t for t in range(100)])

    assert monitor.drops == []


def test_after_step_without_before_step_raises():
    weight, _ = linear_problem()
    monitor = StepMonitor([weight], torch.optim.SGD([weight], lr=0.1))

    with pytest.raises(RuntimeError, match=r"needs a matching before_step\(3\)"):
        monitor.after_step(3)


def test_zero_gradient_gives_nan_ratio():
    weight, _ = linear_problem()
    optimizer = torch.optim.SGD([weight], lr=0.1)
    monitor = StepMonitor([weight], optimizer)
    weight.grad = torch.zeros_like(weight)

    monitor.before_step(0)
    optimizer.step()
    row = monitor.after_step(0)

    assert row["displacement"] == 0.0
    assert math.isnan(row["step_ratio"])


def test_step_monitor_is_a_monitor():
    weight, _ = linear_problem()

    assert isinstance(StepMonitor([weight], torch.optim.SGD([weight], lr=0.1)), Monitor)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drop_threshold": 0.0}, r"drop_threshold must be a number in \(0, 1\); got 0.0"),
        ({"drop_threshold": 1.0}, r"drop_threshold must be a number in \(0, 1\); got 1.0"),
        ({"settle_steps": 0}, "settle_steps must be an integer >= 1; got 0"),
        ({"window": -2}, "window must be an integer >= 1; got -2"),
        ({"method": "copy"}, "method must be 'auto' or 'snapshot'; got 'copy'"),
    ],
)
def test_invalid_options_rejected(options, message):
    weight, _ = linear_problem()

    with pytest.raises(ValueError, match=message):
        StepMonitor([weight], torch.optim.SGD([weight], lr=0.1), **options)


def test_non_optimizer_rejected():
    weight, _ = linear_problem()

    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer; got dict"):
        StepMonitor([weight], {"lr": 0.1})


def test_model_without_trainable_parameters_rejected():
    frozen = nn.Linear(3, 1).requires_grad_(False)

    with pytest.raises(ValueError, match="no trainable parameters"):
        StepMonitor(frozen, torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))


def test_parameters_outside_optimizer_rejected(tanh_mlp):
    optimizer = torch.optim.SGD(tanh_mlp[2].parameters(), lr=0.1)

    with pytest.raises(ValueError, match="2 of 4 trainable parameters are not in the optimizer"):
        StepMonitor(tanh_mlp, optimizer)


def test_non_tensor_parameters_rejected():
    with pytest.raises(TypeError, match="parameters must be tensors; got an item of type float"):
        StepMonitor([0.5], torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
