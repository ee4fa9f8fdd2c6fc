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

from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import cuda

from ..compiler.memory import ALIGN, assign_memory
from ..compiler.plan import OPTIMIZER_SLOTS, Plan
from .binding import State, Thunk
from .device import DeviceError
from .executor import step_bindings
from .init import initialize
from .kernels import kernel_module
from .kernels._cuda import Reducer, grid_1d, zero


def ops_without_cuda(plan: Plan) -> list[tuple[str, str]]:
    """(op, first module using it) for each op of the plan that has no ``bind_cuda`` yet."""
    seen: dict[str, str] = {}
    for s in plan.forward_steps:
        if s.op not in seen and not hasattr(kernel_module(s.op), "bind_cuda"):
            seen[s.op] = s.module
    return list(seen.items())


@cuda.jit
def _gather_kernel(src, index, out):
    for k in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[k] = src[index[k]]


class CudaExecutor:
    """Runs a plan on the current CUDA device at a fixed batch size."""

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
        self.dtype = np.dtype(dtype)
        fb = self.dtype.itemsize
        opt = optimizer or plan.optimizer
        self.plan = assign_memory(plan, batch, opt, float_bytes=fb)
        self.batch = batch
        led = self.plan.memory["ledger"]
        n_params = sum(p.numel for p in self.plan.params)
        n_grads = sum(p.numel for p in self.plan.params if p.trainable)
        self.host_params = np.zeros(n_params, self.dtype)  # the mirror sync_params_to_host fills
        initialize(self.plan, self.host_params, seed)
        self.params = cuda.to_device(self.host_params)
        self.grads = cuda.device_array(n_grads, self.dtype)
        self.opt_state = cuda.device_array((OPTIMIZER_SLOTS[opt], n_grads), self.dtype)
        self.arena = cuda.device_array(led["training_arena_bytes"], np.uint8)
        self.workspace = cuda.device_array(max(led["workspace_bytes"], ALIGN), np.uint8)
        # Zeroed like the CPU executor's buffers: optimizer state must start at 0, and a gradient or
        # activation nobody writes must read as 0, not as the previous tenant's bytes.
        for buf in (self.grads, self.opt_state, self.arena, self.workspace):
            zero(buf)
        self.allocated_bytes = (
            self.params.nbytes + self.grads.nbytes + self.opt_state.nbytes + self.arena.nbytes
            + (self.workspace.nbytes if led["workspace_bytes"] else 0)
        )  # fmt: skip
        self.state = State()
        self.state.seed[0] = seed
        self.reducer = Reducer()
        self._views: dict[str, Any] = {}
        self._forward: list[Thunk] = []
        self._backward: list[Thunk] = []
        self._checks: list[Thunk] = []
        self._bind()

    # -- buffers -----------------------------------------------------------
    def view(self, name: str) -> Any:
        """The device view of a tensor in the arena (batch axis first)."""
        if name in self._views:
            return self._views[name]
        t = self.plan.tensors[name]
        dt = np.dtype(np.int64) if t.dtype == "int64" else self.dtype
        off = self.plan.memory["training_offsets"][name]
        shape = (self.batch, *t.shape) if t.batched else (tuple(t.shape) or (1,))
        n = int(np.prod(shape))
        v = self.arena[off : off + n * dt.itemsize].view(dt).reshape(shape)
        self._views[name] = v
        return v

    def fetch(self, name: str) -> np.ndarray:
        """A host copy of a tensor."""
        return self.view(name).copy_to_host()

    def _param(self, name: str) -> Any:
        return next(q for q in self.plan.params if q.name == name)

    def param_view(self, name: str) -> Any:
        """The device view of a parameter in the flat buffer."""
        p = self._param(name)
        return self.params[p.offset : p.offset + p.numel].reshape(p.shape)

    def grad_view(self, name: str) -> Any:
        """The device view of a parameter's gradient (None when frozen)."""
        p = self._param(name)
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
        back = {s.module for s in self.plan.backward_steps}
        bwd_thunks: dict[str, Thunk] = {}
        for s, b in step_bindings(self.plan, self.view, self.param_view, self.grad_view, self.workspace,
                                  self.state):  # fmt: skip
            fwd, bwd = kernel_module(s.op).bind_cuda(b)
            self._forward.append(fwd)
            self._checks.extend(b.checks)
            if s.module in back:
                bwd_thunks[s.module] = bwd
        self._backward = [bwd_thunks[s.module] for s in self.plan.backward_steps]
        # Every loss is one element of the arena: gather them into one buffer, fetched in one copy.
        names = list(self.plan.losses)
        fb = self.dtype.itemsize
        self._loss_names = names
        self._loss_weights = np.array([self.plan.losses[n] for n in names], np.float64)
        index = np.array([self.plan.memory["training_offsets"][n] // fb for n in names], np.int64)
        self._loss_index = cuda.to_device(index if names else np.zeros(1, np.int64))
        self._loss_dev = cuda.device_array(max(len(names), 1), self.dtype)
        self._loss_host = np.zeros(max(len(names), 1), self.dtype)
        self._arena_f = self.arena.view(self.dtype)

    # -- running -------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.state.is_training

    @training.setter
    def training(self, on: bool) -> None:
        self.state.training[0] = int(on)

    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Copy host inputs into their device views (the only per-step upload)."""
        for name in self.plan.inputs:
            if name not in inputs:
                continue  # e.g. labels at prediction time
            dst = self.view(name)
            src = np.ascontiguousarray(inputs[name], dtype=dst.dtype)
            if src.shape != tuple(dst.shape):
                raise ValueError(f"input '{name}': expected shape {tuple(dst.shape)}, got {src.shape}")
            dst.copy_to_device(src)

    def forward(self, inputs: Mapping[str, np.ndarray] | None = None) -> None:
        if inputs is not None:
            self.set_inputs(inputs)
        for f in self._forward:
            f()

    def backward(self) -> None:
        for f in self._backward:
            f()

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
