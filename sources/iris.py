"""`iris`: scikit-learn's 150 iris flowers: 4 features, 3 classes."""

from __future__ import annotations

from .base import Source, sklearn_set

SOURCE = Source(
    name="iris",
    doc="scikit-learn's 150 iris flowers: 4 features, 3 classes",
    fields={},
    loader=sklearn_set("iris"),
)
