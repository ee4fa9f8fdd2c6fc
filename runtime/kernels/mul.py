"""mul kernels: y = x0 ⊙ x1 (flat, one shape); dx0 = dy ⊙ x1, dx1 = dy ⊙ x0 (or += each).
Inputs of different shapes (broadcasting) bind ``_broadcast``'s kernels instead.

On the GPU one kernel computes both gradients, each thread its elements: dx0 first, then dx1,
so x * x (one buffer, dx1 accumulating into dx0) sums both terms as on the CPU.

CPU: large arrays run in contiguous chunks on numba's threads (``_pointwise.threads``, chosen at
bind time); within a chunk dx0 is written before dx1, as in the serial loops.
"""

from __future__ import annotations

from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import _broadcast, cuda_core
from ._pointwise import threads
from ._views import flat, or_empty


# Elements [lo, hi); uint64 indices: no negative-index wrap, so the loops vectorize.
@njit(cache=True)
def forward_cpu(x0, x1, y, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = x0[i] * x1[i]


@njit(cache=True)
def _grad(dy, other, dx, acc, lo, hi):
    if dx.size == 0:
        return
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += dy[i] * other[i]
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = dy[i] * other[i]


@njit(cache=True)
def backward_cpu(x0, x1, dy, dx0, dx1, acc0, acc1, lo, hi):  # an empty dx is not needed
    # x0 and x1 may be one buffer (x * x); dx0 and dx1 then are too, with acc1 set.
    _grad(dy, x1, dx0, acc0, lo, hi)
    _grad(dy, x0, dx1, acc1, lo, hi)


@njit(cache=True, parallel=True)
def forward_par(x0, x1, y, nt):
    for t in prange(nt):
        forward_cpu(x0, x1, y, t * y.size // nt, (t + 1) * y.size // nt)


@njit(cache=True, parallel=True)
def backward_par(x0, x1, dy, dx0, dx1, acc0, acc1, nt):
    for t in prange(nt):
        backward_cpu(x0, x1, dy, dx0, dx1, acc0, acc1, t * dy.size // nt, (t + 1) * dy.size // nt)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    if any(x.shape != b.y.shape for x in b.x):
        return _broadcast.bind_cpu(b, _broadcast.MUL)
    x0, x1, y = flat(b.x[0]), flat(b.x[1]), flat(b.y)
    n, nt = y.size, threads(y.size)
    fwd = Launch(forward_cpu, x0, x1, y, 0, n) if nt == 1 else Launch(forward_par, x0, x1, y, nt)
    if b.dy is None or (b.dx[0] is None and b.dx[1] is None):
        return fwd, nothing
    dy = flat(b.dy)
    dx0, dx1 = flat(or_empty(b.dx[0], y.dtype)), flat(or_empty(b.dx[1], y.dtype))
    acc0, acc1 = b.acc[0], b.acc[1]
    if nt == 1:
        return fwd, Launch(backward_cpu, x0, x1, dy, dx0, dx1, acc0, acc1, 0, n)
    return fwd, Launch(backward_par, x0, x1, dy, dx0, dx1, acc0, acc1, nt)


@cuda.jit
def forward_cuda(x0, x1, y):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i] = x0[i] * x1[i]


@cuda.jit
def backward_cuda(x0, x1, dy, dx0, dx1, acc0, acc1):  # an empty dx is not needed
    for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        g = dy[i]
        if dx0.size:
            if acc0:
                dx0[i] += g * x1[i]
            else:
                dx0[i] = g * x1[i]
        if dx1.size:
            if acc1:
                dx1[i] += g * x0[i]
            else:
                dx1[i] = g * x0[i]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    if any(x.shape != b.y.shape for x in b.x):
        return _broadcast.bind_cuda(b, _broadcast.MUL)
    x0, x1, y = cuda_core.flat(b.x[0]), cuda_core.flat(b.x[1]), cuda_core.flat(b.y)
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](x0, x1, y)

    if b.dy is None or (b.dx[0] is None and b.dx[1] is None):
        return fwd, nothing
    dy = cuda_core.flat(b.dy)
    dx0, dx1 = (cuda_core.flat(g) if g is not None else cuda_core.empty(y.dtype) for g in b.dx)
    acc0, acc1 = bool(b.acc[0]), bool(b.acc[1])

    def bwd() -> None:
        backward_cuda[blocks, threads](x0, x1, dy, dx0, dx1, acc0, acc1)

    return fwd, bwd
