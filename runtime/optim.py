"""Optimizers, gradient clipping and L1/L2 penalties as fused kernels over the
flat parameter and gradient buffers.

Every trainable parameter lives in one contiguous buffer (its gradient in
another, its optimizer state in one more per slot), so an update is one loop
over all parameters. Per-parameter learning-rate multipliers and weight-decay
exemptions come in as a per-element-segment table built once (``segments``).

Each optimizer matches ``torch.optim`` (same defaults, same update order):
sgd/momentum (``SGD``), adam (``Adam``), adamw (``AdamW``), rmsprop
(``RMSprop``) and adagrad (``Adagrad``). State slots, in order, per type:

- sgd, momentum: momentum_buffer (only when momentum > 0)
- adam, adamw: exp_avg, exp_avg_sq
- rmsprop: square_avg, grad_avg (centered only), momentum_buffer (momentum > 0 only)
- adagrad: sum

The L2 penalty convention (``penalty``) is ``l2 / 2 * ||w||^2`` so that its
gradient is ``l2 * w``; the L1 penalty is ``l1 * sum |w|`` with gradient
``l1 * sign(w)`` (0 at 0, as autograd gives for ``abs``).

On the GPU (the CUDA executor's device buffers) the same updates run as one
``@cuda.jit`` launch per step over every trainable element: a thread finds its
element's segment by binary search in a device copy of the segments table, and
does the CPU kernel's arithmetic in the parameters' dtype. ``Optimizer(...)``
given device arrays is a ``CudaOptimizer`` (same interface). Clipping and the
global norm have device twins (``clip_by_value_cuda``, ``clip_by_norm_cuda``,
``global_norm_cuda``) whose norm is a deterministic two-pass reduction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numba import cuda, njit

from ..compiler.plan import OPTIMIZER_SLOTS, Plan, optimizer_key
from .kernels import _cuda

# PyTorch's defaults, per optimizer type (torch 2.x).
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "momentum": {"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
    "rmsprop": {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    },
    "adagrad": {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    },
}


# -- sgd ------------------------------------------------------------------------


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


# -- adam / adamw ---------------------------------------------------------------


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


# -- rmsprop --------------------------------------------------------------------


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


# -- adagrad --------------------------------------------------------------------


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


# -- clipping and penalties -----------------------------------------------------


@njit(cache=True, fastmath={"reassoc", "contract"})
def global_norm(g: np.ndarray) -> float:
    """The 2-norm of the whole buffer, accumulated in float64 (reassociation
    lets the sum vectorize; the order of a sum of squares does not matter)."""
    acc = 0.0
    for i in range(g.size):
        x = np.float64(g[i])
        acc += x * x
    return np.sqrt(acc)


@njit(cache=True)
def clip_by_norm(g: np.ndarray, max_norm: float) -> float:
    """Scale ``g`` in place so its global norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_`` does (coefficient max_norm / (norm + 1e-6),
    applied only when below 1). Returns the norm before clipping; a non-finite
    norm leaves ``g`` as it is so the caller can see and report it."""
    total = global_norm(g)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        c = g.dtype.type(coef)
        for i in range(g.size):
            g[i] *= c
    return total


@njit(cache=True)
def clip_by_value(g: np.ndarray, value: float) -> None:
    """Clamp ``g`` in place to [-value, value] (``torch.nn.utils.clip_grad_value_``)."""
    hi = g.dtype.type(value)
    lo = -hi
    for i in range(g.size):
        x = g[i]
        g[i] = lo if x < lo else (hi if x > hi else x)  # NaN passes through, as torch.clamp


@njit(cache=True, fastmath={"contract"})
def penalty(p: np.ndarray, g: np.ndarray, segs: np.ndarray, l1: float, l2: float) -> float:
    """Add the gradient of ``l1 * sum|w| + l2 / 2 * sum w^2`` over the segments'
    parameters into ``g`` and return that penalty (float64), to add to the loss.
    Pass ``weight_segments(plan)`` so biases and norm parameters go unpenalized."""
    t = p.dtype.type
    a, b = t(l1), t(l2)
    total = 0.0
    for s in range(segs.shape[0]):
        po, go, n = segs[s, 0], segs[s, 1], segs[s, 2]
        for i in range(n):
            w = p[po + i]
            g[go + i] += a * np.sign(w) + b * w
            wd = np.float64(w)
            total += l1 * abs(wd) + 0.5 * l2 * wd * wd
    return total


# -- parameter table ------------------------------------------------------------


def segments(plan: Plan, no_decay: Iterable[str] = (), roles: Iterable[str] | None = None) -> np.ndarray:
    """The (offset, grad offset, size, lr_mult·1e6, decay) table of trainable
    parameters; ``no_decay`` names roles exempt from weight decay (bias, norm),
    ``roles`` keeps only parameters of those roles (weight, bias, norm)."""
    exempt = set(no_decay)
    keep = None if roles is None else set(roles)
    rows = [
        (p.offset, p.grad_offset, p.numel, round(p.lr_mult * 1e6), 0 if p.role in exempt else 1)
        for p in plan.params
        if p.trainable and (keep is None or p.role in keep)
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def weight_segments(plan: Plan) -> np.ndarray:
    """The segments of trainable role=="weight" parameters: what L1/L2 penalize."""
    return segments(plan, roles=("weight",))


# -- the optimizer --------------------------------------------------------------


def _parse_kind(kind: str) -> tuple[str, dict[str, Any]]:
    """A type name, or a ledger key (``rmsprop_centered``): the type and the
    settings the key implies."""
    if kind in OPTIMIZER_DEFAULTS:
        return kind, {}
    if kind in OPTIMIZER_SLOTS and kind.startswith("rmsprop"):
        return "rmsprop", {"centered": True} if "centered" in kind else {}
    raise ValueError(
        f"train.optimizer.type: unknown optimizer {kind!r}; expected one of: {', '.join(OPTIMIZER_DEFAULTS)}"
    )


def _check(kind: str, h: dict[str, Any]) -> None:
    """The ranges torch.optim enforces, as errors naming the spec field."""

    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"train.optimizer.{field}: {why} (got {h[field]!r}) for optimizer '{kind}'")

    for f in ("lr", "momentum", "dampening", "weight_decay", "eps", "lr_decay", "initial_accumulator_value"):
        if f in h and not h[f] >= 0:
            raise bad(f, "must be at least 0")
    if "alpha" in h and not 0 <= h["alpha"] < 1:
        raise bad("alpha", "must be in [0, 1)")
    if "betas" in h and (len(h["betas"]) != 2 or not all(0 <= b < 1 for b in h["betas"])):
        raise bad("betas", "must be two numbers in [0, 1)")
    if h.get("nesterov") and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise bad("nesterov", "needs momentum > 0 and dampening 0")


class Optimizer:
    """One optimizer over an executor's flat buffers.

    ``Optimizer(kind, params, grads, segs, state=..., **hyper)`` takes a type
    (sgd, momentum, adam, adamw, rmsprop, adagrad) or a ledger key
    (``rmsprop_centered``, ...) and the type's hyperparameters; absent ones take
    PyTorch's defaults (``OPTIMIZER_DEFAULTS``). ``state`` is the
    (slots, grads.size) buffer the memory ledger accounts for; a larger one is
    accepted (its leading rows are used). Device arrays (a CUDA executor's
    buffers) make it a ``CudaOptimizer``.
    """

    def __new__(cls, kind: str, params: Any, *args: Any, **kw: Any) -> Optimizer:
        if cls is Optimizer and _cuda.is_device_array(params):
            return super().__new__(CudaOptimizer)
        return super().__new__(cls)

    def __init__(
        self,
        kind: str,
        params: np.ndarray,
        grads: np.ndarray,
        segs: np.ndarray,
        state: np.ndarray | None = None,
        **hp: Any,
    ) -> None:
        kind, implied = _parse_kind(kind)
        defaults = OPTIMIZER_DEFAULTS[kind]
        wrong = sorted(set(hp) - set(defaults))
        if wrong:
            known = ", ".join(defaults)
            raise TypeError(f"optimizer '{kind}' takes no {', '.join(wrong)} (its hyperparameters: {known})")
        self.kind = kind
        self.p, self.g, self.segs = params, grads, segs
        self.hp: dict[str, Any] = {**defaults, **implied, **{k: v for k, v in hp.items() if v is not None}}
        _check(kind, self.hp)
        self.key = optimizer_key({"type": kind, **self.hp})
        slots = OPTIMIZER_SLOTS[self.key]
        self.state = state if state is not None else self._zeros((slots, grads.size), grads.dtype)
        if self.state.ndim != 2 or self.state.shape[0] < slots or self.state.shape[1] != grads.size:
            raise ValueError(
                f"optimizer '{self.key}' needs state {(slots, grads.size)}, got {self.state.shape} "
                "(compile the plan with netc.compiler.plan.optimizer_key(train.optimizer))"
            )
        self.slots = slots
        self.t = 0

    @staticmethod
    def _zeros(shape: tuple[int, int], dtype: Any) -> Any:
        return np.zeros(shape, dtype)

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any] | None,
        params: np.ndarray,
        grads: np.ndarray,
        segs: np.ndarray,
        state: np.ndarray | None = None,
    ) -> Optimizer:
        """From the spec's ``train.optimizer`` mapping. Fields another type
        reads (the schema's filled-in defaults, ``no_decay``, which ``segs``
        already applies) are ignored here."""
        cfg = dict(cfg or {})
        kind = cfg.pop("type", "sgd")  # a ledger key (plan.optimizer) works too
        own = OPTIMIZER_DEFAULTS[_parse_kind(kind)[0]]
        hp = {k: v for k, v in cfg.items() if k in own}
        if "betas" in hp:
            hp["betas"] = tuple(hp["betas"])
        return cls(kind, params, grads, segs, state=state, **hp)

    @property
    def slot_names(self) -> list[str]:
        """What each state row holds (torch's state key names)."""
        if self.kind in ("sgd", "momentum"):
            return ["momentum_buffer"] if self.slots else []
        if self.kind in ("adam", "adamw"):
            return ["exp_avg", "exp_avg_sq"]
        if self.kind == "adagrad":
            return ["sum"]
        names = ["square_avg"]
        if self.hp["centered"]:
            names.append("grad_avg")
        if self.hp["momentum"] > 0:
            names.append("momentum_buffer")
        return names

    @property
    def lr(self) -> float:
        """The base learning rate (each parameter's is this times its lr_mult)."""
        return float(self.hp["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        self.hp["lr"] = float(value)

    def step(self) -> None:
        """One update of every trainable parameter from the gradient buffer."""
        self.t += 1
        h, st = self.hp, self.state
        if self.kind in ("sgd", "momentum"):
            buf = st[0] if self.slots else self.g[:0]
            sgd_update(self.p, self.g, buf, self.segs, h["lr"], h["momentum"], h["dampening"],
                       bool(h["nesterov"]), h["weight_decay"], self.t == 1)  # fmt: skip
        elif self.kind in ("adam", "adamw"):
            b1, b2 = h["betas"]
            adam_update(self.p, self.g, st[0], st[1], self.segs, h["lr"], b1, b2, h["eps"],
                        h["weight_decay"], self.kind == "adamw", self.t)  # fmt: skip
        elif self.kind == "rmsprop":
            centered, mom = bool(h["centered"]), float(h["momentum"])
            ga = st[1] if centered else self.g[:0]
            buf = st[1 + centered] if mom > 0 else self.g[:0]
            rmsprop_update(self.p, self.g, st[0], ga, buf, self.segs, h["lr"], h["alpha"], h["eps"],
                           h["weight_decay"], mom, centered)  # fmt: skip
        else:
            if self.t == 1:
                # Filled at the first step, not at construction, so a state
                # buffer restored from a checkpoint first is never overwritten.
                st[0].fill(h["initial_accumulator_value"])
            adagrad_update(self.p, self.g, st[0], self.segs, h["lr"], h["lr_decay"], h["eps"],
                           h["weight_decay"], self.t)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The JSON-able scalars needed to resume; the state arrays themselves
        live in ``state`` (rows named by ``slot_names``), saved by the checkpoint."""
        return {"type": self.kind, "key": self.key, "t": self.t, "lr": self.lr}

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        saved = d.get("key", d.get("type"))
        if saved != self.key:
            raise ValueError(f"checkpoint optimizer state is for '{saved}', this run uses '{self.key}'")
        self.t = int(d["t"])
        if "lr" in d:
            self.lr = float(d["lr"])


# -- on the GPU -----------------------------------------------------------------
#
# One thread per trainable element (grid-stride). ``starts`` holds the running
# element count before each segment (S + 1 entries, the last the total), so a
# thread's segment is a binary search; scalars are cast to the parameters' dtype
# as the CPU kernels do, so float32 updates stay float32.


@cuda.jit(device=True)
def _locate(segs, starts, i):
    """(parameter index, gradient index, segment) of trainable element i."""
    lo, hi = 0, starts.size - 1  # starts[lo] <= i < starts[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if starts[mid] <= i:
            lo = mid
        else:
            hi = mid
    j = i - starts[lo]
    return segs[lo, 0] + j, segs[lo, 1] + j, lo


@cuda.jit
def sgd_update_cuda(p, g, buf, segs, starts, lr, momentum, dampening, nesterov, weight_decay, first):
    t = p.dtype.type
    mom, keep = t(momentum), t(1.0 - dampening)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = _locate(segs, starts, i)
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


@cuda.jit
def adam_update_cuda(p, g, m, v, segs, starts, lr, b1, b2, eps, weight_decay, decoupled, ic1, isc2):
    t = p.dtype.type
    b1, b2, eps, ic1, isc2 = t(b1), t(b2), t(eps), t(ic1), t(isc2)
    one = t(1.0)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = _locate(segs, starts, i)
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


@cuda.jit
def rmsprop_update_cuda(p, g, sq, ga, buf, segs, starts, lr, alpha, eps, weight_decay, momentum, centered):
    # ga and buf are empty when the configuration does not keep them (as on the CPU)
    t = p.dtype.type
    a, w, eps, mom = t(alpha), t(1.0 - alpha), t(eps), t(momentum)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = _locate(segs, starts, i)
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


@cuda.jit
def adagrad_update_cuda(p, g, acc, segs, starts, clr, eps, weight_decay):
    t = p.dtype.type
    eps = t(eps)
    for i in range(cuda.grid(1), starts[starts.size - 1], cuda.gridsize(1)):
        pi, gi, s = _locate(segs, starts, i)
        slr = t(clr * segs[s, 3] / 1e6)
        wd = t(weight_decay if segs[s, 4] else 0.0)
        gr = g[gi] + wd * p[pi]
        sv = acc[gi] + gr * gr
        acc[gi] = sv
        p[pi] -= slr * gr / (math.sqrt(sv) + eps)


class CudaOptimizer(Optimizer):
    """``Optimizer`` over device buffers (a ``CudaExecutor``'s params, grads, opt_state): the same
    hyperparameters, state rows, ``lr``, ``step()``, ``state_dict``/``load_state_dict``; ``segs`` is
    the host table of ``segments(plan)``, copied to the device once."""

    def __init__(self, kind: str, params: Any, grads: Any, segs: np.ndarray, state: Any = None,
                 **hp: Any) -> None:  # fmt: skip
        super().__init__(kind, params, grads, segs, state, **hp)
        table = np.ascontiguousarray(segs, np.int64).reshape(-1, 5)
        starts = np.concatenate([[0], np.cumsum(table[:, 2])]).astype(np.int64)
        self._total = int(starts[-1])
        self._segs_d = cuda.to_device(table if len(table) else np.zeros((1, 5), np.int64))
        self._starts_d = cuda.to_device(starts)
        self._none = _cuda.empty(grads.dtype)  # stands in for a state row this configuration lacks

    @staticmethod
    def _zeros(shape: tuple[int, int], dtype: Any) -> Any:
        z = cuda.device_array(shape, dtype)
        _cuda.zero(z)
        return z

    def step(self) -> None:
        """One update of every trainable parameter from the gradient buffer: one launch."""
        self.t += 1
        if self._total == 0:
            return
        h, st, none = self.hp, self.state, self._none
        blocks, threads = _cuda.grid_1d(self._total)
        p, g, segs, starts = self.p, self.g, self._segs_d, self._starts_d
        if self.kind in ("sgd", "momentum"):
            buf = st[0] if self.slots else none
            sgd_update_cuda[blocks, threads](p, g, buf, segs, starts, float(h["lr"]), float(h["momentum"]),
                                             float(h["dampening"]), bool(h["nesterov"]),
                                             float(h["weight_decay"]), self.t == 1)  # fmt: skip
        elif self.kind in ("adam", "adamw"):
            b1, b2 = (float(b) for b in h["betas"])
            ic1, isc2 = 1.0 / (1.0 - b1**self.t), 1.0 / math.sqrt(1.0 - b2**self.t)
            adam_update_cuda[blocks, threads](p, g, st[0], st[1], segs, starts, float(h["lr"]), b1, b2,
                                              float(h["eps"]), float(h["weight_decay"]), self.kind == "adamw",
                                              ic1, isc2)  # fmt: skip
        elif self.kind == "rmsprop":
            centered, mom = bool(h["centered"]), float(h["momentum"])
            ga = st[1] if centered else none
            buf = st[1 + centered] if mom > 0 else none
            rmsprop_update_cuda[blocks, threads](p, g, st[0], ga, buf, segs, starts, float(h["lr"]),
                                                 float(h["alpha"]), float(h["eps"]), float(h["weight_decay"]),
                                                 mom, centered)  # fmt: skip
        else:
            if self.t == 1:  # as on the CPU: at the first step, so a restored state is kept
                _cuda.fill(st[0], h["initial_accumulator_value"])
            clr = float(h["lr"]) / (1.0 + (self.t - 1) * float(h["lr_decay"]))
            adagrad_update_cuda[blocks, threads](p, g, st[0], segs, starts, clr, float(h["eps"]),
                                                 float(h["weight_decay"]))  # fmt: skip


@cuda.jit
def _penalty_kernel(p, g, terms, l1, l2):
    # one segment: g += l1·sign(w) + l2·w; terms[i] = l1·|w| + l2/2·w² (float64), summed after
    a, b = g.dtype.type(l1), g.dtype.type(l2)
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        w = p[i]
        sgn = 1 if w > 0 else (-1 if w < 0 else 0)
        g[i] += a * sgn + b * w
        wd = np.float64(w)
        terms[i] = l1 * abs(wd) + 0.5 * l2 * wd * wd


class PenaltyCuda:
    """``penalty`` on device buffers: one launch per penalized segment (a few: the weights of
    each layer) into a float64 scratch, then one deterministic sum; the value comes back to the
    host like the loss."""

    def __init__(self, segs: np.ndarray, reducer: _cuda.Reducer) -> None:
        self.segs = [tuple(int(v) for v in row[:3]) for row in segs]
        n = sum(r[2] for r in self.segs)
        self.terms = cuda.device_array(max(n, 1), np.float64)
        _cuda.zero(self.terms)
        self.reducer = reducer

    def __call__(self, p: Any, g: Any, l1: float, l2: float) -> float:
        at = 0
        for po, go, n in self.segs:
            blocks, threads = _cuda.grid_1d(n)
            _penalty_kernel[blocks, threads](p[po : po + n], g[go : go + n], self.terms[at : at + n],
                                             float(l1), float(l2))  # fmt: skip
            at += n
        self.reducer.sum(self.terms)
        return self.reducer.value()


@cuda.jit
def _clip_value_kernel(g, value):
    hi = g.dtype.type(value)
    lo = -hi
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        x = g[i]
        g[i] = lo if x < lo else (hi if x > hi else x)  # NaN passes through, as torch.clamp


def clip_by_value_cuda(g: Any, value: float) -> None:
    """``clip_by_value`` on a flat device gradient buffer."""
    if g.size:
        blocks, threads = _cuda.grid_1d(g.size)
        _clip_value_kernel[blocks, threads](g, float(value))


@cuda.jit
def _scale_to_norm_kernel(g, sumsq, max_norm):
    # The norm stays on the device: no host round trip between the reduction and the scaling.
    coef = max_norm / (math.sqrt(sumsq[0]) + 1e-6)
    if coef < 1.0:  # False for a NaN norm: g is left as it is, as on the CPU
        c = g.dtype.type(coef)
        for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
            g[i] *= c


def global_norm_cuda(g: Any, reducer: _cuda.Reducer) -> float:
    """``global_norm`` of a flat device buffer (float64 sum of squares, deterministic)."""
    reducer.sum(g, square=True)
    return math.sqrt(reducer.value())


def clip_by_norm_cuda(g: Any, max_norm: float, reducer: _cuda.Reducer) -> None:
    """``clip_by_norm`` on a flat device buffer, without a host sync: the squared norm before
    clipping is left in ``reducer.result`` (``math.sqrt(reducer.value())`` fetches the norm)."""
    if g.size:
        reducer.sum(g, square=True)
        blocks, threads = _cuda.grid_1d(g.size)
        _scale_to_norm_kernel[blocks, threads](g, reducer.result, float(max_norm))
