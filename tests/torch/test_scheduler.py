"""Scheduler: LR values against torch's schedulers and the schedule core, units, errors."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import pytest
import torch

import decaylab as dl
from decaylab.torch import SCHEDULER_BEFORE_OPTIMIZER_WARNING, Scheduler

BASE_LRS = (0.1, 0.05, 0.3)


def make_optimizer(base_lrs=BASE_LRS, cls=torch.optim.SGD, **kwargs):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in base_lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)]
    return cls(groups, lr=base_lrs[0], **kwargs)


def group_lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def run_lrs(optimizer, scheduler, steps):
    """Return the LRs each of ``steps`` updates used, in the recommended call order."""
    seen = []
    for _ in range(steps):
        seen.append(group_lrs(optimizer))
        optimizer.step()
        scheduler.step()
    return seen


# Each case: torch scheduler factory, the equal decaylab schedule, the
# largest number of drops (the core's exp(k ln gamma) error grows with it).
TORCH_CASES = {
    "StepLR": (
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.5),
        dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30),
    ),
    "StepLR-many-drops": (
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.3),
        dl.StepDecay(initial_lr=0.1, gamma=0.3, step_size=7),
    ),
    "MultiStepLR": (
        lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[30, 60, 80], gamma=0.1),
        dl.MultiStepDecay(initial_lr=0.1, gamma=0.1, milestones=[30, 60, 80]),
    ),
    "ExponentialLR": (
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97),
        dl.ExponentialDecay(initial_lr=0.1, factor=0.97),
    ),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_lrs_match_torch_schedulers(case):
    make_torch, schedule = TORCH_CASES[case]
    torch_opt, ours_opt = make_optimizer(), make_optimizer()
    reference = make_torch(torch_opt)
    ours = Scheduler(ours_opt, schedule)

    for t in range(200):
        closed_form = reference._get_closed_form_lr()
        for group, (expected, got) in enumerate(zip(closed_form, group_lrs(ours_opt))):
            # Not bit-exact: the core evaluates gamma ** k as exp(k * ln(gamma)),
            # measured up to 35 ulp from torch's pow after 28 drops of gamma = 0.3.
            assert math.isclose(got, expected, rel_tol=1e-13), (case, t, group)
        for expected, got in zip(group_lrs(torch_opt), group_lrs(ours_opt)):
            assert math.isclose(got, expected, rel_tol=1e-13), (case, t)
        torch_opt.step()
        ours_opt.step()
        reference.step()
        ours.step()


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_lrs_equal_core_schedule(case):
    _, schedule = TORCH_CASES[case]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedule)

    for t in range(200):
        lrs = group_lrs(optimizer)
        # The group whose LR is the schedule's initial_lr gets the schedule exactly.
        assert lrs[0] == schedule(t)
        for base, got in zip(BASE_LRS[1:], lrs[1:]):
            exact = Fraction(schedule(t)) * Fraction(base) / Fraction(schedule.initial_lr)
            assert abs(Fraction(got) - exact) <= Fraction(math.ulp(got)) * 2
        optimizer.step()
        scheduler.step()


def test_construction_writes_lr_at_zero():
    schedule = dl.Warmup(dl.StepDecay(initial_lr=0.2, gamma=0.5, step_size=10), steps=4,
                         start_lr=0.02)
    optimizer = make_optimizer((0.2,))
    Scheduler(optimizer, schedule)
    assert optimizer.param_groups[0]["lr"] == schedule(0)
    assert optimizer.param_groups[0]["initial_lr"] == 0.2


def test_first_update_uses_lr_zero():
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=1)
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedule)
    assert [lrs[0] for lrs in run_lrs(optimizer, scheduler, 3)] == [0.1, 0.05, 0.025]


def test_milestone_drop_not_one_step_early():
    schedule = dl.MultiStepDecay(initial_lr=0.1, gamma=0.1, milestones=[3, 5])
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedule)
    used = [lrs[0] for lrs in run_lrs(optimizer, scheduler, 6)]
    assert used[:3] == [0.1, 0.1, 0.1]
    assert used[3] == schedule(3) < 0.1
    assert used[5] == schedule(5) < used[4]


def test_no_compounding_drift():
    schedule = dl.ExponentialDecay(initial_lr=0.1, factor=0.9999)
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedule)
    torch_opt = make_optimizer((0.1,))
    recursive = torch.optim.lr_scheduler.ExponentialLR(torch_opt, gamma=0.9999)
    for _ in range(20_000):
        optimizer.step()
        scheduler.step()
        torch_opt.step()
        recursive.step()
    assert optimizer.param_groups[0]["lr"] == schedule(20_000)
    # The recursive product is what drifts; the closed form stays exact.
    assert torch_opt.param_groups[0]["lr"] != schedule(20_000)


def test_per_group_schedules_set_own_values():
    schedules = [
        dl.StepDecay(initial_lr=0.01, gamma=0.5, step_size=3),
        dl.ExponentialDecay(initial_lr=0.2, half_life=4),
        dl.Warmup(dl.StepDecay(initial_lr=0.3, gamma=0.1, step_size=5), steps=2),
    ]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedules)
    for t, lrs in enumerate(run_lrs(optimizer, scheduler, 12)):
        assert lrs == [s(t) for s in schedules]
    assert [g["initial_lr"] for g in optimizer.param_groups] == [0.01, 0.2, 0.3]


def test_epoch_unit_drops_at_epoch_boundary():
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=2)
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedule, unit="epoch", steps_per_epoch=7)
    used = [lrs[0] for lrs in run_lrs(optimizer, scheduler, 30)]
    assert used[:14] == [0.1] * 14
    assert used[14:28] == [0.05] * 14
    assert used[28] == 0.025


def test_epoch_unit_exponential_smooth_within_epoch():
    schedule = dl.ExponentialDecay(initial_lr=0.1, half_life=1)
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedule, unit="epoch", steps_per_epoch=4)
    used = [lrs[0] for lrs in run_lrs(optimizer, scheduler, 9)]
    assert used == [schedule(t / 4) for t in range(9)]
    assert used[4] == pytest.approx(0.05, rel=1e-15)
    assert all(a > b for a, b in zip(used, used[1:]))


def test_gradient_accumulation_counts_updates():
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=2)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = Scheduler(optimizer, schedule)
    micro_batches = 4
    used = []
    for _ in range(5):
        for _ in range(micro_batches):
            loss = model(torch.ones(2, 3)).pow(2).mean() / micro_batches
            loss.backward()
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    assert scheduler.last_epoch == 5
    assert used == [schedule(t) for t in range(5)]


def test_step_before_optimizer_warns():
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=3))
    with pytest.warns(UserWarning, match="first update skips") as record:
        scheduler.step()
    assert str(record[0].message) == SCHEDULER_BEFORE_OPTIMIZER_WARNING
    assert record[0].filename == __file__


def test_right_order_does_not_warn():
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_lrs(optimizer, scheduler, 3)


def test_group_added_later_is_scheduled():
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=2)
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedule)
    run_lrs(optimizer, scheduler, 3)
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.4})
    optimizer.step()
    scheduler.step()
    assert scheduler.last_epoch == 4
    assert group_lrs(optimizer) == [schedule(4), schedule(4) * (0.4 / 0.1)]
    assert len(scheduler.get_last_lr()) == 2


def test_added_group_per_group_raises():
    schedules = [dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=2)]
    optimizer = make_optimizer((0.1,))
    scheduler = Scheduler(optimizer, schedules)
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.4})
    optimizer.step()
    with pytest.raises(ValueError, match="2 param groups but the Scheduler was built for 1"):
        scheduler.step()


def test_tensor_lr_written_in_place():
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([param], lr=torch.tensor(0.1))
    lr_tensor = optimizer.param_groups[0]["lr"]
    schedule = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=1)
    scheduler = Scheduler(optimizer, schedule)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] is lr_tensor
    assert lr_tensor.item() == pytest.approx(0.05)
    assert scheduler.get_last_lr() == [pytest.approx(0.05, rel=1e-7)]
    assert optimizer.param_groups[0]["initial_lr"].item() == pytest.approx(0.1)


# -- bad input ----------------------------------------------------------------

SCHEDULE = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=3)


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer; got list"):
        Scheduler([torch.zeros(1)], SCHEDULE)


def test_rejects_schedule_count_mismatch():
    with pytest.raises(ValueError, match="got 2 schedules but the optimizer has 3 param groups"):
        Scheduler(make_optimizer(), [SCHEDULE, SCHEDULE])


def test_rejects_non_schedule():
    with pytest.raises(TypeError, match="must be a decaylab Schedule"):
        Scheduler(make_optimizer(), lambda t: 0.1)
    with pytest.raises(TypeError, match=r"schedule\[1\] must be a decaylab Schedule"):
        Scheduler(make_optimizer(), [SCHEDULE, 0.1, SCHEDULE])


def test_rejects_zero_initial_lr_for_scaling():
    zero = dl.StepDecay(initial_lr=0.0, gamma=0.5, step_size=3)
    with pytest.raises(ValueError, match="initial_lr is 0"):
        Scheduler(make_optimizer(), zero)
    # One schedule per group uses the values directly, so 0 is allowed there.
    Scheduler(make_optimizer((0.1,)), [zero])


@pytest.mark.parametrize("steps_per_epoch", [None, 0, -3])
def test_rejects_missing_steps_per_epoch(steps_per_epoch):
    with pytest.raises(ValueError, match="steps_per_epoch"):
        Scheduler(make_optimizer(), SCHEDULE, unit="epoch", steps_per_epoch=steps_per_epoch)


def test_rejects_fractional_steps_per_epoch():
    with pytest.raises(TypeError, match="steps_per_epoch must be an integer >= 1; got 2.5"):
        Scheduler(make_optimizer(), SCHEDULE, unit="epoch", steps_per_epoch=2.5)


def test_rejects_steps_per_epoch_with_step_unit():
    with pytest.raises(ValueError, match="only used with unit='epoch'"):
        Scheduler(make_optimizer(), SCHEDULE, steps_per_epoch=10)


def test_rejects_unknown_unit_and_policy():
    with pytest.raises(ValueError, match=r"unit must be one of \('step', 'epoch'\); got 'epochs'"):
        Scheduler(make_optimizer(), SCHEDULE, unit="epochs")
    with pytest.raises(ValueError, match="weight_decay must be one of .*got 'fixed'"):
        Scheduler(make_optimizer(), SCHEDULE, weight_decay="fixed")


def test_rejects_negative_step_arguments():
    scheduler = Scheduler(make_optimizer(), SCHEDULE)
    with pytest.raises(ValueError, match="step must be an integer >= 0; got -1"):
        scheduler.set_step(-1)
    with pytest.raises(TypeError, match="step must be an integer >= 0; got 2.0"):
        scheduler.lr_at(2.0)
    with pytest.raises(ValueError, match="last_step must be an integer >= 0; got -5"):
        Scheduler(make_optimizer(), SCHEDULE, last_step=-5)


@pytest.mark.parametrize("layout", ["shared", "per_group"])
def test_lr_at_equals_written_lrs(layout):
    schedule = dl.Warmup(dl.ExponentialDecay(initial_lr=0.1, half_life=5), steps=3, start_lr=0.01)
    optimizer = make_optimizer((0.1, 0.05, 0.3))
    argument = schedule if layout == "shared" else [schedule] * 3
    scheduler = Scheduler(optimizer, argument, unit="epoch", steps_per_epoch=3)
    expected = [scheduler.lr_at(t) for t in range(25)]
    assert run_lrs(optimizer, scheduler, 25) == expected
