"""The check at the end of every chapter's parameter cell: each value the reader set is checked
where it is set, and a bad one is named by the reader's variable (``N_DIMS``), not by the
package argument it later becomes (``d``).

The rules follow the book's naming (the README's glossary): ``N_*``, ``M_*`` and ``K_*`` are
counts (integers >= 1), ``NS`` and its kin are tuples of counts, seeds are integers >= 0, and a
few named numbers have their ranges. A name no rule matches is left to the cells that use it.
"""
from __future__ import annotations

import math
import numbers
import re

from .checks import BadValue

_SCALES = ("cpu", "gpu", "paper")


def _count(value, low: int = 1) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _real(value, low: float, high: float = math.inf, *, open_low: bool = False) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and (value > low if open_low else value >= low)
            and value < high)


def _many(test):
    """A non-empty tuple or list whose every item passes ``test``."""
    return lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(map(test, v))


# (name pattern, test, what is allowed), first match wins.
RULES = [
    (r"SCALE", lambda v: v in _SCALES, f"one of {', '.join(map(repr, _SCALES))}"),
    (r"(\w+_)?SEED", lambda v: _count(v, 0) and v < 2**63, "an integer in 0 .. 2**63 - 1"),
    (r"(NS|BUDGETS|M_GRID)(_\w+)?", _many(_count), "a non-empty tuple of integers >= 1"),
    (r"M_OVER_D|LEVELS", _many(lambda v: _real(v, 0, open_low=True)),
     "a non-empty tuple of numbers > 0"),
    (r"(N|M|K)_\w+|FEW|MANY", _count, "an integer >= 1"),
    (r"SIGMAS", _many(lambda v: _real(v, 0)), "a non-empty tuple of numbers >= 0"),
    (r"(\w+_)?ALPHA|NOISE|SIGMA", lambda v: _real(v, 0), "a finite number >= 0"),
    (r"EPS(_\w+)?|COST_\w+", lambda v: _real(v, 0, open_low=True), "a finite number > 0"),
    (r"THETA", lambda v: _real(v, 0, 2, open_low=True), "a number in (0, 2)"),
    (r"TOL", lambda v: _real(v, 0, 1, open_low=True), "a number in (0, 1)"),
]


def check_params(namespace: dict) -> list[str]:
    """Check the chapter's parameters in ``namespace`` (call with ``globals()``).

    Every UPPER_CASE name that a rule of ``RULES`` matches is checked; the first bad one raises
    :class:`~ttsbook.checks.BadValue` naming the variable, what it holds and what is allowed.
    Returns the names checked.
    """
    checked = []
    for name, value in namespace.items():
        if not name.isupper() or name.startswith("_"):
            continue
        for pattern, test, allowed in RULES:
            if re.fullmatch(pattern, name):
                if not test(value):
                    raise BadValue(name, f"parameter {name} must be {allowed}, got {value!r}")
                checked.append(name)
                break
    return checked
