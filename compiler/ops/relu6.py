"""relu6: y = min(max(x, 0), 6), as torch.nn.ReLU6 (hardtanh with bounds 0 and 6); dy/dx = 1 for
0 < x < 6, else 0 (0 at both kinks).

Backward reads the output (0 < y < 6 ⇔ 0 < x < 6), so a training plan may run it in its
producer's buffer. FLOPs per sample: forward 2·numel, backward 3·numel.
"""

from __future__ import annotations

from .base import Elementwise


class Relu6(Elementwise):
    name = "relu6"
    reads_inputs = ()
    reads_output = True
    cost = (2, 3)


OP = Relu6()
