"""Batchnorm folded into the preceding conv2d, conv1d or linear for inference (compiler.fusion), CPU
and CUDA.

With s_o = γ_o / sqrt(var_o + eps) (γ = 1 without affine):

    w'[o, ...] = w[o, ...] · s_o        b'[o] = (b_o - mean_o) · s_o + β_o     (b = 0, β = 0 if absent)

so conv(x; w', b') = batchnorm_eval(conv(x; w, b)). The executor refolds before every inference
forward pass from the live parameters (a trainer or a weights load may have changed them): one pass
over the folded weights, small next to the layer's own work. The scale is computed in float64.
``bind_cpu`` / ``bind_cuda`` (the backends' binder names) return that thunk.
"""

from __future__ import annotations

import math
from typing import Any

from numba import cuda, njit

from ..binding import Thunk
from ..launch import Launch
from . import cuda_core


@njit(cache=True)
def fold_cpu(w, b, gamma, beta, mean, var, eps, w_out, b_out):
    # w, w_out [O, K]; b, gamma, beta of size O or 0 (absent); mean, var, b_out [O]
    for o in range(w.shape[0]):
        s = 1.0 / math.sqrt(var[o] + eps)
        if gamma.size:
            s *= gamma[o]
        for k in range(w.shape[1]):
            w_out[o, k] = w[o, k] * s
        bias = b[o] if b.size else 0.0
        b_out[o] = (bias - mean[o]) * s + (beta[o] if beta.size else 0.0)


@cuda.jit
def fold_cuda(w, b, gamma, beta, mean, var, eps, w_out, b_out):
    # one thread per weight element; the thread of column 0 also writes the bias
    for e in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        o, k = e // w.shape[1], e % w.shape[1]
        s = 1.0 / math.sqrt(var[o] + eps)
        if gamma.size:
            s *= gamma[o]
        w_out[o, k] = w[o, k] * s
        if k == 0:
            bias = b[o] if b.size else 0.0
            b_out[o] = (bias - mean[o]) * s + (beta[o] if beta.size else 0.0)


def _args(p: dict[str, Any], bn: dict[str, Any], empty: Any) -> tuple[Any, ...]:
    w = p["w"].reshape(p["w"].shape[0], p["w"].size // p["w"].shape[0])
    return w, p.get("b", empty), bn.get("w", empty), bn.get("b", empty), bn["running_mean"], bn["running_var"]


def bind_cpu(p: dict[str, Any], bn: dict[str, Any], eps: float, w_out: Any, b_out: Any, empty: Any) -> Thunk:
    """The refold thunk: ``p`` the producer's parameters (w, optional b), ``bn`` the batchnorm's (w, b
    when affine; running_mean, running_var), ``w_out``/``b_out`` the folded buffers."""
    args = (
        *_args(p, bn, empty),
        float(eps),
        w_out.reshape(w_out.shape[0], w_out.size // w_out.shape[0]),
        b_out,
    )
    return Launch(fold_cpu, *args)


def bind_cuda(p: dict[str, Any], bn: dict[str, Any], eps: float, w_out: Any, b_out: Any, empty: Any) -> Thunk:
    """As ``bind_cpu``, with device arrays."""
    w2 = w_out.reshape(w_out.shape[0], w_out.size // w_out.shape[0])
    args = (*_args(p, bn, empty), float(eps), w2, b_out)
    launch = cuda_core.grid_1d(w2.size)
    return lambda: fold_cuda[launch](*args)
