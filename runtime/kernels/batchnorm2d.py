"""batchnorm2d kernels: batchnorm1d's, CPU and CUDA, on the [N, C, H·W] view of the input (see
batchnorm1d.py)."""

from __future__ import annotations

from .batchnorm1d import (
    EPILOGUES_CPU,
    backward_cpu,
    backward_cuda,
    bind_cpu,
    bind_cuda,
    forward_cpu,
    forward_cuda,
)

__all__ = [
    "EPILOGUES_CPU",
    "backward_cpu",
    "backward_cuda",
    "bind_cpu",
    "bind_cuda",
    "forward_cpu",
    "forward_cuda",
]
