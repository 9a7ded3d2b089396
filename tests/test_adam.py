"""AdamCompensated: values, boundaries, round trips, contract behaviour and bad input."""

import json
import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import decaylab as dl
from decaylab.couplings import adam_update_rms, adam_update_rms_limit
from decaylab.schedules.adam import AdamCompensated

STEP = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30, min_lr=0.001)
CONSTANT = dl.ExponentialDecay(initial_lr=0.1, factor=1.0)

VARIANTS = [
    pytest.param({}, id="defaults"),
    pytest.param({"snr": 0.5}, id="snr-0.5"),
    pytest.param({"snr": math.inf, "bias_correction": False}, id="constant-no-correction"),
    pytest.param({"beta1": 0.0, "beta2": 0.99, "bias_correction": False}, id="beta1-0"),
    pytest.param({"beta1": 0.9, "beta2": 0.9}, id="beta2-0.9"),
]


# -- values ----------------------------------------------------------------------


@pytest.mark.parametrize("params", VARIANTS)
def test_step_size_follows_schedule(params):
    """lr(t) * r_{t+1} equals schedule(t) * r_inf at every update."""
    compensated = AdamCompensated(STEP, **params)
    t = np.arange(0, 3000)
    rms = adam_update_rms(t + 1, **params)
    limit = adam_update_rms_limit(
        params.get("beta1", 0.9), params.get("beta2", 0.999), params.get("snr", 0.0)
    )
    np.testing.assert_allclose(compensated(t) * rms, STEP(t) * limit, rtol=1e-13)


def test_values_at_boundaries():
    compensated = AdamCompensated(STEP)
    limit = adam_update_rms_limit()
    assert compensated(0) == pytest.approx(0.1 * limit, rel=1e-15)
    assert compensated(29) == pytest.approx(0.1 * limit / adam_update_rms(30), rel=1e-15)
    assert compensated(30) == pytest.approx(0.05 * limit / adam_update_rms(31), rel=1e-15)
    settle = compensated.settle_steps
    assert compensated(settle) == STEP(settle)
    assert compensated(1e9) == STEP(1e9)


def test_fractional_time_uses_update_in_progress():
    compensated = AdamCompensated(STEP)
    assert compensated(2.5) == STEP(2.5) * compensated.factor(2)
    assert compensated.factor(2.99) == compensated.factor(2)
    assert compensated.factor(3) != compensated.factor(2)


def test_constant_gradient_with_correction_is_identity():
    compensated = AdamCompensated(STEP, snr=math.inf)
    t = np.arange(0, 500, 0.5)
    np.testing.assert_array_equal(compensated(t), STEP(t))


def test_no_correction_damps_constant_gradient_peak():
    compensated = AdamCompensated(CONSTANT, bias_correction=False, snr=math.inf)
    factors = np.array([compensated.factor(t) for t in range(100)])
    assert int(np.argmin(factors)) == 11
    assert factors.min() == pytest.approx(1 / 6.5685, rel=1e-4)


def test_initial_lr_and_floor():
    compensated = AdamCompensated(STEP)
    assert compensated.initial_lr == 0.1
    assert compensated.min_lr == pytest.approx(0.001 * adam_update_rms_limit(), rel=1e-12)
    values = compensated(np.arange(0, 50_000, 7.0))
    assert np.all(values >= compensated.min_lr)


# -- what holds for monotonicity ---------------------------------------------------


def test_pure_noise_factor_rises_to_one():
    """With bias correction and snr=0 the factor climbs from r_inf to 1 (to rounding)."""
    compensated = AdamCompensated(CONSTANT)
    factors = compensated(np.arange(0, compensated.settle_steps + 10, 1.0)) / 0.1
    assert factors[0] == pytest.approx(adam_update_rms_limit(), rel=1e-15)
    assert np.all(np.diff(factors) >= -4e-16)
    assert np.all(factors <= 1.0 + 4e-16)


def test_signal_factor_overshoots_before_settling():
    compensated = AdamCompensated(CONSTANT, snr=0.5)
    factors = compensated(np.arange(0, 2000, 1.0)) / 0.1
    assert 1.005 < factors.max() < 1.01
    assert int(np.argmax(factors)) == 38


@pytest.mark.parametrize("params", VARIANTS)
def test_never_rises_after_settling(params):
    compensated = AdamCompensated(STEP, **params)
    start = compensated.settle_steps
    values = compensated(np.arange(start, start + 2000, 0.25))
    assert np.all(np.diff(values) <= 0.0)


# -- contract ----------------------------------------------------------------------


@pytest.mark.parametrize("params", VARIANTS)
def test_array_equals_scalar_by_scalar(params):
    compensated = AdamCompensated(STEP, **params)
    times = np.concatenate([np.arange(0, 300, 0.5), [1023.5, 1024, 1025, 4e4, 1e6, 1e9]])
    scalars = np.array([compensated(float(t)) for t in times])
    np.testing.assert_array_equal(compensated(times), scalars)


def test_beyond_stored_table_matches_model():
    compensated = AdamCompensated(STEP, beta2=0.99999)
    t = np.array([2.0**20 - 1, 2.0**20, 2.0**20 + 5, 3e6])
    expected = STEP(t) * adam_update_rms_limit(beta2=0.99999)
    expected /= adam_update_rms(t.astype(np.int64) + 1, beta2=0.99999)
    np.testing.assert_allclose(compensated(t), expected, rtol=1e-14)
    assert compensated(3e6) == compensated(np.array([3e6]))[0]


