"""Plot helpers for the book. Each takes an ``ax``, draws, and returns the ``ax``.

Nothing here changes global matplotlib style at import.
"""
from __future__ import annotations
