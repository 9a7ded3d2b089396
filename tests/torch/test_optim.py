"""VelocitySGD against torch.optim.SGD, with and without momentum correction."""

from __future__ import annotations

import pytest
import torch

import decaylab as dl
from decaylab.torch import Scheduler, VelocitySGD

SCHEDULES = {
    "step": dl.StepDecay(initial_lr=0.05, gamma=0.3, step_size=17),
    "multistep": dl.MultiStepDecay(initial_lr=0.05, gamma=0.1, milestones=[20, 45, 90]),
    "exponential": dl.ExponentialDecay(initial_lr=0.05, half_life=25),
    "warmup": dl.Warmup(dl.StepDecay(initial_lr=0.05, gamma=0.5, step_size=30), steps=10,
                        start_lr=0.005),
}

OPTIONS = {
    "plain": {"momentum": 0.9},
    "weight_decay": {"momentum": 0.9, "weight_decay": 0.01},
    "nesterov": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.005},
    "dampening": {"momentum": 0.8, "dampening": 0.3},
}


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).double()


def make_batches(count):
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(16, 5, generator=generator, dtype=torch.float64),
         torch.randn(16, 1, generator=generator, dtype=torch.float64))
        for _ in range(count)
    ]


def trajectory(optimizer_cls, schedule, steps=120, **kwargs):
    """Return the flattened weights after each update."""
    model = make_model()
    # Two groups with different base LRs, so per-group scaling is exercised too.
    groups = [{"params": model[0].parameters()},
              {"params": model[2].parameters(), "lr": schedule.initial_lr / 2}]
    optimizer = optimizer_cls(groups, lr=schedule.initial_lr, **kwargs)
    scheduler = Scheduler(optimizer, schedule)
    weights = []
    for inputs, targets in make_batches(steps):
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return weights


@pytest.mark.parametrize("schedule_name", sorted(SCHEDULES))
@pytest.mark.parametrize("option_name", sorted(OPTIONS))
def test_corrected_equals_torch_sgd(schedule_name, option_name):
    schedule, options = SCHEDULES[schedule_name], OPTIONS[option_name]
    expected = trajectory(torch.optim.SGD, schedule, **options)
    got = trajectory(VelocitySGD, schedule, **options)
    for step, (a, b) in enumerate(zip(expected, got)):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-9, msg=f"update {step}")


def test_uncorrected_differs_after_drop():
    schedule = SCHEDULES["step"]
    expected = trajectory(torch.optim.SGD, schedule, momentum=0.9)
    got = trajectory(VelocitySGD, schedule, momentum=0.9, momentum_correction=False)
    # Identical before the first drop at t = 17, different after it.
    torch.testing.assert_close(got[16], expected[16], rtol=1e-9, atol=1e-12)
    assert (got[20] - expected[20]).abs().max() > 1e-4


def test_no_momentum_equals_sgd():
    schedule = SCHEDULES["exponential"]
    expected = trajectory(torch.optim.SGD, schedule, weight_decay=0.01)
    got = trajectory(VelocitySGD, schedule, weight_decay=0.01)
    torch.testing.assert_close(got[-1], expected[-1], rtol=1e-12, atol=1e-14)


def worked_case(cls, **kwargs):
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = cls([w], lr=0.1, momentum=0.9, **kwargs)
    for lr in (0.1, 0.01):
        optimizer.param_groups[0]["lr"] = lr
        w.grad = torch.ones(1, dtype=torch.float64)
        optimizer.step()
    return w.item()


def test_worked_case_lr_drop():
    assert worked_case(torch.optim.SGD) == pytest.approx(-0.119, abs=1e-15)
    assert worked_case(VelocitySGD) == pytest.approx(-0.119, abs=1e-15)
    assert worked_case(VelocitySGD, momentum_correction=False) == pytest.approx(-0.2, abs=1e-15)


