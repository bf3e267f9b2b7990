"""A very small schema layer shared by the daemon config and carrier profile loaders.

A section is a frozen dataclass. Fields declared with ``setting(check, default)`` are TOML
keys; fields annotated with another section class are nested tables (required without a
default, else ``field(default_factory=Cls)``); other fields are not read from the file.
``build`` fills a section from a TOML table, checking each value, rejecting unknown keys (a
typo must not silently fall back to a default) and naming ``file: dotted.key`` in every error.
A check is a function that returns the converted value or raises ``Invalid(expected)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Check = Callable[[Any], Any]


class _Missing:
    def __repr__(self) -> str:
        return "nothing"


MISSING: Any = _Missing()


class Verbatim(str):
    """A ``got`` shown as is rather than quoted (a description, not a value from the file)."""


def describe(value: Any) -> str:
    """A value as it would look in TOML, so messages quote what the user actually wrote."""
    if isinstance(value, Verbatim | _Missing):
        return str(value) if isinstance(value, Verbatim) else "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    return repr(value)


class ConfigError(ValueError):
    """One bad setting: ``file: key: expected <expected>, got <got>``."""

    def __init__(self, file: str | Path, key: str, expected: str, got: Any) -> None:
        self.file = str(file)
        self.key = key
        self.expected = expected
        self.got = got
        super().__init__(f"{self.file}: {key}: expected {expected}, got {describe(got)}")


class Invalid(Exception):
    """Raised by a check; ``build`` turns it into a ConfigError with the file and key."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


# --- checks -------------------------------------------------------------------------------


def integer(low: int, high: int) -> Check:
    expected = f"an integer from {low} to {high}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(expected)
        return value

    return check


def number(low: float, high: float, *, low_open: bool = False) -> Check:
    bound = "greater than" if low_open else "from"
    expected = f"a number {bound} {low:g}" + (f" up to {high:g}" if low_open else f" to {high:g}")

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise Invalid(expected)
        if not (low < value if low_open else low <= value) or value > high:
            raise Invalid(expected)
        return float(value)

    return check


def string(
    max_length: int = 4096, *, empty: bool = True, ascii: bool = True, pattern: str | None = None
) -> Check:
    expected = ("a string" if empty else "a non-empty string") + f" of at most {max_length}"
    expected += " printable ASCII characters" if ascii else " printable characters"
    regex = re.compile(pattern) if pattern else None

    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_length or (not empty and not value):
            raise Invalid(expected)
        if not value.isprintable() or (ascii and not value.isascii()):
            raise Invalid(expected)
        if regex and not regex.fullmatch(value):
            raise Invalid(f"{expected} matching {pattern}")
        return value

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def choice(*choices: Any) -> Check:
    """One of the given strings or integers, compared by type too (so ``true`` is not 1)."""
    expected = "one of " + ", ".join(json.dumps(c) for c in choices)

    def check(value: Any) -> Any:
        if not any(type(value) is type(c) and value == c for c in choices):
            raise Invalid(expected)
        return value

    return check


def list_of(item: Check, what: str, *, unique: bool = True, nonempty: bool = False) -> Check:
    """A TOML array whose items all pass ``item``; returned as a tuple (frozen configs)."""
    expected = ("a non-empty " if nonempty else "a ") + f"list of {what}"
    if unique:
        expected += " without repeats"

    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list) or (nonempty and not value):
            raise Invalid(expected)
        try:
            items = tuple(item(v) for v in value)
        except Invalid:
            raise Invalid(expected) from None
        if unique and len(set(items)) != len(items):
            raise Invalid(expected)
        return items

    return check


# --- sections ------------------------------------------------------------------------------


def setting(check: Check, default: Any = MISSING) -> Any:
    """A dataclass field read from the TOML key of the same name. No default: required.

    Optional settings use ``default=None``: TOML has no null, so "absent" is how a file says
    "not set".
    """
    if default is MISSING:
        return dataclasses.field(metadata={"check": check})
    return dataclasses.field(default=default, metadata={"check": check})


def build(cls: type[T], file: str | Path, data: Mapping[str, Any], prefix: str = "") -> T:
    """Fill ``cls`` from the TOML table ``data``; ``prefix`` is its dotted path in the file."""
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if "check" in f.metadata or dataclasses.is_dataclass(hints[f.name])
    }
    for key in data:
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigError(file, prefix + key, f"one of the keys {known}", Verbatim("unknown"))
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = prefix + name
        value = data.get(name, MISSING)
        required = field.default is dataclasses.MISSING
        required = required and field.default_factory is dataclasses.MISSING
        check = field.metadata.get("check")
        if value is MISSING:
            if required:
                raise ConfigError(file, key, _expected(check) if check else "a table", MISSING)
        elif check is None:
            if not isinstance(value, Mapping):
                raise ConfigError(file, key, "a table", value)
            values[name] = build(hints[name], file, value, key + ".")
        else:
            try:
                values[name] = check(value)
            except Invalid as exc:
                raise ConfigError(file, key, exc.expected, value) from None
    return cls(**values)


def _expected(check: Check) -> str:
    """What a required check expects, found by feeding it a value no check accepts."""
    try:
        check(MISSING)
    except Invalid as exc:
        return exc.expected
    return "a value"


_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_toml(file: str | Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors become ConfigError keyed by ``line N, column M``."""
    try:
        with open(file, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _LINE.search(message)
        if where:
            key = f"line {where[1]}, column {where[2]}"
        else:
            key = "end of file" if "(at end of document)" in message else "(syntax)"
        reason = _LINE.sub("", message).replace("(at end of document)", "").strip()
        raise ConfigError(file, key, "valid TOML", Verbatim(reason)) from None
    except OSError as exc:
        reason = Verbatim(exc.strerror or type(exc).__name__)
        raise ConfigError(file, "(file)", "a readable file", reason) from None
