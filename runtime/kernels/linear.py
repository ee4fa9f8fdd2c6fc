"""linear kernels: y = x Wᵀ + b through BLAS.

x is viewed as a matrix [rows, in] once at bind time (all leading axes,
batch included, are rows), so forward is one GEMM and backward three.
``gemm`` with beta=1 adds dx into an existing gradient (a tensor read by
several modules) without a temporary.

Threads: products of at least SPLIT_MACS multiply-adds are split over numba's threads (y and dx
by the larger of their rows and columns, dW and db by output features: no partial sums,
deterministic for a given thread count); smaller ones run on one thread. BLAS runs on one thread
either way (``launch.OneBlasThread``). A fused activation (``Binding.epilogue``, EPILOGUES_CPU) is
applied to each thread's block of y right after its GEMM; after an unsplit GEMM (BLAS's own
threads, ``Binding.blas_threads``) on a large output it runs on numba's threads (``act_par``), as
the activation's own kernel would.

On the GPU the same three products go through the tiled ``cuda_core.gemm``; the bias is broadcast
into y before a beta=1 GEMM, and db is a column sum of dy (``cuda_core.row_sum``, no atomics).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import cuda, njit, prange

from ..binding import Binding, Thunk, nothing
from ..launch import Launch, OneBlasThread
from . import _epilogue as epilogue
from . import cuda_core
from ._blas import OPENBLAS, gemm
from ._pointwise import threads

#: The activations forward_cpu applies to y itself (``Binding.epilogue``).
EPILOGUES_CPU: frozenset[str] = epilogue.EPILOGUES_CPU


@njit(cache=True)
def forward_part(x, w, b, y, act, t, nt):
    # part t of nt: the block of y's rows, or of its columns (output features) when those are more
    # (each part then packs all of the smaller operand, x, and its share of W); its GEMM, then the
    # fused activation on that block while it is in cache
    n, o = y.shape
    if o > n:
        r0, r1, c0, c1 = 0, n, t * o // nt, (t + 1) * o // nt
    else:
        r0, r1, c0, c1 = t * n // nt, (t + 1) * n // nt, 0, o
    yb = y[r0:r1, c0:c1]
    beta = 0.0
    if b.size:
        for r in range(r1 - r0):
            yb[r, :] = b[c0:c1]
        beta = 1.0
    gemm(x[r0:r1], w[c0:c1], yb, False, True, 1.0, beta)
    if act[0] != epilogue.NONE:
        yf = y.reshape(-1)
        for r in range(r0, r1):
            epilogue.copy_act(yf, r * o + c0, yf, r * o + c0, c1 - c0, yf.dtype.type(0), False, act)


@njit(cache=True)
def backward_part(x, w, dy, dx, dw, db, acc_dx, t, nt):
    # dW = dyᵀ x ; db = Σ dy ; dx = dy W (+= when x feeds several modules). Part t of nt: the
    # rows [o0, o1) of dW and db, and a block of dx's rows, or of its columns when those are more
    # (no partial sums: deterministic)
    n, o = dy.shape
    o0, o1 = t * o // nt, (t + 1) * o // nt
    if dw.size:
        gemm(dy[:, o0:o1], x, dw[o0:o1], True, False, 1.0, 0.0)
    if db.size:
        for j in range(o0, o1):
            db[j] = 0.0
        for r in range(n):
            for j in range(o0, o1):
                db[j] += dy[r, j]
    if dx.size:
        k = dx.shape[1]
        if k > n:
            r0, r1, c0, c1 = 0, n, t * k // nt, (t + 1) * k // nt
        else:
            r0, r1, c0, c1 = t * n // nt, (t + 1) * n // nt, 0, k
        gemm(dy[r0:r1], w[:, c0:c1], dx[r0:r1, c0:c1], False, False, 1.0, 1.0 if acc_dx else 0.0)


@njit(cache=True)
def forward_cpu(x, w, b, y, act, none, act_nt):
    # one GEMM (on BLAS's threads where the plan lets it have them); the activation on the block
    # in cache, or in act_nt chunks on numba's threads when the output is large (``threads``)
    if act_nt > 1:
        forward_part(x, w, b, y, none, 0, 1)
        epilogue.act_par(y.reshape(-1), act, act_nt)
    else:
        forward_part(x, w, b, y, act, 0, 1)


@njit(cache=True)
def backward_cpu(x, w, dy, dx, dw, db, acc_dx):
    backward_part(x, w, dy, dx, dw, db, acc_dx, 0, 1)


# The split kernels: a parallel kernel costs ~0.1 ms to start on a busy machine, so products too
# small to split run the serial ones above.
@njit(cache=True, parallel=True)
def forward_split(x, w, b, y, act, nt):
    for t in prange(nt):
        forward_part(x, w, b, y, act, t, nt)


@njit(cache=True, parallel=True)
def backward_split(x, w, dy, dx, dw, db, acc_dx, nt):
    for t in prange(nt):
        backward_part(x, w, dy, dx, dw, db, acc_dx, t, nt)


#: Multiply-adds per product from which linear splits its GEMMs over numba's threads (each
#: GEMM on one BLAS thread) rather than running them on one thread. By measurement (2 cores,
#: shared, forward + backward): LeNet-5's 400 -> 120 at batch 256 (12M) took 1.1 ms split, 0.6 ms
#: on one thread; the 1024 x 1024 benchmark layer at batch 256 (268M) 24 ms split, 45 ms on one
#: thread, 63 ms on two OpenBLAS threads (which spin-wait, and collapse when the cores are shared).
SPLIT_MACS = 1 << 24


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    k = b.x[0].shape[-1]
    x = b.x[0].reshape(-1, k)
    y = b.y.reshape(-1, b.y.shape[-1])
    w = b.p["w"]
    empty = np.zeros(0, w.dtype)
    bias = b.p.get("b", empty)
    act = epilogue.code(b)
    none = epilogue.none(y.dtype)
    # One BLAS thread, unless the plan has no numba-parallel kernel for OpenBLAS's spinning threads
    # to starve (Binding.blas_threads): then BLAS splits every product itself
    split = not b.blas_threads and x.shape[0] * k * w.shape[0] >= SPLIT_MACS
    nt = max(1, min(x.shape[0], w.shape[0], numba.get_num_threads())) if split else 1
    launch = OneBlasThread if OPENBLAS is not None and not b.blas_threads else Launch
    if nt > 1:
        fwd = launch(forward_split, x, w, bias, y, act, nt)
    else:
        act_nt = threads(y.size) if act[0] != epilogue.NONE else 1
        fwd = launch(forward_cpu, x, w, bias, y, act, none, act_nt)
    if b.dy is None:
        return fwd, nothing
    dy = b.dy.reshape(y.shape)
    dx = b.dx[0].reshape(x.shape) if b.dx[0] is not None else np.zeros((0, k), w.dtype)
    dw = b.dp.get("w")
    dw = dw if dw is not None else np.zeros((0, k), w.dtype)
    db = b.dp.get("b")
    db = db if db is not None else empty
    acc = b.acc[0]
    if nt > 1:
        return fwd, launch(backward_split, x, w, dy, dx, dw, db, acc, nt)
    return fwd, launch(backward_cpu, x, w, dy, dx, dw, db, acc)


@cuda.jit
def broadcast_rows_cuda(b, y):
    # y[r, :] = b for every row: the bias, before y += x Wᵀ
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i // b.size, i % b.size] = b[i % b.size]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    k = b.x[0].shape[b.x[0].ndim - 1]  # the simulator refuses shape[-1]
    x = cuda_core.rows(b.x[0], k)
    y = cuda_core.rows(b.y, b.y.shape[b.y.ndim - 1])
    w = b.p["w"]
    bias = b.p.get("b")
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        if bias is None:
            cuda_core.gemm(False, True, 1.0, x, w, 0.0, y)
        else:
            broadcast_rows_cuda[blocks, threads](bias, y)
            cuda_core.gemm(False, True, 1.0, x, w, 1.0, y)

    if b.dy is None:
        return fwd, nothing
    dy = cuda_core.rows(b.dy, y.shape[1])
    dx = cuda_core.rows(b.dx[0], k) if b.dx[0] is not None else None
    dw, db = b.dp.get("w"), b.dp.get("b")
    beta_dx = 1.0 if b.acc[0] else 0.0

    def bwd() -> None:
        # dW = dyᵀ x ; db = Σ_rows dy ; dx = dy W (+= when x feeds several modules)
        if dw is not None:
            cuda_core.gemm(True, False, 1.0, dy, x, 0.0, dw)
        if db is not None:
            cuda_core.row_sum(dy, db)
        if dx is not None:
            cuda_core.gemm(False, False, 1.0, dy, w, beta_dx, dx)

    return fwd, bwd
