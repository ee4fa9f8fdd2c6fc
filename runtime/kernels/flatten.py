"""flatten kernels: a row-major copy into the output buffer (the plan gives it its own); dx = dy.
On the GPU the same flat copies (``cuda_core.copy``)."""

from __future__ import annotations

from ._copies import bind_copy, bind_copy_cuda, copy_cpu

# One flat copy serves both directions: forward_cpu(x, y, False), backward_cpu(dy, dx, acc).
forward_cpu = backward_cpu = copy_cpu
bind_cpu = bind_copy
bind_cuda = bind_copy_cuda
