"""global_maxpool kernels: maxpool2d's (runtime/kernels/maxpool2d.py), CPU and CUDA, with one
window over each whole plane: x [N, C, ...] viewed as [N, C, 1, S], y and the saved argmax [N, C]
as [N, C, 1, 1] (``_views.as_planes``). Its scan gives PyTorch's max-pool argmax (first maximum, a NaN wins),
its backward puts dy at the argmax; no copy, no kernel of its own.
"""

from __future__ import annotations

from ...compiler.ops.base import TensorType
from ...compiler.ops.global_maxpool import OP
from ..binding import Binding, Thunk
from . import maxpool2d
from ._views import as_planes

#: maxpool2d's kernels run numba-parallel loops over planes (``Binding.blas_threads``).
PARALLEL_CPU = maxpool2d.PARALLEL_CPU


def _planes(b: Binding) -> Binding:
    return as_planes(b, OP.as_pool2d([TensorType(b.x[0].shape[1:])]))


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return maxpool2d.bind_cpu(_planes(b))


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return maxpool2d.bind_cuda(_planes(b))
