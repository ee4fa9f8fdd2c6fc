"""The plan executor on a CUDA GPU: the CPU executor's design, with every buffer on the device.

``CudaExecutor(plan, batch)`` allocates on the device exactly what the plan's memory ledger states
(the same bytes as the CPU ``Executor``): the flat parameter, gradient and optimizer-state buffers,
the activation arena and the shared workspace. It binds every step once through the op's
``bind_cuda`` (``runtime/kernels/<op>.py``, docs/cuda.md) to device views of those buffers, then
replays the forward and backward closures per batch. Per step the host sends only the inputs
(``set_inputs``) and fetches only what it asks for: ``loss()``/``losses()`` gather every loss into
one small device buffer and copy it back in one transfer.

Parameters start identical to the CPU executor's (initialized on the host with the same seed,
then copied). ``param``/``grad``/``parameters`` return host copies; ``sync_params_to_host`` and
``load_params`` (and the ``opt_state`` pair) move whole flat buffers, for checkpoints.

Device memory outside the ledger, as on the CPU (whose kernels keep small bind-time scratch too):
the loss gather buffer, ``reducer`` (2 KiB of partials for global norms and metrics) and the
per-step scratch some kernels allocate once at bind time (cross_entropy's per-row losses).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from ..compiler.memory import ALIGN, folded_numel
from ..compiler.plan import Plan
from .backends.base import DeviceError
from .binding import Thunk
from .executor import PlanRunner
from .init import initialize
from .kernels.cuda_core import Reducer, grid_1d, zero
from .tied import with_sums_cuda


def ops_without_cuda(plan: Plan) -> list[tuple[str, str]]:
    """(op, module) of every step whose op has no CUDA kernels yet."""
    from .backends import get

    return get("cuda").missing_kernels(plan)


@cuda.jit
def _gather_kernel(src, index, out):
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[k] = src[index[k]]


class CudaExecutor(PlanRunner):
    """Runs a plan on the current CUDA device at a fixed batch size."""

    backend_name = "cuda"

    def __init__(
        self,
        plan: Plan,
        batch: int,
        *,
        dtype: Any = np.float32,
        seed: int = 0,
        optimizer: str | None = None,
    ) -> None:
        missing = ops_without_cuda(plan)
        if missing:
            op, module = missing[0]
            more = f" (and {', '.join(repr(o) for o, _ in missing[1:])})" if len(missing) > 1 else ""
            raise DeviceError(
                f"op '{op}' has no CUDA kernels yet (module '{module}'){more}; use --device cpu"
            )
        n_params, n_grads, slots = self._setup(plan, batch, dtype, optimizer)
        led = self.plan.memory["ledger"]
        self.host_params = np.zeros(n_params, self.dtype)  # the mirror sync_params_to_host fills
        initialize(self.plan, self.host_params, seed)
        self.params = cuda.to_device(self.host_params)
        self.grads = cuda.device_array(n_grads, self.dtype)
        self.tied_grads = cuda.device_array(self.n_tied, self.dtype)  # each use of a shared parameter
        self.opt_state = cuda.device_array((slots, n_grads), self.dtype)
        self.arena = cuda.device_array(self.arena_bytes, np.uint8)
        self.workspace = cuda.device_array(max(led["workspace_bytes"], ALIGN), np.uint8)
        self.folded = cuda.device_array(folded_numel(self.plan), self.dtype)
        # Zeroed like the CPU executor's buffers: optimizer state must start at 0, and a gradient or
        # activation nobody writes must read as 0, not as the previous tenant's bytes.
        for buf in (self.grads, self.tied_grads, self.opt_state, self.arena, self.workspace):
            zero(buf)
        self._count_allocated()
        self.state.seed[0] = seed
        self.reducer = Reducer()
        self._checks: list[Thunk] = []
        self._bind()

    # -- buffers -----------------------------------------------------------
    def fetch(self, name: str) -> np.ndarray:
        """A host copy of a tensor."""
        return self.view(name).copy_to_host()

    _with_tied_sums = staticmethod(with_sums_cuda)

    def param_view(self, name: str) -> Any:
        """The device view of a parameter in the flat buffer (a tied name gives its owner's)."""
        p = self.plan.param_info(name)
        return self.params[p.offset : p.offset + p.numel].reshape(p.shape)

    def grad_view(self, name: str) -> Any:
        """The device view of a parameter's gradient (None when frozen); a tied name gives its own
        use's slot (``runtime.tied``)."""
        p, t = self.plan.param_info(name), self.plan.tie(name)
        if t is not None:
            if t.grad_offset is None or not self.n_tied:
                return None
            return self.tied_grads[t.grad_offset : t.grad_offset + t.numel].reshape(p.shape)
        if p.grad_offset is None:
            return None
        return self.grads[p.grad_offset : p.grad_offset + p.numel].reshape(p.shape)

    def param(self, name: str) -> np.ndarray:
        """A host copy of a parameter."""
        return self.param_view(name).copy_to_host()

    def grad(self, name: str) -> np.ndarray | None:
        """A host copy of a parameter's gradient (None when frozen)."""
        g = self.grad_view(name)
        return None if g is None else g.copy_to_host()

    def parameters(self) -> dict[str, np.ndarray]:
        """Parameter name -> host copy (writing into it changes nothing: use ``load_params``)."""
        h = self.sync_params_to_host()
        return {p.name: h[p.offset : p.offset + p.numel].reshape(p.shape).copy() for p in self.plan.params}

    def sync_params_to_host(self) -> np.ndarray:
        """Copy the flat device parameters into ``host_params`` and return it."""
        self.params.copy_to_host(self.host_params)
        return self.host_params

    def load_params(self, host: np.ndarray) -> None:
        """Replace every parameter from a flat host array (a checkpoint, the best epoch's weights)."""
        self.params.copy_to_device(self._flat_host(host, self.params.shape, "parameters"))

    def sync_opt_state_to_host(self) -> np.ndarray:
        """A host copy of the optimizer state (slots, grads)."""
        return self.opt_state.copy_to_host()

    def load_opt_state(self, host: np.ndarray) -> None:
        self.opt_state.copy_to_device(self._flat_host(host, self.opt_state.shape, "optimizer state"))

    def sync_grads_to_host(self) -> np.ndarray:
        """A host copy of the flat gradient buffer."""
        return self.grads.copy_to_host()

    def _flat_host(self, host: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
        a = np.ascontiguousarray(host, dtype=self.dtype)
        if a.shape != tuple(shape):
            raise ValueError(f"{what}: expected shape {tuple(shape)}, got {a.shape}")
        return a

    # -- binding -------------------------------------------------------------
    def _bind(self) -> None:
        for b in self._bind_with(self.param_view, self.grad_view):
            self._checks.extend(b.checks)
        # Every loss is one element of the arena: gather them into one buffer, fetched in one copy.
        names = list(self.plan.losses)
        fb = self.dtype.itemsize
        self._loss_names = names
        self._loss_weights = np.array([self.plan.losses[n] for n in names], np.float64)
        index = np.array([self._offsets[n] // fb for n in names], np.int64)
        self._loss_index = cuda.to_device(index if names else np.zeros(1, np.int64))
        self._loss_dev = cuda.device_array(max(len(names), 1), self.dtype)
        self._loss_host = np.zeros(max(len(names), 1), self.dtype)
        self._arena_f = self.arena.view(self.dtype)

    # -- running -------------------------------------------------------------
    def _copy_in(self, dst: Any, src: np.ndarray) -> None:
        # the only per-step upload
        dst.copy_to_device(np.ascontiguousarray(src, dtype=dst.dtype))

    def synchronize(self) -> None:
        """Wait for every queued kernel (for timing; copies to the host wait anyway)."""
        cuda.synchronize()

    def check(self) -> None:
        """Run the host-side input checks of the kernels (bad labels or ids raise ValueError)."""
        for c in self._checks:
            c()

    def _fetch_losses(self) -> np.ndarray:
        n = len(self._loss_names)
        if n:
            blocks, threads = grid_1d(n)
            _gather_kernel[blocks, threads](self._arena_f, self._loss_index, self._loss_dev)
            self._loss_dev.copy_to_host(self._loss_host)
            if not np.isfinite(self._loss_host[:n]).all():
                self.check()  # a NaN may be a kernel's sign of a bad label: say which
        return self._loss_host[:n]

    def loss(self) -> float:
        """The weighted total of all losses of the last forward pass."""
        v = self._fetch_losses()
        return float(sum(w * float(x) for x, w in zip(v, self._loss_weights, strict=True)))

    def losses(self) -> dict[str, float]:
        v = self._fetch_losses()
        return {n: float(x) for n, x in zip(self._loss_names, v, strict=True)}

    def outputs(self) -> dict[str, np.ndarray]:
        return {n: self.fetch(n) for n in self.plan.outputs}
