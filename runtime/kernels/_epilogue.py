"""Fused activation epilogues for the CPU kernels that produce a layer's output.

When the compiler fuses an activation into the step before it (``Binding.epilogue``), that
step's forward kernel leaves act(output) in y itself, applied while the values are still in
cache: conv2d and linear as they write y, batchnorm, layernorm and add row by row (or block by
block) inside their own forward loop, so the tensor is written once. The scalar functions are the
activation kernels' own (inlined), so a fused output is bitwise equal to the layer followed by the
activation's kernel.

The activations travel to the kernels as ``act = (kind, p, q) × SLOTS`` (``code``): each one's
kind and up to two attributes in the arrays' dtype (elu's alpha, leaky_relu's slope, hardtanh's
bounds, selu's alpha and scale, softplus's beta and threshold; 0 otherwise; relu6 is hardtanh with
0 and 6, as its own kernel is), NONE-padded, as one tuple so that kernels pass it through without
knowing the activations. More than one is an inference chain (compiler.fusion): each later
activation is one more pass over the row or block the kernel just wrote, while it is in cache
(``act_rest``); an activation heading a chain applies the chain with ``bind_head``. Training plans
fuse only relu, tanh, sigmoid, relu6 and hardtanh (their backward reads the output); inference
plans fuse every pointwise activation (compiler.fusion), so every kind here is needed there.
relu, tanh and sigmoid have a loop each with the bias add inside it (conv2d's hot path); the
others add the bias in one pass over the row and apply the activation in a second, while the row
is in cache (the same roundings: the sum is stored in the dtype either way). A branch inside a loop
would keep it from vectorizing, hence a loop per kind.

The loops are called, not inlined, from the norms' kernels, and set fastmath=False themselves:
those kernels compile with fast-math flags (reassociation), which numba passes on to callees that
do not set their own, and which would break the activations' arithmetic (exp32's range reduction).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding
from ..launch import Launch
from ._pointwise import ACTIVATIONS, threads
from ._views import flat
from .elu import _f as elu
from .gelu import _f_erf as gelu_erf
from .gelu import _f_tanh as gelu_tanh
from .hardsigmoid import _f as hardsigmoid
from .hardswish import _f as hardswish
from .hardtanh import _f as hardtanh
from .leaky_relu import _f as leaky_relu
from .relu import _f as relu
from .relu6 import HI as RELU6_HI
from .relu6 import LO as RELU6_LO
from .selu import _f as selu
from .selu import constants as selu_constants
from .sigmoid import _f as sigmoid
from .silu import _f as silu
from .softplus import _f as softplus
from .tanh import _f as tanh

#: The activations the CPU kernels that list this set (conv2d, linear, batchnorm1d/2d, layernorm,
#: add, and the activations themselves as a chain's head) apply themselves: every pointwise one.
EPILOGUES_CPU = ACTIVATIONS

NONE, RELU, TANH, SIGMOID, GELU_TANH, GELU_ERF, ELU, LEAKY_RELU = range(8)
HARDTANH, HARDSIGMOID, HARDSWISH, SILU, SELU, SOFTPLUS = range(8, 14)
_PLAIN = {
    "relu": RELU,
    "tanh": TANH,
    "sigmoid": SIGMOID,
    "hardsigmoid": HARDSIGMOID,
    "hardswish": HARDSWISH,
    "silu": SILU,
}


#: Activations per ``act`` argument: (kind, p, q) triples, NONE-padded (compiler.fusion.MAX_CHAIN).
SLOTS = 3


def _kind(dt: type, op: str | None, attrs: dict) -> tuple[int, np.floating, np.floating]:
    """One activation as (kind, p, q), mirroring the activation kernels' own bind-time choices
    (gelu's form, the attributes' dtype); NONE for none."""
    zero = dt(0)
    if op in _PLAIN:
        return _PLAIN[op], zero, zero
    if op == "gelu":
        if attrs.get("approximate") == "tanh":
            return GELU_TANH, zero, zero
        return GELU_ERF, zero, zero  # gelu's _f_erf picks its float32 or float64 code by dtype
    if op == "elu":
        return ELU, dt(attrs["alpha"]), zero
    if op == "leaky_relu":
        return LEAKY_RELU, dt(attrs["negative_slope"]), zero
    if op == "hardtanh":
        return HARDTANH, dt(attrs["min_val"]), dt(attrs["max_val"])
    if op == "relu6":
        return HARDTANH, dt(RELU6_LO), dt(RELU6_HI)
    if op == "selu":
        alpha, scale = selu_constants(dt)
        return SELU, alpha, scale
    if op == "softplus":
        return SOFTPLUS, dt(attrs["beta"]), dt(attrs["threshold"])
    return NONE, zero, zero


def _pack(dt: type, acts: list[tuple[str | None, dict]]) -> tuple:
    """(kind1, p1, q1, kind2, p2, q2, kind3, p3, q3): the activations in order, NONE-padded."""
    if len(acts) > SLOTS:
        raise ValueError(f"a fused chain of {len(acts)} activations; the kernels apply at most {SLOTS}")
    out: tuple = ()
    for op, attrs in acts + [(None, {})] * (SLOTS - len(acts)):
        out += _kind(dt, op, attrs)
    return out


def code(b: Binding) -> tuple:
    """The binding's epilogue and chain as a kernel argument, ``act`` = (kind, p, q) × SLOTS:
    kind NONE when there is none (or one the executor applies itself, by running the activation's
    kernel in place)."""
    if b.epilogue is None:
        return none(b.y.dtype)
    return _pack(b.y.dtype.type, [(b.epilogue, b.epilogue_attrs), *b.epilogue_chain])


def bind_head(b: Binding, op: str) -> Launch:
    """The forward of activation ``op`` heading a chain (``b.epilogue`` and on): y = chain(op(x))
    over flat x, y in one pass, in chunks on numba's threads where large (``threads``)."""
    x, y = flat(b.x[0]), flat(b.y)
    act = _pack(y.dtype.type, [(op, b.attrs), (b.epilogue, b.epilogue_attrs), *b.epilogue_chain])
    nt = threads(y.size)
    if nt == 1:
        return Launch(copy_act, x, 0, y, 0, y.size, y.dtype.type(0), False, act)
    return Launch(copy_par, x, y, act, nt)


