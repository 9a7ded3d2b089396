"""The compact text form of a schedule, for command lines and config files.

Grammar (whitespace is free between tokens)::

    spec   := NAME "(" [arg ("," arg)*] ")"
    arg    := [NAME "="] value            positional args come first
    value  := NUMBER | LITERAL | "[" [NUMBER ("," NUMBER)*] "]" | spec

``NAME`` is a schedule kind (``step``, ``multistep``, ``exponential`` or
its alias ``exp``, ``warmup``, ...) or a parameter name. Numbers are Python
literals: ``30`` is an integer, ``0.1``, ``1e-3`` and ``30.0`` are floats.
``LITERAL`` is ``inf``, ``nan``, ``true`` or ``false``. Nothing is
evaluated as code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from decaylab._validation import InvalidParameterError, InvalidParameterTypeError
from decaylab.schedules.base import Schedule, required_parameters

__all__ = ["ScheduleSpecError", "parse_schedule", "KIND_ALIASES"]

KIND_ALIASES = {"exp": "exponential", "multi_step": "multistep"}

_LITERALS: dict[str, Any] = {
    "inf": math.inf,
    "nan": math.nan,
    "true": True,
    "false": False,
}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()\[\],=])
    """,
    re.VERBOSE,
)


class ScheduleSpecError(ValueError):
    """Invalid schedule text; ``column`` (0-based) points at the offending part.

    ``str(error)`` is one line; :meth:`pointer` adds the text with a caret.
    """

    def __init__(self, text: str, column: int, reason: str) -> None:
        self.text = text
        self.column = column
        self.reason = reason
        super().__init__(f"invalid schedule spec {text!r}: {reason} (at column {column + 1})")

    def pointer(self) -> str:
        """Return the spec and a caret line under the offending column."""
        return f"{self.text}\n{' ' * self.column}^"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int

    def describe(self) -> str:
        return "the end of the text" if self.kind == "end" else repr(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ScheduleSpecError(text, position, f"unexpected character {text[position]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.take()
        if token.text != text:
            raise ScheduleSpecError(
                self.text, token.column, f"expected {text!r}, found {token.describe()}"
            )
        return token

    def fail(self, token: _Token, reason: str) -> ScheduleSpecError:
        return ScheduleSpecError(self.text, token.column, reason)

    def parse(self) -> Schedule:
        schedule = self.schedule()
        token = self.peek()
        if token.kind != "end":
            raise self.fail(token, f"unexpected {token.text!r} after the schedule")
        return schedule

    def schedule(self) -> Schedule:
        name = self.take()
        if name.kind != "name":
            raise self.fail(name, "expected a schedule name such as step(...) or exp(...)")
        kind = KIND_ALIASES.get(name.text, name.text)
        cls = Schedule.registry.get(kind)
        if cls is None:
            known = ", ".join(sorted([*Schedule.registry, *KIND_ALIASES]))
            raise self.fail(name, f"unknown schedule {name.text!r}; expected one of {known}")
        self.expect("(")
        args, columns = self.arguments(cls)
        missing = [name for name in required_parameters(cls) if name not in args]
        if missing:
            raise self.fail(
                name,
                f"missing {', '.join(missing)} for {cls.kind}; "
                f"{cls.kind} takes {', '.join([*getattr(cls, 'nested', ()), *cls.rules])}",
            )
        try:
            return cls(**args)
        except (InvalidParameterError, InvalidParameterTypeError) as error:
            column = columns.get(error.parameter, name.column)
            raise ScheduleSpecError(self.text, column, str(error)) from None
        except (TypeError, ValueError) as error:
            raise ScheduleSpecError(self.text, name.column, str(error)) from None

    def arguments(self, cls: type[Schedule]) -> tuple[dict[str, Any], dict[str, int]]:
        names = [*getattr(cls, "nested", ()), *cls.rules]
        args: dict[str, Any] = {}
        columns: dict[str, int] = {}
        positional = 0
        keyword_seen = False
        if self.peek().text == ")":
            self.take()
            return args, columns
        while True:
            token = self.peek()
            following = self.tokens[min(self.index + 1, len(self.tokens) - 1)]
            if token.kind == "name" and following.text == "=":
                self.take()
                self.take()
                if token.text not in names:
                    raise self.fail(
                        token,
                        f"unknown parameter {token.text!r} for {cls.kind}; "
                        f"expected one of {', '.join(names)}",
                    )
                name = token.text
                keyword_seen = True
            else:
                if keyword_seen:
                    raise self.fail(token, "positional argument after a keyword argument")
                if positional >= len(names):
                    raise self.fail(token, f"too many arguments for {cls.kind}")
                name = names[positional]
                positional += 1
            if name in args:
                raise self.fail(token, f"parameter {name!r} given twice")
            columns[name] = self.peek().column
            args[name] = self.value()
            separator = self.take()
            if separator.text == ")":
                return args, columns
            if separator.text != ",":
                raise self.fail(separator, f"expected ',' or ')', found {separator.describe()}")

    def value(self) -> Any:
        token = self.peek()
        if token.kind == "number":
            self.take()
            return _number(token.text)
        if token.text == "[":
            self.take()
            items: list[Any] = []
            if self.peek().text == "]":
                self.take()
                return items
            while True:
                item = self.take()
                if item.kind != "number":
                    raise self.fail(item, "expected a number inside [...]")
                items.append(_number(item.text))
                closing = self.take()
                if closing.text == "]":
                    return items
                if closing.text != ",":
                    raise self.fail(closing, f"expected ',' or ']', found {closing.describe()}")
        if token.kind == "name" and token.text in _LITERALS:
            self.take()
            return _LITERALS[token.text]
        if token.kind == "name":
            return self.schedule()
        raise self.fail(
            token, f"expected a number, a [list] or a schedule, found {token.describe()}"
        )


def _number(text: str) -> int | float:
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return float(text)


def parse_schedule(text: str) -> Schedule:
    """Parse the text form written by :meth:`Schedule.to_spec`.

    Raises :class:`ScheduleSpecError` (a ``ValueError``) whose message names
    the offending part and its column.

    >>> parse_schedule("step(initial_lr=0.1, gamma=0.5, step_size=30)")
    StepDecay(initial_lr=0.1, gamma=0.5, step_size=30)
    >>> parse_schedule("warmup(exp(0.1, half_life=30), steps=5)")(5)
    0.1
    >>> parse_schedule("step(initial_lr=0.1, gamma=2, step_size=30)")
    Traceback (most recent call last):
    ...
    decaylab.schedules.spec.ScheduleSpecError: invalid schedule spec 'step(initial_lr=0.1, gamma=2, step_size=30)': StepDecay: gamma must be a number in (0, 1]; got 2 (at column 28)
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_schedule: expected a string; got {type(text).__name__}")
    return _Parser(text).parse()
