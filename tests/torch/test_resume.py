"""Scheduler resume, random access and state dicts."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import decaylab as dl
from decaylab.torch import Scheduler

SCHEDULES = {
    "step": dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=3),
    "multistep": dl.MultiStepDecay(initial_lr=0.1, gamma=0.3, milestones=[2, 5, 11]),
    "exponential": dl.ExponentialDecay(initial_lr=0.1, half_life=4.5, min_lr=0.001),
    "warmup": dl.Warmup(dl.ExponentialDecay(initial_lr=0.1, rate=0.2), steps=3, start_lr=0.01),
}
BASE_LRS = (0.1, 0.02, 0.4)


def make_optimizer(base_lrs=BASE_LRS):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(2)) for _ in base_lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)])


def make_scheduler(optimizer, kind, unit, layout, **kwargs):
    schedule = SCHEDULES[kind]
    if layout == "per_group":
        schedule = [schedule] * len(optimizer.param_groups)
    if unit == "epoch":
        kwargs["steps_per_epoch"] = 4
    return Scheduler(optimizer, schedule, unit=unit, **kwargs)


def lr_sequence(optimizer, scheduler, steps):
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(SCHEDULES)),
    unit=st.sampled_from(["step", "epoch"]),
    layout=st.sampled_from(["shared", "per_group"]),
    resume_at=st.integers(0, 40),
    restore_optimizer=st.booleans(),
)
def test_resume_gives_identical_lr_sequence(kind, unit, layout, resume_at, restore_optimizer):
    optimizer = make_optimizer()
    scheduler = make_scheduler(optimizer, kind, unit, layout)
    full = lr_sequence(optimizer, scheduler, 60)

    optimizer = make_optimizer()
    scheduler = make_scheduler(optimizer, kind, unit, layout)
    head = lr_sequence(optimizer, scheduler, resume_at)
    saved_scheduler = copy.deepcopy(scheduler.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())

    resumed_optimizer = make_optimizer()
    if restore_optimizer:
        resumed_optimizer.load_state_dict(saved_optimizer)
    resumed = make_scheduler(resumed_optimizer, kind, unit, layout)
    resumed.load_state_dict(saved_scheduler)
    tail = lr_sequence(resumed_optimizer, resumed, 60 - resume_at)

    assert head + tail == full


def test_resume_without_optimizer_state():
    schedule = SCHEDULES["step"]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedule)
    lr_sequence(optimizer, scheduler, 7)
    state = scheduler.state_dict()

    fresh = make_optimizer()
    resumed = Scheduler(fresh, schedule)
    resumed.load_state_dict(state)
    assert [g["lr"] for g in fresh.param_groups] == [g["lr"] for g in optimizer.param_groups]
    assert fresh.param_groups[0]["lr"] == schedule(7)


def test_resume_no_step_lost_or_gained():
    schedule = SCHEDULES["multistep"]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedule)
    lr_sequence(optimizer, scheduler, 5)
    state = scheduler.state_dict()
    assert state["step"] == 5

    fresh = make_optimizer()
    resumed = Scheduler(fresh, schedule)
    resumed.load_state_dict(state)
    assert resumed.last_epoch == 5
    assert fresh.param_groups[0]["lr"] == schedule(5)
    fresh.step()
    resumed.step()
    assert resumed.last_epoch == 6
    assert fresh.param_groups[0]["lr"] == schedule(6)


def test_last_step_argument_resumes_exactly():
    schedule = SCHEDULES["exponential"]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedule)
    lr_sequence(optimizer, scheduler, 9)

    restored = make_optimizer()
    restored.load_state_dict(optimizer.state_dict())
    resumed = Scheduler(restored, schedule, last_step=9)
    assert resumed.last_epoch == 9
    assert [g["lr"] for g in restored.param_groups] == [g["lr"] for g in optimizer.param_groups]


def test_last_step_without_initial_lr_raises():
    with pytest.raises(ValueError, match="param group 0 has no 'initial_lr'"):
        Scheduler(make_optimizer(), SCHEDULES["step"], last_step=9)


def test_set_step_exact_and_idempotent():
    schedule = SCHEDULES["warmup"]
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, schedule, unit="epoch", steps_per_epoch=5)
    scheduler.set_step(3 * 5)
    first = [g["lr"] for g in optimizer.param_groups]
    scheduler.set_step(3 * 5)
    assert [g["lr"] for g in optimizer.param_groups] == first
    assert first[0] == schedule(3.0)
    assert scheduler.last_epoch == 15
    assert scheduler.get_last_lr() == first


def test_step_with_count_sets_it():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULES["step"])
    optimizer.step()
    scheduler.step(10)
    assert scheduler.last_epoch == 10
    assert optimizer.param_groups[0]["lr"] == SCHEDULES["step"](10)


def test_read_does_not_advance():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULES["step"])
    lr_sequence(optimizer, scheduler, 4)
    before = [g["lr"] for g in optimizer.param_groups]

    for _ in range(3):
        last = scheduler.get_last_lr()
        current = scheduler.get_lr()
        future = scheduler.lr_at(30)
        scheduler.state_dict()

    assert scheduler.last_epoch == 4
    assert [g["lr"] for g in optimizer.param_groups] == before
    assert last == current == before
    assert future[0] == SCHEDULES["step"](30)
    last.append(1.0)
    assert scheduler.get_last_lr() == before


def test_state_dict_survives_torch_save(tmp_path):
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULES["warmup"], weight_decay="follow")
    lr_sequence(optimizer, scheduler, 6)
    path = tmp_path / "scheduler.pt"
    torch.save(scheduler.state_dict(), path)
    loaded = torch.load(path, weights_only=True)
    assert loaded == scheduler.state_dict()


def train_steps(model, optimizer, scheduler, batches):
    for inputs, targets in batches:
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_resumed_training_bit_identical(tmp_path):
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 4, generator=generator), torch.randn(8, 1, generator=generator))
               for _ in range(30)]
    schedule = dl.StepDecay(initial_lr=0.05, gamma=0.5, step_size=7)

    def build():
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, optimizer, Scheduler(optimizer, schedule)

    model, optimizer, scheduler = build()
    train_steps(model, optimizer, scheduler, batches)
    uninterrupted = [p.detach().clone() for p in model.parameters()]

    model, optimizer, scheduler = build()
    train_steps(model, optimizer, scheduler, batches[:13])
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, path)

    model, optimizer, scheduler = build()
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    train_steps(model, optimizer, scheduler, batches[13:])

    for expected, got in zip(uninterrupted, model.parameters()):
        assert torch.equal(expected, got)


# -- bad state dicts ----------------------------------------------------------


@pytest.fixture
def saved_state():
    optimizer = make_optimizer()
    scheduler = Scheduler(optimizer, SCHEDULES["step"])
    lr_sequence(optimizer, scheduler, 3)
    return scheduler.state_dict()


@pytest.fixture
def target():
    return Scheduler(make_optimizer(), SCHEDULES["step"])


def test_load_rejects_other_schedule_type(saved_state):
    other = Scheduler(make_optimizer(), SCHEDULES["exponential"])
    with pytest.raises(ValueError, match=r"state_dict\['schedules'\] is \[StepDecay.*ExponentialDecay"):
        other.load_state_dict(saved_state)


def test_load_rejects_changed_schedule_parameters(saved_state):
    other = Scheduler(make_optimizer(), dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=4))
    with pytest.raises(ValueError, match="set_step"):
        other.load_state_dict(saved_state)


@pytest.mark.parametrize(
    "key, value",
    [("unit", "epoch"), ("steps_per_epoch", 4), ("weight_decay", "constant"),
     ("per_group", True), ("base_lrs", [0.1, 0.02, 0.5])],
)
def test_load_rejects_changed_settings(saved_state, target, key, value):
    saved_state[key] = value
    with pytest.raises(ValueError, match=rf"state_dict\['{key}'\] is"):
        target.load_state_dict(saved_state)


@pytest.mark.parametrize("step", [None, 2.5, "3", True, -1])
def test_load_rejects_bad_step(saved_state, target, step):
    saved_state["step"] = step
    with pytest.raises(ValueError, match=r"state_dict\['step'\] must be an integer >= 0"):
        target.load_state_dict(saved_state)


def test_load_rejects_missing_step(saved_state, target):
    del saved_state["step"]
    with pytest.raises(ValueError, match=r"missing keys \['step'\]"):
        target.load_state_dict(saved_state)


def test_load_rejects_torch_scheduler_state(target):
    optimizer = make_optimizer()
    state = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3).state_dict()
    with pytest.raises(ValueError, match="expected a dict from decaylab's Scheduler.state_dict"):
        target.load_state_dict(state)


def test_load_rejects_corrupted_schedule(saved_state, target):
    saved_state["schedules"] = [{"kind": "step", "gamma": 2.0}]
    with pytest.raises(ValueError, match=r"state_dict\['schedules'\]\[0\] is not a valid schedule"):
        target.load_state_dict(saved_state)


def test_load_rejects_non_dict(target):
    with pytest.raises(TypeError, match="expected a dict"):
        target.load_state_dict([("step", 3)])


def test_failed_load_changes_nothing(saved_state, target):
    before = target.get_last_lr()
    saved_state["unit"] = "epoch"
    with pytest.raises(ValueError):
        target.load_state_dict(saved_state)
    assert target.last_epoch == 0
    assert target.get_last_lr() == before
