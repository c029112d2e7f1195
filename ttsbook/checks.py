"""The atoms every module shares: the float64 ``DTYPE`` of exact references, the argument
checks, and the error that names the bad argument.

:class:`BadValue` is a ``ValueError`` that also carries the argument's name (``arg``), so the
command line can say which option was wrong in one line; Python callers see a plain
``ValueError`` whose message names the argument too.
"""
from __future__ import annotations

import math
import numbers

import torch

DTYPE = torch.float64  # exact references (closed forms, reference predictors) compute in it


class BadValue(ValueError):
    """``ValueError`` about one argument; ``arg`` is its name (dotted inside nested configs)."""

    def __init__(self, arg: str, message: str):
        super().__init__(message)
        self.arg = arg

    def within(self, parent: str) -> "BadValue":
        """The same error, its ``arg`` prefixed by the config field that holds it."""
        return BadValue(f"{parent}.{self.arg}", str(self))


def check_int(value, name: str, low: int = 1) -> int:
    """``value`` if it is an integer (not a bool) ``>= low``; else :class:`BadValue`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise BadValue(name, f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_number(value, name: str, low: float, *, strict: bool = False,
                 high: float | None = None) -> float:
    """``value`` if it is a real number ``>= low`` (``> low`` if ``strict``), ``< high`` if
    given."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and (value > low if strict else value >= low) and (high is None or value < high)
    if not ok:
        interval = (f"{'>' if strict else '>='} {low:g}"
                    + (f" and < {high:g}" if high is not None else ""))
        raise BadValue(name, f"{name} must be a number {interval}, got {value!r}")
    return value


def check_choice(value, name: str, choices) -> object:
    """``value`` if it is one of ``choices``; else :class:`BadValue` listing them."""
    if value not in choices:
        raise BadValue(name, f"{name} must be one of {', '.join(map(repr, choices))}, "
                             f"got {value!r}")
    return value


def check_noise_std(value, name: str = "noise_std") -> float:
    """``value`` as a float if it is a finite real number ``>= 0`` (a standard deviation of
    label noise); else :class:`BadValue`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0
    if not ok:
        raise BadValue(name, f"{name} must be a finite number >= 0 (the standard deviation of "
                             f"the label noise), got {value!r}")
    return float(value)


def check_steps(n_steps) -> int:
    """``n_steps`` (the number of passes k) if it is an integer >= 0; else ``ValueError``."""
    return check_int(n_steps, "n_steps", low=0)
