"""select: y = x[..., index, ...] along per-sample ``axis``, which is removed (no FLOPs).

x: [N, d0, …, d_a, …] → y: [N, d0, …] without axis a. Negative index counts from the end.
Example: the ViT class token is select axis 0 index 0 of [N, T, D] → [N, D].
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AXIS, Movement, ShapeError, TensorType, norm_axis


class Select(Movement):
    name = "select"
    attributes: ClassVar[dict[str, Any]] = {
        "axis": {**AXIS, "description": "per-sample axis to index (negative allowed)"},
        "index": {"type": "integer", "description": "position along the axis (negative counts from the end)"},
    }
    required = ("axis", "index")
    key_attributes = ("axis", "index")
    example = ({"axis": 0, "index": 0}, (TensorType((65, 192)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x, i = ins[0], attrs["index"]
        a = norm_axis(attrs["axis"], len(x.shape), "select axis")
        if not -x.shape[a] <= i < x.shape[a]:
            raise ShapeError(
                f"select index {i} is out of range for axis {a} of size {x.shape[a]} (input 0 is {x})", 0
            )
        return TensorType(x.shape[:a] + x.shape[a + 1 :], x.dtype)


OP = Select()
