"""softplus: y = log(1 + exp(beta · x)) / beta, and y = x where beta · x > threshold, as
torch.nn.Softplus; dy/dx = σ(beta · x), and 1 where beta · x > threshold.

Computed as (max(z, 0) + log1p(exp(-|z|))) / beta with z = beta · x, which never overflows (torch's
log1p(exp(z)) is inf in float32 for z > 88 when threshold allows it). Backward reads the input.
FLOPs per sample: forward 6·numel, backward 6·numel (exp and log1p count as 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Elementwise


class Softplus(Elementwise):
    name = "softplus"
    attributes: ClassVar[dict[str, Any]] = {
        "beta": {"type": "number", "exclusiveMinimum": 0, "default": 1.0, "description": "sharpness"},
        "threshold": {
            "type": "number",
            "default": 20.0,
            "description": "above beta·x > threshold the op is the identity",
        },
    }
    key_attributes = ("beta", "threshold")
    cost = (6, 6)


OP = Softplus()
