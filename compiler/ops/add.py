"""add: y = x0 + x1 + … (two or more inputs of one shape; no broadcasting).

FLOPs per sample: forward (k-1)·numel for k inputs; backward 0 (every input's gradient is dy).
Saves nothing.
"""

from __future__ import annotations

from typing import Any

from .base import Op, TensorType, float_input, same_shapes


class Add(Op):
    name = "add"
    family = "merge"
    epilogue_producer = True
    arity = (2, None)
    reads_inputs = ()
    example = ({}, (TensorType((64, 8, 8)), TensorType((64, 8, 8))))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        for i, t in enumerate(ins):
            float_input(t, i)
        return same_shapes(ins, "add")

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return (len(ins) - 1) * out.numel, 0


OP = Add()
