"""Device selection: whether CUDA is usable here, and the executor for ``--device cpu|cuda|auto``.

Nothing here imports numba's CUDA module until a question about CUDA is asked, so CPU-only callers
pay nothing for it. "Usable" means a GPU the CUDA driver can see, or numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, which must be set before numba is first imported).
"""

from __future__ import annotations

from typing import Any

DEVICES = ("cpu", "cuda", "auto")


class DeviceError(Exception):
    """A device that was asked for but cannot be used (or cannot run this plan)."""


def simulator_enabled() -> bool:
    """True when numba's CUDA simulator stands in for a GPU."""
    try:
        from numba.cuda.core import config
    except ImportError:  # numba's bundled CUDA target (no numba-cuda package)
        from numba.core import config
    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def cuda_usable() -> tuple[bool, str]:
    """(usable, why): a short description of the GPU, or the reason there is none."""
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


def check_host_memory(plan: Any, batch: int, optimizer: str | None = None, dtype: Any = None) -> None:
    """Refuse, before allocating, a CPU executor whose memory ledger (at ``batch``, in ``dtype``)
    exceeds the memory this machine has available: one message with both figures and what to
    reduce, not a MemoryError (or the kernel's OOM killer) part-way through. Checked here, where
    every command gets its executor, and not in the Executor itself: its zero-filled buffers are
    only backed by memory as they are touched, so tests and tools that build one without
    training on it are not refused on a machine that is busy at the moment."""
    import numpy as np

    from ..compiler.host import short_of_memory
    from ..compiler.memory import assign_memory
    from ..compiler.report.summary import human_bytes

    fb = np.dtype(dtype or np.float32).itemsize
    ledger = assign_memory(plan, batch, optimizer, float_bytes=fb).memory["ledger"]
    need = int(ledger["training_peak_bytes"])
    have = short_of_memory(need)
    if have is not None:
        raise DeviceError(
            f"the memory ledger's training-step peak at batch {ledger['batch']} is {human_bytes(need)}, "
            f"but this machine has {human_bytes(have)} available; reduce the batch size or the model's "
            "size (`netc compile SPEC --batch N` shows the ledger)"
        )


def make_executor(plan: Any, batch: int, device: str = "cpu", **kw: Any) -> Any:
    """An executor for ``device``: "cpu", "cuda", or "auto" (cuda when usable and every op of the
    plan has CUDA kernels, else cpu). ``kw`` goes to the executor (dtype, seed, optimizer)."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device '{device}'; expected one of: {', '.join(DEVICES)}")
    if device in ("cuda", "auto"):
        ok, why = cuda_usable()
        if ok:
            from .executor_cuda import CudaExecutor, ops_without_cuda

            if device == "cuda" or not ops_without_cuda(plan):
                return CudaExecutor(plan, batch, **kw)
        elif device == "cuda":
            raise DeviceError(f"--device cuda: no usable CUDA GPU ({why.rstrip('.')}); use --device cpu")
    from .executor import Executor

    check_host_memory(plan, batch, kw.get("optimizer"), kw.get("dtype"))
    return Executor(plan, batch, **kw)
