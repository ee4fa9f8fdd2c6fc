"""sub kernels: y = x0 - x1; dx0 = dy, dx1 = -dy, each summed over the axes its input
was broadcast along (or += with acc): ``_broadcast``'s loops, CPU and CUDA, for every pair of shapes.
"""

from __future__ import annotations

from ..binding import Binding, Thunk
from . import _broadcast


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return _broadcast.bind_cpu(b, _broadcast.SUB)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return _broadcast.bind_cuda(b, _broadcast.SUB)
