"""The contract between the executor and an op's kernels.

The executor builds one :class:`Binding` per module, once: views of the arena
for the module's inputs, output, saved tensors and gradients, and views of
the flat parameter and gradient buffers. A kernel module's ``bind_cpu(b)``
returns two thunks, forward and backward, that call the jitted kernels on
those prebound arrays; the executor replays them per batch, so nothing is
allocated or looked up in the hot loop. On the CPU the thunks are data
(``runtime.launch``: ``Launch(kernel, *args)``, ``Seq``, or ``nothing``), not
closures, so that ``runtime.wholestep`` can compile a plan's whole step into
one numba function that calls the same kernels on the same arrays.

Arrays carry the batch axis first: an input of per-sample shape [C, H, W] is
an array [N, C, H, W].

The CUDA executor builds the same Binding with numba device arrays in place of
the NumPy arrays (same shapes and dtypes, views of the device arena and flat
buffers) and calls the kernel module's ``bind_cuda(b)``; ``state`` stays on
the host and the closures read it at call time (docs/cuda.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Thunk = Callable[[], None]


@dataclass
class State:
    """Mutable per-executor state that kernels read at call time (never
    rebinding): training mode, and a counter that seeds random kernels so a
    run is reproducible from (seed, step)."""

    training: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    seed: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # advanced per step

    @property
    def is_training(self) -> bool:
        return bool(self.training[0])


@dataclass
class Binding:
    module: str
    attrs: dict[str, Any]
    x: list[np.ndarray]  # inputs
    y: np.ndarray  # output
    p: dict[str, np.ndarray]  # parameters by short name ("w", "b", "running_mean", ...)
    dp: dict[str, np.ndarray | None]  # their gradients; None for frozen ones
    saved: dict[str, np.ndarray]  # extra saved tensors by short name ("mask", "argmax", ...)
    dy: np.ndarray | None  # gradient of the output (None for losses: their seed is `weight`)
    dx: list[np.ndarray | None]  # gradients to write for each input, None = not needed
    acc: list[bool]  # add into dx[i] instead of overwriting
    ws: np.ndarray  # workspace, uint8, shared by all steps
    state: State
    weight: float = 1.0  # losses: weight in the total loss
    index: int = 0  # the module's position in the plan (distinct random streams)
    # An activation the fusion pass fused into this step (its op name, e.g. "tanh"): the forward
    # kernel leaves act(output) in y. The activation's own step does not run forward; its output
    # shares y's memory and its backward runs as usual (it reads only that output). Kernels that
    # do not apply it themselves are followed by the activation's kernel in place (the executor).
    epilogue: str | None = None
    epilogue_attrs: dict[str, Any] = field(default_factory=dict)  # that activation's attributes
    # (inference) the activations chained after it, (op, attributes) in order: the kernel applies
    # them too, in the same loop over y (``_epilogue.code``)
    epilogue_chain: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Whether BLAS may use its own threads (CPU): true when no kernel of the plan runs numba's
    # parallel loops over samples (conv2d, pools: ``PARALLEL_CPU``). OpenBLAS's threads spin-wait
    # after each GEMM; a numba-parallel kernel right after them finds no free core (LeNet-5 at
    # batch 256: 17.0k samples/s with one BLAS thread, 12.2k with two), while a GEMM-only MLP is
    # 1.4-1.8x faster with them (119.6k against 86.8k at batch 64). The executor decides per plan.
    blas_threads: bool = False
    # Host-side validations a device kernel cannot raise cheaply (bad labels, ids): each raises a
    # ValueError naming the module. The CUDA executor runs them when a loss comes back non-finite.
    checks: list[Callable[[], None]] = field(default_factory=list)

    def workspace(self, dtype: Any, n: int) -> Any:
        """The first n elements of the workspace as ``dtype`` (call in bind, not in the hot loop).
        A NumPy array on the CPU, a device array under ``bind_cuda`` (both slice and view alike)."""
        return self.ws[: n * np.dtype(dtype).itemsize].view(dtype)


def nothing() -> None:
    """A backward for steps that have none to do."""
