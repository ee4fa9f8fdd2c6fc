"""dropout kernels: inverted dropout, y = x ⊙ m / (1 - p) in training, y = x in inference.

Randomness is counter-based (splitmix64's finaliser ``mix64``, increment γ): with the stream
key k = mix64(mix64(s + γ) ^ index·M2) of module ``index`` at seed s, flat element i is kept
when the top 53 bits of mix64(k + (i + 1)·γ) are at least p·2^53. A mask is therefore a pure
function of (seed, index, i): bitwise reproducible for any thread count and any backend.
Forward saves m / (1 - p) in ``mask``; backward is dx = dy ⊙ mask (dx = dy in inference).
The training flag and seed are read from the state arrays on every call. Large arrays run in
contiguous chunks on numba's threads (``_pointwise.threads``, chosen at bind time): the mask of
element i does not depend on the chunk, so results are bitwise those of the serial loops.

On the GPU each thread computes the mask of its elements with the same ``mix64`` (a device
function), stream key and threshold, so a CUDA run drops exactly the elements a CPU run drops;
the closures read the training flag and the seed from the host state when they run.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._pointwise import threads
from ._views import flat

_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment (golden ratio)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def mix64(z):  # scalar functions are shared with the CUDA backend
    """splitmix64's finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


_mix64 = njit(cache=True, inline="always")(mix64)


@njit(cache=True, inline="always")
def stream_key(seed, index):
    """The key of module ``index``'s stream at step seed ``seed`` (the recurrent ops' dropout too)."""
    return _mix64(_mix64(np.uint64(seed) + _GAMMA) ^ (np.uint64(index) * _M2))


@njit(cache=True, inline="always")
def keep(key, i, threshold):
    """Whether flat element ``i`` of the stream ``key`` is kept (threshold = p·2^53)."""
    return (_mix64(key + (np.uint64(i) + np.uint64(1)) * _GAMMA) >> _S11) >= threshold


# Elements [lo, hi); uint64 indices: no negative-index wrap, so the loops vectorize.
@njit(cache=True)
def forward_cpu(x, y, mask, p, training, seed, index, lo, hi):
    if not training[0]:
        for i in range(uint64(lo), uint64(hi)):
            y[i] = x[i]
        return
    threshold = np.uint64(p * 9007199254740992.0)  # p · 2^53
    scale = 1.0 / (1.0 - p)
    key = stream_key(seed[0], index)  # this module's stream
    for i in range(uint64(lo), uint64(hi)):
        m = scale if keep(key, i, threshold) else 0.0
        mask[i] = m
        y[i] = x[i] * m


@njit(cache=True)
def backward_cpu(mask, dy, dx, acc, training, lo, hi):
    train = training[0] != 0
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += dy[i] * mask[i] if train else dy[i]
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = dy[i] * mask[i] if train else dy[i]


@njit(cache=True, parallel=True)
def forward_par(x, y, mask, p, training, seed, index, nt):
    for t in prange(nt):
        forward_cpu(x, y, mask, p, training, seed, index, t * x.size // nt, (t + 1) * x.size // nt)


@njit(cache=True, parallel=True)
def backward_par(mask, dy, dx, acc, training, nt):
    for t in prange(nt):
        backward_cpu(mask, dy, dx, acc, training, t * dx.size // nt, (t + 1) * dx.size // nt)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x, y, mask = flat(b.x[0]), flat(b.y), flat(b.saved["mask"])
    p, training, seed, index = float(b.attrs["p"]), b.state.training, b.state.seed, int(b.index)
    n, nt = x.size, threads(x.size)
    if nt == 1:
        fwd = Launch(forward_cpu, x, y, mask, p, training, seed, index, 0, n)
    else:
        fwd = Launch(forward_par, x, y, mask, p, training, seed, index, nt)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), b.acc[0]
    if nt == 1:
        return fwd, Launch(backward_cpu, mask, dy, dx, acc, training, 0, n)
    return fwd, Launch(backward_par, mask, dy, dx, acc, training, nt)


_mix64_cuda = cuda.jit(device=True)(mix64)


@cuda.jit(device=True)
def stream_key_cuda(seed, index):
    """``stream_key`` on the GPU."""
    return _mix64_cuda(_mix64_cuda(np.uint64(seed) + _GAMMA) ^ (np.uint64(index) * _M2))


@cuda.jit(device=True)
def keep_cuda(key, i, threshold):
    """``keep`` on the GPU."""
    return (_mix64_cuda(key + (np.uint64(i) + np.uint64(1)) * _GAMMA) >> _S11) >= threshold


@cuda.jit
def forward_cuda(x, y, mask, threshold, scale, training, seed, index):
    # the CPU kernel's stream and test, per element: mask = scale where the top 53 bits of the
    # element's hash reach threshold = p·2^53
    if not training:
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = x[i]
        return
    key = stream_key_cuda(seed, index)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        m = scale if keep_cuda(key, i, threshold) else 0.0
        mask[i] = m
        # float64 product, rounded once, as on the CPU (the simulator's NumPy would keep a float32
        # x times a Python float in float32)
        y[i] = np.float64(x[i]) * m


@cuda.jit
def backward_cuda(mask, dy, dx, acc, training):
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        g = dy[i] * mask[i] if training else dy[i]
        if acc:
            dx[i] += g
        else:
            dx[i] = g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    x, y, mask = cuda_core.flat(b.x[0]), cuda_core.flat(b.y), cuda_core.flat(b.saved["mask"])
    p, state, index = float(b.attrs["p"]), b.state, int(b.index)
    threshold = np.uint64(p * 9007199254740992.0)  # p · 2^53, as forward_cpu
    scale = 1.0 / (1.0 - p)  # float64, as forward_cpu: the same rounding of x·m
    blocks, threads = cuda_core.grid_1d(x.size)

    def fwd() -> None:
        training, seed = int(state.training[0]), state.seed[0]  # seed: np.int64, cast as on the CPU
        forward_cuda[blocks, threads](x, y, mask, threshold, scale, training, seed, index)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = cuda_core.flat(b.dy), cuda_core.flat(b.dx[0]), bool(b.acc[0])

    def bwd() -> None:
        backward_cuda[blocks, threads](mask, dy, dx, acc, int(state.training[0]))

    return fwd, bwd
