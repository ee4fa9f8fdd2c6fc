"""avgpool1d kernels: avgpool2d's (runtime/kernels/avgpool2d.py), CPU and CUDA, on the views
[N, C, 1, L] of x, y and the gradients (``_views.as_planes``) with the 2-d attributes of
``Pool1d.as_pool2d`` (window [1, k]): no copy, no kernel of its own.
"""

from __future__ import annotations

from ...compiler.ops.maxpool1d import Pool1d
from ..binding import Binding, Thunk
from . import avgpool2d
from ._views import as_planes

#: avgpool2d's kernels run numba-parallel loops over planes (``Binding.blas_threads``).
PARALLEL_CPU = avgpool2d.PARALLEL_CPU


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return avgpool2d.bind_cpu(as_planes(b, Pool1d.as_pool2d(b.attrs)))


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return avgpool2d.bind_cuda(as_planes(b, Pool1d.as_pool2d(b.attrs)))
