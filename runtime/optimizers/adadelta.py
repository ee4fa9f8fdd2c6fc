"""adadelta update kernels (``torch.optim.Adadelta``): CPU and CUDA.

State rows square_avg and acc_delta, in torch's order of operations:
s ← ρs + (1 − ρ)g²; d = √(a + eps) / √(s + eps) · g; a ← ρa + (1 − ρ)d²; w ← w − lr·d.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, njit

from ..launch import Launch
from .base import locate
from .base import update_cpu as update_cpu


@njit(cache=True, fastmath={"contract"})
def _adadelta_segment(p, g, sq, acc, lr, rho, eps, wd):
    t = p.dtype.type
    lr, r, w, eps, wd = t(lr), t(rho), t(1.0 - rho), t(eps), t(wd)
    for i in range(p.size):
        gi = g[i] + wd * p[i]
        s = r * sq[i] + w * gi * gi
        sq[i] = s
        d = np.sqrt(acc[i] + eps) / np.sqrt(s + eps) * gi
        acc[i] = r * acc[i] + w * d * d
        p[i] -= lr * d


@njit(cache=True)
def adadelta_update(p, g, sq, acc, segs, lr, rho, eps, weight_decay):
    for s in range(segs.shape[0]):
        po, go, n = segs[s, 0], segs[s, 1], segs[s, 2]
        slr = lr * segs[s, 3] / 1e6
        wd = weight_decay if segs[s, 4] else 0.0
        a = acc[go : go + n]
        _adadelta_segment(p[po : po + n], g[go : go + n], sq[go : go + n], a, slr, rho, eps, wd)


@cuda.jit
def adadelta_update_cuda(p, g, sq, acc, segs, starts, lr, rho, eps, weight_decay):
    t = p.dtype.type
    r, w, eps = t(rho), t(1.0 - rho), t(eps)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = locate(segs, starts, i)
        slr = t(lr * segs[s, 3] / 1e6)
        wd = t(weight_decay if segs[s, 4] else 0.0)
        gr = g[gi] + wd * p[pi]
        sv = r * sq[gi] + w * gr * gr
        sq[gi] = sv
        d = math.sqrt(acc[gi] + eps) / math.sqrt(sv + eps) * gr
        acc[gi] = r * acc[gi] + w * d * d
        p[pi] -= slr * d


@njit(cache=True)
def adadelta_update_hyper(p, g, sq, acc, segs, hyper):
    # hyper: lr, rho, eps, weight_decay
    adadelta_update(p, g, sq, acc, segs, hyper[0], hyper[1], hyper[2], hyper[3])


def hyper_cpu(opt: Any, t: int) -> tuple[float, ...]:
    h = opt.hp
    return h["lr"], h["rho"], h["eps"], h["weight_decay"]


def launch_cpu(opt: Any) -> Launch:
    return Launch(adadelta_update_hyper, opt.p, opt.g, opt.row("square_avg"), opt.row("acc_delta"), opt.segs,
                  opt.hyper)  # fmt: skip


def update_cuda(opt: Any) -> None:
    h = opt.hp
    adadelta_update_cuda[opt.grid](opt.p, opt.g, opt.row("square_avg"), opt.row("acc_delta"), opt.segs_d,
                                   opt.starts_d, float(h["lr"]), float(h["rho"]), float(h["eps"]),
                                   float(h["weight_decay"]))  # fmt: skip
