"""global_maxpool: y[c] = max over every axis after the first of x[c, ...].

x: [N, C, H, W] (any per-sample rank ≥ 2) → y: [N, C], as PyTorch's max pools with one window
(adaptive_max_pool to one cell). It is maxpool2d on the view [N, C, 1, S] (S = H·W…) with a
window [1, S], kernels included: forward saves the int64 flat index of each plane's first maximum
(a NaN wins) as "argmax" [N, C], backward puts dy[c] there alone (torch.amax would split a tie)
and reads no input.
FLOPs per sample: forward numel(x) comparisons; backward C (one add per output).
"""

from __future__ import annotations

import math
from typing import Any

from .base import Op, Saved, ShapeError, TensorType, float_input


class GlobalMaxpool(Op):
    name = "global_maxpool"
    family = "pooling"
    reads_inputs = ()
    example = ({}, (TensorType((64, 100)),))

    @staticmethod
    def as_pool2d(ins: list[TensorType]) -> dict[str, Any]:
        """The attributes of the maxpool2d over [N, C, 1, S] that computes it: one whole-plane window."""
        s = math.prod(ins[0].shape[1:])
        return {"kernel": [1, s], "stride": [1, s], "padding": 0, "ceil_mode": False}

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        float_input(x)
        if len(x.shape) < 2 or x.numel == 0:
            raise ShapeError(
                f"global_maxpool needs input 0 of shape [N, C, ...spatial] with cells, but input 0 is {x}", 0
            )
        return TensorType(x.shape[:1])

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return ins[0].numel, out.numel

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = GlobalMaxpool()
