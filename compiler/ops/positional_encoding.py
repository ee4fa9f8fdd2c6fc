"""positional_encoding: y = x + PE, the fixed sinusoids of "Attention is all you need".

x: [N, T, D] → same shape, T ≤ max_len, D even;
PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(t / 10000^(2i/D)).
No parameters; dx = dy, so backward reads nothing.
FLOPs per sample: forward T·D (the add; PE is a constant table); backward 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INT_POS, Op, ShapeError, TensorType, check_rank, float_input


class PositionalEncoding(Op):
    name = "positional_encoding"
    family = "attention"
    attributes: ClassVar[dict[str, Any]] = {
        "max_len": {**INT_POS, "default": 5000, "description": "longest sequence allowed"}
    }
    reads_inputs = ()
    example = ({}, (TensorType((64, 128)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank("positional_encoding", x, 0, (2,), "[N, T, D]")
        float_input(x)
        t, d = x.shape
        if t > attrs["max_len"]:
            raise ShapeError(f"positional_encoding sequence length {t} exceeds max_len {attrs['max_len']}", 0)
        if d % 2:
            raise ShapeError(f"positional_encoding needs an even model size D, but input 0 is {x}", 0)
        return x

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return out.numel, 0


OP = PositionalEncoding()
