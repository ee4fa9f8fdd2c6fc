"""parameter: y = x + w, a learned tensor of the per-sample input shape (e.g. ViT's learned
position embedding on [N, T+1, D]).

Parameter: w with the input's per-sample shape, init "zeros" by default. Backward: dx = dy,
dw = Σ_batch dy; reads nothing. FLOPs per sample: forward numel, backward numel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INIT_ATTR, Elementwise, Param, TensorType


class Parameter(Elementwise):
    name = "parameter"
    family = "parameter"
    attributes: ClassVar[dict[str, Any]] = {
        "init": {**INIT_ATTR, "default": "zeros", "description": "initializer of w"}
    }
    reads_inputs = ()
    cost = (1, 1)
    example = ({}, (TensorType((65, 192)),))

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        s = ins[0].shape
        return [Param("w", s, attrs["init"], fan_in=s[-1] if s else 1, fan_out=s[-1] if s else 1)]


OP = Parameter()
