"""Optimizers as fused kernels over the one flat gradient buffer.

Every trainable parameter lives in one contiguous buffer (its gradient in
another, its optimizer state in one more per slot), so an update is one loop
over all parameters. Per-parameter learning-rate multipliers and weight-decay
exemptions come in as a per-element-segment table built once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..compiler.plan import Plan


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


def segments(plan: Plan, no_decay: tuple[str, ...] = ()) -> np.ndarray:
    """The (offset, grad offset, size, lr_mult·1e6, decay) table of trainable parameters."""
    rows = [
        (p.offset, p.grad_offset, p.numel, round(p.lr_mult * 1e6), 0 if p.role in no_decay else 1)
        for p in plan.params
        if p.trainable
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


class Optimizer:
    """One optimizer over an executor's flat buffers."""

    def __init__(
        self,
        kind: str,
        params: np.ndarray,
        grads: np.ndarray,
        segs: np.ndarray,
        state: np.ndarray | None = None,
        **hp: float,
    ) -> None:
        self.kind = kind
        self.p, self.g, self.segs = params, grads, segs
        self.hp = {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0,
                   "betas": (0.9, 0.999), "eps": 1e-8, **hp}  # fmt: skip
        if kind == "momentum" and not hp.get("momentum"):
            self.hp["momentum"] = 0.9
        slots = {"sgd": 1 if self.hp["momentum"] else 0, "momentum": 1, "adam": 2, "adamw": 2}[kind]
        # The executor passes the state buffer the memory ledger accounts for.
        self.state = state if state is not None else np.zeros((slots, grads.size), grads.dtype)
        if self.state.shape != (slots, grads.size):
            raise ValueError(f"optimizer '{kind}' needs state {(slots, grads.size)}, got {self.state.shape}")
        self.t = 0

    @property
    def lr(self) -> float:
        return float(self.hp["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        self.hp["lr"] = value

    def step(self) -> None:
        self.t += 1
        h = self.hp
        if self.kind in ("sgd", "momentum"):
            buf = self.state[0] if self.state.shape[0] else self.g[:0]
            sgd_update(self.p, self.g, buf, self.segs, h["lr"], h["momentum"], h["dampening"],
                       bool(h["nesterov"]), h["weight_decay"], self.t == 1)  # fmt: skip
        else:
            b1, b2 = h["betas"]
            adam_update(self.p, self.g, self.state[0], self.state[1], self.segs, h["lr"], b1, b2, h["eps"],
                        h["weight_decay"], self.kind == "adamw", self.t)  # fmt: skip
