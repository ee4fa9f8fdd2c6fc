"""softmax: y_i = exp(x_i - max x) / Σ_j exp(x_j - max x) along per-sample ``axis``.

Backward: dx = y ⊙ (dy - Σ_axis dy ⊙ y); it reads the output only.
FLOPs per sample: forward 5·numel (max, subtract, exp, sum, divide); backward 4·numel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AXIS, Elementwise, TensorType, norm_axis


class Softmax(Elementwise):
    name = "softmax"
    attributes: ClassVar[dict[str, Any]] = {
        "axis": {**AXIS, "default": -1, "description": "per-sample axis to normalise over"}
    }
    key_attributes = ("axis",)
    reads_inputs = ()
    reads_output = True
    pointwise = False  # each output reads its whole row
    cost = (5, 4)

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        norm_axis(attrs["axis"], len(ins[0].shape), f"{self.name} axis")
        return super().shape(attrs, ins)


OP = Softmax()
