"""`diabetes`: scikit-learn's 442 diabetes patients: 10 features, a float target (regression)."""

from __future__ import annotations

from .base import Source, sklearn_set

SOURCE = Source(
    name="diabetes",
    doc="scikit-learn's 442 diabetes patients: 10 features, a float target (regression)",
    fields={},
    loader=sklearn_set("diabetes", classification=False),
)
