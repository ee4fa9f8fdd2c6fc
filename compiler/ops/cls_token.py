"""cls_token: y = [w; x], a learned token prepended along the sequence axis (ViT).

x: [N, T, D] → y: [N, T+1, D]; y[:, 0] = w[0], y[:, 1:] = x. Parameter w [1, D], init "zeros"
by default (as the original ViT; timm uses a tiny normal). Backward: dx = dy[:, 1:],
dw = Σ_batch dy[:, 0]; reads nothing.
FLOPs per sample: forward 0 (a copy); backward D (the dw sum).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INIT_ATTR, Op, Param, TensorType, check_rank, float_input


class ClsToken(Op):
    name = "cls_token"
    family = "attention"
    attributes: ClassVar[dict[str, Any]] = {
        "init": {**INIT_ATTR, "default": "zeros", "description": "token initializer"}
    }
    reads_inputs = ()
    example = ({}, (TensorType((64, 192)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank("cls_token", x, 0, (2,), "[N, T, D]")
        float_input(x)
        return TensorType((x.shape[0] + 1, x.shape[1]))

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        d = ins[0].shape[1]
        return [Param("w", (1, d), attrs["init"], fan_in=d, fan_out=d)]

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return 0, ins[0].shape[1]


OP = ClsToken()
