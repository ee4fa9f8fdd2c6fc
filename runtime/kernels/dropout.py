"""dropout kernels: inverted dropout, y = x ⊙ m / (1 - p) in training, y = x in inference.

Randomness is counter-based (splitmix64's finaliser ``mix64``, increment γ): with the stream
key k = mix64(mix64(s + γ) ^ index·M2) of module ``index`` at seed s, flat element i is kept
when the top 53 bits of mix64(k + (i + 1)·γ) are at least p·2^53. A mask is therefore a pure
function of (seed, index, i): bitwise reproducible for any thread count and any backend.
Forward saves m / (1 - p) in ``mask``; backward is dx = dy ⊙ mask (dx = dy in inference).
The training flag and seed are read from the state arrays on every call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ._elementwise_common import flat

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


@njit(cache=True)
def forward_cpu(x, y, mask, p, training, seed, index):
    if not training[0]:
        for i in range(x.size):
            y[i] = x[i]
        return
    threshold = np.uint64(p * 9007199254740992.0)  # p · 2^53
    scale = 1.0 / (1.0 - p)
    key = _mix64(_mix64(np.uint64(seed[0]) + _GAMMA) ^ (np.uint64(index) * _M2))  # this module's stream
    for i in range(x.size):
        bits = _mix64(key + (np.uint64(i) + np.uint64(1)) * _GAMMA) >> _S11
        m = scale if bits >= threshold else 0.0
        mask[i] = m
        y[i] = x[i] * m


@njit(cache=True)
def backward_cpu(mask, dy, dx, acc, training):
    if training[0]:
        if acc:
            for i in range(dx.size):
                dx[i] += dy[i] * mask[i]
        else:
            for i in range(dx.size):
                dx[i] = dy[i] * mask[i]
    elif acc:
        for i in range(dx.size):
            dx[i] += dy[i]
    else:
        for i in range(dx.size):
            dx[i] = dy[i]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x, y, mask = flat(b.x[0]), flat(b.y), flat(b.saved["mask"])
    p, training, seed, index = float(b.attrs["p"]), b.state.training, b.state.seed, int(b.index)
    fwd = lambda: forward_cpu(x, y, mask, p, training, seed, index)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), b.acc[0]
    return fwd, lambda: backward_cpu(mask, dy, dx, acc, training)
