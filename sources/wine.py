"""`wine`: scikit-learn's 178 wines: 13 features, 3 classes."""

from __future__ import annotations

from .base import Source, sklearn_set

SOURCE = Source(
    name="wine",
    doc="scikit-learn's 178 wines: 13 features, 3 classes",
    fields={},
    loader=sklearn_set("wine"),
)
