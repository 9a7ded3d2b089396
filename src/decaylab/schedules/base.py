"""The :class:`Schedule` base class: evaluation, equality, serialisation.

Time ``t`` is the number of optimizer updates already done, so the first
update uses ``lr(0)``. It is a non-negative finite number; fractional values
allow schedules counted in epochs to be evaluated inside an epoch. Every
value is computed in closed form from the parameters and ``t``.
"""

from __future__ import annotations

import inspect
import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from decaylab._validation import Relation, Rule, check_all

__all__ = ["FLOOR_BELOW_PEAK", "Schedule", "schedule_from_dict", "check_times"]

FloatArray = NDArray[np.float64]
TimeLike = Union[float, int, np.floating, np.integer]

_AREA_CHUNK = 1 << 20

FLOOR_BELOW_PEAK = Relation(
    ("min_lr", "initial_lr"),
    "min_lr must not exceed initial_lr",
    lambda min_lr, initial_lr: min_lr <= initial_lr,
    ({"initial_lr": 0.1, "min_lr": 0.2},),
)
"""The rule ``min_lr <= initial_lr`` shared by the schedules with a floor."""


class Schedule(ABC):
    """A learning rate as an immutable, closed-form function of the step count.

    Subclasses declare ``kind``, the name in :meth:`to_dict` and the text
    form. They declare their parameter validation once in ``rules`` and
    ``relations``, and valid parameters for the generated tests in
    ``example``. They implement :meth:`_lr_scalar` and :meth:`_lr_array`,
    floor included, on times this class has already checked.
    """

    kind: ClassVar[str]
    rules: ClassVar[dict[str, Rule]] = {}
    relations: ClassVar[tuple[Relation, ...]] = ()
    example: ClassVar[dict[str, Any]] = {}
    defaults: ClassVar[dict[str, Any]] = {}

    registry: ClassVar[dict[str, type[Schedule]]] = {}

    _params: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            Schedule.registry[kind] = cls

    # -- construction --------------------------------------------------

    def _store(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate ``params`` against the declared rules and freeze them."""
        checked = check_all(type(self).__name__, self.rules, self.relations, params)
        object.__setattr__(self, "_params", {**params, **checked})
        return self._params

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable; build a new schedule instead of setting {name!r}"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    # -- the values ----------------------------------------------------

    @property
    def initial_lr(self) -> float:
        """The LR at ``t = 0`` before any warm-up: the peak a Scheduler scales by."""
        return float(self._params["initial_lr"])

    @property
    def min_lr(self) -> float:
        """The floor: ``lr(t) = max(min_lr, formula(t))``."""
        return float(self._params.get("min_lr", 0.0))

    @overload
    def __call__(self, t: TimeLike) -> float: ...

    @overload
    def __call__(self, t: NDArray[Any] | Sequence[float]) -> FloatArray: ...

    def __call__(self, t: TimeLike | ArrayLike) -> float | FloatArray:
        """Return the LR at ``t``: a float for a scalar, float64 array for an array.

        Raises ``ValueError`` for a negative, NaN or infinite ``t``, also when
        one element of an array is.
        """
        if isinstance(t, (np.ndarray, list, tuple)):
            times = check_times(t)
            with np.errstate(over="ignore", under="ignore"):
                return self._lr_array(times)
        return self._lr_scalar(_check_time(t))

    @abstractmethod
    def _lr_scalar(self, t: float) -> float:
        """LR at one checked time, floor included, in plain Python floats."""

    @abstractmethod
    def _lr_array(self, t: FloatArray) -> FloatArray:
        """LR at checked times, floor included, vectorised."""

    def _area(self, horizon: int) -> float:
        """Sum of ``lr(t)`` for integer ``t`` in ``[0, horizon)``.

        Subclasses with a closed form override this; the default sums the
        vectorised values in chunks.
        """
        total = 0.0
        for start in range(0, horizon, _AREA_CHUNK):
            stop = min(horizon, start + _AREA_CHUNK)
            total += float(self(np.arange(start, stop, dtype=np.float64)).sum())
        return total

    def _stretch(self, factor: int) -> Schedule:
        """Return the same schedule with time counted in units ``factor`` times finer."""
        raise ValueError(
            f"{type(self).__name__} cannot be converted from epochs to steps; "
            "define it in steps instead"
        )

    # -- identity and serialisation --------------------------------------

    def params(self) -> dict[str, Any]:
        """Return the constructor parameters as given, in declaration order."""
        return dict(self._params)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Schedule)
        return self._params == other._params

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(_hashable(v) for v in self._params.values())))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._shown_params().items())
        return f"{type(self).__name__}({shown})"

    def _shown_params(self) -> dict[str, Any]:
        """Parameters that differ from their defaults, for repr and the text form."""
        return {
            name: value
            for name, value in self._params.items()
            if value is not None and not (name in self.defaults and self.defaults[name] == value)
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; :func:`schedule_from_dict` rebuilds an equal schedule.

        >>> from decaylab import StepDecay
        >>> StepDecay(initial_lr=0.1, gamma=0.5, step_size=30).to_dict()
        {'kind': 'step', 'initial_lr': 0.1, 'gamma': 0.5, 'step_size': 30, 'min_lr': 0.0}
        """
        out: dict[str, Any] = {"kind": self.kind}
        for name, value in self._params.items():
            if value is None:
                continue
            if isinstance(value, Schedule):
                out[name] = value.to_dict()
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        return out

    def to_spec(self) -> str:
        """Return the compact text form that :func:`decaylab.parse_schedule` reads.

        >>> from decaylab import StepDecay
        >>> StepDecay(initial_lr=0.1, gamma=0.5, step_size=30).to_spec()
        'step(initial_lr=0.1, gamma=0.5, step_size=30)'
        """
        parts = [f"{name}={_spec_value(value)}" for name, value in self._shown_params().items()]
        return f"{self.kind}({', '.join(parts)})"


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output.

    Raises ``ValueError`` for an unknown ``kind`` or unknown keys, and the
    constructor's errors for invalid values.

    >>> from decaylab import ExponentialDecay
    >>> e = ExponentialDecay(initial_lr=0.1, half_life=30)
    >>> schedule_from_dict(e.to_dict()) == e
    True
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"schedule_from_dict: expected a dict; got {type(data).__name__}")
    if "kind" not in data:
        raise ValueError(f"schedule_from_dict: missing key 'kind' in {dict(data)!r}")
    kind = data["kind"]
    cls = Schedule.registry.get(kind)
    if cls is None:
        known = ", ".join(sorted(Schedule.registry))
        raise ValueError(f"schedule_from_dict: unknown kind {kind!r}; expected one of {known}")

    params = {key: value for key, value in data.items() if key != "kind"}
    unknown = sorted(set(params) - set(cls.rules) - set(_nested_names(cls)))
    if unknown:
        raise ValueError(
            f"schedule_from_dict: unknown keys {unknown} for kind {kind!r}; "
            f"expected keys among {list(cls.rules) + _nested_names(cls)}"
        )
    missing = [name for name in required_parameters(cls) if name not in params]
    if missing:
        raise ValueError(f"schedule_from_dict: missing keys {missing} for kind {kind!r}")
    for name in _nested_names(cls):
        if isinstance(params.get(name), Mapping):
            params[name] = schedule_from_dict(params[name])
    return cls(**params)


