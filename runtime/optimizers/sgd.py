"""sgd / momentum update kernels (``torch.optim.SGD``): CPU and CUDA.

State row ``momentum_buffer`` only when momentum > 0; PyTorch's first step
sets the buffer to the gradient itself.
"""

from __future__ import annotations

from typing import Any

from numba import cuda, njit

from ..launch import Launch
from .base import locate
from .base import update_cpu as update_cpu


@njit(cache=True, fastmath={"contract"})
def _sgd_segment(p, g, buf, lr, momentum, dampening, nesterov, wd, first):
    # One branch-free loop per case, so each vectorizes; scalars are cast to
    # the parameter dtype so float32 stays float32 in the loop.
    lr, momentum, keep, wd = (
        p.dtype.type(lr),
        p.dtype.type(momentum),
        p.dtype.type(1.0 - dampening),
        p.dtype.type(wd),
    )
    n = p.size
    if momentum == 0.0:
        for i in range(n):
            p[i] -= lr * (g[i] + wd * p[i])
    elif first:  # PyTorch: the first step's buffer is the gradient itself
        for i in range(n):
            d = g[i] + wd * p[i]
            buf[i] = d
            p[i] -= lr * (d + momentum * d if nesterov else d)
    elif nesterov:
        for i in range(n):
            d = g[i] + wd * p[i]
            b = momentum * buf[i] + keep * d
            buf[i] = b
            p[i] -= lr * (d + momentum * b)
    else:
        for i in range(n):
            b = momentum * buf[i] + keep * (g[i] + wd * p[i])
            buf[i] = b
            p[i] -= lr * b


@njit(cache=True)
def sgd_update(p, g, buf, segs, lr, momentum, dampening, nesterov, weight_decay, first):
    # segs: rows of (param offset, grad offset, size, lr_mult * 1e6, decay flag)
    for s in range(segs.shape[0]):
        po, go, n = segs[s, 0], segs[s, 1], segs[s, 2]
        slr = lr * segs[s, 3] / 1e6
        wd = weight_decay if segs[s, 4] else 0.0
        b = buf[go : go + n] if buf.size else buf
        _sgd_segment(p[po : po + n], g[go : go + n], b, slr, momentum, dampening, nesterov, wd, first)


@cuda.jit
def sgd_update_cuda(p, g, buf, segs, starts, lr, momentum, dampening, nesterov, weight_decay, first):
    t = p.dtype.type
    mom, keep = t(momentum), t(1.0 - dampening)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = locate(segs, starts, i)
        slr = t(lr * segs[s, 3] / 1e6)
        wd = t(weight_decay if segs[s, 4] else 0.0)
        d = g[gi] + wd * p[pi]
        if momentum == 0.0:
            p[pi] -= slr * d
        elif first:  # PyTorch: the first step's buffer is the gradient itself
            buf[gi] = d
            p[pi] -= slr * (d + mom * d if nesterov else d)
        else:
            b = mom * buf[gi] + keep * d
            buf[gi] = b
            p[pi] -= slr * (d + mom * b if nesterov else b)


@njit(cache=True)
def sgd_update_hyper(p, g, buf, segs, hyper):
    # hyper: lr, momentum, dampening, nesterov, weight_decay, first step (hyper_cpu)
    sgd_update(p, g, buf, segs, hyper[0], hyper[1], hyper[2], hyper[3] != 0.0, hyper[4], hyper[5] != 0.0)


def hyper_cpu(opt: Any, t: int) -> tuple[float, ...]:
    h = opt.hp
    return h["lr"], h["momentum"], h["dampening"], bool(h["nesterov"]), h["weight_decay"], t == 1


def launch_cpu(opt: Any) -> Launch:
    return Launch(sgd_update_hyper, opt.p, opt.g, opt.row("momentum_buffer"), opt.segs, opt.hyper)


def update_cuda(opt: Any) -> None:
    h = opt.hp
    sgd_update_cuda[opt.grid](opt.p, opt.g, opt.row("momentum_buffer"), opt.segs_d, opt.starts_d,
                              float(h["lr"]), float(h["momentum"]), float(h["dampening"]),
                              bool(h["nesterov"]), float(h["weight_decay"]), opt.t == 1)  # fmt: skip
