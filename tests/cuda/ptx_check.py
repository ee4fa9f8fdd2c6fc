"""Compile, for a real GPU, every kernel the CUDA tests launched under the simulator — without a GPU.

The simulator runs kernels as Python, so it accepts code that numba's CUDA compiler rejects (an
unsupported call, a type that does not unify, a shared array without a constant shape). This tool
closes that gap on machines with no GPU: run the CUDA tests with launch recording on, then compile
each recorded (kernel, argument types) pair to PTX with NVVM.

    export NUMBA_ENABLE_CUDASIM=1 NETC_RECORD_LAUNCHES=/tmp/launches.json
    python -m pytest tests/cuda -p no:cacheprovider
    unset NUMBA_ENABLE_CUDASIM NETC_RECORD_LAUNCHES
    python tests/cuda/ptx_check.py /tmp/launches.json [--cc 9.0]

The second step needs NVVM and NVRTC (``pip install nvidia-nvvm nvidia-cuda-nvrtc``), not a GPU or a
driver. It is a developer tool, not a test: the project does not depend on those packages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def record_launches(path: str) -> None:
    """Under the simulator: remember every kernel launch's (module, name, argument types); written
    to ``path`` at interpreter exit."""
    import atexit

    from numba.cuda.simulator.kernel import FakeCUDAKernel

    seen: set[str] = set()
    original = FakeCUDAKernel.__call__

    def describe(a: Any) -> Any:
        if hasattr(a, "_numba_type_"):
            t = a._numba_type_
            return ["array", str(a.dtype), t.ndim, t.layout]
        if isinstance(a, bool):
            return "boolean"
        if isinstance(a, int):
            return "int64"
        if isinstance(a, float):
            return "float64"
        return str(getattr(a, "dtype", type(a).__name__))  # NumPy scalars

    def call(self: Any, *args: Any) -> Any:
        from numba.cuda.simulator.kernel import _get_kernel_context

        if not self._device and _get_kernel_context() is None:
            fn = self.fn
            seen.add(json.dumps([fn.__module__, fn.__qualname__, [describe(a) for a in args]]))
        return original(self, *args)

    FakeCUDAKernel.__call__ = call

    def write() -> None:
        with open(path, "w") as f:
            json.dump(sorted(json.loads(s) for s in seen), f, indent=0)

    atexit.register(write)


def _numba_type(d: Any) -> Any:
    from numba import types as nt

    if isinstance(d, list):
        _, dtype, ndim, layout = d
        return nt.Array(getattr(nt, dtype), ndim, layout)
    return getattr(nt, d)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("launches", help="the JSON file written under NETC_RECORD_LAUNCHES")
    ap.add_argument("--cc", default="9.0", help="compute capability to compile for (default 9.0)")
    args = ap.parse_args(argv)
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    cc = tuple(int(x) for x in args.cc.split("."))
    # Device functions ask the current device for its compute capability; there is none here.
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    sys.path[:0] = [str(HERE), str(HERE.parent / "runtime")]  # kernels defined in test modules
    with open(args.launches) as f:
        launches = json.load(f)
    failures = 0
    for module, name, sig in launches:
        kernel = importlib.import_module(module)
        for part in name.split("."):
            kernel = getattr(kernel, part)
        argtypes = tuple(_numba_type(d) for d in sig)
        try:
            cuda.compile_ptx(kernel.py_func, argtypes, cc=cc)
        except Exception as e:
            failures += 1
            print(f"FAIL {module}.{name}{argtypes}:\n  {type(e).__name__}: {str(e)[:2000]}\n")
        else:
            print(f"ok   {module}.{name}{argtypes}")
    print(f"{len(launches) - failures}/{len(launches)} kernel signatures compile for sm_{cc[0]}{cc[1]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
