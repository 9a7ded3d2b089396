"""Parameter rules, declared once per constructor and checked by one helper.

Each public constructor lists its parameters as :class:`Rule` objects. The
same declarations drive the error messages and the generated invalid-input
tests: every rule can produce values that must be rejected.

An error names the owner, the parameter, the rule and the value received::

    StepDecay: gamma must be a number in (0, 1]; got 1.5
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = [
    "InvalidParameterError",
    "InvalidParameterTypeError",
    "Relation",
    "Rule",
    "boolean",
    "check_all",
    "increasing_integers",
    "integer",
    "real",
    "real_or_inf",
]


class InvalidParameterError(ValueError):
    """A parameter value outside its valid range; ``parameter`` names it."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class InvalidParameterTypeError(TypeError):
    """A parameter of the wrong type; ``parameter`` names it."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class Rule:
    """A rule for one parameter.

    ``convert`` turns an accepted value into its stored form and raises
    ``TypeError`` for a value of the wrong type. ``accepts`` decides whether
    a converted value is in range. ``invalid_values`` and ``wrong_types``
    are examples that must be rejected with ``ValueError`` and
    ``TypeError``; the test suite generates its invalid-input cases from
    them.
    """

    description: str
    convert: Callable[[Any], Any]
    accepts: Callable[[Any], bool]
    invalid_values: tuple[Any, ...]
    wrong_types: tuple[Any, ...]

    def check(self, owner: str, name: str, value: Any) -> Any:
        """Return ``value`` in stored form, or raise naming ``owner.name``."""
        try:
            converted = self.convert(value)
        except TypeError:
            raise InvalidParameterTypeError(
                f"{owner}: {name} must be {self.description}; "
                f"got {value!r} of type {type(value).__name__}",
                name,
            ) from None
        if not self.accepts(converted):
            raise InvalidParameterError(
                f"{owner}: {name} must be {self.description}; got {value!r}", name
            )
        return converted


@dataclass(frozen=True)
class Relation:
    """A rule across parameters, checked after each one passed its own rule.

    ``satisfied`` receives the converted parameters by name and returns
    whether the rule is met. ``violations`` are parameter overrides that
    break the rule when applied to a valid example.
    """

    names: tuple[str, ...]
    description: str
    satisfied: Callable[..., bool]
    violations: tuple[dict[str, Any], ...]

    def check(self, owner: str, values: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming every value involved when violated."""
        involved = {name: values[name] for name in self.names}
        if not self.satisfied(**involved):
            shown = ", ".join(f"{name}={value!r}" for name, value in involved.items())
            raise InvalidParameterError(f"{owner}: {self.description}; got {shown}", self.names[0])


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(value)
    return float(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(value)
    return int(value)


def real(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Rule:
    """Build a rule for a finite real number in an interval.

    >>> real(0.0, 1.0, low_open=True).description
    'a number in (0, 1]'
    >>> real(0.0).description
    'a finite number >= 0'
    """

    def accepts(x: float) -> bool:
        if not math.isfinite(x):
            return False
        above = x > low if low_open else x >= low
        below = x < high if high_open else x <= high
        return above and below

    description = _interval_text(low, high, low_open, high_open)
    invalid: list[float] = [math.nan, math.inf, -math.inf]
    if math.isfinite(low):
        invalid.append(low if low_open else low - max(1.0, abs(low)))
    if math.isfinite(high):
        invalid.append(high if high_open else high + max(1.0, abs(high)))
    return Rule(description, _to_float, accepts, tuple(invalid), ("0.1", None, True, [1.0]))


def integer(low: int) -> Rule:
    """Build a rule for an integer ``>= low`` (bool and floats rejected).

    >>> integer(1).description
    'an integer >= 1'
    """
    return Rule(
        f"an integer >= {low}",
        _to_int,
        lambda n: n >= low,
        (low - 1, low - 10),
        (float(low) + 0.5, float(low + 1), "3", None, True),
    )


def _to_int_tuple(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)):
        raise TypeError(value)
    if not isinstance(value, Sequence):
        # numpy arrays are not Sequences but convert element by element.
        if not hasattr(value, "tolist"):
            raise TypeError(value)
        value = value.tolist()
        if not isinstance(value, list):
            raise TypeError(value)
    return tuple(_to_int(item) for item in value)


def increasing_integers(low: int) -> Rule:
    """Build a rule for a non-empty, strictly increasing integer sequence.

    >>> increasing_integers(0).check("MultiStepDecay", "milestones", [30, 60])
    (30, 60)
    """
    return Rule(
        f"a non-empty, strictly increasing sequence of integers >= {low}",
        _to_int_tuple,
        lambda seq: len(seq) > 0
        and seq[0] >= low
        and all(a < b for a, b in zip(seq, seq[1:])),
        ([], [low - 1, 10], [10, 10], [20, 10]),
        ([10.5, 20], "10,20", 10, None),
    )


def check_all(
    owner: str,
    rules: dict[str, Rule],
    relations: Sequence[Relation],
    values: dict[str, Any],
) -> dict[str, Any]:
    """Check each parameter, then each relation; return the converted values."""
    converted = {name: rules[name].check(owner, name, values[name]) for name in rules}
    for relation in relations:
        relation.check(owner, converted)
    return converted


def _interval_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        if math.isinf(low):
            return "a finite number"
        return f"a finite number {'>' if low_open else '>='} {_number_text(low)}"
    if math.isinf(low):
        return f"a finite number {'<' if high_open else '<='} {_number_text(high)}"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"a number in {left}{_number_text(low)}, {_number_text(high)}{right}"


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return bool(value) if value in (0, 1) else value  # out-of-range ints fail ``accepts``
    raise TypeError(value)


def boolean() -> Rule:
    """Build a rule for a bool; the integers 0 and 1 are accepted as False and True.

    The text form of a schedule has no boolean literal, so ``0`` and ``1``
    stand in for them there.

    >>> boolean().check("AdamCompensated", "bias_correction", 0)
    False
    """
    return Rule(
        "a bool (or 0 or 1)",
        _to_bool,
        lambda flag: isinstance(flag, bool),
        (2, -1),
        ("True", None, 0.5, 1.0),
    )


def real_or_inf(low: float = 0.0) -> Rule:
    """Build a rule for a real number ``>= low`` that may also be ``+inf`` (NaN rejected).

    >>> real_or_inf(0.0).description
    'a number >= 0 or inf'
    """
    return Rule(
        f"a number >= {_number_text(low)} or inf",
        _to_float,
        lambda x: x >= low,
        (math.nan, -math.inf, low - max(1.0, abs(low))),
        ("0.1", None, True, [1.0]),
    )
