"""The CUDA backend: device buffers and ``@cuda.jit`` kernels (``bind_cuda``), on a GPU or
under numba's CUDA simulator. numba's CUDA module is imported only when a question about CUDA
is asked, so CPU-only callers pay nothing for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Backend, Executor

if TYPE_CHECKING:
    from ...compiler.plan import Plan


def simulator_enabled() -> bool:
    """True when numba's CUDA simulator stands in for a GPU."""
    try:
        from numba.cuda.core import config
    except ImportError:  # numba's bundled CUDA target (no numba-cuda package)
        from numba.core import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


class CudaBackend(Backend):
    name = "cuda"
    bind_attr = "bind_cuda"
    epilogues_attr = "EPILOGUES_CUDA"
    doc = "an NVIDIA GPU (or numba's CUDA simulator, NUMBA_ENABLE_CUDASIM=1)"

    def usable(self) -> tuple[bool, str]:
        try:
            from numba import cuda
        except Exception as e:  # a broken CUDA install must not take the CPU path down with it
            return False, f"numba's CUDA support cannot be imported ({e})"
        if simulator_enabled():
            return True, "the numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        try:
            if cuda.is_available():
                dev = cuda.get_current_device()
                name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
                return True, f"{name} (compute capability {'.'.join(map(str, dev.compute_capability))})"
            err = cuda.cuda_error()
        except Exception as e:
            err = e
        reason = " ".join(str(err or "").split()) or "the CUDA driver reports no GPU"
        return False, reason

    def executor(self, plan: Plan, batch: int, **kw: Any) -> Executor:
        from ..executor_cuda import CudaExecutor

        return CudaExecutor(plan, batch, **kw)

    def buffers(self, ex: Executor) -> Any:
        from ..buffers import DeviceBuffers

        return DeviceBuffers(ex)

    def optimizer_class(self) -> type:
        from ..optim import CudaOptimizer

        return CudaOptimizer

    def owns(self, array: Any) -> bool:
        from ..kernels import cuda_core

        return cuda_core.is_device_array(array)


BACKEND = CudaBackend()
