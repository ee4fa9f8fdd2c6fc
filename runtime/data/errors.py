"""The one exception of data loading, and how messages write a shape.

:class:`DataError` is every problem with the training data that a person can cause and fix;
``shape_str`` writes a per-sample shape the way every message does (``[1, 28, 28]``).
Standard library only, so the source declarations (netc.sources) and every data module can use it.
"""

from __future__ import annotations


class DataError(Exception):
    """A problem with the training data that a person can fix; the message is
    one line naming the file (and line, column or array), the spec key and the input."""


def shape_str(s: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in s) + "]"
