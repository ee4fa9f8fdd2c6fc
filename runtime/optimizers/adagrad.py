"""adagrad update kernels (``torch.optim.Adagrad``): CPU and CUDA.

State row ``sum``, filled with initial_accumulator_value at the first step
(not at construction, so a state restored from a checkpoint first is kept);
the step's lr is lr / (1 + (t - 1)·lr_decay).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, njit

from ..kernels import cuda_core
from ..launch import Launch
from .base import locate
from .base import update_cpu as update_cpu


@njit(cache=True, fastmath={"contract"})
def _adagrad_segment(p, g, acc, clr, eps, wd):
    t = p.dtype.type
    clr, eps, wd = t(clr), t(eps), t(wd)
    for i in range(p.size):
        gi = g[i] + wd * p[i]
        s = acc[i] + gi * gi
        acc[i] = s
        p[i] -= clr * gi / (np.sqrt(s) + eps)


@njit(cache=True)
def adagrad_update(p, g, acc, segs, lr, lr_decay, eps, weight_decay, t):
    # torch.optim.Adagrad: the step's lr is lr / (1 + (t - 1) lr_decay).
    clr = lr / (1.0 + (t - 1) * lr_decay)
    for s in range(segs.shape[0]):
        po, go, n = segs[s, 0], segs[s, 1], segs[s, 2]
        wd = weight_decay if segs[s, 4] else 0.0
        _adagrad_segment(p[po : po + n], g[go : go + n], acc[go : go + n], clr * segs[s, 3] / 1e6, eps, wd)


@cuda.jit
def adagrad_update_cuda(p, g, acc, segs, starts, clr, eps, weight_decay):
    t = p.dtype.type
    eps = t(eps)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = locate(segs, starts, i)
        slr = t(clr * segs[s, 3] / 1e6)
        wd = t(weight_decay if segs[s, 4] else 0.0)
        gr = g[gi] + wd * p[pi]
        sv = acc[gi] + gr * gr
        acc[gi] = sv
        p[pi] -= slr * gr / (math.sqrt(sv) + eps)


@njit(cache=True)
def adagrad_update_hyper(p, g, acc, segs, hyper):
    # hyper: lr, lr_decay, eps, weight_decay, initial_accumulator_value, first step, t (an integer)
    if hyper[5] != 0.0:  # the accumulator is filled at the first step (a restored one is kept)
        acc[:] = hyper[4]
    adagrad_update(p, g, acc, segs, hyper[0], hyper[1], hyper[2], hyper[3], np.int64(hyper[6]))


def hyper_cpu(opt: Any, t: int) -> tuple[float, ...]:
    h = opt.hp
    return h["lr"], h["lr_decay"], h["eps"], h["weight_decay"], h["initial_accumulator_value"], t == 1, t


def launch_cpu(opt: Any) -> Launch:
    return Launch(adagrad_update_hyper, opt.p, opt.g, opt.row("sum"), opt.segs, opt.hyper)


def update_cuda(opt: Any) -> None:
    h, acc = opt.hp, opt.row("sum")
    if opt.t == 1:
        cuda_core.fill(acc, h["initial_accumulator_value"])
    clr = float(h["lr"]) / (1.0 + (opt.t - 1) * float(h["lr_decay"]))
    adagrad_update_cuda[opt.grid](opt.p, opt.g, acc, opt.segs_d, opt.starts_d, clr, float(h["eps"]),
                                  float(h["weight_decay"]))  # fmt: skip
