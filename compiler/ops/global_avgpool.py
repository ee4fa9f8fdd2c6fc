"""global_avgpool: y[c] = mean over every axis after the first of x[c, ...].

x: [N, C, H, W] (any per-sample rank ≥ 2) → y: [N, C]. No parameters; backward spreads
dy[c] / (H·W) over the plane and needs only shapes.
FLOPs per sample: forward = backward = numel(x) (one add per element; the divide is per channel).
"""

from __future__ import annotations

from typing import Any

from .base import Op, ShapeError, TensorType, float_input


class GlobalAvgpool(Op):
    name = "global_avgpool"
    family = "pooling"
    reads_inputs = ()
    example = ({}, (TensorType((64, 7, 7)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        float_input(x)
        if len(x.shape) < 2:
            raise ShapeError(
                f"global_avgpool needs input 0 of shape [N, C, ...spatial], but input 0 is {x}", 0
            )
        return TensorType(x.shape[:1])

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return ins[0].numel, ins[0].numel


OP = GlobalAvgpool()
