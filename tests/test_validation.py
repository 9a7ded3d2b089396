"""Invalid-input tests generated from the declared parameter rules."""

import inspect
import math

import pytest

import decaylab as dl
from decaylab.schedules.base import Schedule

INNER = dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)


def _valid_kwargs(cls):
    kwargs = {name: INNER for name in getattr(cls, "nested", ())}
    kwargs.update(cls.example)
    return kwargs


def _defaults_to_none(cls, name):
    parameter = inspect.signature(cls).parameters.get(name)
    return parameter is not None and parameter.default is None


def _cases():
    """(class, kwargs, expected error, parameter named) for every declared rule."""
    cases = []
    for kind, cls in sorted(Schedule.registry.items()):
        base = _valid_kwargs(cls)
        for name, rule in cls.rules.items():
            if name not in base:
                continue
            for value in rule.invalid_values:
                case_id = f"{kind}-{name}={value!r}"
                cases.append(pytest.param(cls, {**base, name: value}, ValueError, name, id=case_id))
            for value in rule.wrong_types:
                if value is None and _defaults_to_none(cls, name):
                    continue  # None means "not given" for optional parameters
                case_id = f"{kind}-{name}-type-{value!r}"
                cases.append(pytest.param(cls, {**base, name: value}, TypeError, name, id=case_id))
        for relation in cls.relations:
            for override in relation.violations:
                case_id = f"{kind}-relation-{override}"
                cases.append(
                    pytest.param(cls, {**base, **override}, ValueError, relation.names[0], id=case_id)
                )
        for override in getattr(cls, "invalid_forms", ()):
            kwargs = {key: value for key, value in {**base, **override}.items() if value is not None}
            cases.append(pytest.param(cls, kwargs, ValueError, None, id=f"{kind}-form-{override}"))
    return cases


@pytest.mark.parametrize("cls, kwargs, error, parameter", _cases())
def test_invalid_parameter_raises_naming_it(cls, kwargs, error, parameter):
    with pytest.raises(error) as caught:
        cls(**kwargs)
    message = str(caught.value)
    assert message.startswith(cls.__name__ + ":")
    if parameter is not None:
        assert parameter in message
        assert "got" in message


@pytest.mark.parametrize("cls", sorted(Schedule.registry.values(), key=lambda c: c.kind))
def test_example_parameters_are_valid(cls):
    schedule = cls(**_valid_kwargs(cls))
    assert schedule(0) >= 0.0


def test_message_shows_rule_and_value():
    with pytest.raises(ValueError) as caught:
        dl.StepDecay(initial_lr=0.1, gamma=1.5, step_size=30)
    assert str(caught.value) == "StepDecay: gamma must be a number in (0, 1]; got 1.5"


def test_relation_message_shows_both_values():
    with pytest.raises(ValueError) as caught:
        dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30, min_lr=0.2)
    assert "min_lr=0.2" in str(caught.value)
    assert "initial_lr=0.1" in str(caught.value)


def test_integer_rule_rejects_integral_float():
    with pytest.raises(TypeError, match="step_size must be an integer >= 1; got 30.0"):
        dl.StepDecay(initial_lr=0.1, gamma=0.5, step_size=30.0)


def test_milestones_accept_numpy_array():
    import numpy as np

    multi = dl.MultiStepDecay(0.1, 0.1, np.array([10, 20]))
    assert multi.milestones == (10, 20)


def test_warmup_rejects_non_schedule():
    with pytest.raises(TypeError, match="Warmup: schedule must be a decaylab Schedule"):
        dl.Warmup(lambda t: 0.1, steps=5)


def test_warmup_rejects_start_above_peak():
    with pytest.raises(ValueError, match="start_lr must not exceed"):
        dl.Warmup(INNER, steps=5, start_lr=0.2)


@pytest.mark.parametrize("value", [math.nan, -1.0, math.inf])
def test_nan_and_negative_lr_rejected(value):
    with pytest.raises(ValueError, match="initial_lr"):
        dl.ExponentialDecay(initial_lr=value, half_life=3)


def test_schedule_from_dict_rejects_unknown_kind_and_keys():
    with pytest.raises(ValueError, match="unknown kind 'cosine'"):
        dl.schedule_from_dict({"kind": "cosine", "initial_lr": 0.1})
    with pytest.raises(ValueError, match="unknown keys \\['gama'\\]"):
        dl.schedule_from_dict({"kind": "step", "initial_lr": 0.1, "gama": 0.5, "step_size": 3})
    with pytest.raises(ValueError, match="missing key 'kind'"):
        dl.schedule_from_dict({"initial_lr": 0.1})
    with pytest.raises(TypeError, match="expected a dict"):
        dl.schedule_from_dict("step")
    with pytest.raises(ValueError, match="missing keys \\['step_size'\\] for kind 'step'"):
        dl.schedule_from_dict({"kind": "step", "initial_lr": 0.1, "gamma": 0.5})
