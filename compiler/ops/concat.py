"""concat: join inputs along per-sample ``axis``; every other axis must agree (no FLOPs).

[N, ..., a_i, ...] for each input i → [N, ..., Σ a_i, ...]. Backward slices dy; saves nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AXIS, Movement, ShapeError, TensorType, norm_axis


class Concat(Movement):
    name = "concat"
    family = "merge"
    arity = (2, None)
    attributes: ClassVar[dict[str, Any]] = {
        "axis": {**AXIS, "default": 0, "description": "per-sample axis to join along"}
    }
    key_attributes = ("axis",)
    example = ({}, (TensorType((32, 8, 8)), TensorType((16, 8, 8))))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x0 = ins[0]
        a = norm_axis(attrs["axis"], len(x0.shape), "concat axis")
        for i, t in enumerate(ins[1:], start=1):
            if (
                t.dtype != x0.dtype
                or len(t.shape) != len(x0.shape)
                or any(d0 != d for j, (d0, d) in enumerate(zip(x0.shape, t.shape, strict=True)) if j != a)
            ):
                raise ShapeError(
                    f"concat along axis {attrs['axis']} needs inputs equal on every other axis, "
                    f"but input 0 is {x0} and input {i} is {t}",
                    i,
                )
        size = sum(t.shape[a] for t in ins)
        return TensorType((*x0.shape[:a], size, *x0.shape[a + 1 :]), x0.dtype)


OP = Concat()
