"""`breast_cancer`: scikit-learn's 569 breast-cancer samples: 30 features, 2 classes."""

from __future__ import annotations

from .base import Source, sklearn_set

SOURCE = Source(
    name="breast_cancer",
    doc="scikit-learn's 569 breast-cancer samples: 30 features, 2 classes",
    fields={},
    loader=sklearn_set("breast_cancer"),
)
