"""A fix for a race in numba's CUDA simulator, installed by the CUDA tests that import it.

``FakeCUDAShared.array`` (numba_cuda/numba/cuda/simulator/kernelapi.py) looks a shared array up by
its source line and, on a miss, creates and stores it — without a lock. When the interpreter switches
threads between the lookup and the store (more likely with the short switch interval conftest.py
sets), two threads of one block get different "shared" arrays, and a block reduction or a GEMM tile
silently loses their contributions: a rare, wrong result in the first block of a launch (seen as a
conv2d bias gradient whose channel 0 held about half its sum). This replacement does the lookup and
the store under a lock, and finds the caller with ``sys._getframe`` instead of
``traceback.extract_stack`` (the same (file, line) key, without reading source lines: faster).
"""

from __future__ import annotations

import sys
import threading

import numpy as np


def install() -> None:
    """Patch the simulator's shared-array allocator (idempotent; a no-op without the simulator)."""
    try:
        from numba.cuda.simulator import kernelapi
    except ImportError:
        return
    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "_netc_locked", False):
        return
    types, numpy_support = kernelapi.types, kernelapi.numpy_support  # the simulator's own imports
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None:
            raise RuntimeError("Array alignment is not supported in cudasim")
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        if shape == 0:  # dynamic shared memory: one buffer, as the original
            count = self._dynshared_size // dtype.itemsize
            return np.frombuffer(self._dynshared.data, dtype=dtype, count=count)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    array._netc_locked = True
    shared.array = array
