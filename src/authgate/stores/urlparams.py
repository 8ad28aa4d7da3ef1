"""The values a store URL's own query parameters take (``migrate=true``,
``cache_ttl=60``), read the same way by every store: a bad one is a `ConfigError`
that names the parameter."""

from __future__ import annotations

import math

from ..errors import ConfigError

__all__ = ["flag", "seconds", "whole"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def flag(name: str, value: object) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, any case)."""
    text = str(value).lower()
    if text not in _TRUE + _FALSE:
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    return text in _TRUE


def seconds(name: str, value: object, *, zero: bool = False) -> float:
    """A finite number of seconds above 0 (or at least 0 when `zero` allows it: a
    parameter where 0 turns something off)."""
    try:
        number = float(str(value))
    except ValueError:
        number = math.nan
    low_ok = number >= 0 if zero else number > 0
    if not (low_ok and number < math.inf):
        off = " (0 turns it off)" if zero else ""
        raise ConfigError(f"{name} must be a number of seconds{off}, not {value!r}")
    return number


def whole(name: str, value: object) -> int:
    """A whole number at least 0."""
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, not {value!r}")
    return number
