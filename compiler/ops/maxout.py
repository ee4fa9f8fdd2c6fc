"""maxout: y[..., j, ...] = max_{q<pieces} x[..., j·pieces + q, ...] along per-sample ``axis``
(Goodfellow et al. 2013); groups are contiguous runs of ``pieces`` elements.

x: [N, …, d, …] → y: [N, …, d / pieces, …]; d must divide by ``pieces``. Forward saves the int64
winning piece q of each output ("argmax", the output's shape); backward routes dy there and reads no
input. FLOPs per sample: forward numel(x) comparisons; backward numel(y).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AXIS, Op, Saved, ShapeError, TensorType, float_input, norm_axis


class Maxout(Op):
    name = "maxout"
    family = "activation"
    attributes: ClassVar[dict[str, Any]] = {
        "pieces": {"type": "integer", "minimum": 2, "description": "inputs per max group"},
        "axis": {**AXIS, "default": 0, "description": "per-sample axis split into groups"},
    }
    required = ("pieces",)
    key_attributes = ("pieces",)
    reads_inputs = ()
    example = ({"pieces": 2}, (TensorType((512,)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x, k = ins[0], attrs["pieces"]
        float_input(x)
        a = norm_axis(attrs["axis"], len(x.shape), "maxout axis")
        if x.shape[a] % k:
            raise ShapeError(
                f"maxout pieces={k} must divide axis {a} of size {x.shape[a]} (input 0 is {x})", 0
            )
        return TensorType((*x.shape[:a], x.shape[a] // k, *x.shape[a + 1 :]))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return ins[0].numel, out.numel

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = Maxout()
