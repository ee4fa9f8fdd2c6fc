"""mean: y = mean of x over the per-sample ``axes`` (the batch axis is never reduced).

x: [N, d0, …] → y: [N, …] with the reduced axes removed, or kept as size 1 with ``keepdims``.
Backward spreads dy / (product of reduced sizes) and needs only shapes.
FLOPs per sample: forward = backward = numel(x).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AXES, Op, TensorType, axes_set, float_input


class Mean(Op):
    name = "mean"
    family = "merge"
    attributes: ClassVar[dict[str, Any]] = {
        "axes": {**AXES, "description": "per-sample axes to average over (negative allowed)"},
        "keepdims": {"type": "boolean", "default": False, "description": "keep reduced axes with size 1"},
    }
    required = ("axes",)
    key_attributes = ("axes",)
    reads_inputs = ()
    example = ({"axes": [0]}, (TensorType((65, 192)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        float_input(x)
        axes = axes_set("mean", attrs["axes"], len(x.shape))
        if attrs["keepdims"]:
            return TensorType(tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
        return TensorType(tuple(d for i, d in enumerate(x.shape) if i not in axes))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return ins[0].numel, ins[0].numel


OP = Mean()
