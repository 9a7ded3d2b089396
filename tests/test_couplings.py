"""Adam's update RMS: closed forms, limits, Monte Carlo agreement and input checks.

The Monte Carlo tests run Adam's recurrences directly on many independent
coordinates with i.i.d. Gaussian gradients and compare the measured RMS of
the update with :func:`decaylab.couplings.adam_update_rms`.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from decaylab.couplings import (
    ADAM_EXACT_STEPS,
    ADAM_PARAMETER_RULES,
    adam_stability_threshold,
    adam_update_rms,
    adam_update_rms_limit,
    settled_steps,
    stability_threshold,
)

SNRS = [0.0, 0.5, 2.0, math.inf]
TOLERANCE = 0.03  # the agreement the model promises against Monte Carlo


def simulate_adam_rms(snr, steps, coordinates, seed, beta1=0.9, beta2=0.999, record=None):
    """Return the measured update RMS at Adam steps 1..steps, with and without bias correction.

    Only the steps in ``record`` (all when None) are measured; the others are NaN.
    """
    rng = np.random.default_rng(seed)
    if math.isinf(snr):
        mean, std = 1.0, 0.0
    else:
        std = 1.0 / math.sqrt(1.0 + snr * snr)
        mean = snr * std
    m = np.zeros(coordinates)
    v = np.zeros(coordinates)
    raw = np.full(steps, np.nan)
    measured = np.zeros(steps, dtype=bool)
    measured[np.arange(steps) if record is None else np.asarray(record) - 1] = True
    for index in range(steps):
        g = mean + std * rng.standard_normal(coordinates)
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * g * g
        if measured[index]:
            raw[index] = math.sqrt(np.mean(m * m / v))
    t = np.arange(1, steps + 1)
    corrected = raw * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    return corrected, raw


def plain_ratio(t, snr, beta1=0.9, beta2=0.999):
    """The uncorrected model sqrt(E[m_hat**2] / E[v_hat]), with bias correction."""
    t = np.asarray(t, dtype=float)
    mean_sq, variance = (1.0, 0.0) if math.isinf(snr) else (snr * snr, 1.0)
    mean_m_sq = mean_sq * (1 - beta1**t) ** 2 + variance * (1 - beta1) * (1 - beta1 ** (2 * t)) / (
        1 + beta1
    )
    mean_v = (mean_sq + variance) * (1 - beta2**t)
    return np.sqrt(mean_m_sq / mean_v * (1 - beta2**t)) / (1 - beta1**t)


def check_times():
    """Every step in 1..20 plus a log grid up to 10 000."""
    grid = np.unique(np.round(np.logspace(np.log10(21), 4, 60)).astype(int))
    return np.concatenate([np.arange(1, 21), grid])


# -- Monte Carlo agreement -------------------------------------------------------


@pytest.mark.parametrize("snr", SNRS)
def test_monte_carlo_agrees_within_three_percent(snr):
    times = check_times()
    corrected, raw = simulate_adam_rms(snr, 10_000, 20_000, seed=7, record=times)
    for bias_correction, measured in ((True, corrected), (False, raw)):
        model = adam_update_rms(times, bias_correction=bias_correction, snr=snr)
        error = np.abs(model / measured[times - 1] - 1.0)
        worst = int(times[np.argmax(error)])
        assert error.max() < TOLERANCE, f"bias_correction={bias_correction}, worst t={worst}"


def test_monte_carlo_rejects_plain_ratio():
    """The same check fails the uncorrected ratio model, so it can tell them apart."""
    corrected, _ = simulate_adam_rms(0.5, 20, 200_000, seed=3)
    times = np.arange(1, 21)
    plain_error = np.abs(plain_ratio(times, 0.5) / corrected - 1.0)
    model_error = np.abs(adam_update_rms(times, snr=0.5) / corrected - 1.0)
    assert plain_error.max() > 0.04
    assert model_error.max() < 0.01


@pytest.mark.parametrize("snr", [0.5, 1.0, 2.0])
def test_early_steps_match_large_monte_carlo(snr):
    corrected, _ = simulate_adam_rms(snr, 5, 2_000_000, seed=11)
    model = adam_update_rms(np.arange(1, 6), snr=snr)
    np.testing.assert_allclose(model, corrected, rtol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("snr", SNRS)
def test_monte_carlo_every_step_to_ten_thousand(snr):
    corrected, raw = simulate_adam_rms(snr, 10_000, 50_000, seed=23)
    times = np.arange(1, 10_001)
    for bias_correction, measured in ((True, corrected), (False, raw)):
        model = adam_update_rms(times, bias_correction=bias_correction, snr=snr)
        error = np.abs(model / measured - 1.0)
        assert error.max() < TOLERANCE, f"worst t={int(times[np.argmax(error)])}"


# -- closed forms and limits -----------------------------------------------------


@pytest.mark.parametrize("t, expected", [(1, 1.0), (2, 0.708), (5, 0.452), (10, 0.330)])
def test_pure_noise_known_values(t, expected):
    assert round(adam_update_rms(t), 3) == expected


def test_pure_noise_close_to_closed_form():
    t = np.arange(1, 5001)
    closed = np.sqrt(0.1 * (1 + 0.9**t) / (1.9 * (1 - 0.9**t)))
    np.testing.assert_allclose(adam_update_rms(t), closed, rtol=5e-4)


def test_constant_gradient_with_bias_correction_is_one():
    t = np.array([1, 2, 12, 1000, 10**9])
    np.testing.assert_array_equal(adam_update_rms(t, snr=math.inf), np.ones(5))


def test_constant_gradient_without_bias_correction():
    t = np.arange(1, 200)
    expected = (1 - 0.9**t) / np.sqrt(1 - 0.999**t)
    values = adam_update_rms(t, bias_correction=False, snr=math.inf)
    np.testing.assert_allclose(values, expected, rtol=1e-14)


def test_constant_gradient_peak_at_step_twelve():
    values = adam_update_rms(np.arange(1, 101), bias_correction=False, snr=math.inf)
    assert int(np.argmax(values)) + 1 == 12
    assert round(float(values.max()), 2) == 6.57


def test_first_step_is_sign_of_gradient():
    for snr in SNRS:
        assert adam_update_rms(1, snr=snr) == 1.0
        assert adam_update_rms(1, bias_correction=False, snr=snr) == pytest.approx(0.1 / math.sqrt(0.001))


def test_limit_matches_late_steps():
    for snr in SNRS:
        limit = adam_update_rms_limit(snr=snr)
        assert adam_update_rms(10**9, snr=snr) == limit
        assert adam_update_rms(10**9, bias_correction=False, snr=snr) == pytest.approx(limit, rel=1e-15)
    assert adam_update_rms_limit() == pytest.approx(math.sqrt(0.1 / 1.9), rel=1e-3)


def test_exact_range_hands_over_smoothly():
    for snr in (0.0, 0.5, 1.0, 2.0):
        last_exact, first_delta = adam_update_rms(np.array([ADAM_EXACT_STEPS, ADAM_EXACT_STEPS + 1]), snr=snr)
        assert abs(first_delta / last_exact - 1.0) < 1e-5


def test_no_bias_correction_scales_corrected_value():
    t = np.arange(1, 3000)
    ratio = adam_update_rms(t, bias_correction=False, snr=0.5) / adam_update_rms(t, snr=0.5)
    np.testing.assert_allclose(ratio, (1 - 0.9**t) / np.sqrt(1 - 0.999**t), rtol=1e-13)


def test_beta1_zero_and_small_beta2():
    assert adam_update_rms(1, beta1=0.0) == 1.0
    assert 0.0 < adam_update_rms(50, beta1=0.0, beta2=0.5, snr=1.0) <= 1.0
    assert adam_update_rms(3, beta1=0.0, beta2=0.0) == 1.0


def test_beta2_zero_with_momentum_is_infinite():
    values = adam_update_rms(np.array([1, 2, 100]), beta2=0.0, snr=0.5)
    assert values[0] == 1.0
    assert np.all(np.isinf(values[1:]))
    with pytest.raises(ValueError, match="beta2=0 with beta1 > 0 and eps > 0"):
        adam_update_rms(2, beta2=0.0, eps=0.1)


def test_eps_exact_for_constant_gradient():
    assert adam_update_rms(5, snr=math.inf, eps=0.25) == pytest.approx(1.0 / 1.25)
    expected = (1 - 0.9**3) / (math.sqrt(1 - 0.999**3) + 0.5)
    assert adam_update_rms(3, bias_correction=False, snr=math.inf, eps=0.5) == pytest.approx(expected)


def test_eps_shrinks_random_gradient_update():
    t = np.arange(1, 100)
    assert np.all(adam_update_rms(t, eps=0.1) < adam_update_rms(t))
    np.testing.assert_array_equal(adam_update_rms(t, eps=0.0), adam_update_rms(t))


def test_array_equals_scalar_by_scalar():
    t = np.array([[1, 2, 3], [1024, 1025, 10**9]])
    values = adam_update_rms(t, snr=0.5)
    assert values.shape == (2, 3)
    scalars = [[adam_update_rms(int(x), snr=0.5) for x in row] for row in t]
    np.testing.assert_array_equal(values, np.array(scalars))
    assert isinstance(adam_update_rms(np.int32(4)), float)


def test_huge_steps_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = adam_update_rms(np.array([10**9, 2**62]), beta1=0.5, beta2=0.9999, snr=1.0)
    assert np.all(np.isfinite(values))


def test_settled_steps():
    assert settled_steps(0.9, 0.999) == 41569
    assert settled_steps(0.0, 0.0) == 1
    assert 0.999**settled_steps(0.9, 0.999) < 2.0**-60 <= 0.999 ** (settled_steps(0.9, 0.999) - 1)


def test_existing_thresholds_unchanged():
    assert stability_threshold(0.1, momentum=0.9) == pytest.approx(38.0, rel=1e-15)
    assert adam_stability_threshold(0.001) == pytest.approx(38000.0)


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, -1, -(10**12)])
def test_step_below_one_rejected(t):
    with pytest.raises(ValueError, match=f"t must be an integer Adam step >= 1.*got {t}"):
        adam_update_rms(t)


@pytest.mark.parametrize("t", [1.0, 2.5, math.nan, math.inf, True, "3", None])
def test_non_integer_step_rejected(t):
    with pytest.raises(TypeError, match="t must be an integer Adam step >= 1"):
        adam_update_rms(t)


def test_array_steps_checked():
    with pytest.raises(ValueError, match="t must contain Adam steps >= 1.*got 0"):
        adam_update_rms(np.array([3, 0, 5]))
    with pytest.raises(TypeError, match="dtype float64"):
        adam_update_rms(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="dtype bool"):
        adam_update_rms(np.array([True]))


def _parameter_cases():
    cases = []
    for name, rule in ADAM_PARAMETER_RULES.items():
        for value in rule.invalid_values:
            cases.append(pytest.param(name, value, ValueError, id=f"{name}={value!r}"))
        for value in rule.wrong_types:
            cases.append(pytest.param(name, value, TypeError, id=f"{name}-type-{value!r}"))
    return cases


@pytest.mark.parametrize("name, value, error", _parameter_cases())
def test_invalid_parameter_named_in_error(name, value, error):
    with pytest.raises(error) as caught:
        adam_update_rms(3, **{name: value})
    message = str(caught.value)
    assert message.startswith(f"adam_update_rms: {name} must be")
    assert "got" in message
    if name != "bias_correction":
        with pytest.raises(error, match=f"adam_update_rms_limit: {name} must be"):
            adam_update_rms_limit(**{name: value})


# -- properties ------------------------------------------------------------------

betas = st.floats(0.0, 0.999)
snrs = st.one_of(st.floats(0.0, 20.0), st.just(math.inf))


@given(betas, betas, snrs)
def test_corrected_rms_bounded_by_first_step(beta1, beta2, snr):
    """With bias correction and beta1 <= beta2, no step exceeds step 1 (RMS 1)."""
    assume(beta1 <= beta2)
    values = adam_update_rms(np.arange(1, 400), beta1, beta2, True, snr)
    assert values.max() <= 1.0 + 1e-9


@given(betas, st.floats(0.0, 1.0), st.floats(0.0, 20.0), st.floats(0.0, 20.0))
def test_limit_grows_with_snr(beta1, fraction, first, second):
    """For beta1 <= beta2 a stronger signal gives a larger limiting RMS."""
    # Drawn ordered rather than filtered, so hypothesis rejects few examples.
    beta2 = beta1 + fraction * (0.999 - beta1)
    low, high = sorted((first, second))
    assume(low < high)
    assert adam_update_rms_limit(beta1, beta2, low) <= adam_update_rms_limit(beta1, beta2, high) * (1 + 1e-12)


@given(betas, st.floats(0.001, 0.999), snrs, st.integers(1, 5000))
def test_rms_between_zero_and_no_correction_bound(beta1, beta2, snr, t):
    """Without bias correction the RMS is positive and below sum(a_k / sqrt(w_k))."""
    value = adam_update_rms(t, beta1, beta2, False, snr)
    ages = np.arange(t)
    with np.errstate(over="ignore"):
        terms = np.exp(ages * (math.log(beta1) - 0.5 * math.log(beta2))) if beta1 > 0 else ages == 0
        bound = (1 - beta1) / math.sqrt(1 - beta2) * float(np.sum(terms))
    assert 0.0 < value <= bound * (1 + 1e-9)
