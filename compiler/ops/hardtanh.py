"""hardtanh: y = min_val if x <= min_val, max_val if x >= max_val, else x; dy/dx = 1 strictly
between the bounds, else 0 (0 at both kinks, as torch.nn.Hardtanh).

Backward reads the output (min_val < y < max_val ⇔ min_val < x < max_val), so the input need not be
saved and a training plan may run it in its producer's buffer. FLOPs per sample: forward
2·numel, backward 3·numel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Elementwise, ShapeError, TensorType


class Hardtanh(Elementwise):
    name = "hardtanh"
    attributes: ClassVar[dict[str, Any]] = {
        "min_val": {"type": "number", "default": -1.0, "description": "lower bound of the linear region"},
        "max_val": {"type": "number", "default": 1.0, "description": "upper bound of the linear region"},
    }
    key_attributes = ("min_val", "max_val")
    reads_inputs = ()
    reads_output = True
    cost = (2, 3)

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        if attrs["min_val"] > attrs["max_val"]:
            raise ShapeError(
                f"{self.name} min_val {attrs['min_val']} is greater than max_val {attrs['max_val']}"
            )
        return super().shape(attrs, ins)


OP = Hardtanh()
