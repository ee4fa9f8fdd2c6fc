"""add kernels: y = x0 + x1 + … (flat, one shape); every dx_i = dy (or += dy). Inputs of
different shapes (broadcasting) bind ``_broadcast``'s kernels instead.

The inputs travel as one tuple so a module with k inputs is one kernel call; the sum runs
in input order, ((x0 + x1) + x2) + …, as PyTorch's chained adds round. Large arrays run the
forward in contiguous chunks on numba's threads (``_pointwise.threads``, chosen at bind time).
A fused activation (``Binding.epilogue``, EPILOGUES_CPU) is applied block by block as the sums are
written (``BLOCK``), so the output is written once and read back from L1.

On the GPU one kernel writes x0 + x1 and each further input is added by ``cuda_core.copy`` with
acc, in order (the same roundings); backward is one copy of dy per needed gradient.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import _broadcast, cuda_core
from . import _epilogue as epilogue
from ._copies import copy_cpu
from ._epilogue import act_inplace
from ._pointwise import threads
from ._views import flat, or_empty

#: Elements per block of the forward: the sum and the fused activation run block by block, so the
#: activation reads the sums from L1 (2,048 float32 values: 8 KiB per operand).
BLOCK = 2048


#: The activations forward_cpu applies to y itself (``Binding.epilogue``).
EPILOGUES_CPU: frozenset[str] = epilogue.EPILOGUES_CPU


@njit(cache=True)
def sum_block(xs, y, lo, hi):  # xs: a tuple of flat arrays; elements [lo, hi)
    a, b = xs[0], xs[1]
    for i in range(uint64(lo), uint64(hi)):  # uint64: no negative-index wrap, the loop vectorizes
        y[i] = a[i] + b[i]
    for k in range(2, len(xs)):
        c = xs[k]
        for i in range(uint64(lo), uint64(hi)):
            y[i] += c[i]


@njit(cache=True)
def forward_cpu(xs, y, lo, hi, act):
    if act[0] == epilogue.NONE:
        sum_block(xs, y, lo, hi)
        return
    for s in range(lo, hi, BLOCK):
        e = min(s + BLOCK, hi)
        sum_block(xs, y, s, e)
        act_inplace(y, s, e - s, act)


@njit(cache=True, parallel=True)
def forward_par(xs, y, nt, act):
    for t in prange(nt):
        forward_cpu(xs, y, t * y.size // nt, (t + 1) * y.size // nt, act)


@njit(cache=True)
def backward_cpu(dy, dxs, acc):  # dxs: flat arrays, empty where not needed
    for k in range(len(dxs)):
        if dxs[k].size:
            copy_cpu(dy, dxs[k], acc[k])  # dx = dy, or += dy


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    if any(x.shape != b.y.shape for x in b.x):
        return _broadcast.bind_cpu(b, _broadcast.ADD)
    xs, y = tuple(flat(a) for a in b.x), flat(b.y)
    n, nt, act = y.size, threads(y.size), epilogue.code(b)
    fwd = Launch(forward_cpu, xs, y, 0, n, act) if nt == 1 else Launch(forward_par, xs, y, nt, act)
    if b.dy is None or all(g is None for g in b.dx):
        return fwd, nothing
    dy = flat(b.dy)
    dxs = tuple(flat(or_empty(g, y.dtype)) for g in b.dx)
    acc = np.array(b.acc, np.bool_)
    return fwd, Launch(backward_cpu, dy, dxs, acc)


@cuda.jit
def forward_cuda(a, b, y):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i] = a[i] + b[i]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    if any(x.shape != b.y.shape for x in b.x):
        return _broadcast.bind_cuda(b, _broadcast.ADD)
    xs, y = [cuda_core.flat(a) for a in b.x], cuda_core.flat(b.y)
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](xs[0], xs[1], y)
        for c in xs[2:]:
            cuda_core.copy(c, y, True)

    if b.dy is None or all(g is None for g in b.dx):
        return fwd, nothing
    dy = cuda_core.flat(b.dy)
    grads = [(cuda_core.flat(g), bool(acc)) for g, acc in zip(b.dx, b.acc, strict=True) if g is not None]

    def bwd() -> None:
        for dx, acc in grads:  # in input order: a gradient listed twice (x + x) accumulates
            cuda_core.copy(dy, dx, acc)

    return fwd, bwd
