"""reshape: y = x viewed with the per-sample shape ``shape`` (row-major; no FLOPs).

One entry of ``shape`` may be -1: it takes whatever size makes the element counts equal.
x: [N, ...] → y: [N, *shape]; numel(shape) must equal numel(x) per sample.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .base import Movement, ShapeError, TensorType


class Reshape(Movement):
    name = "reshape"
    attributes: ClassVar[dict[str, Any]] = {
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": -1},
            "description": "per-sample output shape; one entry may be -1 (inferred)",
        }
    }
    required = ("shape",)
    key_attributes = ("shape",)
    example = ({"shape": [-1, 64]}, (TensorType((8, 8, 64)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x, want = ins[0], list(attrs["shape"])
        if want.count(-1) > 1 or 0 in want or any(d < -1 for d in want):
            raise ShapeError(f"reshape shape {want} may hold positive sizes and at most one -1")
        known = math.prod(d for d in want if d != -1)
        if -1 in want:
            if x.numel % known:
                raise ShapeError(
                    f"reshape cannot view input 0 {x} ({x.numel} values per sample) as {want}", 0
                )
            want[want.index(-1)] = x.numel // known
        elif known != x.numel:
            raise ShapeError(
                f"reshape to {want} needs {known} values per sample, but input 0 is {x} with {x.numel}", 0
            )
        return TensorType(tuple(want), x.dtype)


OP = Reshape()
