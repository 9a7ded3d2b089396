"""Matching step schedules to exponential twins, and quantising back."""

import math

import numpy as np
import pytest

import decaylab as dl

STEP = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)


def test_half_life_twin_rate_and_boundaries():
    twin = dl.match_half_life(STEP)
    assert twin.rate == pytest.approx(-math.log(0.5) / 30, rel=1e-15)
    assert twin.half_life == pytest.approx(30.0, rel=1e-15)
    drops = np.arange(0, 3000, 30, dtype=float)
    np.testing.assert_array_equal(twin(drops), STEP(drops))
    between = drops + 7
    assert np.all(twin(between) < STEP(between))


def test_half_life_twin_keeps_floor():
    step = dl.StepDecay(0.1, 0.5, 30, min_lr=0.01)
    assert dl.match_half_life(step).min_lr == 0.01


def test_half_life_of_even_multistep_equals_step_twin():
    multi = dl.MultiStepDecay(0.1, 0.5, [30, 60, 90])
    assert dl.match_half_life(multi) == dl.match_half_life(STEP)


@pytest.mark.parametrize("milestones", [[30, 70], [10, 20, 40], [0, 30]])
def test_half_life_of_irregular_multistep_raises(milestones):
    with pytest.raises(ValueError, match="not evenly spaced"):
        dl.match_half_life(dl.MultiStepDecay(0.1, 0.5, milestones))


def test_half_life_of_constant_step_raises():
    with pytest.raises(ValueError, match="never decays"):
        dl.match_half_life(dl.StepDecay(0.1, 1.0, 30))


@pytest.mark.parametrize("horizon", [1, 29, 30, 31, 90, 95, 1000])
def test_final_lr_twin_equal_at_horizon(horizon):
    twin = dl.match_final_lr(STEP, horizon)
    assert twin(horizon) == pytest.approx(STEP(horizon), rel=1e-13)


def test_final_lr_twin_of_multistep():
    multi = dl.MultiStepDecay(0.1, 0.1, [30, 60, 80])
    twin = dl.match_final_lr(multi, 100)
    assert twin(100) == pytest.approx(multi(100), rel=1e-15)
    assert twin.rate == pytest.approx(3 * math.log(10) / 100)


def test_final_lr_twin_before_first_drop_is_constant():
    twin = dl.match_final_lr(STEP, 10)
    assert twin(10) == 0.1
    assert twin.rate == 0.0


@pytest.mark.parametrize("horizon", [31, 60, 90, 95, 1000, 12345])
def test_area_twin_has_equal_area(horizon):
    twin = dl.match_area(STEP, horizon)
    assert dl.integrated_lr(twin, horizon) == pytest.approx(
        dl.integrated_lr(STEP, horizon), rel=1e-13
    )
    assert twin.initial_lr == STEP.initial_lr


def test_area_twin_with_floor():
    step = dl.StepDecay(0.1, 0.1, 10, min_lr=0.001)
    twin = dl.match_area(step, 200)
    assert dl.integrated_lr(twin, 200) == pytest.approx(dl.integrated_lr(step, 200), rel=1e-12)
    assert twin.min_lr == 0.001


def test_area_twin_before_first_drop_is_constant():
    twin = dl.match_area(STEP, 30)
    assert twin.rate == 0.0


def test_area_of_multistep():
    multi = dl.MultiStepDecay(0.1, 0.1, [30, 60, 80])
    twin = dl.match_area(multi, 100)
    assert dl.integrated_lr(twin, 100) == pytest.approx(dl.integrated_lr(multi, 100), rel=1e-13)


def test_twins_order_by_rate():
    """Half-life twin sits below the step; area twin decays slower than it."""
    horizon = 300
    half = dl.match_half_life(STEP)
    area = dl.match_area(STEP, horizon)
    assert area.rate < half.rate
    assert dl.integrated_lr(half, horizon) < dl.integrated_lr(STEP, horizon)


def test_quantize_inverts_half_life_match():
    assert dl.quantize(dl.match_half_life(STEP), 30) == STEP


def test_quantize_of_half_life_form():
    assert dl.quantize(dl.ExponentialDecay(0.1, half_life=30), 30) == STEP


