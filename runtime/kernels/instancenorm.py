"""instancenorm kernels: groupnorm's, CPU and CUDA, with one group per channel (G = C, K = 1) and
the running statistics when the module tracks them (see groupnorm.py)."""

from __future__ import annotations

from ..binding import Binding, Thunk
from .groupnorm import EPILOGUES_CPU, bind_groups_cpu, bind_groups_cuda

__all__ = ["EPILOGUES_CPU", "bind_cpu", "bind_cuda"]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_groups_cpu(b, b.x[0].shape[1])


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_groups_cuda(b, b.x[0].shape[1])
