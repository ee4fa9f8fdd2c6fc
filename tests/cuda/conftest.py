"""CUDA tests: run on a GPU, or under numba's simulator (NUMBA_ENABLE_CUDASIM=1, see
tests/test_cuda_simulator.py). Shapes stay tiny: the simulator runs each GPU thread as a Python
thread (about a millisecond per thread and launch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "runtime"))  # harness.py: the CPU kernels' test bindings

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    # The simulator's block manager busy-polls its threads for syncthreads; a shorter GIL switch
    # interval makes kernels with barriers about twice as fast here. Kernels are unaffected.
    sys.setswitchinterval(2e-4)
    # The simulator creates a block's shared arrays without a lock; two threads can get different
    # "shared" arrays and a reduction silently loses a part. simfix locks the allocator.
    import simfix

    simfix.install()
    if os.environ.get("NETC_RECORD_LAUNCHES"):
        from ptx_check import record_launches

        record_launches(os.environ["NETC_RECORD_LAUNCHES"])
