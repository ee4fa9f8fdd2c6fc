"""mul: y = x0 ⊙ x1 (elementwise, broadcast by NumPy's rule over the per-sample axes, as add).

Backward: dx0 = dy ⊙ x1, dx1 = dy ⊙ x0, each summed over the axes its input was broadcast
along, so both inputs are saved. FLOPs per sample: forward numel; backward 2·numel (plus the sums).
"""

from __future__ import annotations

from typing import ClassVar

from .add import Arithmetic
from .base import TensorType


class Mul(Arithmetic):
    name = "mul"
    cost: ClassVar[tuple[int, int]] = (1, 2)
    example = ({}, (TensorType((128,)), TensorType((128,))))


OP = Mul()
