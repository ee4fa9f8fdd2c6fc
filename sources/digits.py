"""`digits`: scikit-learn's 1,797 8x8 digits, grey levels 0..16; labels 0..9."""

from __future__ import annotations

from .base import Source, sklearn_set

SOURCE = Source(
    name="digits",
    doc="scikit-learn's 1,797 8x8 digits, grey levels 0..16; labels 0..9",
    fields={},
    loader=sklearn_set("digits", shape=(8, 8)),
)
