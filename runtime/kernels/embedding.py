"""embedding kernels: y[i, :] = w[ids[i], :] over the flattened ids; backward zeroes dw and
scatter-adds dy rows into it (in id order, so repeated ids sum the same way every run).

Ids outside [0, num_embeddings) are checked in the kernel before any row is touched and raise
ValueError after the call. Both loops are serial: the gather runs near memory speed, and a
parallel one won at most ~50 µs per step on 2 cores (4096 ids x 64) while its spinning OpenMP
workers would compete with the GEMMs around it; the scatter is dominated by zeroing dw.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._losses_embed_common import as_rows, check_ids, checked, flat, new_flag


@njit(cache=True)
def forward_cpu(ids, w, y, flag):
    if not check_ids(ids, w.shape[0], flag):
        return
    for i in range(ids.size):
        k = ids[i]
        for c in range(w.shape[1]):  # a loop, not a slice copy: no overlap check per row
            y[i, c] = w[k, c]


@njit(cache=True)
def backward_cpu(ids, dy, dw, flag):
    if not check_ids(ids, dw.shape[0], flag):
        return
    dw[:] = 0
    for i in range(ids.size):
        k = ids[i]
        for c in range(dw.shape[1]):
            dw[k, c] += dy[i, c]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    w = b.p["w"]
    ids, d = flat(b.x[0]), w.shape[1]
    y = as_rows(b.y, d)
    flag = new_flag()
    where, n = f"embedding '{b.module}'", w.shape[0]
    fwd = checked(forward_cpu, (ids, w, y, flag), flag, "token id", where, n)
    dw = b.dp.get("w")
    if dw is None:
        return fwd, nothing
    dy = as_rows(b.dy, d)
    return fwd, checked(backward_cpu, (ids, dy, dw, flag), flag, "token id", where, n)
