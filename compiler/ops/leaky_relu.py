"""leaky_relu: y = x if x > 0 else negative_slope · x; dy/dx = 1 or negative_slope.

Backward reads the input. FLOPs per sample: forward numel, backward 2·numel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Elementwise


class LeakyRelu(Elementwise):
    name = "leaky_relu"
    attributes: ClassVar[dict[str, Any]] = {
        "negative_slope": {"type": "number", "default": 0.01, "description": "slope for x < 0"}
    }
    key_attributes = ("negative_slope",)


OP = LeakyRelu()