def none(dtype: np.dtype) -> tuple:
    """The act argument of no epilogue, for a kernel's unfused callers."""
    return _pack(np.dtype(dtype).type, [])


# fastmath=False, explicitly: numba compiles a callee with its caller's fast-math flags unless it
# sets its own, and the norms' reassociation would break exp32's range reduction (errors of 0.2).
_loop = njit(cache=True, error_model="numpy", fastmath=False)


@_loop
def _apply(y, d0, n, kind, p, q):
    """y[d0 + j] = act(y[d0 + j]) for j < n (flat y), one activation: a loop per kind, so that each
    vectorizes (a branch inside the loop would keep it scalar)."""
    d = uint64(d0)
    if kind == RELU:
        for j in range(uint64(n)):
            y[d + j] = relu(y[d + j])
    elif kind == TANH:
        for j in range(uint64(n)):
            y[d + j] = tanh(y[d + j])
    elif kind == SIGMOID:
        for j in range(uint64(n)):
            y[d + j] = sigmoid(y[d + j])
    elif kind == GELU_TANH:
        for j in range(uint64(n)):
            y[d + j] = gelu_tanh(y[d + j])
    elif kind == GELU_ERF:
        for j in range(uint64(n)):
            y[d + j] = gelu_erf(y[d + j])
    elif kind == ELU:
        for j in range(uint64(n)):
            y[d + j] = elu(y[d + j], p)
    elif kind == LEAKY_RELU:
        for j in range(uint64(n)):
            y[d + j] = leaky_relu(y[d + j], p)
    elif kind == HARDTANH:
        for j in range(uint64(n)):
            y[d + j] = hardtanh(y[d + j], p, q)
    elif kind == HARDSIGMOID:
        for j in range(uint64(n)):
            y[d + j] = hardsigmoid(y[d + j])
    elif kind == HARDSWISH:
        for j in range(uint64(n)):
            y[d + j] = hardswish(y[d + j])
    elif kind == SILU:
        for j in range(uint64(n)):
            y[d + j] = silu(y[d + j])
    elif kind == SELU:
        for j in range(uint64(n)):
            y[d + j] = selu(y[d + j], p, q)
    elif kind == SOFTPLUS:
        for j in range(uint64(n)):
            y[d + j] = softplus(y[d + j], p, q)


