"""transpose kernels: y = x with its per-sample axes permuted (the batch axis stays first).

At bind time the permutation is simplified: size-1 axes are dropped and axes that stay
adjacent and in order are merged (NCHW → NHWC becomes a [N, C, HW] → [N, HW, C] swap), then
padded to a fixed rank, so one compiled loop nest serves every rank. The loop walks the
destination contiguously and gathers from a strided view of the source; backward is the
same gather from dy through the inverse permutation (or += with acc).

On the GPU the same merged permutation drives ``_copies.gather_cuda``: each thread writes
consecutive destination elements and reads the source through the permuted strides, held in
a small int64 array uploaded at bind time (device arrays cannot be transposed in place).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._copies import gather_cuda, gather_meta
from ._views import c_strides, merged_permutation, pad_rank


@njit(cache=True)
def permute_cpu(src, dst, acc):  # src: a strided 6-d view with dst's shape
    s0, s1, s2, s3, s4, s5 = dst.shape
    for a in range(s0):
        for b in range(s1):
            for c in range(s2):
                for d in range(s3):
                    for e in range(s4):
                        if acc:
                            for f in range(s5):
                                dst[a, b, c, d, e, f] += src[a, b, c, d, e, f]
                        else:
                            for f in range(s5):
                                dst[a, b, c, d, e, f] = src[a, b, c, d, e, f]


# forward_cpu(x_permuted_view, y, False); backward_cpu(dy_inverse_view, dx, acc)
forward_cpu = backward_cpu = permute_cpu


def _layout(b: Binding) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(merged source shape, its permutation, the output shape, the inverse permutation)."""
    x = b.x[0]
    rank = x.ndim - 1
    perm = [0] + [a % rank + 1 for a in b.attrs["perm"]] if rank else [0]
    src_shape, mperm = merged_permutation(x.shape, perm)
    out_shape = tuple(src_shape[a] for a in mperm)
    inv = tuple(int(i) for i in np.argsort(mperm))
    return src_shape, mperm, out_shape, inv


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    src_shape, mperm, out_shape, inv = _layout(b)
    xt = pad_rank(x.reshape(src_shape).transpose(mperm), "transpose")
    y = pad_rank(b.y.reshape(out_shape), "transpose")
    fwd = Launch(forward_cpu, xt, y, False)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dyt = pad_rank(b.dy.reshape(out_shape).transpose(inv), "transpose")
    dx = pad_rank(b.dx[0].reshape(src_shape), "transpose")
    acc = b.acc[0]
    return fwd, Launch(backward_cpu, dyt, dx, acc)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    src_shape, mperm, out_shape, inv = _layout(b)
    # y[i] = x[j] with j[mperm[k]] = i[k]: y's axis k walks x's axis mperm[k]
    xs = c_strides(src_shape)
    meta_fwd = gather_meta(out_shape, tuple(xs[a] for a in mperm), "transpose")
    x, y = cuda_core.flat(b.x[0]), cuda_core.flat(b.y)
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        gather_cuda[blocks, threads](x, y, meta_fwd, False)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    ys = c_strides(out_shape)
    meta_bwd = gather_meta(src_shape, tuple(ys[a] for a in inv), "transpose")
    dy, dx, acc = cuda_core.flat(b.dy), cuda_core.flat(b.dx[0]), bool(b.acc[0])

    def bwd() -> None:
        gather_cuda[blocks, threads](dy, dx, meta_bwd, acc)

    return fwd, bwd
