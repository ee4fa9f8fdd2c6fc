"""transpose: permute the per-sample axes: y.shape[i] = x.shape[perm[i]] (no FLOPs).

The batch axis stays first. Backward applies the inverse permutation to dy.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AXIS, Movement, ShapeError, TensorType, norm_axis


class Transpose(Movement):
    name = "transpose"
    attributes: ClassVar[dict[str, Any]] = {
        "perm": {
            "type": "array",
            "items": AXIS,
            "description": "a permutation of the per-sample axes (negative indices allowed)",
        }
    }
    required = ("perm",)
    key_attributes = ("perm",)
    example = ({"perm": [1, 0]}, (TensorType((64, 128)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x, perm = ins[0], attrs["perm"]
        r = len(x.shape)
        if len(perm) != r:
            raise ShapeError(f"transpose perm {perm} has {len(perm)} axes, but input 0 {x} has {r}", 0)
        p = [norm_axis(a, r, "transpose perm axis") for a in perm]
        if sorted(p) != list(range(r)):
            raise ShapeError(f"transpose perm {perm} is not a permutation of the axes of input 0 {x}", 0)
        return TensorType(tuple(x.shape[a] for a in p), x.dtype)


OP = Transpose()
