"""Hypothesis properties of schedules, matching and quantisation."""

import json
import math

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import decaylab as dl

lrs = st.floats(1e-6, 10.0)
gammas = st.floats(0.01, 0.99)
periods = st.integers(1, 500)
times = st.floats(0.0, 1e7)


@st.composite
def step_schedules(draw, floored=True):
    lr = draw(lrs)
    min_lr = draw(st.floats(0.0, lr)) if floored and draw(st.booleans()) else 0.0
    return dl.StepDecay(lr, draw(gammas), draw(periods), min_lr=min_lr)


@st.composite
def multistep_schedules(draw):
    gaps = draw(st.lists(st.integers(1, 300), min_size=1, max_size=6))
    milestones = np.cumsum(gaps).tolist()
    return dl.MultiStepDecay(draw(lrs), draw(gammas), milestones)


@st.composite
def exponential_schedules(draw):
    lr = draw(lrs)
    form = draw(st.sampled_from(["rate", "factor", "half_life", "decay"]))
    if form == "rate":
        params = {"rate": draw(st.floats(1e-6, 1.0))}
    elif form == "factor":
        params = {"factor": draw(st.floats(0.5, 1.0))}
    elif form == "half_life":
        params = {"half_life": draw(st.floats(0.5, 1e5))}
    else:
        params = {"decay_rate": draw(gammas), "decay_steps": draw(st.floats(0.5, 1e4))}
    return dl.ExponentialDecay(lr, min_lr=draw(st.sampled_from([0.0, lr / 100])), **params)


any_schedule = st.one_of(
    step_schedules(),
    multistep_schedules(),
    exponential_schedules(),
    st.builds(dl.Warmup, step_schedules(), st.integers(0, 100)),
)


@given(step_schedules())
def test_quantize_of_half_life_twin_is_identity(step):
    assert dl.quantize(dl.match_half_life(step), step.step_size) == step


@given(step_schedules(), st.integers(0, 200))
def test_step_is_above_twin_and_equal_at_drops(step, plateau):
    twin = dl.match_half_life(step)
    drop = float(plateau * step.step_size)
    assert twin(drop) == step(drop)
    inside = np.linspace(drop, drop + step.step_size, 17, endpoint=False)
    assert np.all(step(inside) >= twin(inside))
    assert np.array_equal(step(np.array([drop])), twin(np.array([drop])))


@given(step_schedules(floored=False), st.integers(1, 50))
def test_area_excess_per_plateau_is_exact_factor(step, plateaus):
    horizon = plateaus * step.step_size
    assume(step.initial_lr * step.gamma**plateaus > 1e-250)
    twin = dl.match_half_life(step)
    ratio = dl.integrated_lr(step, horizon) / dl.integrated_lr(twin, horizon)
    gamma, period = step.gamma, step.step_size
    expected = period * (1 - gamma ** (1 / period)) / (1 - gamma)
    assert math.isclose(ratio, expected, rel_tol=1e-10)


@given(st.one_of(step_schedules(), multistep_schedules(), exponential_schedules()))
def test_decay_never_rises(schedule):
    values = schedule(np.sort(np.random.default_rng(0).uniform(0, 5000, 400)))
    assert np.all(np.diff(values) <= 0.0)


@given(any_schedule, times)
def test_floor_respected_after_warmup(schedule, t):
    start = schedule.steps if isinstance(schedule, dl.Warmup) else 0
    assert schedule(start + t) >= schedule.min_lr


@given(any_schedule)
def test_dict_round_trip_is_exact(schedule):
    assert dl.schedule_from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule


@given(any_schedule)
def test_text_round_trip_is_exact(schedule):
    assert dl.parse_schedule(schedule.to_spec()) == schedule


@given(st.one_of(step_schedules(), multistep_schedules()), st.integers(2, 20000))
def test_area_twin_has_equal_area(step, horizon):
    twin = dl.match_area(step, horizon)
    expected = dl.integrated_lr(step, horizon)
    assert math.isclose(dl.integrated_lr(twin, horizon), expected, rel_tol=1e-10)


@given(st.one_of(step_schedules(), multistep_schedules()), st.integers(1, 20000))
def test_final_lr_twin_is_equal_at_horizon(step, horizon):
    assume(step.initial_lr * step.gamma ** len(step.drops(horizon + 1)) > 1e-250)
    twin = dl.match_final_lr(step, horizon)
    unfloored = step.initial_lr * step.gamma ** len(step.drops(horizon + 1))
    assert math.isclose(twin(horizon), max(step.min_lr, unfloored), rel_tol=1e-9)


@given(st.floats(1e-4, 1.0), gammas, periods, st.integers(1, 8))
def test_even_multistep_equals_step(lr, gamma, period, count):
    step = dl.StepDecay(lr, gamma, period)
    multi = dl.MultiStepDecay(lr, gamma, [period * k for k in range(1, count + 1)])
    t = np.arange(0, (count + 1) * period, 0.5)
    assert np.array_equal(step(t), multi(t))


@given(step_schedules(), st.integers(1, 50), st.floats(0.0, 1.0))
def test_warmup_rises_then_hands_over(step, steps, start_fraction):
    warm = dl.Warmup(step, steps, start_lr=start_fraction * step(0))
    ramp = warm(np.arange(0, steps + 1, dtype=float))
    assert np.all(np.diff(ramp) >= 0.0)
    assert warm(steps) == step(0)
    assert warm(steps + 3.5) == step(3.5)


@given(any_schedule, st.integers(0, 3000))
def test_closed_form_area_matches_sum(schedule, horizon):
    expected = math.fsum(schedule(np.arange(horizon, dtype=float)))
    assert math.isclose(dl.integrated_lr(schedule, horizon), expected, rel_tol=1e-10, abs_tol=1e-300)


@given(any_schedule, any_schedule, st.integers(1, 2000))
def test_compare_schedules_is_consistent(a, b, horizon):
    result = dl.compare_schedules(a, b, horizon)
    assert 0.0 <= result["fraction_a_greater"] + result["fraction_equal"] <= 1.0
    if result["ratio_steps"]:
        log_min, log_max = math.log(result["min_ratio"]), math.log(result["max_ratio"])
        assert log_min - 1e-12 <= result["mean_log_ratio"] <= log_max + 1e-12
    swapped = dl.compare_schedules(b, a, horizon)
    assert swapped["fraction_equal"] == result["fraction_equal"]


@given(any_schedule, st.lists(times, min_size=1, max_size=50))
def test_array_matches_scalars(schedule, points):
    array = schedule(np.array(points))
    scalars = np.array([schedule(p) for p in points])
    np.testing.assert_allclose(array, scalars, rtol=2e-15, atol=0)
