"""gelu: y = x · Φ(x), Φ the standard normal CDF, as torch.nn.GELU.

approximate "none": Φ(x) = (1 + erf(x / √2)) / 2; dy/dx = Φ(x) + x · φ(x).
approximate "tanh": y = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
Backward reads the input. FLOPs per sample: forward 5·numel ("none") or 9·numel ("tanh"); backward
9·numel or 15·numel (erf, exp and tanh count as 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Elementwise, TensorType


class Gelu(Elementwise):
    name = "gelu"
    attributes: ClassVar[dict[str, Any]] = {
        "approximate": {
            "enum": ["none", "tanh"],
            "default": "none",
            "description": "exact erf or the tanh formula",
        }
    }
    key_attributes = ("approximate",)

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        f, b = (9, 15) if attrs["approximate"] == "tanh" else (5, 9)
        return f * out.numel, b * out.numel


OP = Gelu()
