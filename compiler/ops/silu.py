"""silu: y = x · σ(x) (swish), as torch.nn.SiLU; dy/dx = σ(x) · (1 + x · (1 - σ(x))).

Backward reads the input. FLOPs per sample: forward 5·numel, backward 9·numel (exp counts as 1).
"""

from __future__ import annotations

from .base import Elementwise


class Silu(Elementwise):
    name = "silu"
    cost = (5, 9)


OP = Silu()
