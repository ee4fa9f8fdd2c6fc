"""matmul: y = op(x0) · op(x1) per sample, op(x) = xᵀ (its last two axes swapped) when transposed.

Shapes: x0 [..., M, K] (or [..., K, M] with ``transpose_a``), x1 [..., K, N] (or [..., N, K] with
``transpose_b``), output [..., M, N]. The leading per-sample axes ("..."; none is fine) broadcast by
NumPy's rule, as add's, and the batch axis is shared: [H, T, D] against [H, D, T] is one product per
head; [H, T, D] against [D, T] multiplies every head by the one [D, T] matrix. Two activations, no
parameters (a learned right-hand side is ``linear``). Backward as PyTorch: d op(x0) = dy · op(x1)ᵀ,
d op(x1) = op(x0)ᵀ · dy, a broadcast input's gradient summed over its copies; reads both inputs.
FLOPs per sample, exact: forward 2·M·N·K per product; backward 4·M·N·K per product plus one addition
per element for each further copy a broadcast input's gradient sums.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .base import Op, ShapeError, TensorType, broadcast_shapes, float_input


def dims(attrs: dict[str, Any], ins: list[TensorType]) -> tuple[int, int, int, int]:
    """(M, K, N, number of products per sample) of a valid use (after ``shape``)."""
    a, b = ins
    m, k = a.shape[-2:][::-1] if attrs["transpose_a"] else a.shape[-2:]
    n = b.shape[-2] if attrs["transpose_b"] else b.shape[-1]
    lead = broadcast_shapes([TensorType(a.shape[:-2]), TensorType(b.shape[:-2])], "matmul")
    return m, k, n, lead.numel


class Matmul(Op):
    name = "matmul"
    family = "merge"
    arity = 2
    attributes: ClassVar[dict[str, Any]] = {
        "transpose_a": {
            "type": "boolean",
            "default": False,
            "description": "use input 0's last two axes swapped",
        },
        "transpose_b": {
            "type": "boolean",
            "default": False,
            "description": "use input 1's last two axes swapped",
        },
    }
    key_attributes = ("transpose_a", "transpose_b")
    example = ({"transpose_b": True}, (TensorType((4, 16, 8)), TensorType((4, 16, 8))))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        for i, t in enumerate(ins):
            float_input(t, i)
            if len(t.shape) < 2:
                raise ShapeError(
                    f"matmul needs input {i} of rank 2 or more [N, ..., rows, cols], but input {i} is {t}", i
                )
        a, b = ins
        ka = a.shape[-2] if attrs["transpose_a"] else a.shape[-1]
        kb = b.shape[-1] if attrs["transpose_b"] else b.shape[-2]
        if ka != kb:
            ta, tb = (f"transpose_{s}={str(attrs[f'transpose_{s}']).lower()}" for s in "ab")
            raise ShapeError(
                f"matmul inner dimensions differ: input 0 {a} gives K={ka} ({ta}) and input 1 {b} gives "
                f"K={kb} ({tb})",
                1,
            )
        try:
            lead = broadcast_shapes([TensorType(a.shape[:-2]), TensorType(b.shape[:-2])], "matmul")
        except ShapeError:
            la, lb = (list(t.shape[:-2]) for t in ins)
            raise ShapeError(
                f"matmul cannot broadcast the leading axes (before the last two) of input 0 {a} and input 1 "
                f"{b}: {la} against {lb}; aligned on the right, each axis must be equal or 1",
                1,
            ) from None
        m, _, n, _ = dims(attrs, ins)
        return TensorType((*lead.shape, m, n))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        m, k, n, t = dims(attrs, ins)
        # a broadcast input's gradient adds each further copy's product into its first
        extra = (t - math.prod(ins[0].shape[:-2])) * m * k + (t - math.prod(ins[1].shape[:-2])) * k * n
        return 2 * m * n * k * t, 4 * m * n * k * t + extra


OP = Matmul()
