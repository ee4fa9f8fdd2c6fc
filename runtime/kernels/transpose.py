"""transpose kernels: y = x with its per-sample axes permuted (the batch axis stays first).

At bind time the permutation is simplified: size-1 axes are dropped and axes that stay
adjacent and in order are merged (NCHW → NHWC becomes a [N, C, HW] → [N, HW, C] swap), then
padded to a fixed rank, so one compiled loop nest serves every rank. The loop walks the
destination contiguously and gathers from a strided view of the source; backward is the
same gather from dy through the inverse permutation (or += with acc).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ._elementwise_common import merged_permutation, pad_rank


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


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    rank = x.ndim - 1
    perm = [0] + [a % rank + 1 for a in b.attrs["perm"]] if rank else [0]
    src_shape, mperm = merged_permutation(x.shape, perm)
    out_shape = tuple(src_shape[a] for a in mperm)
    inv = tuple(int(i) for i in np.argsort(mperm))
    xt = pad_rank(x.reshape(src_shape).transpose(mperm), "transpose")
    y = pad_rank(b.y.reshape(out_shape), "transpose")
    fwd = lambda: forward_cpu(xt, y, False)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dyt = pad_rank(b.dy.reshape(out_shape).transpose(inv), "transpose")
    dx = pad_rank(b.dx[0].reshape(src_shape), "transpose")
    acc = b.acc[0]
    return fwd, lambda: backward_cpu(dyt, dx, acc)
