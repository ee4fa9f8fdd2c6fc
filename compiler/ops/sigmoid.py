"""sigmoid: y = 1 / (1 + exp(-x)); dy/dx = y · (1 - y).

Backward reads the output only. FLOPs per sample: forward 4·numel, backward 3·numel.
"""

from __future__ import annotations

from .base import Elementwise


class Sigmoid(Elementwise):
    name = "sigmoid"
    reads_inputs = ()
    reads_output = True
    cost = (4, 3)


OP = Sigmoid()
