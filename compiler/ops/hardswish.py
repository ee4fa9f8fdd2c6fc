"""hardswish: y = x · min(max(x + 3, 0), 6) / 6, as torch.nn.Hardswish; dy/dx = 0 for x <= -3,
x/3 + 1/2 for -3 < x < 3, 1 for x >= 3 (torch's values at the kinks: 0 at -3, 1 at 3).

Backward reads the input (y is not monotonic below -1.5). FLOPs per sample: forward 5·numel,
backward 4·numel.
"""

from __future__ import annotations

from .base import Elementwise


class Hardswish(Elementwise):
    name = "hardswish"
    cost = (5, 4)


OP = Hardswish()
