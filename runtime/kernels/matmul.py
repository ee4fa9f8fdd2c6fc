"""matmul kernels: y_t = op(a_i) · op(b_j) for every output matrix t, op(x) = xᵀ when transposed.

The batch and leading axes are flattened at bind time: a, b and y become stacks of matrices
[T, rows, cols], and two small int64 tables (``pairs``, allocated once) name the matrix of a and of
b each output matrix t reads (the same index when the leading axes are equal; a repeated one where
an input is broadcast). Each product is one BLAS ?gemm (``_blas.gemm``, no copy: a transposed
operand is passed as such). Backward: da_i (+)= dy_t · op(b_j)ᵀ (or op(b_j) · dy_tᵀ with
transpose_a) and db_j (+)= op(a_i)ᵀ · dy_t (or dy_tᵀ · op(a_i) with transpose_b); a gradient whose
matrix is read by several products is zeroed first (unless it accumulates) and each product adds
into it (beta = 1).

On the GPU the products are ``cuda_core.gemm_batched`` over the whole stack when the leading axes
are equal (or one input is a single matrix, broadcast, whose gradient gemm_batched sums), else one
``cuda_core.gemm`` per product.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._blas import gemm
from ._views import or_empty


def pairs(b: Binding) -> tuple[np.ndarray, np.ndarray]:
    """For each output matrix t (batch and leading axes flattened), the index of the matrix of a
    and of b it multiplies (NumPy's broadcasting over the leading axes, the batch axis first)."""
    lead = b.y.shape[:-2]

    def index(x: tuple[int, ...]) -> np.ndarray:
        xl = x[:-2]
        padded = (xl[0],) + (1,) * (len(lead) - len(xl)) + xl[1:]
        return np.ascontiguousarray(np.broadcast_to(np.arange(math.prod(xl)).reshape(padded), lead).ravel())

    return index(b.x[0].shape), index(b.x[1].shape)


def stack(a: np.ndarray) -> np.ndarray:
    """``a`` as [matrices, rows, cols] (a view)."""
    return a.reshape(-1, *a.shape[-2:])


@njit(cache=True)
def forward_cpu(a, b, y, ia, ib, ta, tb):
    for t in range(y.shape[0]):
        gemm(a[ia[t]], b[ib[t]], y[t], ta, tb, 1.0, 0.0)


@njit(cache=True)
def _zero(x):
    for i in range(x.shape[0]):
        x[i][:, :] = 0.0


@njit(cache=True)
def backward_cpu(a, b, dy, da, db, ia, ib, ta, tb, beta_a, beta_b, zero_a, zero_b):
    # x @ x: a and b one buffer, and da, db too, db accumulating (beta_b = 1) after da is written
    if da.size:
        if zero_a:
            _zero(da)
        for t in range(dy.shape[0]):
            if ta:
                gemm(b[ib[t]], dy[t], da[ia[t]], tb, True, 1.0, beta_a)
            else:
                gemm(dy[t], b[ib[t]], da[ia[t]], False, not tb, 1.0, beta_a)
    if db.size:
        if zero_b:
            _zero(db)
        for t in range(dy.shape[0]):
            if tb:
                gemm(dy[t], a[ia[t]], db[ib[t]], True, ta, 1.0, beta_b)
            else:
                gemm(a[ia[t]], dy[t], db[ib[t]], not ta, False, 1.0, beta_b)


def _betas(index: np.ndarray, acc: bool) -> tuple[float, bool]:
    """(beta, zero first) of a gradient whose matrices ``index`` names: a matrix read by several
    products sums them, so it starts from zero (unless it accumulates) and every product adds."""
    repeated = len(np.unique(index)) < len(index)
    return (1.0 if acc or repeated else 0.0), (repeated and not acc)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    ta, tb = bool(b.attrs["transpose_a"]), bool(b.attrs["transpose_b"])
    ia, ib = pairs(b)
    a, bb, y = stack(b.x[0]), stack(b.x[1]), stack(b.y)
    fwd = Launch(forward_cpu, a, bb, y, ia, ib, ta, tb)
    if b.dy is None or (b.dx[0] is None and b.dx[1] is None):
        return fwd, nothing
    da, db = (stack(or_empty(g, y.dtype, 3)) for g in b.dx)
    (beta_a, zero_a), (beta_b, zero_b) = _betas(ia, b.acc[0]), _betas(ib, b.acc[1])
    args = (ia, ib, ta, tb, beta_a, beta_b, zero_a, zero_b)
    return fwd, Launch(backward_cpu, a, bb, stack(b.dy), da, db, *args)


def _one(x: Any, index: np.ndarray) -> Any:
    """The stack ``x``, or its first matrix alone where every product reads that one."""
    return x if index.any() else x[:1]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    ta, tb = bool(b.attrs["transpose_a"]), bool(b.attrs["transpose_b"])
    ia, ib = pairs(b)
    a, bb, y = (x.reshape(-1, *x.shape[-2:]) for x in (b.x[0], b.x[1], b.y))
    t = y.shape[0]
    it = np.arange(t)
    # one batched launch when each input is a full stack or a single matrix
    batched = all(len(i) == t and (np.array_equal(i, np.arange(t)) or not i.any()) for i in (ia, ib))

    def product(
        ta_: bool,
        tb_: bool,
        p: Any,
        q: Any,
        ip: np.ndarray,
        iq: np.ndarray,
        out: Any,
        io: np.ndarray,
        beta: float,
    ) -> None:
        """out[io_k] = op(p[ip_k]) op(q[iq_k]) + beta·out[io_k] for every product k."""
        if batched:  # a single-matrix operand is a stack of one, which gemm_batched broadcasts (or sums into)
            cuda_core.gemm_batched(ta_, tb_, 1.0, _one(p, ip), _one(q, iq), beta, _one(out, io))
            return
        for k in range(t):
            cuda_core.gemm(ta_, tb_, 1.0, p[ip[k]], q[iq[k]], beta, out[io[k]])

    def fwd() -> None:
        product(ta, tb, a, bb, ia, ib, y, it, 0.0)

    if b.dy is None or (b.dx[0] is None and b.dx[1] is None):
        return fwd, nothing
    dy = b.dy.reshape(-1, *b.dy.shape[-2:])
    grads = []
    if b.dx[0] is not None:
        beta, zero = _betas(ia, b.acc[0])
        da = b.dx[0].reshape(-1, *b.dx[0].shape[-2:])
        # da_i (+)= dy_t op(b_j)ᵀ, or op(b_j) dy_tᵀ with transpose_a
        spec = (tb, True, bb, dy, ib, it) if ta else (False, not tb, dy, bb, it, ib)
        grads.append((spec, da, ia, beta, zero))
    if b.dx[1] is not None:
        beta, zero = _betas(ib, b.acc[1])
        db = b.dx[1].reshape(-1, *b.dx[1].shape[-2:])
        spec = (True, ta, dy, a, it, ia) if tb else (not ta, False, a, dy, ia, it)
        grads.append((spec, db, ib, beta, zero))

    def bwd() -> None:  # da before db: x @ x accumulates db into da's buffer
        for (ta_, tb_, p, q, ip, iq), out, io, beta, zero in grads:
            if zero:
                cuda_core.zero(out)
            product(ta_, tb_, p, q, ip, iq, out, io, beta)

    return fwd, bwd
