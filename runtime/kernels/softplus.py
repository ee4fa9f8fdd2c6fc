"""softplus kernels: y = x where z = beta · x > threshold, else (max(z, 0) + log1p(exp(-|z|))) / beta;
dx = dy where z > threshold, else dy · σ(z) (backward reads the input). beta and threshold are
passed in the arrays' dtype, so z and the threshold test are torch's.

The overflow-free form equals torch's log1p(exp(z)) / beta wherever that is finite. exp is
``fast_exp`` (float64 arithmetic) and log1p libm's, so these loops do not vectorize; softplus is
rare in the networks netc benchmarks. Large arrays run in contiguous chunks on numba's threads
(``_pointwise.bind_unary``).

On the GPU the same scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

import math

from numba import njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, device_functions, fast_exp

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp


def softplus(x, beta, threshold):  # scalar functions are shared with the CUDA backend
    z = x * beta
    if z > threshold:
        return x
    return ((z if z > 0.0 else 0.0) + math.log1p(exp(-abs(z)))) / beta


def softplus_grad(x, dy, beta, threshold):
    z = x * beta
    if z > threshold:
        return dy
    e = exp(-abs(z))  # σ(z) without overflow
    r = 1.0 / (1.0 + e)
    return dy * (r if z >= 0.0 else e * r)


_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
_f = njit(cache=True, error_model="numpy", inline="always")(softplus)
_g = njit(cache=True, error_model="numpy", inline="always")(softplus_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, beta, threshold, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i], beta, threshold)


@_jit
def backward_cpu(x, dy, dx, acc, beta, threshold, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i], beta, threshold)
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i], beta, threshold)


@_par
def forward_par(x, y, beta, threshold, nt):
    for t in prange(nt):
        forward_cpu(x, y, beta, threshold, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(x, dy, dx, acc, beta, threshold, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, beta, threshold, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def constants(b: Binding) -> tuple:
    """(beta, threshold) in the arrays' dtype."""
    dt = b.x[0].dtype.type
    return dt(b.attrs["beta"]), dt(b.attrs["threshold"])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, False, *constants(b))


_f_cuda, _g_cuda = device_functions(softplus, softplus_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=2)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, *constants(b))
