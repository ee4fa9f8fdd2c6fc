"""adam / adamw update kernels (``torch.optim.Adam``, ``torch.optim.AdamW``): CPU and CUDA.

State rows exp_avg, exp_avg_sq; adamw decays the parameter by lr·weight_decay
before the step (decoupled), adam adds weight_decay·w to the gradient.
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
def _adam_segment(p, g, m, v, lr, b1, b2, eps, wd, decoupled, c1, c2):
    t = p.dtype.type
    lr, b1, b2, eps, wd = t(lr), t(b1), t(b2), t(eps), t(wd)
    ic1, isc2 = t(1.0 / c1), t(1.0 / np.sqrt(c2))
    one = t(1.0)
    if decoupled:
        for i in range(p.size):
            gi = g[i]
            m[i] = b1 * m[i] + (one - b1) * gi
            v[i] = b2 * v[i] + (one - b2) * gi * gi
            p[i] = p[i] * (one - lr * wd) - lr * (m[i] * ic1) / (np.sqrt(v[i]) * isc2 + eps)
    else:
        for i in range(p.size):
            gi = g[i] + wd * p[i]
            m[i] = b1 * m[i] + (one - b1) * gi
            v[i] = b2 * v[i] + (one - b2) * gi * gi
            p[i] -= lr * (m[i] * ic1) / (np.sqrt(v[i]) * isc2 + eps)


@njit(cache=True)
def adam_update(p, g, m, v, segs, lr, b1, b2, eps, weight_decay, decoupled, t):
    c1 = 1.0 - b1**t
    c2 = 1.0 - b2**t
    for s in range(segs.shape[0]):
        po, go, n = segs[s, 0], segs[s, 1], segs[s, 2]
        slr = lr * segs[s, 3] / 1e6
        wd = weight_decay if segs[s, 4] else 0.0
        _adam_segment(p[po : po + n], g[go : go + n], m[go : go + n], v[go : go + n], slr, b1, b2, eps, wd,
                      decoupled, c1, c2)  # fmt: skip


@cuda.jit
def adam_update_cuda(p, g, m, v, segs, starts, lr, b1, b2, eps, weight_decay, decoupled, ic1, isc2):
    t = p.dtype.type
    b1, b2, eps, ic1, isc2 = t(b1), t(b2), t(eps), t(ic1), t(isc2)
    one = t(1.0)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = locate(segs, starts, i)
        slr = t(lr * segs[s, 3] / 1e6)
        wd = t(weight_decay if segs[s, 4] else 0.0)
        gr = g[gi] if decoupled else g[gi] + wd * p[pi]
        mi = b1 * m[gi] + (one - b1) * gr
        vi = b2 * v[gi] + (one - b2) * gr * gr
        m[gi] = mi
        v[gi] = vi
        step = slr * (mi * ic1) / (math.sqrt(vi) * isc2 + eps)
        if decoupled:
            p[pi] = p[pi] * (one - slr * wd) - step
        else:
            p[pi] -= step


@njit(cache=True)
def adam_update_hyper(p, g, m, v, segs, hyper):
    # hyper: lr, beta1, beta2, eps, weight_decay, decoupled, t (an integer, as adam_update's power takes it)
    adam_update(p, g, m, v, segs, hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5] != 0.0,
                np.int64(hyper[6]))  # fmt: skip


def hyper_cpu(opt: Any, t: int) -> tuple[float, ...]:
    h = opt.hp
    b1, b2 = h["betas"]
    return h["lr"], b1, b2, h["eps"], h["weight_decay"], opt.kind == "adamw", t


def launch_cpu(opt: Any) -> Launch:
    m, v = opt.row("exp_avg"), opt.row("exp_avg_sq")
    return Launch(adam_update_hyper, opt.p, opt.g, m, v, opt.segs, opt.hyper)


def update_cuda(opt: Any) -> None:
    h = opt.hp
    b1, b2 = (float(b) for b in h["betas"])
    # The bias corrections are per step, not per element: computed once here.
    ic1, isc2 = 1.0 / (1.0 - b1**opt.t), 1.0 / math.sqrt(1.0 - b2**opt.t)
    adam_update_cuda[opt.grid](opt.p, opt.g, opt.row("exp_avg"), opt.row("exp_avg_sq"), opt.segs_d,
                               opt.starts_d, float(h["lr"]), b1, b2, float(h["eps"]),
                               float(h["weight_decay"]), opt.kind == "adamw", ic1, isc2)  # fmt: skip
