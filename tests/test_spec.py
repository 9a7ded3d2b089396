"""The compact text form: parsing, round trips and error positions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import decaylab as dl


@pytest.mark.parametrize(
    "text, expected",
    [
        ("step(initial_lr=0.1, gamma=0.5, step_size=30)", dl.StepDecay(0.1, 0.5, 30)),
        ("step(0.1, 0.5, 30)", dl.StepDecay(0.1, 0.5, 30)),
        ("  step ( 0.1 ,0.5,30 )  ", dl.StepDecay(0.1, 0.5, 30)),
        ("step(0.1, 0.5, 30, min_lr=1e-4)", dl.StepDecay(0.1, 0.5, 30, min_lr=1e-4)),
        ("multistep(0.1, 0.1, [30, 60, 80])", dl.MultiStepDecay(0.1, 0.1, [30, 60, 80])),
        ("exp(initial_lr=0.1, half_life=30)", dl.ExponentialDecay(0.1, half_life=30)),
        ("exponential(0.1, rate=.01)", dl.ExponentialDecay(0.1, rate=0.01)),
        (
            "exp(0.1, decay_rate=0.5, decay_steps=30)",
            dl.ExponentialDecay(0.1, decay_rate=0.5, decay_steps=30),
        ),
        (
            "warmup(step(0.1, 0.5, 30), steps=5, start_lr=0.001)",
            dl.Warmup(dl.StepDecay(0.1, 0.5, 30), 5, 0.001),
        ),
        (
            "warmup(schedule=exp(0.1, factor=0.99), steps=5)",
            dl.Warmup(dl.ExponentialDecay(0.1, factor=0.99), 5),
        ),
    ],
)
def test_parse_builds_schedule(text, expected):
    assert dl.parse_schedule(text) == expected


def test_literals_parse():
    assert dl.parse_schedule("exp(0.1, half_life=1e3)").half_life == 1000.0
    compensated = dl.parse_schedule("adam_compensated(step(0.1, 0.5, 30), bias_correction=false, snr=inf)")
    assert compensated.to_spec().endswith("bias_correction=false, snr=inf)")
    assert dl.parse_schedule(compensated.to_spec()) == compensated


def test_integer_literal_stays_integer():
    assert dl.parse_schedule("step(0.1, 0.5, 30)").to_dict()["step_size"] == 30


def test_float_literal_for_integer_parameter_is_rejected():
    with pytest.raises(dl.ScheduleSpecError, match="step_size must be an integer") as caught:
        dl.parse_schedule("step(0.1, 0.5, 30.0)")
    assert caught.value.column == len("step(0.1, 0.5, ")


@pytest.mark.parametrize(
    "text, column, fragment",
    [
        ("stpe(0.1, 0.5, 30)", 0, "unknown schedule 'stpe'"),
        ("step(0.1, gama=0.5, step_size=30)", 10, "unknown parameter 'gama'"),
        ("step(0.1, 0.5, 30", 17, "expected ',' or ')', found the end of the text"),
        ("multistep(0.1, 0.1, [30", 23, "expected ',' or ']', found the end of the text"),
        ("step(0.1, 0.5,", 14, "found the end of the text"),
        ("step(0.1; 0.5)", 8, "unexpected character ';'"),
        ("step(0.1, 0.5, 30) extra", 19, "unexpected 'extra'"),
        ("step(initial_lr=0.1, 0.5, 30)", 21, "positional argument after a keyword"),
        ("step(0.1, 0.5, 30, 0.0, 1)", 24, "too many arguments"),
        ("step(0.1, gamma=0.5, gamma=0.4, step_size=3)", 21, "given twice"),
        ("step(0.1, 0.5, -3)", 15, "step_size must be an integer >= 1; got -3"),
        ("multistep(0.1, 0.1, [30, x])", 25, "expected a number inside"),
        ("exp(0.1)", 0, "give exactly one of"),
        ("", 0, "expected a schedule name"),
        ("step(0.1, 0.5, import)", 15, "unknown schedule 'import'"),
        ("step()", 0, "missing initial_lr, gamma, step_size for step"),
        ("step(0.1, 0.5)", 0, "missing step_size for step"),
        ("exp(0.1, half_life=inf)", 19, "half_life must be a finite number > 0; got inf"),
        ("step(nan, 0.5, 3)", 5, "initial_lr must be a finite number >= 0; got nan"),
        ("step(0.1, 0.5, __import__('os'))", 26, "unexpected character"),
    ],
)
def test_error_points_at_offending_part(text, column, fragment):
    with pytest.raises(dl.ScheduleSpecError) as caught:
        dl.parse_schedule(text)
    error = caught.value
    assert fragment in str(error)
    assert error.column == column
    assert "\n" not in str(error)
    assert error.pointer().splitlines()[1] == " " * column + "^"


def test_spec_error_is_value_error():
    assert issubclass(dl.ScheduleSpecError, ValueError)


def test_non_string_rejected():
    with pytest.raises(TypeError, match="expected a string"):
        dl.parse_schedule(dl.StepDecay(0.1, 0.5, 3))


def test_to_spec_omits_defaults_only():
    spec = dl.StepDecay(0.1, 0.5, 30, min_lr=0.001).to_spec()
    assert spec == "step(initial_lr=0.1, gamma=0.5, step_size=30, min_lr=0.001)"
    warm = dl.Warmup(dl.ExponentialDecay(0.1, half_life=30.0), 5).to_spec()
    assert warm == "warmup(schedule=exponential(initial_lr=0.1, half_life=30.0), steps=5)"


@given(st.text(alphabet="step(xmulinwarp_)[],=0123456789.e-+ ", max_size=60))
def test_any_text_raises_only_spec_error(text):
    try:
        schedule = dl.parse_schedule(text)
    except dl.ScheduleSpecError as error:
        assert 0 <= error.column <= len(text)
    else:
        assert dl.parse_schedule(schedule.to_spec()) == schedule


@given(st.sampled_from(["step(0.1, 0.5, 30)", "warmup(exp(0.1, half_life=30), steps=5)",
                        "multistep(0.1, 0.1, [30, 60])"]), st.data())
def test_truncated_spec_raises_spec_error(text, data):
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(dl.ScheduleSpecError):
        dl.parse_schedule(text[:cut])
