"""constant kernels: y[n] = value for every sample n; no backward (no inputs).

The value is built once at bind time (``values``) as one sample's array, and each forward copies it
into every sample of y (the output buffer may hold other tensors between steps, so it is rewritten
every step). On the GPU the value is uploaded once and one grid-stride kernel writes every sample.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import per_sample


def values(b: Binding) -> np.ndarray:
    """One sample's value, flat, in y's dtype (``zeros`` has no ``value``: 0)."""
    v = np.asarray(b.attrs.get("value", 0), dtype=b.y.dtype)
    return np.ascontiguousarray(np.broadcast_to(v, b.y.shape[1:])).reshape(-1)


@njit(cache=True)
def forward_cpu(v, y):  # y: [N, S]
    for n in range(y.shape[0]):
        y[n, :] = v


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return Launch(forward_cpu, values(b), per_sample(b.y)), nothing


@cuda.jit
def forward_cuda(v, y):  # y flat: element i is v[i % v.size]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i] = v[i % v.size]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    v, y = cuda.to_device(values(b)), cuda_core.flat(b.y)
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](v, y)

    return fwd, nothing
