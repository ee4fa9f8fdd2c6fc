"""What every optimizer's update shares: the CPU entry (``update_cpu``) and, on the GPU,
finding a thread's segment.

One thread per trainable element (grid-stride). ``starts`` holds the running
element count before each segment (S + 1 entries, the last the total), so a
thread's segment is a binary search in it; the segment's row of the
``segments`` table (offset, grad offset, size, lr_mult·1e6, decay flag) gives
its learning-rate multiplier and whether weight decay applies. Scalars are
cast to the parameters' dtype, as the CPU kernels do, so float32 stays float32.
"""

from __future__ import annotations

from typing import Any

from numba import cuda


@cuda.jit(device=True)
def locate(segs, starts, i):
    """(parameter index, gradient index, segment) of trainable element i."""
    lo, hi = 0, starts.size - 1  # starts[lo] <= i < starts[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if starts[mid] <= i:
            lo = mid
        else:
            hi = mid
    j = i - starts[lo]
    return segs[lo, 0] + j, segs[lo, 1] + j, lo


def update_cpu(opt: Any) -> None:
    """One CPU update, shared by every family: the step's scalars into ``opt.hyper``, then the
    family's launch (``launch_cpu``) — the same data the whole-step function calls."""
    opt.load_hyper(opt.t)
    opt.cpu_launch()()
