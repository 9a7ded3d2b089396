"""Exact values of every schedule class at and around its boundaries."""

import math

import numpy as np
import pytest

import decaylab as dl

STEP = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
MULTI = dl.MultiStepDecay(initial_lr=0.1, gamma=0.1, milestones=[30, 60, 80])
HALF = dl.ExponentialDecay(initial_lr=0.1, half_life=30)

CASES = [
    # (schedule, t, expected)
    (STEP, 0, 0.1),
    (STEP, 29, 0.1),
    (STEP, 29.999, 0.1),
    (STEP, 30, 0.05),
    (STEP, 31, 0.05),
    (STEP, 59, 0.05),
    (STEP, 60, 0.025),
    (STEP, 90, 0.0125),
    (MULTI, 0, 0.1),
    (MULTI, 29, 0.1),
    (MULTI, 30, 0.1 * 0.1),
    (MULTI, 59, 0.1 * 0.1),
    (MULTI, 60, 0.1 * 0.01),
    (MULTI, 79, 0.1 * 0.01),
    (MULTI, 80, 0.1 * 0.001),
    (MULTI, 10**6, 0.1 * 0.001),
    (HALF, 0, 0.1),
    (HALF, 15, 0.1 * math.sqrt(0.5)),
    (HALF, 30, 0.05),
    (HALF, 60, 0.025),
    (dl.ExponentialDecay(initial_lr=0.2, rate=0.1), 10, 0.2 * math.exp(-1.0)),
    (dl.ExponentialDecay(initial_lr=0.2, factor=0.9), 2, 0.2 * 0.81),
    (dl.ExponentialDecay(initial_lr=0.2, decay_rate=0.1, decay_steps=100), 50, 0.2 * math.sqrt(0.1)),
    (dl.ExponentialDecay(initial_lr=0.2, decay_rate=0.1, decay_steps=100), 100, 0.02),
]


@pytest.mark.parametrize("schedule, t, expected", CASES)
def test_value_at_boundary(schedule, t, expected):
    assert schedule(t) == pytest.approx(expected, rel=1e-14)
    assert schedule(np.array([t], dtype=float))[0] == pytest.approx(expected, rel=1e-14)


def test_step_first_update_uses_initial_lr():
    assert STEP(0) == STEP.initial_lr


def test_step_drop_happens_at_multiple_of_step_size():
    times = np.arange(0, 121)
    values = STEP(times)
    drops = np.flatnonzero(np.diff(values) < 0) + 1
    assert drops.tolist() == [30, 60, 90, 120]


def test_multistep_drop_happens_at_milestone():
    values = MULTI(np.arange(0, 100))
    drops = np.flatnonzero(np.diff(values) < 0) + 1
    assert drops.tolist() == [30, 60, 80]


def test_multistep_with_even_milestones_equals_step():
    step = dl.StepDecay(initial_lr=0.3, gamma=0.7, step_size=25)
    multi = dl.MultiStepDecay(initial_lr=0.3, gamma=0.7, milestones=[25, 50, 75, 100])
    times = np.arange(0, 125, 0.25)
    np.testing.assert_array_equal(step(times), multi(times))
    for t in range(0, 125):
        assert step(t) == multi(t)


def test_multistep_stays_flat_after_last_milestone():
    assert MULTI(81) == MULTI(10**9)


def test_milestone_zero_drops_first_update():
    multi = dl.MultiStepDecay(initial_lr=0.1, gamma=0.5, milestones=[0, 10])
    assert multi(0) == 0.05


def test_fractional_epoch_drops_at_boundary():
    step = dl.StepDecay(initial_lr=1.0, gamma=0.5, step_size=3)
    assert step(2.999999) == 1.0
    assert step(3.0) == 0.5


def test_floor_is_a_clamp():
    step = dl.StepDecay(initial_lr=0.1, gamma=0.1, step_size=10, min_lr=0.002)
    assert step(9) == 0.1
    assert step(10) == pytest.approx(0.01)
    assert step(20) == 0.002
    assert step(10**6) == 0.002
    exp = dl.ExponentialDecay(initial_lr=0.1, rate=0.1, min_lr=0.01)
    assert exp(10**6) == 0.01
    assert exp(0) == 0.1


def test_floor_equal_to_initial_lr_is_constant():
    step = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=1, min_lr=0.1)
    np.testing.assert_array_equal(step(np.arange(100)), 0.1)


