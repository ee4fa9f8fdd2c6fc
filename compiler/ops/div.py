"""div: y = x0 / x1 (elementwise, broadcast by NumPy's rule over the per-sample axes, as add).

Backward as PyTorch: dx0 = dy / x1, dx1 = -dy · x0 / x1², each summed over the axes its input
was broadcast along, so both inputs are saved. FLOPs per sample: forward numel; backward 4·numel
(one division for dx0, a multiply and two divisions for dx1; plus the sums).
"""

from __future__ import annotations

from typing import ClassVar

from .add import Arithmetic
from .base import TensorType


class Div(Arithmetic):
    name = "div"
    cost: ClassVar[tuple[int, int]] = (1, 4)
    example = ({}, (TensorType((16, 8, 8)), TensorType((16, 1, 1))))


OP = Div()
