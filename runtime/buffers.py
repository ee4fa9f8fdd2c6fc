"""What the training loop does to an executor's buffers, on the CPU or on the GPU.

The Trainer feeds batches, reads back what metrics need, accumulates, clips
and penalizes gradients, and copies weights for the best epoch and for
checkpoints. On the CPU those are NumPy operations on the executor's own
arrays; on the GPU the same operations run as kernels on device buffers, and
the host only sends the batch and receives what it asks for. ``buffers(ex)``
picks the implementation, so the loop itself has no device branches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends.base import Executor
from .data import Augmenter, Dataset


class HostBuffers:
    """The CPU executor: its arrays are host arrays already."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.acc: Any = None  # gradient accumulator, allocated when first needed

    # -- weights and state -------------------------------------------------------------
    def params(self) -> np.ndarray:
        """A host copy of the flat parameter buffer."""
        return self.ex.params.copy()

    def set_params(self, host: np.ndarray) -> None:
        self.ex.params[...] = host

    def opt_state(self) -> np.ndarray:
        return self.ex.opt_state.copy()

    def set_opt_state(self, host: np.ndarray) -> None:
        self.ex.opt_state[...] = host

    def grads(self) -> np.ndarray:
        return self.ex.grads

    def view(self, name: str) -> np.ndarray:
        """A tensor of the last pass, readable on the host."""
        return self.ex.view(name)

    # -- batches -------------------------------------------------------------------------
    def feed(self, ds: Dataset, idx: np.ndarray, augment: Augmenter | None, rng: Any) -> None:
        """Gather samples ``idx`` straight into the executor's input views (no temporaries)."""
        views = {}
        for name, arr in ds.arrays.items():
            if name not in self.ex.plan.inputs:
                continue
            dst = self.ex.view(name)[: len(idx)]
            if arr.dtype == dst.dtype:
                np.take(arr, idx, axis=0, out=dst)
            else:  # e.g. float32 data into a float64 executor
                dst[...] = arr[idx]
            views[name] = dst
        if augment is not None:
            augment(views, rng)

    # -- gradients -------------------------------------------------------------------------
    def accumulate(self) -> None:
        if self.acc is None:
            self.acc = np.zeros_like(self.ex.grads)
        self.acc += self.ex.grads

    def finish_accumulation(self, k: int) -> None:
        np.multiply(self.acc, 1.0 / k, out=self.ex.grads)
        self.acc.fill(0)

    def penalty(self, segs: np.ndarray, l1: float, l2: float) -> float:
        from .optim import penalty

        return penalty(self.ex.params, self.ex.grads, segs, l1, l2)

    def global_norm(self) -> float:
        from .optim import global_norm

        return global_norm(self.ex.grads)

    def clip_value(self, v: float) -> None:
        from .optim import clip_by_value

        clip_by_value(self.ex.grads, v)

    def clip_norm(self, n: float) -> None:
        from .optim import clip_by_norm

        clip_by_norm(self.ex.grads, n)

    def executor_like(self, size: int) -> Executor:
        """An evaluation executor of another batch size holding the same weights."""
        from .executor import Executor

        rest = Executor(self.ex.plan, size, dtype=self.ex.dtype, optimizer="sgd")
        return rest

    def copy_params_to(self, other: Any) -> None:
        other.params[...] = self.ex.params


class DeviceBuffers(HostBuffers):
    """The CUDA executor: kernels on device buffers; host staging for the batch."""

    def __init__(self, ex: Executor) -> None:
        from numba import cuda

        self.ex = ex
        self.acc = None
        self._penalty: Any = None
        # Pinned host staging: the batch is gathered and augmented here, then sent in one copy
        # per input.
        self.stage = {n: cuda.pinned_array(ex.view(n).shape, ex.view(n).dtype) for n in ex.plan.inputs}

    def params(self) -> np.ndarray:
        return self.ex.sync_params_to_host().copy()

    def set_params(self, host: np.ndarray) -> None:
        self.ex.load_params(host)

    def opt_state(self) -> np.ndarray:
        return self.ex.sync_opt_state_to_host().copy()

    def set_opt_state(self, host: np.ndarray) -> None:
        self.ex.load_opt_state(host)

    def grads(self) -> np.ndarray:
        return self.ex.sync_grads_to_host()

    def view(self, name: str) -> np.ndarray:
        return self.ex.fetch(name)

    def feed(self, ds: Dataset, idx: np.ndarray, augment: Augmenter | None, rng: Any) -> None:
        views = {}
        for name, arr in ds.arrays.items():
            if name not in self.ex.plan.inputs:
                continue
            dst = self.stage[name]
            n = len(idx)
            if arr.dtype == dst.dtype:
                np.take(arr, idx, axis=0, out=dst[:n])
            else:
                dst[:n] = arr[idx]
            views[name] = dst[:n]
        if augment is not None:
            augment(views, rng)
        for name, v in views.items():
            self.ex.view(name)[: len(v)].copy_to_device(v)

    def accumulate(self) -> None:
        from .kernels.cuda_core import copy, zero

        if self.acc is None:
            from numba import cuda

            self.acc = cuda.device_array_like(self.ex.grads)
            zero(self.acc)
        copy(self.ex.grads, self.acc, acc=True)

    def finish_accumulation(self, k: int) -> None:
        from .kernels.cuda_core import scale, zero

        scale(self.acc, self.ex.grads, 1.0 / k)
        zero(self.acc)

    def penalty(self, segs: np.ndarray, l1: float, l2: float) -> float:
        if self._penalty is None:
            from .optim import PenaltyCuda

            self._penalty = PenaltyCuda(segs, self.ex.reducer)
        return self._penalty(self.ex.params, self.ex.grads, l1, l2)

    def global_norm(self) -> float:
        from .optim import global_norm_cuda

        return global_norm_cuda(self.ex.grads, self.ex.reducer)

    def clip_value(self, v: float) -> None:
        from .optim import clip_by_value_cuda

        clip_by_value_cuda(self.ex.grads, v)

    def clip_norm(self, n: float) -> None:
        from .optim import clip_by_norm_cuda

        clip_by_norm_cuda(self.ex.grads, n, self.ex.reducer)

    def executor_like(self, size: int) -> Executor:
        from .executor_cuda import CudaExecutor

        return CudaExecutor(self.ex.plan, size, dtype=self.ex.dtype, optimizer="sgd")

    def copy_params_to(self, other: Any) -> None:
        other.params.copy_to_device(self.ex.params)


def buffers(ex: Executor) -> HostBuffers:
    """The buffer operations for ``ex``'s device (its backend makes them, once per executor)."""
    return ex.buffer_ops
