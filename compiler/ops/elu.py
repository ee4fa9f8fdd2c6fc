"""elu: y = x if x > 0 else alpha · (exp(x) - 1); dy/dx = 1 or alpha · exp(x).

Backward reads the input. FLOPs per sample: forward 3·numel, backward 3·numel (exp counts as 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Elementwise


class Elu(Elementwise):
    name = "elu"
    attributes: ClassVar[dict[str, Any]] = {
        "alpha": {"type": "number", "default": 1.0, "description": "scale of the negative branch"}
    }
    key_attributes = ("alpha",)
    cost = (3, 3)


OP = Elu()
