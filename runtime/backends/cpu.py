"""The CPU backend: NumPy buffers and Numba ``@njit`` kernels (``bind_cpu``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Backend, DeviceError, Executor

if TYPE_CHECKING:
    from ...compiler.plan import Plan


def check_host_memory(plan: Any, batch: int, optimizer: str | None = None, dtype: Any = None) -> None:
    """Refuse, before allocating, a CPU executor whose memory ledger (at ``batch``, in ``dtype``)
    exceeds the memory this machine has available: one message with both figures and what to
    reduce, not a MemoryError (or the kernel's OOM killer) part-way through. Checked here, where
    every command gets its executor, and not in the Executor itself: its zero-filled buffers are
    only backed by memory as they are touched, so tests and tools that build one without
    training on it are not refused on a machine that is busy at the moment."""
    import numpy as np

    from ...compiler.host import short_of_memory
    from ...compiler.memory import assign_memory
    from ...compiler.report.summary import human_bytes

    fb = np.dtype(dtype or np.float32).itemsize
    ledger = assign_memory(plan, batch, optimizer, float_bytes=fb).memory["ledger"]
    inference = plan.mode == "inference"
    what = "inference peak" if inference else "training-step peak"
    need = int(ledger["inference_peak_bytes" if inference else "training_peak_bytes"])
    have = short_of_memory(need)
    if have is not None:
        raise DeviceError(
            f"the memory ledger's {what} at batch {ledger['batch']} is {human_bytes(need)}, "
            f"but this machine has {human_bytes(have)} available; reduce the batch size or the model's "
            "size (`netc compile SPEC --batch N` shows the ledger)"
        )


class CpuBackend(Backend):
    name = "cpu"
    bind_attr = "bind_cpu"
    epilogues_attr = "EPILOGUES_CPU"
    doc = "this machine's cores: Numba-compiled kernels on NumPy buffers"

    def usable(self) -> tuple[bool, str]:
        return True, "the CPU"

    def executor(self, plan: Plan, batch: int, **kw: Any) -> Executor:
        from ..executor import Executor as CpuExecutor

        check_host_memory(plan, batch, kw.get("optimizer"), kw.get("dtype"))
        return CpuExecutor(plan, batch, **kw)

    def buffers(self, ex: Executor) -> Any:
        from ..buffers import HostBuffers

        return HostBuffers(ex)

    def optimizer_class(self) -> type:
        from ..optim import Optimizer

        return Optimizer

    def owns(self, array: Any) -> bool:
        import numpy as np

        return isinstance(array, np.ndarray)


BACKEND = CpuBackend()
