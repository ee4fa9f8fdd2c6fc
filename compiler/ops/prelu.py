"""prelu: y = x if x > 0 else weight[c] · x, as torch.nn.PReLU: one learned slope, or one per
channel c (per-sample axis 0, dim 1 of [N, C, ...]); dy/dx = 1 if x > 0 else weight[c] (weight[c]
at 0, as torch), dL/dweight[c] = Σ over the batch and the other axes of x · dy where x <= 0.

Parameter: ``weight`` [num_parameters], PyTorch's name and layout, every entry ``init`` (0.25);
``num_parameters`` is 1 or the channel count. Its role is "weight", so weight decay and penalties
reach it as they do in PyTorch by default (He et al. 2015 trained it without decay: list "weight"
under no_decay to do so). Backward reads the input. FLOPs per sample: forward numel, backward 4·numel
(the input gradient and the slope gradient, 2 each).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INT_POS, Elementwise, Param, ShapeError, TensorType


class Prelu(Elementwise):
    name = "prelu"
    attributes: ClassVar[dict[str, Any]] = {
        "num_parameters": {**INT_POS, "default": 1, "description": "1, or the channel count (axis 0)"},
        "init": {"type": "number", "default": 0.25, "description": "initial slope for x <= 0"},
    }
    key_attributes = ("num_parameters",)
    cost = (1, 4)
    example = ({"num_parameters": 16}, (TensorType((16, 8, 8)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x, k = super().shape(attrs, ins), attrs["num_parameters"]
        channels = x.shape[0] if x.shape else 1
        if k != 1 and k != channels:
            raise ShapeError(
                f"{self.name} num_parameters={k} must be 1 or the channel count {channels} "
                f"(per-sample axis 0, dim 1 of [N, C, ...]) of input 0 {x}",
                0,
            )
        return x

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        return [Param("weight", (attrs["num_parameters"],), f"constant:{attrs['init']}")]


OP = Prelu()
