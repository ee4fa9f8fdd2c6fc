"""mul: y = x0 ⊙ x1 (elementwise, one shape, no broadcasting).

Backward: dx0 = dy ⊙ x1, dx1 = dy ⊙ x0, so both inputs are saved.
FLOPs per sample: forward numel; backward 2·numel.
"""

from __future__ import annotations

from typing import Any

from .base import Op, TensorType, float_input, same_shapes


class Mul(Op):
    name = "mul"
    family = "merge"
    arity = 2
    example = ({}, (TensorType((128,)), TensorType((128,))))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        for i, t in enumerate(ins):
            float_input(t, i)
        return same_shapes(ins, "mul")


OP = Mul()
