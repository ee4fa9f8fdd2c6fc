"""sub: y = x0 - x1 (elementwise, broadcast by NumPy's rule over the per-sample axes, as add).

Backward: dx0 = dy, dx1 = -dy, each summed over the axes its input was broadcast along; reads
nothing. FLOPs per sample: forward numel; backward numel (the negation, plus the sums).
"""

from __future__ import annotations

from typing import ClassVar

from .add import Arithmetic
from .base import TensorType


class Sub(Arithmetic):
    name = "sub"
    reads_inputs = ()
    cost: ClassVar[tuple[int, int]] = (1, 1)
    example = ({}, (TensorType((16, 8, 8)), TensorType((16, 1, 1))))


OP = Sub()
