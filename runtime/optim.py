"""Optimizers, gradient clipping and L1/L2 penalties as fused kernels over the
flat parameter and gradient buffers.

Every trainable parameter lives in one contiguous buffer (its gradient in
another, its optimizer state in one more per slot), so an update is one loop
over all parameters. Per-parameter learning-rate multipliers and weight-decay
exemptions come in as a per-element-segment table built once (``segments``).

Each optimizer matches ``torch.optim`` (same defaults, same update order).
The optimizers themselves are a registry: a numba-free contract per family in
``compiler/optimizers/`` (types, PyTorch's defaults, fields, state slots) and
its CPU and CUDA update kernels in ``runtime/optimizers/``; this module owns
the ``Optimizer`` that dispatches through it, plus clipping and penalties.

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

from ..compiler import optimizers as registry
from ..compiler.plan import Plan
from .kernels import cuda_core
from .optimizers import kernel_module
from .optimizers.adagrad import adagrad_update, adagrad_update_cuda
from .optimizers.adam import adam_update, adam_update_cuda
from .optimizers.rmsprop import rmsprop_update, rmsprop_update_cuda
from .optimizers.sgd import sgd_update, sgd_update_cuda

# PyTorch's defaults, per optimizer type (torch 2.x), from the contracts.
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = registry.DEFAULTS

#: The length of ``Optimizer.hyper``: room for every family's step scalars (``hyper_cpu``).
HYPER_SLOTS = 8

# The kernels that lived here before the registry, still importable from here.
__all__ = [
    "OPTIMIZER_DEFAULTS", "CudaOptimizer", "Optimizer", "PenaltyCuda", "adagrad_update",
    "adagrad_update_cuda", "adam_update", "adam_update_cuda", "clip_by_norm", "clip_by_norm_cuda",
    "clip_by_value", "clip_by_value_cuda", "global_norm", "global_norm_cuda", "penalty",
    "rmsprop_update", "rmsprop_update_cuda", "segments", "sgd_update", "sgd_update_cuda",
    "weight_segments",
]  # fmt: skip


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


class Optimizer:
    """One optimizer over an executor's flat buffers.

    ``Optimizer(kind, params, grads, segs, state=..., **hyper)`` takes a type
    (one of ``netc.compiler.optimizers.TYPES``: sgd, momentum, adam, adamw,
    rmsprop, adagrad, adadelta) or a ledger key (``rmsprop_centered``, ...) and
    the type's hyperparameters; absent ones take PyTorch's defaults
    (``OPTIMIZER_DEFAULTS``). ``state`` is the (slots, grads.size) buffer the
    memory ledger accounts for; a larger one is accepted (its leading rows are
    used). Device arrays (a CUDA executor's buffers) make it a ``CudaOptimizer``.
    ``step()`` runs the family's update kernel (``runtime/optimizers/``).
    """

    def __new__(cls, kind: str, params: Any, *args: Any, **kw: Any) -> Optimizer:
        if cls is Optimizer:  # bare arrays: the backend that holds them names its optimizer
            from .backends import owning

            cls = owning(params).optimizer_class()
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
        family, kind, implied = registry.parse_kind(kind)
        defaults = OPTIMIZER_DEFAULTS[kind]
        wrong = sorted(set(hp) - set(defaults))
        if wrong:
            known = ", ".join(defaults)
            raise TypeError(f"optimizer '{kind}' takes no {', '.join(wrong)} (its hyperparameters: {known})")
        self.kind = kind
        self.p, self.g, self.segs = params, grads, segs
        self.hp: dict[str, Any] = {**defaults, **implied, **{k: v for k, v in hp.items() if v is not None}}
        registry.check_hyper(kind, self.hp)
        self.key = family.key(kind, self.hp)
        self._names = registry.SLOT_NAMES[self.key]
        slots = len(self._names)
        self.state = state if state is not None else self._zeros((slots, grads.size), grads.dtype)
        if self.state.ndim != 2 or self.state.shape[0] < slots or self.state.shape[1] != grads.size:
            raise ValueError(
                f"optimizer '{self.key}' needs state {(slots, grads.size)}, got {self.state.shape} "
                "(compile the plan with netc.compiler.plan.optimizer_key(train.optimizer))"
            )
        self.slots = slots
        self.t = 0
        self._kernels = kernel_module(family.name)
        self._none = self._empty(grads)  # stands in for a state row this configuration lacks
        # The CPU update's step scalars (lr, t, bias-correction inputs, ...), read by its kernel at
        # call time, so one compiled update (or whole-step function) serves every step and schedule.
        self.hyper = np.zeros(HYPER_SLOTS, np.float64)
        self._launch: Any = None

    @staticmethod
    def _zeros(shape: tuple[int, int], dtype: Any) -> Any:
        return np.zeros(shape, dtype)

    @staticmethod
    def _empty(like: Any) -> Any:
        return like[:0]

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
        own = OPTIMIZER_DEFAULTS[registry.parse_kind(kind)[1]]
        hp = {k: v for k, v in cfg.items() if k in own}
        if "betas" in hp:
            hp["betas"] = tuple(hp["betas"])
        return cls(kind, params, grads, segs, state=state, **hp)

    @property
    def slot_names(self) -> list[str]:
        """What each state row holds (torch's state key names)."""
        return list(self._names)

    def row(self, name: str) -> Any:
        """The state row of slot ``name``, or an empty array when this
        configuration does not keep it (the kernels skip an empty row)."""
        return self.state[self._names.index(name)] if name in self._names else self._none

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
        self._kernels.update_cpu(self)

    def load_hyper(self, t: int) -> None:
        """Write step ``t``'s scalars (from ``hp`` now: a schedule's lr counts) into ``hyper``."""
        values = self._kernels.hyper_cpu(self, t)
        self.hyper[: len(values)] = values

    def cpu_launch(self) -> Any:
        """The CPU update as data (``runtime.launch.Launch``): the family's kernel over the
        buffers and ``hyper``, which ``load_hyper`` fills before each call."""
        if self._launch is None:
            self._launch = self._kernels.launch_cpu(self)
        return self._launch

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
# Each family's CUDA update is one launch per step over every trainable element
# (runtime/optimizers/base.py: how a thread finds its segment).


class CudaOptimizer(Optimizer):
    """``Optimizer`` over device buffers (a ``CudaExecutor``'s params, grads, opt_state): the same
    hyperparameters, state rows, ``lr``, ``step()``, ``state_dict``/``load_state_dict``; ``segs`` is
    the host table of ``segments(plan)``, copied to the device once (``segs_d``, with the running
    element counts ``starts_d``), and ``grid`` is the launch configuration over all of them."""

    def __init__(self, kind: str, params: Any, grads: Any, segs: np.ndarray, state: Any = None,
                 **hp: Any) -> None:  # fmt: skip
        super().__init__(kind, params, grads, segs, state, **hp)
        table = np.ascontiguousarray(segs, np.int64).reshape(-1, 5)
        starts = np.concatenate([[0], np.cumsum(table[:, 2])]).astype(np.int64)
        self._total = int(starts[-1])
        self.segs_d = cuda.to_device(table if len(table) else np.zeros((1, 5), np.int64))
        self.starts_d = cuda.to_device(starts)
        self.grid = cuda_core.grid_1d(max(self._total, 1))

    @staticmethod
    def _zeros(shape: tuple[int, int], dtype: Any) -> Any:
        z = cuda.device_array(shape, dtype)
        cuda_core.zero(z)
        return z

    @staticmethod
    def _empty(like: Any) -> Any:
        return cuda_core.empty(like.dtype)

    def step(self) -> None:
        """One update of every trainable parameter from the gradient buffer: one launch."""
        self.t += 1
        if self._total:
            self._kernels.update_cuda(self)


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

    def __init__(self, segs: np.ndarray, reducer: cuda_core.Reducer) -> None:
        self.segs = [tuple(int(v) for v in row[:3]) for row in segs]
        n = sum(r[2] for r in self.segs)
        self.terms = cuda.device_array(max(n, 1), np.float64)
        cuda_core.zero(self.terms)
        self.reducer = reducer

    def __call__(self, p: Any, g: Any, l1: float, l2: float) -> float:
        at = 0
        for po, go, n in self.segs:
            blocks, threads = cuda_core.grid_1d(n)
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
        blocks, threads = cuda_core.grid_1d(g.size)
        _clip_value_kernel[blocks, threads](g, float(value))


@cuda.jit
def _scale_to_norm_kernel(g, sumsq, max_norm):
    # The norm stays on the device: no host round trip between the reduction and the scaling.
    coef = max_norm / (math.sqrt(sumsq[0]) + 1e-6)
    if coef < 1.0:  # False for a NaN norm: g is left as it is, as on the CPU
        c = g.dtype.type(coef)
        for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
            g[i] *= c


def global_norm_cuda(g: Any, reducer: cuda_core.Reducer) -> float:
    """``global_norm`` of a flat device buffer (float64 sum of squares, deterministic)."""
    reducer.sum(g, square=True)
    return math.sqrt(reducer.value())


def clip_by_norm_cuda(g: Any, max_norm: float, reducer: cuda_core.Reducer) -> None:
    """``clip_by_norm`` on a flat device buffer, without a host sync: the squared norm before
    clipping is left in ``reducer.result`` (``math.sqrt(reducer.value())`` fetches the norm)."""
    if g.size:
        reducer.sum(g, square=True)
        blocks, threads = cuda_core.grid_1d(g.size)
        _scale_to_norm_kernel[blocks, threads](g, reducer.result, float(max_norm))
