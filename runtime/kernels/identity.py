"""identity kernels: y = x, dx = dy, as plain copies (the plan gives the output a buffer of its own);
on the GPU the same flat copies (``cuda_core.copy``)."""

from __future__ import annotations

from ._copies import bind_copy, bind_copy_cuda, copy_cpu

# One flat copy serves both directions: forward_cpu(x, y, False), backward_cpu(dy, dx, acc).
forward_cpu = backward_cpu = copy_cpu
bind_cpu = bind_copy
bind_cuda = bind_copy_cuda
