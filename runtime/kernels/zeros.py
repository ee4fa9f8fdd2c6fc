"""zeros kernels: ``constant``'s with value 0 (y[n] = 0 for every sample n; no backward)."""

from __future__ import annotations

from .constant import bind_cpu, bind_cuda

__all__ = ["bind_cpu", "bind_cuda"]
