"""The kinds of value a setting or a task option takes, each with its bounds.

A kind converts a value read from TOML (or typed on a command line) and raises
TypeError/ValueError when it does not fit; `expected` says in a few words what would
have. keys.py declares every key of config.toml with one of these; the CLI converts --priority,
--max-attempts, --timeout and `cap N` with the same objects, so the bounds are written once.

Bounds (also printed in config/kugetsu.example.toml): caps and per-agent or per-repo limits
1 to 1024; attempts 1 to 1000; priority -1,000,000 to 1,000,000; durations 0 to 365 days;
sizes 0 to 1 PiB; cores per agent above 0, at most 1024; a budget above $0, at most
$1,000,000,000, or 1 to 10^15 tokens. Past them a value is a mistake,
and SQLite (64-bit integers) or the event loop's timers would fail on it later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

DURATION_HINT = 'a duration like "90s", "10m" or "24h"'
SIZE_HINT = 'a size like "512MiB" or "2GiB"'
MAX_DURATION = 365 * 86400.0
MAX_SIZE = float(2**50)
MAX_CORES = 1024.0
MAX_DOLLARS = 1e9

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS: dict[str, int] = {"b": 1} | {
    f"{p}{i}b": (2**10 if i else 10**3) ** (n + 1) for n, p in enumerate("kmgtp") for i in ("", "i")
}


class Invalid(ValueError):
    """A value of the right type that is still wrong; its text is the whole explanation."""


class Kind(Protocol):
    @property
    def expected(self) -> str: ...

    @property
    def limits(self) -> str: ...  # "1 to 1024", or "" when the kind has no bounds to state

    def __call__(self, value: Any) -> Any: ...


def parse_duration(text: str) -> float:
    """'90s' -> 90.0, '10m' -> 600.0, '24h' -> 86400.0; a bare number is seconds.

    Raises ValueError for anything else (the caller names the key)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_size(text: str) -> float:
    """'2GiB' -> 2147483648.0, '512MB' -> 512e6; a bare number is bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def format_size(size: float) -> str:
    for unit in ("PiB", "TiB", "GiB", "MiB", "KiB"):
        if size >= _SIZE_UNITS[unit.lower()] and size % _SIZE_UNITS[unit.lower()] == 0:
            return f"{int(size // _SIZE_UNITS[unit.lower()])}{unit}"
    return f"{int(size)}B" if size == int(size) else f"{size:g}B"


def _number(value: Any, parse: Callable[[str], float]) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, (int, float)):
        return float(value)  # a huge int gives OverflowError, an ArithmeticError: caught below
    if isinstance(value, str):
        return parse(value)
    raise TypeError(value)


def _bounded(value: Any, parse: Callable[[str], float], lo: float, hi: float, above: bool) -> float:
    try:
        number = _number(value, parse)
    except OverflowError:
        raise ValueError(value) from None
    # `not (…)` also refuses nan, and TOML has inf and nan literals.
    if not (lo < number <= hi if above else lo <= number <= hi):
        raise ValueError(value)
    return number


@dataclass(frozen=True, slots=True)
class Whole:
    lo: int
    hi: int

    @property
    def limits(self) -> str:
        return f"{self.lo} to {self.hi}"

    @property
    def expected(self) -> str:
        return f"a whole number from {self.limits}"

    def __call__(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        if not self.lo <= value <= self.hi:
            raise ValueError(value)
        return value

    def parse(self, text: str) -> int:
        """The number a command-line argument spells; ValueError when it is not one in bounds."""
        return self(int(text))


@dataclass(frozen=True, slots=True)
class Duration:
    above_zero: bool = False

    @property
    def limits(self) -> str:
        return f"{'above 0' if self.above_zero else '0'} to {format_duration(MAX_DURATION)}"

    @property
    def expected(self) -> str:
        return f"{DURATION_HINT} ({'above 0, ' if self.above_zero else ''}at most {format_duration(MAX_DURATION)})"

    def __call__(self, value: Any) -> float:
        return _bounded(value, parse_duration, 0.0, MAX_DURATION, self.above_zero)


@dataclass(frozen=True, slots=True)
class Size:
    @property
    def limits(self) -> str:
        return f"0 to {format_size(MAX_SIZE)}"

    @property
    def expected(self) -> str:
        return f"{SIZE_HINT} (at most {format_size(MAX_SIZE)})"

    def __call__(self, value: Any) -> float:
        return _bounded(value, parse_size, 0.0, MAX_SIZE, False)


@dataclass(frozen=True, slots=True)
class Cores:
    @property
    def limits(self) -> str:
        return f"above 0, at most {MAX_CORES:g}"

    @property
    def expected(self) -> str:
        return f"a number of cores > 0 like 1.0 (at most {MAX_CORES:g})"

    def __call__(self, value: Any) -> float:
        if isinstance(value, str):
            raise TypeError(value)
        return _bounded(value, float, 0.0, MAX_CORES, True)


@dataclass(frozen=True, slots=True)
class Dollars:
    """An amount of money in US dollars, above 0 (a budget)."""

    @property
    def limits(self) -> str:
        return f"above 0, at most {MAX_DOLLARS:.0f}"

    @property
    def expected(self) -> str:
        return f"an amount in US dollars above 0 like 20.0 (at most {MAX_DOLLARS:.0f})"

    def __call__(self, value: Any) -> float:
        if isinstance(value, str):
            raise TypeError(value)
        return _bounded(value, float, 0.0, MAX_DOLLARS, True)


@dataclass(frozen=True, slots=True)
class Choice:
    choices: tuple[str, ...]
    limits = ""

    @property
    def expected(self) -> str:
        quoted = [f'"{c}"' for c in self.choices]
        return f"{', '.join(quoted[:-1])} or {quoted[-1]}"

    def __call__(self, value: Any) -> str:
        if value not in self.choices:
            raise ValueError(value)
        return str(value)


@dataclass(frozen=True, slots=True)
class Flag:
    expected = "true or false"
    limits = ""

    def __call__(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(value)
        return value


@dataclass(frozen=True, slots=True)
class OneOf:
    """One value of an enum, read as its member."""

    enum: type[StrEnum]
    limits = ""

    @property
    def expected(self) -> str:
        quoted = [f'"{member.value}"' for member in self.enum]
        return f"{', '.join(quoted[:-1])} or {quoted[-1]}"

    def __call__(self, value: Any) -> StrEnum:
        if not isinstance(value, str) or value not in self.enum._value2member_map_:
            raise ValueError(value)
        return self.enum(value)


@dataclass(frozen=True, slots=True)
class Name:
    expected: str
    limits = ""

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise TypeError(value)
        return value


@dataclass(frozen=True, slots=True)
class Strings:
    expected: str
    limits = ""

    def __call__(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise TypeError(value)
        return tuple(value)


@dataclass(frozen=True, slots=True)
class Argv:
    """A command as an argv list; `empty` allows [] for "no command"."""

    expected: str
    empty: bool = False
    limits = ""

    def __call__(self, value: Any) -> tuple[str, ...]:
        if self.empty and value == []:
            return ()
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise TypeError(value)
        if not value[0].strip():
            raise ValueError(value)
        return tuple(value)


@dataclass(frozen=True, slots=True)
class Events:
    """A list of event type names, read as members of `types`."""

    expected: str
    types: type[StrEnum]
    limits = ""

    def __call__(self, value: Any) -> tuple[StrEnum, ...]:
        events = Strings(self.expected)(value)
        known = self.types._value2member_map_
        for name in events:
            if name not in known:
                raise Invalid(f"unknown event {name!r} (expected one of: {', '.join(sorted(known))})")
        return tuple(self.types(name) for name in events)


@dataclass(frozen=True, slots=True)
class Answer:
    """A rule that answers a routine prompt of a terminal agent: when the last lines of its
    screen match `match`, type `send` and Enter, at most `max` times an attempt."""

    match: str
    send: str
    max: int = 3


@dataclass(frozen=True, slots=True)
class Answers:
    """[[agents.NAME.answer]] tables: match (a regular expression), send (text), max."""

    expected: str = 'tables like [[agents.NAME.answer]] match = "Proceed\\? \\[y/N\\]", send = "y"'
    limits = ""

    def __call__(self, value: Any) -> tuple[Answer, ...]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise TypeError(value)
        return tuple(self._rule(n, rule) for n, rule in enumerate(value, 1))

    def _rule(self, n: int, rule: dict[str, Any]) -> Answer:
        unknown = sorted(set(rule) - {"match", "send", "max"})
        if unknown:
            raise Invalid(f"#{n}: unknown key {unknown[0]} (expected match, send, max)")
        match, send = rule.get("match"), rule.get("send")
        if not isinstance(match, str) or not match:
            raise Invalid(f"#{n} match: expected a regular expression, got {match!r}")
        try:
            re.compile(match)
        except re.error as err:
            raise Invalid(f"#{n} match: {match!r} is not a regular expression ({err})") from None
        # Typed as keys are: a control character (a newline, an escape) would be a key press.
        if not isinstance(send, str) or any(ord(c) < 32 or ord(c) == 127 for c in send):
            raise Invalid(f"#{n} send: expected text without control characters, got {send!r}")
        try:
            most = ANSWER_MAX(rule.get("max", 3))
        except (TypeError, ValueError):
            raise Invalid(f"#{n} max: expected {ANSWER_MAX.expected}, got {rule.get('max')!r}") from None
        return Answer(match, send, most)


CAP = Whole(1, 1024)  # the cap, its advisor's bounds, and max_live per agent or repo
ATTEMPTS = Whole(1, 1000)
PRIORITY = Whole(-1_000_000, 1_000_000)
TIMEOUT = Duration(above_zero=True)  # a task's --timeout
ROW_ID = Whole(0, 2**63 - 1)  # SQLite's INTEGER: an event id for --since
TASK_ID = Whole(1, 2**63 - 1)
ANSWER_MAX = Whole(1, 100)  # answers one rule may give an attempt
TOKENS = Whole(1, 10**15)  # a budget in tokens
