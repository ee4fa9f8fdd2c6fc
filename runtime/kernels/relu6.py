"""relu6 kernels: hardtanh's (``hardtanh.py``) with bounds 0 and 6, as torch computes relu6: y =
min(max(x, 0), 6); dx = dy for 0 < y < 6, else 0 (backward reads the output).

No loops of its own: the binders pass hardtanh's CPU and CUDA kernels the bounds in the arrays'
dtype, so relu6 and hardtanh(0, 6) are one compiled kernel and bitwise equal.
"""

from __future__ import annotations

from ..binding import Binding, Thunk
from . import cuda_core, hardtanh
from ._pointwise import ACTIVATIONS, bind_unary

#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS

LO, HI = 0.0, 6.0


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    dt = b.x[0].dtype.type
    return bind_unary(b, hardtanh.KERNELS_CPU, True, dt(LO), dt(HI))


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    dt = b.x[0].dtype.type
    return cuda_core.bind_unary(b, hardtanh.forward_cuda, hardtanh.backward_cuda, True, dt(LO), dt(HI))
