"""rmsprop update kernels (``torch.optim.RMSprop``): CPU and CUDA.

State rows square_avg, grad_avg (centered only), momentum_buffer (momentum > 0
only); an absent row is passed as an empty array.
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
def _rmsprop_segment(p, g, sq, ga, buf, lr, alpha, eps, wd, momentum, centered):
    # torch.optim.RMSprop: sq = alpha sq + (1-alpha) g^2; centered keeps the
    # gradient average ga (updated as torch's lerp) and divides by
    # sqrt(sq - ga^2) + eps; momentum accumulates g / denominator in buf.
    t = p.dtype.type
    lr, a, w, eps, wd, mom = t(lr), t(alpha), t(1.0 - alpha), t(eps), t(wd), t(momentum)
    n = p.size
    if centered and momentum > 0.0:
        for i in range(n):
            gi = g[i] + wd * p[i]
            s = a * sq[i] + w * gi * gi
            sq[i] = s
            m = ga[i] + w * (gi - ga[i])
            ga[i] = m
            b = mom * buf[i] + gi / (np.sqrt(s - m * m) + eps)
            buf[i] = b
            p[i] -= lr * b
    elif centered:
        for i in range(n):
            gi = g[i] + wd * p[i]
            s = a * sq[i] + w * gi * gi
            sq[i] = s
            m = ga[i] + w * (gi - ga[i])
            ga[i] = m
            p[i] -= lr * gi / (np.sqrt(s - m * m) + eps)
    elif momentum > 0.0:
        for i in range(n):
            gi = g[i] + wd * p[i]
            s = a * sq[i] + w * gi * gi
            sq[i] = s
            b = mom * buf[i] + gi / (np.sqrt(s) + eps)
            buf[i] = b
            p[i] -= lr * b
    else:
        for i in range(n):
            gi = g[i] + wd * p[i]
            s = a * sq[i] + w * gi * gi
            sq[i] = s
            p[i] -= lr * gi / (np.sqrt(s) + eps)


@njit(cache=True)
def rmsprop_update(p, g, sq, ga, buf, segs, lr, alpha, eps, weight_decay, momentum, centered):
    # ga and buf are empty when the configuration does not keep them.
    for s in range(segs.shape[0]):
        po, go, n = segs[s, 0], segs[s, 1], segs[s, 2]
        slr = lr * segs[s, 3] / 1e6
        wd = weight_decay if segs[s, 4] else 0.0
        a = ga[go : go + n] if ga.size else ga
        b = buf[go : go + n] if buf.size else buf
        _rmsprop_segment(p[po : po + n], g[go : go + n], sq[go : go + n], a, b, slr, alpha, eps, wd, momentum,
                         centered)  # fmt: skip


@cuda.jit
def rmsprop_update_cuda(p, g, sq, ga, buf, segs, starts, lr, alpha, eps, weight_decay, momentum, centered):
    # ga and buf are empty when the configuration does not keep them (as on the CPU)
    t = p.dtype.type
    a, w, eps, mom = t(alpha), t(1.0 - alpha), t(eps), t(momentum)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = locate(segs, starts, i)
        slr = t(lr * segs[s, 3] / 1e6)
        wd = t(weight_decay if segs[s, 4] else 0.0)
        gr = g[gi] + wd * p[pi]
        sv = a * sq[gi] + w * gr * gr
        sq[gi] = sv
        if centered:
            mv = ga[gi] + w * (gr - ga[gi])
            ga[gi] = mv
            den = math.sqrt(sv - mv * mv) + eps
        else:
            den = math.sqrt(sv) + eps
        if momentum > 0.0:
            b = mom * buf[gi] + gr / den
            buf[gi] = b
            p[pi] -= slr * b
        else:
            p[pi] -= slr * gr / den


@njit(cache=True)
def rmsprop_update_hyper(p, g, sq, ga, buf, segs, hyper):
    # hyper: lr, alpha, eps, weight_decay, momentum, centered
    rmsprop_update(p, g, sq, ga, buf, segs, hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5] != 0.0)


def hyper_cpu(opt: Any, t: int) -> tuple[float, ...]:
    h = opt.hp
    return h["lr"], h["alpha"], h["eps"], h["weight_decay"], h["momentum"], bool(h["centered"])


def launch_cpu(opt: Any) -> Launch:
    return Launch(rmsprop_update_hyper, opt.p, opt.g, opt.row("square_avg"), opt.row("grad_avg"),
                  opt.row("momentum_buffer"), opt.segs, opt.hyper)  # fmt: skip


def update_cuda(opt: Any) -> None:
    h = opt.hp
    rmsprop_update_cuda[opt.grid](opt.p, opt.g, opt.row("square_avg"), opt.row("grad_avg"),
                                  opt.row("momentum_buffer"), opt.segs_d, opt.starts_d, float(h["lr"]),
                                  float(h["alpha"]), float(h["eps"]), float(h["weight_decay"]),
                                  float(h["momentum"]), bool(h["centered"]))  # fmt: skip
