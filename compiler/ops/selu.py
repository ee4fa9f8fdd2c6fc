"""selu: y = scale · (x if x > 0 else alpha · (exp(x) - 1)), as torch.nn.SELU, with PyTorch's fixed
alpha = 1.6732632423543772 and scale = 1.0507009873554805; dy/dx = scale, or scale · alpha · exp(x)
for x <= 0 (scale · alpha at 0, as torch).

Backward reads the input. FLOPs per sample: forward 4·numel, backward 4·numel (exp counts as 1).
"""

from __future__ import annotations

from .base import Elementwise

ALPHA = 1.6732632423543772848170429916717
SCALE = 1.0507009873554804934193349852946


class Selu(Elementwise):
    name = "selu"
    cost = (4, 4)


OP = Selu()
