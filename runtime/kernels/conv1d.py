"""conv1d kernels: conv2d's (runtime/kernels/conv2d.py), CPU and CUDA, on the views [N, C, 1, L]
of x and y and [O, C/groups, 1, k] of the weight (``_views.as_planes``), with the 2-d attributes
of ``compiler.ops.conv1d.as_conv2d``: no copy, no kernel of its own. A fused activation
(``Binding.epilogue``) passes through to conv2d's kernels.
"""

from __future__ import annotations

from ...compiler.ops.conv1d import as_conv2d
from ..binding import Binding, Thunk
from . import conv2d
from ._views import as_planes

#: conv2d's kernels run numba-parallel loops over samples (``Binding.blas_threads``).
PARALLEL_CPU = conv2d.PARALLEL_CPU
#: The activations conv2d's CPU kernels apply to y themselves.
EPILOGUES_CPU: frozenset[str] = conv2d.EPILOGUES_CPU


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return conv2d.bind_cpu(as_planes(b, as_conv2d(b.attrs)))


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return conv2d.bind_cuda(as_planes(b, as_conv2d(b.attrs)))