def required_parameters(cls: type[Schedule]) -> list[str]:
    """Return the constructor parameters of ``cls`` that have no default."""
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, parameter in signature.parameters.items()
        if name != "self"
        and parameter.default is inspect.Parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def _nested_names(cls: type[Schedule]) -> list[str]:
    return list(getattr(cls, "nested", ()))


def _check_time(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise TypeError(f"t must be a number or an array of numbers; got {t!r}")
    x = float(t)
    if not 0.0 <= x < math.inf:
        raise ValueError(f"t must be a finite number >= 0 (updates done); got {t!r}")
    return x


def check_times(t: ArrayLike) -> FloatArray:
    """Return ``t`` as a float64 array, raising if any element is negative or non-finite."""
    try:
        times = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"t must be a number or an array of numbers; got {t!r}") from None
    # min() and max() propagate NaN, so two reductions check every element.
    if times.size and not (times.min() >= 0.0 and math.isfinite(times.max())):
        bad = times[~(np.isfinite(times) & (times >= 0.0))]
        raise ValueError(
            f"t must contain finite numbers >= 0 (updates done); got {bad.size} invalid, "
            f"first {float(bad.flat[0])!r}"
        )
    return times


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _spec_value(value: Any) -> str:
    if isinstance(value, Schedule):
        return value.to_spec()
    if isinstance(value, tuple):
        return "[" + ", ".join(_spec_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # 'inf' and 'nan' are literals of the text form too
    return str(value)