def test_correction_factor_matches_core():
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = VelocitySGD([w], lr=0.1, momentum=0.9)
    w.grad = torch.ones(1, dtype=torch.float64)
    optimizer.step()
    velocity = optimizer.state[w]["momentum_buffer"].clone()
    optimizer.param_groups[0]["lr"] = 0.03
    optimizer.step()
    factor = dl.momentum_correction(0.9, 0.03, 0.1)
    expected = factor * velocity + 0.03 * 1.0
    assert torch.equal(optimizer.state[w]["momentum_buffer"], expected)
    assert optimizer.state[w]["velocity_lr"] == 0.03


def test_parameter_without_grad_keeps_own_lr():
    torch.manual_seed(2)
    start = [torch.randn(3, dtype=torch.float64) for _ in range(2)]

    def run(cls):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = cls(params, lr=0.1, momentum=0.9)
        for step, lr in enumerate([0.1, 0.1, 0.05, 0.02, 0.02, 0.01]):
            optimizer.param_groups[0]["lr"] = lr
            for index, param in enumerate(params):
                skip = index == 1 and step in (2, 3)
                param.grad = None if skip else param.detach() * 0.5 + 1.0
            optimizer.step()
        return params

    for expected, got in zip(run(torch.optim.SGD), run(VelocitySGD)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


def test_zero_lr_restarts_velocity():
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = VelocitySGD([w], lr=0.0, momentum=0.9)
    w.grad = torch.ones(2, dtype=torch.float64)
    optimizer.step()
    assert torch.count_nonzero(optimizer.state[w]["momentum_buffer"]) == 0
    optimizer.param_groups[0]["lr"] = 0.1
    optimizer.step()
    # beta * 0 + 0.1 * g: the gradient seen at lr 0 is not carried over.
    assert torch.equal(optimizer.state[w]["momentum_buffer"], torch.full((2,), 0.1,
                                                                          dtype=torch.float64))


def test_velocity_state_resumes_identically():
    schedule = SCHEDULES["multistep"]
    batches = make_batches(60)

    def run(split):
        model = make_model()
        optimizer = VelocitySGD(model.parameters(), lr=0.05, momentum=0.9)
        scheduler = Scheduler(optimizer, schedule)
        for index, (inputs, targets) in enumerate(batches):
            if index == split:
                saved = (model.state_dict(), optimizer.state_dict(), scheduler.state_dict())
                model = make_model()
                optimizer = VelocitySGD(model.parameters(), lr=0.05, momentum=0.9)
                scheduler = Scheduler(optimizer, schedule)
                model.load_state_dict(saved[0])
                optimizer.load_state_dict(saved[1])
                scheduler.load_state_dict(saved[2])
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(split=None), run(split=25))


def test_closure_returns_loss():
    w = torch.ones(2, requires_grad=True)
    optimizer = VelocitySGD([w], lr=0.1, momentum=0.5)

    def closure():
        optimizer.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == pytest.approx(2.0)
    assert torch.allclose(w.detach(), torch.full((2,), 0.8))


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"lr": -0.1}, ValueError, "lr must be a finite number >= 0; got -0.1"),
        ({"lr": 0.1, "momentum": 1.0}, ValueError, r"momentum must be a number in \[0, 1\)"),
        ({"lr": 0.1, "dampening": 1.5}, ValueError, "dampening must be"),
        ({"lr": 0.1, "weight_decay": -1.0}, ValueError, "weight_decay must be"),
        ({"lr": 0.1, "nesterov": True}, ValueError, "nesterov=True needs momentum > 0"),
        ({"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, ValueError,
         "dampening == 0"),
        ({"lr": 0.1, "nesterov": 1}, TypeError, "nesterov must be a bool"),
        ({"lr": 0.1, "momentum_correction": "yes"}, TypeError, "momentum_correction must be"),
        ({"lr": "0.1"}, TypeError, "lr must be"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        VelocitySGD([torch.zeros(1, requires_grad=True)], **kwargs)
