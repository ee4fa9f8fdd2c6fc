"""batchnorm2d kernels: batchnorm1d's, on the [N, C, H·W] view of the input (see batchnorm1d.py)."""

from __future__ import annotations

from .batchnorm1d import backward_cpu, bind_cpu, forward_cpu

__all__ = ["backward_cpu", "bind_cpu", "forward_cpu"]