def test_huge_time_no_warning_or_nan():
    compensated = AdamCompensated(dl.ExponentialDecay(0.1, half_life=1e8), snr=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scalar = compensated(1e9)
        array = compensated(np.array([0.0, 1e9, 1e12]))
    assert math.isfinite(scalar)
    assert scalar > 0
    assert np.all(np.isfinite(array))


@pytest.mark.parametrize("params", VARIANTS)
def test_round_trip_through_dict_and_json(params):
    compensated = AdamCompensated(STEP, **params)
    rebuilt = dl.schedule_from_dict(json.loads(json.dumps(compensated.to_dict())))
    assert rebuilt == compensated
    assert hash(rebuilt) == hash(compensated)


@pytest.mark.parametrize("params", VARIANTS)
def test_round_trip_through_text_form(params):
    compensated = AdamCompensated(STEP, **params)
    rebuilt = dl.parse_schedule(compensated.to_spec())
    assert rebuilt == compensated
    assert rebuilt.to_spec() == compensated.to_spec()


def test_text_form_parses():
    parsed = dl.parse_schedule("adam_compensated(step(0.1, 0.5, 30), beta1=0.9, snr=0.5)")
    assert parsed == AdamCompensated(dl.StepDecay(0.1, 0.5, 30), snr=0.5)
    no_correction = dl.parse_schedule("adam_compensated(step(0.1, 0.5, 30), bias_correction=0)")
    assert no_correction.params()["bias_correction"] is False


def test_repr_and_pickle():
    compensated = AdamCompensated(STEP, beta1=0.8)
    assert repr(compensated) == f"AdamCompensated(schedule={STEP!r}, beta1=0.8)"
    assert pickle.loads(pickle.dumps(compensated)) == compensated
    assert AdamCompensated(STEP, beta1=0.8) != AdamCompensated(STEP, beta1=0.85)


def test_immutable():
    compensated = AdamCompensated(STEP)
    with pytest.raises(AttributeError, match="immutable"):
        compensated.beta1 = 0.5


def test_epoch_conversion_rejected():
    with pytest.raises(ValueError, match="cannot be converted from epochs to steps"):
        dl.epochs_to_steps(AdamCompensated(STEP), 10)


def test_wraps_warmup():
    warm = dl.Warmup(STEP, steps=10)
    compensated = AdamCompensated(warm)
    assert compensated(0) == 0.0
    assert compensated(10) == pytest.approx(0.1 * compensated.factor(10), rel=1e-15)


# -- bad input -------------------------------------------------------------------


def _rule_cases():
    cases = []
    for name, rule in AdamCompensated.rules.items():
        for value in rule.invalid_values:
            cases.append(pytest.param(name, value, ValueError, id=f"{name}={value!r}"))
        for value in rule.wrong_types:
            cases.append(pytest.param(name, value, TypeError, id=f"{name}-type-{value!r}"))
    return cases


@pytest.mark.parametrize("name, value, error", _rule_cases())
def test_invalid_parameter_named_in_error(name, value, error):
    with pytest.raises(error) as caught:
        AdamCompensated(STEP, **{**AdamCompensated.example, name: value})
    message = str(caught.value)
    assert message.startswith(f"AdamCompensated: {name} must be")
    assert "got" in message


def test_beta2_zero_with_momentum_rejected():
    with pytest.raises(ValueError, match="beta2=0 with beta1 > 0.*beta1=0.9"):
        AdamCompensated(STEP, beta2=0.0)
    assert AdamCompensated(STEP, beta2=0.0, snr=math.inf)(0) == 0.1
    assert AdamCompensated(STEP, beta1=0.0, beta2=0.0)(5) == STEP(5)


def test_non_schedule_rejected():
    with pytest.raises(TypeError, match="AdamCompensated: schedule must be a decaylab Schedule"):
        AdamCompensated(lambda t: 0.1)


@pytest.mark.parametrize("t", [-1.0, math.nan, math.inf])
def test_invalid_time_rejected(t):
    compensated = AdamCompensated(STEP)
    with pytest.raises(ValueError, match="t must be"):
        compensated(t)
    with pytest.raises(ValueError, match="t must"):
        compensated.factor(t)


def test_invalid_spec_names_parameter():
    with pytest.raises(dl.ScheduleSpecError, match="beta1 must be a number in \\[0, 1\\)"):
        dl.parse_schedule("adam_compensated(step(0.1, 0.5, 30), beta1=1.0)")
    with pytest.raises(dl.ScheduleSpecError, match="bias_correction must be a bool"):
        dl.parse_schedule("adam_compensated(step(0.1, 0.5, 30), bias_correction=2)")


# -- properties ------------------------------------------------------------------


@given(
    st.floats(0.0, 0.99),
    st.floats(0.5, 0.999),
    st.booleans(),
    st.one_of(st.floats(0.0, 10.0), st.just(math.inf)),
    st.floats(0.0, 1e5),
)
def test_compensated_times_rms_equals_schedule_times_limit(beta1, beta2, correction, snr, t):
    compensated = AdamCompensated(STEP, beta1, beta2, correction, snr)
    rms = adam_update_rms(math.floor(t) + 1, beta1, beta2, correction, snr)
    limit = adam_update_rms_limit(beta1, beta2, snr)
    assert compensated(t) * rms == pytest.approx(STEP(t) * limit, rel=1e-12)


@given(st.floats(0.0, 0.999), st.floats(0.0, 1e6))
def test_array_path_equals_scalar_path(snr, t):
    compensated = AdamCompensated(STEP, snr=snr)
    assert compensated(np.array([t]))[0] == compensated(t)