@_loop
def act_rest(y, d0, n, act):
    """The chain after act's first activation over y[d0 : d0 + n]: each one more pass over the
    same n values, which the callers keep to a row or block still in cache."""
    if act[3] != NONE:
        _apply(y, d0, n, act[3], act[4], act[5])
        if act[6] != NONE:
            _apply(y, d0, n, act[6], act[7], act[8])


@_loop
def act_inplace(y, d0, n, act):
    """y[d0 + j] = act(y[d0 + j]) for j < n (flat y): every activation of act, in order."""
    _apply(y, d0, n, act[0], act[1], act[2])
    if act[3] != NONE:
        act_rest(y, d0, n, act)


@njit(cache=True, error_model="numpy", fastmath=False, parallel=True)
def act_par(y, act, nt):
    """act_inplace over flat y in nt contiguous chunks on numba's threads: for a kernel whose own
    work ran on BLAS's threads (linear), so the activation still uses every core."""
    for t in prange(nt):
        lo = t * y.size // nt
        act_inplace(y, lo, (t + 1) * y.size // nt - lo, act)


@njit(cache=True, error_model="numpy", fastmath=False, parallel=True)
def copy_par(x, y, act, nt):
    """y = act(x) over flat arrays in nt contiguous chunks on numba's threads (a chain's head)."""
    for t in prange(nt):
        lo = t * y.size // nt
        copy_act(x, lo, y, lo, (t + 1) * y.size // nt - lo, y.dtype.type(0), False, act)


@_loop
def copy_act(src, s0, dst, d0, n, bo, add, act):
    """dst[d0 + j] = act(src[s0 + j] (+ bo when add)) for j < n (flat arrays; src may be dst): the
    first activation inside the copy where it has a loop here, the rest of the chain after."""
    kind = act[0]
    a, d = uint64(s0), uint64(d0)
    if src.ctypes.data == dst.ctypes.data:
        # In place (linear's rows, conv's bias rows): LLVM cannot prove that src and dst do not
        # overlap, and the loops below fall back to scalar code, 30x slower for tanh and sigmoid
        # (1.5 ms against 46 µs per 64k float32 values). The bias pass, then the activation's
        # own vectorized loop over the values still in cache; the same roundings.
        if add:
            for j in range(uint64(n)):
                dst[d + j] = src[a + j] + bo
        elif a != d:
            for j in range(uint64(n)):
                dst[d + j] = src[a + j]
        act_inplace(dst, d0, n, act)
        return
    if add and kind == RELU:
        for j in range(uint64(n)):
            dst[d + j] = relu(src[a + j] + bo)
    elif add and kind == TANH:
        for j in range(uint64(n)):
            dst[d + j] = tanh(src[a + j] + bo)
    elif add and kind == SIGMOID:
        for j in range(uint64(n)):
            dst[d + j] = sigmoid(src[a + j] + bo)
    elif add:
        for j in range(uint64(n)):
            dst[d + j] = src[a + j] + bo
        _apply(dst, d0, n, kind, act[1], act[2])
    elif kind == RELU:
        for j in range(uint64(n)):
            dst[d + j] = relu(src[a + j])
    elif kind == TANH:
        for j in range(uint64(n)):
            dst[d + j] = tanh(src[a + j])
    elif kind == SIGMOID:
        for j in range(uint64(n)):
            dst[d + j] = sigmoid(src[a + j])
    else:
        for j in range(uint64(n)):
            dst[d + j] = src[a + j]
        _apply(dst, d0, n, kind, act[1], act[2])
    if act[3] != NONE:  # tested here: no call at all for a single activation (short conv rows)
        act_rest(dst, d0, n, act)


@njit(cache=True, fastmath=False)
def apply_rows(srcf, s0, lds, dstf, ldd, bias, act, n):
    """dst[o, :n] = act(src[o, :n] + bias[o]) for each row o of bias or of the flat arrays srcf
    (row o at s0 + o·lds) and dstf (row o at o·ldd); bias holds one value per row, or is empty
    (no bias) with dstf holding len(dstf) / ldd rows. srcf may be dstf (in place, s0 = 0)."""
    add = bias.size > 0
    if not add and act[0] == NONE and s0 == 0 and lds == ldd and srcf.ctypes.data == dstf.ctypes.data:
        return  # in place with nothing to apply
    rows = dstf.size // ldd
    for o in range(rows):
        bo = bias[o] if add else dstf.dtype.type(0)
        copy_act(srcf, s0 + o * lds, dstf, o * ldd, n, bo, add, act)