def test_quantize_is_sample_and_hold():
    exp = dl.ExponentialDecay(0.1, rate=0.013)
    step = dl.quantize(exp, 17)
    times = np.arange(0, 2000)
    held = exp(np.floor(times / 17) * 17)
    np.testing.assert_allclose(step(times), held, rtol=1e-13)
    assert np.all(step(times) >= exp(times) * (1 - 1e-14))


def test_quantize_rejects_non_exponential():
    with pytest.raises(TypeError, match="expected an ExponentialDecay"):
        dl.quantize(STEP, 30)
    with pytest.raises(ValueError, match="step_size must be an integer >= 1"):
        dl.quantize(dl.match_half_life(STEP), 0)


def test_integrated_lr_closed_forms():
    assert dl.integrated_lr(STEP, 60) == pytest.approx(30 * 0.1 + 30 * 0.05)
    exp = dl.ExponentialDecay(1.0, factor=0.5)
    assert dl.integrated_lr(exp, 3) == pytest.approx(1.75)
    assert dl.integrated_lr(STEP, 0) == 0.0


def test_integrated_lr_rejects_bad_horizon():
    with pytest.raises(ValueError, match="horizon must be an integer >= 0; got -1"):
        dl.integrated_lr(STEP, -1)
    with pytest.raises(TypeError, match="horizon must be an integer"):
        dl.integrated_lr(STEP, 10.5)
    with pytest.raises(TypeError, match="expected a decaylab Schedule"):
        dl.integrated_lr(lambda t: 0.1, 10)


@pytest.mark.parametrize("matcher", [dl.match_final_lr, dl.match_area])
def test_matching_rejects_exponential_and_bad_horizon(matcher):
    with pytest.raises(TypeError, match="StepDecay or MultiStepDecay"):
        matcher(dl.ExponentialDecay(0.1, rate=0.1), 10)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1; got 0"):
        matcher(STEP, 0)


def test_compare_schedules_step_vs_half_life_twin():
    twin = dl.match_half_life(STEP)
    result = dl.compare_schedules(STEP, twin, 300)
    assert result["min_ratio"] == 1.0
    assert result["max_ratio"] == pytest.approx(2 ** (29 / 30))
    assert result["fraction_equal"] == pytest.approx(10 / 300)
    assert result["fraction_a_greater"] == pytest.approx(290 / 300)
    assert result["area_ratio"] == pytest.approx(dl.half_life_area_ratio(0.5, 30), rel=1e-13)
    assert result["ratio_steps"] == 300
    mean_log = np.mean(np.log(STEP(np.arange(300.0)) / twin(np.arange(300.0))))
    assert result["mean_log_ratio"] == pytest.approx(mean_log)


def test_compare_schedules_with_zero_lr_steps():
    warm = dl.Warmup(STEP, steps=10)
    result = dl.compare_schedules(warm, STEP, 100)
    assert result["ratio_steps"] == 99
    assert math.isfinite(result["max_ratio"])


def test_half_life_area_ratio_closed_form():
    gamma, period = 0.1, 7
    expected = period * (1 - gamma ** (1 / period)) / (1 - gamma)
    assert dl.half_life_area_ratio(gamma, period) == pytest.approx(expected, rel=1e-14)
    assert dl.half_life_area_ratio(1.0, 7) == 1.0
    assert dl.half_life_area_ratio(0.5, 1) == pytest.approx(1.0)


def test_epochs_to_steps_each_class():
    steps_per_epoch = 45
    schedules = [
        STEP,
        dl.MultiStepDecay(0.1, 0.1, [3, 6]),
        dl.ExponentialDecay(0.1, rate=0.1),
        dl.ExponentialDecay(0.1, factor=0.9),
        dl.ExponentialDecay(0.1, half_life=3),
        dl.ExponentialDecay(0.1, decay_rate=0.5, decay_steps=2),
        dl.Warmup(STEP, steps=2),
    ]
    times = np.arange(0, 45 * 100)
    for schedule in schedules:
        stepped = dl.epochs_to_steps(schedule, steps_per_epoch)
        np.testing.assert_allclose(stepped(times), schedule(times / 45), rtol=1e-13)
    with pytest.raises(ValueError, match="steps_per_epoch must be an integer >= 1"):
        dl.epochs_to_steps(STEP, 0)
