"""Device selection: the executor for ``--device cpu|cuda|auto``, through the backends registry
(``netc.runtime.backends``), and the host-memory check every CPU executor passes first.

Nothing here imports numba's CUDA module until a question about CUDA is asked, so CPU-only callers
pay nothing for it. "Usable" means a GPU the CUDA driver can see, or numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, which must be set before numba is first imported).
"""

from __future__ import annotations

from typing import Any

from .backends import NAMES, DeviceError, Executor, get
from .backends.cpu import check_host_memory
from .backends.cuda import simulator_enabled

DEVICES = (*NAMES, "auto")

__all__ = ["DEVICES", "DeviceError", "check_host_memory", "cuda_usable", "make_executor", "simulator_enabled"]


def cuda_usable() -> tuple[bool, str]:
    """(usable, why): a short description of the GPU, or the reason there is none."""
    return get("cuda").usable()


def make_executor(plan: Any, batch: int, device: str = "cpu", **kw: Any) -> Executor:
    """An executor for ``device``: "cpu", "cuda", or "auto" (cuda when usable and every op of the
    plan has CUDA kernels, else cpu). ``kw`` goes to the executor (dtype, seed, optimizer)."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device '{device}'; expected one of: {', '.join(DEVICES)}")
    if device in ("cuda", "auto"):
        gpu = get("cuda")
        ok, why = gpu.usable()
        if ok and (device == "cuda" or not gpu.missing_kernels(plan)):
            return gpu.executor(plan, batch, **kw)
        if device == "cuda":
            raise DeviceError(f"--device cuda: no usable CUDA GPU ({why.rstrip('.')}); use --device cpu")
    return get("cpu").executor(plan, batch, **kw)
