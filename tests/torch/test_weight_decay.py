"""Scheduler weight-decay policy: 'follow' and 'constant', warnings and errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import decaylab as dl
from decaylab.torch import COUPLED_WEIGHT_DECAY_WARNING, CoupledWeightDecayWarning, Scheduler

SCHEDULE = dl.StepDecay(initial_lr=0.1, gamma=0.25, step_size=3)


def make_optimizer(cls=torch.optim.AdamW, base_lrs=(0.1, 0.04), wds=(0.01, 0.2), **kwargs):
    params = [torch.nn.Parameter(torch.ones(3)) for _ in base_lrs]
    groups = [{"params": [p], "lr": lr, "weight_decay": wd}
              for p, lr, wd in zip(params, base_lrs, wds)]
    return cls(groups, **kwargs)


def advance(optimizer, scheduler, steps):
    for _ in range(steps):
        optimizer.step()
        scheduler.step()


def test_follow_leaves_weight_decay():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULE)
    advance(optimizer, scheduler, 7)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.2]
    assert "initial_weight_decay" not in optimizer.param_groups[0]


def test_constant_matches_compensated_weight_decay():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULE, weight_decay="constant")
    for t in range(10):
        for group, base_lr, base_wd in zip(optimizer.param_groups, (0.1, 0.04), (0.01, 0.2)):
            expected = dl.compensated_weight_decay(base_wd, base_lr, group["lr"])
            assert group["weight_decay"] == expected, t
            assert math.isclose(group["lr"] * group["weight_decay"], base_lr * base_wd,
                                rel_tol=1e-14)
        advance(optimizer, scheduler, 1)
    assert [g["initial_weight_decay"] for g in optimizer.param_groups] == [0.01, 0.2]


def test_constant_keeps_adamw_shrinkage():
    param = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    optimizer = torch.optim.AdamW([param], lr=0.1, weight_decay=0.05)
    scheduler = Scheduler(optimizer, SCHEDULE, weight_decay="constant")
    ratios = []
    for _ in range(8):
        before = param.detach().clone()
        param.grad = torch.zeros_like(param)
        optimizer.step()
        scheduler.step()
        ratios.append((param.detach() / before)[0].item())
    # A zero gradient leaves only the decoupled shrinkage 1 - lr * wd.
    for ratio in ratios:
        assert ratio == pytest.approx(1.0 - 0.1 * 0.05, rel=1e-12)


def test_follow_shrinkage_falls_with_lr():
    param = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    optimizer = torch.optim.AdamW([param], lr=0.1, weight_decay=0.05)
    scheduler = Scheduler(optimizer, SCHEDULE)
    shrink = []
    for t in range(6):
        before = param.detach().clone()
        param.grad = torch.zeros_like(param)
        optimizer.step()
        scheduler.step()
        shrink.append(1.0 - (param.detach() / before)[0].item())
    assert shrink[0] == pytest.approx(0.1 * 0.05, rel=1e-12)
    assert shrink[3] == pytest.approx(0.025 * 0.05, rel=1e-12)


@pytest.mark.parametrize(
    "cls",
    [torch.optim.Adam, torch.optim.Adagrad, torch.optim.Adamax, torch.optim.NAdam,
     torch.optim.RAdam, torch.optim.RMSprop],
)
def test_coupled_adaptive_l2_warns(cls):
    optimizer = make_optimizer(cls)
    with pytest.warns(CoupledWeightDecayWarning) as record:
        Scheduler(optimizer, SCHEDULE, weight_decay="constant")
    assert len(record) == 1
    assert str(record[0].message).startswith(COUPLED_WEIGHT_DECAY_WARNING)
    assert cls.__name__ in str(record[0].message)
    assert record[0].filename == __file__


@pytest.mark.parametrize(
    "cls, kwargs, policy",
    [
        (torch.optim.AdamW, {}, "constant"),
        (torch.optim.NAdam, {"decoupled_weight_decay": True}, "constant"),
        (torch.optim.RAdam, {"decoupled_weight_decay": True}, "constant"),
        (torch.optim.SGD, {"momentum": 0.9}, "constant"),
        (torch.optim.Adam, {}, "follow"),
    ],
)
def test_no_warning_without_coupled_adaptive_l2(cls, kwargs, policy):
    optimizer = make_optimizer(cls, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Scheduler(optimizer, SCHEDULE, weight_decay=policy)


def test_adam_without_weight_decay_does_not_warn():
    optimizer = make_optimizer(torch.optim.Adam, wds=(0.0, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Scheduler(optimizer, SCHEDULE, weight_decay="constant")


def test_zero_lr_at_construction_raises():
    warmup = dl.Warmup(SCHEDULE, steps=4)
    with pytest.raises(ValueError, match="undefined at step 0, where param group 0 has lr 0"):
        Scheduler(make_optimizer(), warmup, weight_decay="constant")


def test_zero_lr_later_raises():
    # exp(2 ln(1e-200)) underflows to 0 at the second milestone.
    schedules = [
        dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=1),
        dl.MultiStepDecay(initial_lr=0.1, gamma=1e-200, milestones=[1, 2]),
    ]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedules, weight_decay="constant")
    advance(optimizer, scheduler, 1)
    before = [dict(lr=g["lr"], wd=g["weight_decay"]) for g in optimizer.param_groups]
    optimizer.step()
    with pytest.raises(ValueError, match="step 2, where param group 1 has lr 0"):
        scheduler.step()
    assert scheduler.last_epoch == 1
    assert [dict(lr=g["lr"], wd=g["weight_decay"]) for g in optimizer.param_groups] == before


def test_constant_resume_rewrites_weight_decay():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULE, weight_decay="constant")
    advance(optimizer, scheduler, 7)
    state = scheduler.state_dict()
    assert state["base_weight_decays"] == [0.01, 0.2]

    fresh = make_optimizer()
    resumed = Scheduler(fresh, SCHEDULE, weight_decay="constant")
    resumed.load_state_dict(state)
    got = [g["weight_decay"] for g in fresh.param_groups]
    assert got == [g["weight_decay"] for g in optimizer.param_groups]


def test_restored_initial_weight_decay_kept():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULE, weight_decay="constant")
    advance(optimizer, scheduler, 4)

    restored = make_optimizer()
    restored.load_state_dict(optimizer.state_dict())
    resumed = Scheduler(restored, SCHEDULE, weight_decay="constant", last_step=4)
    assert [g["initial_weight_decay"] for g in restored.param_groups] == [0.01, 0.2]
    assert [g["weight_decay"] for g in restored.param_groups] == [
        g["weight_decay"] for g in optimizer.param_groups
    ]
    assert resumed.last_epoch == 4


def test_constant_with_tensor_lr_writes_float():
    weights = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weights], lr=torch.tensor(0.1), weight_decay=0.01)
    scheduler = Scheduler(optimizer, dl.StepDecay(0.1, 0.5, 2), weight_decay="constant")
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    decay = optimizer.param_groups[0]["weight_decay"]
    assert type(decay) is float
    assert decay == pytest.approx(0.02)
