"""Fused activation epilogues for the CPU kernels that produce a layer's output (conv2d, linear).

When the compiler fuses an activation into the step before it (``Binding.epilogue``), that
step's forward kernel leaves act(output) in y itself, applied while the values are still in
cache. The scalar functions are the activation kernels' own (inlined), so a fused output is
bitwise equal to the layer followed by the activation's kernel. Each (activation, bias) pair has
its own loop: a branch inside the loop would keep it from vectorizing.
"""

from __future__ import annotations

from numba import njit, uint64

from ..binding import Binding
from .relu import _f as relu
from .sigmoid import _f as sigmoid
from .tanh import _f as tanh

#: The activations the CPU kernels of conv2d and linear apply themselves.
EPILOGUES_CPU = frozenset({"relu", "tanh", "sigmoid"})

NONE, RELU, TANH, SIGMOID = 0, 1, 2, 3
_CODES = {"relu": RELU, "tanh": TANH, "sigmoid": SIGMOID}


def code(b: Binding) -> int:
    """The binding's epilogue as a kernel argument: NONE when there is none (or one the executor
    applies itself, by running the activation's kernel in place)."""
    return _CODES.get(b.epilogue, NONE) if b.epilogue else NONE


@njit(cache=True, error_model="numpy")
def copy_act(src, s0, dst, d0, n, bo, add, act):
    """dst[d0 + j] = act(src[s0 + j] (+ bo when add)) for j < n (flat arrays; src may be dst)."""
    a, d = uint64(s0), uint64(d0)
    if add:
        if act == RELU:
            for j in range(uint64(n)):
                dst[d + j] = relu(src[a + j] + bo)
        elif act == TANH:
            for j in range(uint64(n)):
                dst[d + j] = tanh(src[a + j] + bo)
        elif act == SIGMOID:
            for j in range(uint64(n)):
                dst[d + j] = sigmoid(src[a + j] + bo)
        else:
            for j in range(uint64(n)):
                dst[d + j] = src[a + j] + bo
    elif act == RELU:
        for j in range(uint64(n)):
            dst[d + j] = relu(src[a + j])
    elif act == TANH:
        for j in range(uint64(n)):
            dst[d + j] = tanh(src[a + j])
    elif act == SIGMOID:
        for j in range(uint64(n)):
            dst[d + j] = sigmoid(src[a + j])
    else:
        for j in range(uint64(n)):
            dst[d + j] = src[a + j]


@njit(cache=True)
def apply_rows(srcf, s0, lds, dstf, ldd, bias, act, n):
    """dst[o, :n] = act(src[o, :n] + bias[o]) for each row o of bias or of the flat arrays srcf
    (row o at s0 + o·lds) and dstf (row o at o·ldd); bias holds one value per row, or is empty
    (no bias) with dstf holding len(dstf) / ldd rows. srcf may be dstf (in place, s0 = 0)."""
    add = bias.size > 0
    if not add and act == NONE and s0 == 0 and lds == ldd and srcf.ctypes.data == dstf.ctypes.data:
        return  # in place with nothing to apply
    rows = dstf.size // ldd
    for o in range(rows):
        bo = bias[o] if add else dstf.dtype.type(0)
        copy_act(srcf, s0 + o * lds, dstf, o * ldd, n, bo, add, act)
