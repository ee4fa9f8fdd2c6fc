"""hardsigmoid: y = min(max(x + 3, 0), 6) / 6, as torch.nn.Hardsigmoid; dy/dx = 1/6 for
-3 < x < 3, else 0 (0 at both kinks).

Backward reads the input: the output cannot tell x = 3 - 2⁻²² (y rounds to 1 in float32, slope
1/6) from x = 3 (slope 0). FLOPs per sample: forward 4·numel, backward 3·numel.
"""

from __future__ import annotations

from .base import Elementwise


class Hardsigmoid(Elementwise):
    name = "hardsigmoid"
    cost = (4, 3)


OP = Hardsigmoid()
