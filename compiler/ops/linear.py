"""linear: y = x Wᵀ + b over the last axis.

x: [N, ..., in_features] → y: [N, ..., out_features]; W: [out, in], b: [out].
FLOPs per sample (m = rows per sample, k = in, n = out): forward 2·m·k·n
(+ m·n for the bias); backward 4·m·k·n (dx and dW) + m·n (db).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .base import INIT_ATTR, INT_POS, Op, Param, ShapeError, TensorType, bias_init, float_input


class Linear(Op):
    name = "linear"
    family = "linear"
    epilogue_producer = True
    attributes: ClassVar[dict[str, Any]] = {
        "out_features": {**INT_POS, "description": "size of each output row"},
        "bias": {"type": "boolean", "default": True, "description": "add a learned bias"},
        "init": INIT_ATTR,
    }
    required = ("out_features",)
    key_attributes = ("out_features",)
    example = ({"out_features": 128}, (TensorType((784,)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        float_input(x)
        if not x.shape:
            raise ShapeError(f"linear needs an input with at least one per-sample axis, got {x}", 0)
        return TensorType((*x.shape[:-1], attrs["out_features"]))

    def advice(self, attrs: dict[str, Any], ins: list[TensorType]) -> str | None:
        # [N, T, D] (a sequence of vectors) is linear's other common use; [N, C, H, W] fed
        # to a classifier head is a forgotten flatten, whose error would surface only at the loss.
        x = ins[0]
        if len(x.shape) < 3:
            return None
        return (
            f"linear acts on the last axis only, so its input {x} gives {self.shape(attrs, ins)}; "
            "to connect every value, put a `flatten` (or a `global_avgpool`) before it"
        )

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        k, n = ins[0].shape[-1], attrs["out_features"]
        ps = [Param("w", (n, k), attrs["init"], fan_in=k, fan_out=n)]
        if attrs["bias"]:
            ps.append(Param("b", (n,), bias_init(attrs["init"]), fan_in=k, fan_out=n))
        return ps

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        k, n = ins[0].shape[-1], attrs["out_features"]
        m = math.prod(ins[0].shape[:-1])
        bias = m * n if attrs["bias"] else 0
        return 2 * m * k * n + bias, 4 * m * k * n + bias


OP = Linear()
