"""Fused activation epilogues for the CPU kernels that produce a layer's output.

When the compiler fuses an activation into the step before it (``Binding.epilogue``), that
step's forward kernel leaves act(output) in y itself, applied while the values are still in
cache: conv2d and linear as they write y, batchnorm, layernorm and add row by row (or block by
block) inside their own forward loop, so the tensor is written once. The scalar functions are the
activation kernels' own (inlined), so a fused output is bitwise equal to the layer followed by the
activation's kernel.

The activation travels to the kernels as ``act = (kind, param)`` (``code``): its kind and its one
attribute in the arrays' dtype (elu's alpha, leaky_relu's slope; 0 otherwise), as one tuple so
that kernels pass it through without knowing the activations. Training plans fuse only relu, tanh
and sigmoid (their backward reads the output); inference plans fuse every pointwise activation
(compiler.fusion), so every kind here is needed there. relu, tanh and sigmoid have a loop each with
the bias add inside it (conv2d's hot path); the others add the bias in one pass over the row and
apply the activation in a second, while the row is in cache (the same roundings: the sum is stored
in the dtype either way). A branch inside a loop would keep it from vectorizing, hence a loop per
kind.

The loops are called, not inlined, from the norms' kernels, and set fastmath=False themselves:
those kernels compile with fast-math flags (reassociation), which numba passes on to callees that
do not set their own, and which would break the activations' arithmetic (exp32's range reduction).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding
from .elu import _f as elu
from .gelu import _f_erf as gelu_erf
from .gelu import _f_tanh as gelu_tanh
from .leaky_relu import _f as leaky_relu
from .relu import _f as relu
from .sigmoid import _f as sigmoid
from .tanh import _f as tanh

#: The activations the CPU kernels that list this set (conv2d, linear, batchnorm1d/2d, layernorm,
#: add) apply themselves: every pointwise activation.
EPILOGUES_CPU = frozenset({"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"})

NONE, RELU, TANH, SIGMOID, GELU_TANH, GELU_ERF, ELU, LEAKY_RELU = range(8)
_PLAIN = {"relu": RELU, "tanh": TANH, "sigmoid": SIGMOID}


def code(b: Binding) -> tuple[int, np.floating]:
    """The binding's epilogue as a kernel argument, (kind, param): kind NONE when there is none
    (or one the executor applies itself, by running the activation's kernel in place). Mirrors the
    activation kernels' own bind-time choices (gelu's form, the attribute's dtype)."""
    dt = b.y.dtype.type
    e, attrs = b.epilogue, b.epilogue_attrs
    if e in _PLAIN:
        return _PLAIN[e], dt(0)
    if e == "gelu":
        if attrs.get("approximate") == "tanh":
            return GELU_TANH, dt(0)
        return GELU_ERF, dt(0)  # gelu's _f_erf picks its float32 or float64 code by dtype
    if e == "elu":
        return ELU, dt(attrs["alpha"])
    if e == "leaky_relu":
        return LEAKY_RELU, dt(attrs["negative_slope"])
    return NONE, dt(0)


def none(dtype: np.dtype) -> tuple[int, np.floating]:
    """The act argument of no epilogue, for a kernel's unfused callers."""
    return NONE, np.dtype(dtype).type(0)


# fastmath=False, explicitly: numba compiles a callee with its caller's fast-math flags unless it
# sets its own, and the norms' reassociation would break exp32's range reduction (errors of 0.2).
_loop = njit(cache=True, error_model="numpy", fastmath=False)


@_loop
def act_inplace(y, d0, n, act):
    """y[d0 + j] = act(y[d0 + j]) for j < n (flat y): the kinds without a fused bias loop."""
    kind, p = act
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


@njit(cache=True, error_model="numpy", fastmath=False, parallel=True)
def act_par(y, act, nt):
    """act_inplace over flat y in nt contiguous chunks on numba's threads: for a kernel whose own
    work ran on BLAS's threads (linear), so the activation still uses every core."""
    for t in prange(nt):
        lo = t * y.size // nt
        act_inplace(y, lo, (t + 1) * y.size // nt - lo, act)


@_loop
def copy_act(src, s0, dst, d0, n, bo, add, act):
    """dst[d0 + j] = act(src[s0 + j] (+ bo when add)) for j < n (flat arrays; src may be dst)."""
    kind = act[0]
    a, d = uint64(s0), uint64(d0)
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
        act_inplace(dst, d0, n, act)
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
        if a != d or src.ctypes.data != dst.ctypes.data:
            for j in range(uint64(n)):
                dst[d + j] = src[a + j]
        act_inplace(dst, d0, n, act)


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