def test_gamma_one_is_constant():
    step = dl.StepDecay(initial_lr=0.1, gamma=1.0, step_size=5)
    np.testing.assert_array_equal(step(np.arange(50)), 0.1)


def test_exponential_factor_one_is_constant():
    exp = dl.ExponentialDecay(initial_lr=0.1, factor=1.0)
    assert exp(10**6) == 0.1
    assert exp.rate == 0.0
    assert exp.half_life == math.inf
    assert exp.lifetime == math.inf


@pytest.mark.parametrize(
    "form",
    [
        {"rate": math.log(2) / 30},
        {"factor": 0.5 ** (1 / 30)},
        {"half_life": 30.0},
        {"decay_rate": 0.5, "decay_steps": 30.0},
        {"decay_rate": 0.25, "decay_steps": 60.0},
    ],
)
def test_exponential_forms_agree(form):
    exp = dl.ExponentialDecay(initial_lr=0.1, **form)
    assert exp.rate == pytest.approx(math.log(2) / 30, rel=1e-14)
    assert exp.factor == pytest.approx(0.5 ** (1 / 30), rel=1e-14)
    assert exp.half_life == pytest.approx(30.0, rel=1e-14)
    assert exp.lifetime == pytest.approx(30.0 / math.log(2), rel=1e-14)
    times = np.arange(0, 300, 7.5)
    np.testing.assert_allclose(exp(times), 0.1 * 0.5 ** (times / 30), rtol=1e-13)


def test_warmup_ramp_and_handover():
    warm = dl.Warmup(STEP, steps=10, start_lr=0.01)
    assert warm(0) == 0.01
    assert warm(5) == pytest.approx(0.055)
    assert warm(9) == pytest.approx(0.01 + 0.09 * 0.9)
    assert warm(10) == 0.1
    assert warm(39) == 0.1
    assert warm(40) == 0.05
    assert warm.initial_lr == 0.1


def test_warmup_hands_over_without_plateau():
    warm = dl.Warmup(HALF, steps=4)
    values = warm(np.arange(0, 8))
    assert values[4] == HALF(0)
    assert values[5] == HALF(1)
    assert np.all(np.diff(values[:5]) > 0)


def test_warmup_zero_steps_is_identity():
    warm = dl.Warmup(STEP, steps=0)
    times = np.arange(0, 200, 0.5)
    np.testing.assert_array_equal(warm(times), STEP(times))


def test_huge_t_returns_floor_without_warning():
    schedules = [
        STEP,
        MULTI,
        HALF,
        dl.ExponentialDecay(initial_lr=0.1, rate=1e300),
        dl.StepDecay(initial_lr=0.1, gamma=1e-300, step_size=1, min_lr=1e-320),
        dl.Warmup(STEP, 3),
    ]
    with np.errstate(all="raise"):
        for schedule in schedules:
            scalar = schedule(1e9)
            array = schedule(np.array([1e9, 1e18]))
            assert math.isfinite(scalar)
            assert scalar >= 0.0
            assert np.all(np.isfinite(array))
            if schedule is MULTI:
                assert scalar == MULTI(80)
            else:
                assert scalar == schedule.min_lr or scalar < 1e-300


@pytest.mark.parametrize("bad", [-1, -1e-9, math.nan, math.inf, -math.inf])
def test_invalid_time_raises(bad):
    with pytest.raises(ValueError, match="t must"):
        STEP(bad)
    with pytest.raises(ValueError, match="t must contain"):
        STEP(np.array([0.0, 1.0, bad]))


@pytest.mark.parametrize("bad", ["3", None, True, [[1, "x"]]])
def test_time_of_wrong_type_raises(bad):
    with pytest.raises(TypeError, match="t must be"):
        STEP(bad)


def test_scalar_returns_python_float_and_array_float64():
    assert type(STEP(3)) is float
    assert type(STEP(np.int64(3))) is float
    out = STEP(np.arange(5, dtype=np.int32))
    assert out.dtype == np.float64
    assert out.shape == (5,)
    assert STEP([0, 30]).tolist() == [0.1, 0.05]
    assert STEP(np.zeros((2, 3))).shape == (2, 3)
    assert STEP(np.array([], dtype=float)).shape == (0,)


def test_step_drops_lists_boundaries():
    assert STEP.drops(100) == [30, 60, 90]
    assert MULTI.drops(70) == [30, 60]
