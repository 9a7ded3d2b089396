"""One contract, run over every registered schedule class."""

import json
import math
import pickle

import numpy as np
import pytest

import decaylab as dl
from decaylab.schedules.base import Schedule

INNER = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30, min_lr=0.001)


def _instances():
    """One floored and one plain instance of every class in the registry."""
    built = []
    for kind, cls in sorted(Schedule.registry.items()):
        nested = {name: INNER for name in getattr(cls, "nested", ())}
        built.append(pytest.param(cls(**nested, **cls.example), id=f"{kind}-example"))
    built += [
        pytest.param(dl.ExponentialDecay(initial_lr=0.1, rate=0.01, min_lr=0.01), id="exp-floor"),
        pytest.param(dl.MultiStepDecay(0.1, 0.5, [5, 17, 40], min_lr=0.02), id="multistep-floor"),
        pytest.param(dl.Warmup(dl.match_half_life(INNER), steps=7, start_lr=0.01), id="warm-exp"),
    ]
    return built


INSTANCES = _instances()


def _decay_start(schedule):
    """First t from which the contract requires a non-increasing LR."""
    if isinstance(schedule, dl.Warmup):
        return schedule.steps
    if isinstance(schedule, dl.AdamCompensated):
        # Compensating Adam's bias-correction transient raises the LR until
        # the moments settle; from then on it is the wrapped schedule.
        return schedule.settle_steps
    return 0


def test_every_contract_class_is_registered():
    kinds = set(Schedule.registry)
    assert {"step", "multistep", "exponential", "warmup"} <= kinds


@pytest.mark.parametrize("schedule", INSTANCES)
def test_round_trip_through_json(schedule):
    data = json.loads(json.dumps(schedule.to_dict()))
    rebuilt = dl.schedule_from_dict(data)
    assert rebuilt == schedule
    assert hash(rebuilt) == hash(schedule)
    assert rebuilt.to_dict() == schedule.to_dict()


@pytest.mark.parametrize("schedule", INSTANCES)
def test_round_trip_through_text_form(schedule):
    rebuilt = dl.parse_schedule(schedule.to_spec())
    assert rebuilt == schedule
    assert rebuilt.to_spec() == schedule.to_spec()


@pytest.mark.parametrize("schedule", INSTANCES)
def test_repr_shows_parameters(schedule):
    text = repr(schedule)
    assert text.startswith(type(schedule).__name__ + "(")
    for name, value in schedule.params().items():
        if value is not None and name not in schedule.defaults:
            assert name in text


@pytest.mark.parametrize("schedule", INSTANCES)
def test_array_equals_scalar_by_scalar(schedule):
    times = np.concatenate([np.arange(0, 200, 0.5), [1e4, 1e6, 1e9]])
    array = schedule(times)
    scalars = np.array([schedule(float(t)) for t in times])
    # numpy's vectorised exp and the C library's may differ in the last bit.
    np.testing.assert_allclose(array, scalars, rtol=4e-16 * 4, atol=0)


@pytest.mark.parametrize("schedule", INSTANCES)
def test_never_rises_after_warmup(schedule):
    start = _decay_start(schedule)
    times = np.arange(start, start + 2000, 0.25)
    values = schedule(times)
    assert np.all(np.diff(values) <= 0.0)


@pytest.mark.parametrize("schedule", INSTANCES)
def test_floor_respected(schedule):
    start = _decay_start(schedule)
    times = np.arange(start, start + 5000, 1.0)
    values = schedule(times)
    assert np.all(values >= schedule.min_lr)
    assert schedule(1e9) >= schedule.min_lr
    assert schedule(start) <= schedule.initial_lr


@pytest.mark.parametrize("schedule", INSTANCES)
def test_immutable(schedule):
    with pytest.raises(AttributeError, match="immutable"):
        schedule.initial_lr = 1.0
    with pytest.raises(AttributeError, match="immutable"):
        schedule.anything = 1.0


@pytest.mark.parametrize("schedule", INSTANCES)
def test_pickles_to_an_equal_schedule(schedule):
    assert pickle.loads(pickle.dumps(schedule)) == schedule


@pytest.mark.parametrize("schedule", INSTANCES)
def test_closed_form_area_equals_sum(schedule):
    for horizon in (0, 1, 29, 30, 31, 95, 1000):
        expected = math.fsum(schedule(np.arange(horizon, dtype=float)))
        assert dl.integrated_lr(schedule, horizon) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("schedule", INSTANCES)
def test_epochs_to_steps_matches_fractional_epochs(schedule):
    if isinstance(schedule, dl.AdamCompensated):
        # Adam's step count is in updates, so the schedule has no epoch form.
        with pytest.raises(ValueError, match="cannot be converted from epochs to steps"):
            dl.epochs_to_steps(schedule, 45)
        return
    stepped = dl.epochs_to_steps(schedule, 45)
    times = np.arange(0, 45 * 60)
    np.testing.assert_allclose(stepped(times), schedule(times / 45), rtol=1e-13)


def test_equal_parameters_compare_equal():
    assert dl.StepDecay(0.1, 0.5, 30) == dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    assert dl.StepDecay(0.1, 0.5, 30) != dl.StepDecay(0.1, 0.5, 31)
    assert dl.StepDecay(0.1, 0.5, 30) != dl.MultiStepDecay(0.1, 0.5, [30])
    assert len({dl.StepDecay(0.1, 0.5, 30), dl.StepDecay(0.1, 0.5, 30)}) == 1


def test_exponential_equality_is_by_parameters_as_given():
    by_half_life = dl.ExponentialDecay(initial_lr=0.1, half_life=30)
    by_rate = dl.ExponentialDecay(initial_lr=0.1, rate=by_half_life.rate)
    assert by_half_life != by_rate
    assert dl.compare_schedules(by_half_life, by_rate, 100)["max_abs_difference"] < 1e-15
