"""tanh: y = tanh(x); dy/dx = 1 - y².

Backward reads the output only. FLOPs per sample: forward numel (tanh counts as 1), backward 3·numel.
"""

from __future__ import annotations

from .base import Elementwise


class Tanh(Elementwise):
    name = "tanh"
    reads_inputs = ()
    reads_output = True
    cost = (1, 3)


OP = Tanh()
