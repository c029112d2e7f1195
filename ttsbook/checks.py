"""The atoms every module shares: the float64 ``DTYPE`` of exact references, the argument
checks, and the error that names the bad argument.

:class:`BadValue` is a ``ValueError`` that also carries the argument's name (``arg``), so the
command line can say which option was wrong in one line; Python callers see a plain
``ValueError`` whose message names the argument too. :func:`param` declares a config field
with the help text its command-line option shows (``ttsbook.runs`` builds the options).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re

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


def check_int(value, name: str, low: int = 1, high: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) ``>= low`` (and ``<= high``); else
    :class:`BadValue`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
            or (high is not None and value > high):
        bound = f">= {low}" + (f" and <= {high:,}" if high is not None else "")
        raise BadValue(name, f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


MAX_SEED = 2**63 - 1
"""The largest seed a generator takes (``torch.manual_seed``, numpy): seeds are 0..2**63-1."""


def check_number(value, name: str, low: float, *, strict: bool = False,
                 high: float | None = None) -> float:
    """``value`` if it is a real number ``>= low`` (``> low`` if ``strict``), ``< high`` if
    given."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value) \
        and (value > low if strict else value >= low) and (high is None or value < high)
    if not ok:
        interval = (f"{'>' if strict else '>='} {low:g}"
                    + (f" and < {high:g}" if high is not None else ""))
        raise BadValue(name, f"{name} must be a number {interval}, got {value!r}")
    return value


SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
"""A name that may become a file name or a job parameter: no separator, no leading dot."""


def check_name(value, name: str) -> str:
    """``value`` if it is a safe name (:data:`SAFE_NAME`: 1 to 100 letters, digits, ``.``,
    ``_`` or ``-``, not starting with a dot); else :class:`BadValue`."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise BadValue(name, f"{name} must be 1 to 100 letters, digits, '.', '_' or '-', not "
                             f"starting with '.', got {value!r}")
    return value


def check_choice(value, name: str, choices) -> object:
    """``value`` if it is one of ``choices``; else :class:`BadValue` listing them."""
    if value not in choices:
        raise BadValue(name, f"{name} must be one of {', '.join(map(repr, choices))}, "
                             f"got {value!r}")
    return value


def param(default=dataclasses.MISSING, help: str = "", **how) -> dataclasses.Field:
    """A dataclass field with CLI metadata: ``help``, and optionally ``choices``, ``parse``,
    ``show``, ``metavar``, ``flag`` (default ``--field-name``) or ``nested`` (a config class)."""
    return dataclasses.field(default=default, metadata={"help": help, **how})


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
