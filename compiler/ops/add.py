"""add: y = x0 + x1 + … (two or more inputs, broadcast by NumPy's rule over the per-sample axes).

Broadcasting: the per-sample shapes align on the right and each axis is equal or 1 (a [C, 1, 1]
bias against [C, H, W], a [1] scalar against anything); the batch axis is shared. The gradient of
a broadcast input is dy summed over the axes it was broadcast along.
FLOPs per sample: forward (k-1)·numel for k inputs; backward 0 (every input's gradient is dy) plus
one addition per element summed away for each broadcast input. Saves nothing.
``Arithmetic`` is the contract add, sub, mul and div share.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Op, TensorType, broadcast_shapes


class Arithmetic(Op):
    """A broadcasting elementwise op of two (or, add, more) float inputs. ``cost`` is its
    (forward, backward) FLOPs per output element and pair of inputs."""

    family = "merge"
    arity = 2
    cost: ClassVar[tuple[int, int]] = (1, 0)

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        return broadcast_shapes(ins, self.name)

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        reduce = sum(out.numel - t.numel for t in ins)  # the broadcast inputs' gradient sums
        k = len(ins) - 1
        return k * self.cost[0] * out.numel, k * self.cost[1] * out.numel + reduce


class Add(Arithmetic):
    name = "add"
    epilogue_producer = True
    arity = (2, None)
    reads_inputs = ()
    example = ({}, (TensorType((64, 8, 8)), TensorType((64, 8, 8))))


OP = Add()
