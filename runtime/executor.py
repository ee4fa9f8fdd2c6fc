"""The plan executor: one arena, steps bound once, replayed per batch.

``Executor(plan, batch)`` allocates exactly what the plan's memory ledger
states — the flat parameter, gradient and optimizer-state buffers, the
activation arena and the shared workspace — binds every step to its kernels
and to views of those buffers once, and then replays two flat lists of
closures: forward and backward. Nothing is allocated per batch.

A plan's mode (compiler.fusion) picks the layout: a training plan gets the
training arena, an inference plan only the inference arena and no gradient or
optimizer buffers, and stays in evaluation mode. A step the fusion pass gave an
epilogue binds with ``Binding.epilogue`` set when its kernel module lists the
activation in the backend's epilogue set (``EPILOGUES_CPU``), and the fused
activation's forward then does nothing; otherwise the activation's own kernel
runs in place (its output shares the producer's buffer). An inference chain
(``Step.chain``) binds the same way, all of its activations in the kernel or
none of them (``Binding.epilogue_chain``).

Whole-step native code (CPU, ``runtime.wholestep``): where every bound thunk is a ``Launch``, the
executor generates one numba function that runs the forward launches, the backward ones, or both,
and ``forward()``, ``backward()`` and ``step()`` (forward and backward: the trainer's call) each
become one native call. With numba's cache warm the function is loaded before the first step;
cold, a separate process compiles it from the second step on while the steps run per op, and
the executor switches once it is cached. ``NETC_WHOLE_STEP=0`` turns it off, ``=sync`` compiles
it in the constructor. ``whole_step_reason`` says why a plan runs per op. ``forward_stepwise``,
``netc profile`` and histograms always replay the per-op thunks.

Cold start (``runtime.warmup``): before the first per-op step, the kernels that step will launch
and numba has not cached compile on two processes at once, this one and a worker.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numba
import numpy as np

from ..compiler.memory import ALIGN, assign_memory, folded_numel
from ..compiler.plan import OPTIMIZER_SLOTS, Plan, Step
from .binding import Binding, State, Thunk, nothing
from .init import initialize
from .kernels import _epilogue, _fold, kernel_module
from .tied import tied_pairs, with_sums_cpu

if TYPE_CHECKING:
    from .backends import Backend

# Numba's OpenMP workers busy-wait between parallel loops, starving OpenBLAS's threads;
# the workqueue layer does not. numba reads NUMBA_THREADING_LAYER only at its
# first import, which a user's script may already have done, so set the config
# itself (it counts until the first parallel kernel runs).
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def step_bindings(
    plan: Plan,
    view: Callable[[str], Any],
    param: Callable[[str], Any],
    grad: Callable[[str], Any],
    ws: Any,
    state: State,
) -> Iterator[tuple[Step, Binding]]:
    """Each forward step of ``plan`` with its Binding, built from the executor's views (``view``:
    tensor name -> arena view; ``param``/``grad``: parameter name -> view of the flat buffers).
    Shared by the CPU and CUDA executors, whose views are NumPy and device arrays."""
    back = {s.module: s for s in plan.backward_steps}
    for index, s in enumerate(plan.forward_steps):
        bs = back.get(s.module)
        short = {n: n.rsplit(".", 1)[1] for n in s.params}
        ins = [view(i) for i in s.inputs]
        y = view(s.output)
        is_loss = s.output in plan.losses
        if bs is not None and not is_loss:
            dy: Any = view(bs.grad_output)
        else:
            dy = None if is_loss else y  # placeholder: backward never runs
        yield (
            s,
            Binding(
                module=s.module,
                attrs=s.attrs,
                x=ins,
                y=y,
                p={short[n]: param(n) for n in s.params},
                dp={short[n]: (grad(n) if bs is not None else None) for n in s.params},
                saved={n.split(":", 1)[1]: view(n) for n in s.saved},
                dy=dy,
                dx=[view(g) if g else None for g in bs.grad_inputs] if bs else [None] * len(ins),
                acc=list(bs.accumulate) if bs else [False] * len(ins),
                ws=ws,
                state=state,
                weight=s.weight,
                index=index,
            ),
        )


def _aligned(nbytes: int) -> np.ndarray:
    """Zeroed uint8 buffer of exactly ``nbytes`` whose start is ALIGN-aligned."""
    raw = np.zeros(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + nbytes]


class PlanRunner:
    """What every executor shares: the arena views of the plan's tensors, the
    bound step lists, training mode and the replay. Subclasses allocate the
    buffers (host or device), bind the kernels and copy inputs in."""

    #: the backend this executor belongs to (``netc.runtime.backends``)
    backend_name: ClassVar[str]
    plan: Plan
    batch: int
    dtype: np.dtype
    arena: Any
    state: State
    _views: dict[str, Any]
    _forward: list[Thunk]
    _backward: list[Thunk]
    n_tied: int
    tied_grads: Any
    #: the last backward thunk followed by the tied gradients' sums (``runtime.tied``)
    _with_tied_sums: Callable[[Thunk, list[tuple[Any, Any, bool]]], Thunk]

    def _setup(self, plan: Plan, batch: int, dtype: Any, optimizer: str | None) -> tuple[int, int, int]:
        """Plan the memory; returns (parameter count, gradient count, optimizer slots)."""
        self.dtype = np.dtype(dtype)
        opt = optimizer or plan.optimizer
        self.plan = assign_memory(plan, batch, opt, float_bytes=self.dtype.itemsize)
        self.batch = batch
        self.inference = self.plan.mode == "inference"
        self._offsets = self.plan.memory["inference_offsets" if self.inference else "training_offsets"]
        self.state = State()
        self.state.training[0] = int(not self.inference)
        self._views, self._forward, self._backward = {}, [], []
        self._buffer_ops: Any = None
        self._stepwise: list[Thunk] | None = None
        self._refold: list[Thunk] = []  # inference plans: refold batchnorm into weights
        self._refold_views: list[tuple[Any, Any]] = []
        self._fused_in_kernel: set[str] = set()
        n_params = sum(p.numel for p in self.plan.params)
        n_grads = 0 if self.inference else sum(p.numel for p in self.plan.params if p.trainable)
        self.n_tied = 0 if self.inference else self.plan.tied_grad_elements  # runtime.tied
        return n_params, n_grads, OPTIMIZER_SLOTS[opt]

    @property
    def arena_bytes(self) -> int:
        """The arena the plan's mode needs (ledger)."""
        return self.plan.memory["ledger"][
            "inference_arena_bytes" if self.inference else "training_arena_bytes"
        ]

    def _count_allocated(self) -> None:
        led = self.plan.memory["ledger"]
        self.allocated_bytes = (
            self.params.nbytes + self.grads.nbytes + self.opt_state.nbytes + self.arena.nbytes
            + self.folded.nbytes + self.tied_grads.nbytes
            + (self.workspace.nbytes if led["workspace_bytes"] else 0)
        )  # fmt: skip

    def view(self, name: str) -> Any:
        """The arena view of a tensor (batch axis first)."""
        if name in self._views:
            return self._views[name]
        t = self.plan.tensors[name]
        dt = np.dtype(np.int64) if t.dtype == "int64" else self.dtype
        off = self._offsets[name]
        shape = (self.batch, *t.shape) if t.batched else (tuple(t.shape) or (1,))
        n = int(np.prod(shape))
        v = self.arena[off : off + n * dt.itemsize].view(dt).reshape(shape)
        self._views[name] = v
        return v

    @property
    def backend(self) -> Backend:
        from .backends import get

        return get(self.backend_name)

    @property
    def buffer_ops(self) -> Any:
        """The trainer's operations on this executor's buffers (made once)."""
        if self._buffer_ops is None:
            self._buffer_ops = self.backend.buffers(self)
        return self._buffer_ops

    def _bind_with(self, param: Any, grad: Any) -> list[Any]:
        """Bind every step through the kernel modules' binder for this backend; returns the
        bindings."""
        backend = self.backend
        bind = backend.bind_attr
        back = {s.module for s in self.plan.backward_steps}
        ops = {s.module: s.op for s in self.plan.forward_steps}
        attrs = {s.module: s.attrs for s in self.plan.forward_steps}
        in_kernel = set()  # activations their producer's kernel applies
        folded = {s.fold for s in self.plan.forward_steps if s.fold}  # batchnorms that never run
        blas_threads = not any(getattr(kernel_module(op), "PARALLEL_CPU", False) for op in set(ops.values()))
        bwd_thunks: dict[str, Thunk] = {}
        bindings = []
        for s, b in step_bindings(self.plan, self.view, param, grad, self.workspace, self.state):
            fused = [s.epilogue, *s.chain] if s.epilogue else []
            if fused and all(ops[a] in backend.epilogues(s.op) for a in fused):
                b.epilogue, b.epilogue_attrs = ops[s.epilogue], attrs[s.epilogue]
                b.epilogue_chain = [(ops[a], attrs[a]) for a in s.chain]
                in_kernel.update(fused)
            if s.fold:
                b.p = self._bind_fold(s, b.p, param)
            b.blas_threads = blas_threads
            if s.module in folded:  # never runs: its producer computes on the folded weights
                fwd = bwd = nothing
            else:
                fwd, bwd = getattr(kernel_module(s.op), bind)(b)
            if b.epilogue is not None and s.op in _epilogue.EPILOGUES_CPU:
                # an activation heading a chain (set only where its module lists the chain: CPU)
                fwd = _epilogue.bind_head(b, s.op)
            self._forward.append(nothing if s.module in in_kernel else fwd)
            bindings.append(b)
            if s.module in back:
                bwd_thunks[s.module] = bwd
        self._backward = [bwd_thunks[s.module] for s in self.plan.backward_steps]
        if self._backward and self.n_tied:  # shared parameters: sum the users' gradients last
            pairs = tied_pairs(self.plan, self.grads, self.tied_grads)
            self._backward[-1] = self._with_tied_sums(self._backward[-1], pairs)
        self._bindings, self._fused_in_kernel = bindings, in_kernel
        return bindings

    def _bind_fold(self, s: Step, p: dict[str, Any], param: Any) -> dict[str, Any]:
        """The folded weight and bias a step runs on (compiler.fusion's fold), carved from
        ``self.folded`` in step order, with the thunk that refolds them (``self._refold``)."""
        bn = next(b for b in self.plan.forward_steps if b.module == s.fold)
        w = p["w"]
        off = sum(wo.size + bo.size for wo, bo in self._refold_views)  # after the earlier folds
        w_out = self.folded[off : off + w.size].reshape(w.shape)
        b_out = self.folded[off + w.size : off + w.size + w.shape[0]]
        self._refold_views.append((w_out, b_out))
        bn_p = {n.rsplit(".", 1)[1]: param(n) for n in bn.params}
        fold = getattr(_fold, self.backend.bind_attr)
        self._refold.append(fold(p, bn_p, bn.attrs["eps"], w_out, b_out, self.folded[:0]))
        return {"w": w_out, "b": b_out}

    # -- running -------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.state.is_training

    @training.setter
    def training(self, on: bool) -> None:
        if on and self.inference:
            raise ValueError(f"plan '{self.plan.name}' is an inference plan: it cannot train")
        self.state.training[0] = int(on)

    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        for name in self.plan.inputs:
            if name not in inputs:
                continue  # e.g. labels at prediction time
            dst = self.view(name)
            src = np.asarray(inputs[name])
            if src.shape != tuple(dst.shape):
                raise ValueError(f"input '{name}': expected shape {tuple(dst.shape)}, got {src.shape}")
            self._copy_in(dst, src)

    def _copy_in(self, dst: Any, src: np.ndarray) -> None:
        dst[...] = src

    def forward(self, inputs: Mapping[str, np.ndarray] | None = None) -> None:
        if inputs is not None:
            self.set_inputs(inputs)
        for f in self._refold:
            f()
        for f in self._forward:
            f()

    def backward(self) -> None:
        for f in self._backward:
            f()

    def step(self, inputs: Mapping[str, np.ndarray] | None = None, update: Any = None) -> bool:
        """A training step's forward and backward passes, then ``update.step()`` (an
        ``Optimizer``) when the weighted total loss is finite; whether that update ran. One native
        call where the CPU executor's whole-step function is ready, the update included."""
        self.forward(inputs)
        self.backward()
        return self._update(update)

    def _update(self, update: Any) -> bool:
        if update is None or not math.isfinite(self.loss()):
            return False
        update.step()
        return True

    def forward_stepwise(self) -> Iterator[Step]:
        """The forward pass one step at a time: a step's output is current when the step is
        yielded. (After the whole pass it may not be: the arena gives a tensor's memory to
        another once its last reader has run.) Fused steps run apart here, so a producer's output
        is seen before its activation overwrites it in place (the unfused thunks are bound on the
        first call)."""
        if self._stepwise is None:
            bind = self.backend.bind_attr
            self._stepwise = [
                getattr(kernel_module(s.op), bind)(replace(b, epilogue=None, epilogue_chain=[]))[0]
                if s.epilogue in self._fused_in_kernel or s.module in self._fused_in_kernel
                else f
                for s, b, f in zip(self.plan.forward_steps, self._bindings, self._forward, strict=True)
            ]
        for f in self._refold:
            f()
        for s, f in zip(self.plan.forward_steps, self._stepwise, strict=True):
            f()
            yield s


class Executor(PlanRunner):
    """Runs a plan on the CPU at a fixed batch size."""

    backend_name = "cpu"
    #: ``step(update=...)`` runs the update inside the step's native call (elsewhere it is a
    #: separate ``update.step()``, which gains a caller nothing over its own call).
    fuses_update = True

    def __init__(
        self,
        plan: Plan,
        batch: int,
        *,
        dtype: Any = np.float32,
        seed: int = 0,
        optimizer: str | None = None,
    ) -> None:
        n_params, n_grads, slots = self._setup(plan, batch, dtype, optimizer)
        self._opt_kind = optimizer or plan.optimizer
        led = self.plan.memory["ledger"]
        self.params = np.zeros(n_params, self.dtype)
        self.grads = np.zeros(n_grads, self.dtype)
        self.tied_grads = np.zeros(self.n_tied, self.dtype)  # each use of a shared parameter
        self.opt_state = np.zeros((slots, n_grads), self.dtype)
        self.arena = _aligned(self.arena_bytes)
        self.workspace = _aligned(max(led["workspace_bytes"], ALIGN))
        self.folded = np.zeros(folded_numel(self.plan), self.dtype)
        self._count_allocated()
        self.state.seed[0] = seed
        initialize(self.plan, self.params, seed)
        self._bind_with(self.param, self.grad)
        self._losses = [(self.view(n), w) for n, w in self.plan.losses.items()]
        self._whole_setup()

    # -- whole-step native code (runtime.wholestep) ------------------------------
    def _whole_setup(self) -> None:
        """Generate the plan's step function, and load it when numba's cache holds it (or
        compile it now under NETC_WHOLE_STEP=sync); otherwise a process compiles it into the cache
        from the second step on, once the per-op path has compiled or loaded every kernel, and
        the executor loads it when that is done (``wholestep.Loader``)."""
        self._whole_refused: str | None = None
        self._loader = self._whole_loader(None)
        self._upd: tuple[Any, Any] | None = None  # (optimizer, its step function's loader)
        self._applied = np.zeros(1, np.int64)  # whether the update variant's update ran
        self._warmed = False  # whether the per-op kernels were compiled before a first step (_warm)
        self.warmed: Any = None  # what that did (``warmup.Warmed``), None when nothing was shared

    def _whole_loader(self, update: Any) -> Any:
        """The loader of the step function (with ``update``, a ``wholestep.Update``), or None
        with ``_whole_refused`` saying why."""
        from . import wholestep

        mode = os.environ.get("NETC_WHOLE_STEP", "1").strip().lower()
        if mode in ("0", "off", "false", "no"):
            self._whole_refused = "disabled (NETC_WHOLE_STEP=0)"
            return None
        bases = {name: getattr(self, name).reshape(-1).view(np.uint8) for name in wholestep.BASES}
        state = {"training": self.state.training, "seed": self.state.seed}
        names = (
            [*(f"refold {s.fold}" for s in self.plan.forward_steps if s.fold)]
            + [s.module for s in self.plan.forward_steps],
            [s.module for s in self.plan.backward_steps],
        )
        try:
            fwd = [*self._refold, *self._forward]
            gen = wholestep.generate(fwd, self._backward, names, bases, state, update)
        except wholestep.Refused as e:
            self._whole_refused = str(e)
            return None
        return wholestep.Loader(wholestep.WholeStep(gen, bases, state), mode == "sync")

    @property
    def _whole(self) -> Any:
        """The plan's step function (forward, backward) once ready, else None."""
        return self._loader.ready if self._loader is not None else None

    @property
    def whole_step_reason(self) -> str | None:
        """Why the plan runs per op (None when its step function is ready)."""
        return self._whole_refused if self._loader is None else self._loader.reason

    def _whole_ready(self) -> Any:
        return self._loader.poll() if self._loader is not None else None

    def wait_whole_step(self, timeout: float | None = None) -> bool:
        """Start the step function's compile if it has not started, wait for it and load it;
        whether it is ready."""
        return self._loader is not None and self._loader.wait(timeout)

    def _update_ready(self, opt: Any) -> Any:
        """The step function that also runs ``opt``'s update, once ready (one per optimizer: its
        source names the family's kernel; the step's scalars travel in ``opt.hyper``)."""
        if self._upd is None or self._upd[0] is not opt:
            from .wholestep import Update  # here: an import statement costs ~0.5 µs a step

            launch = getattr(opt, "cpu_launch", None)
            up = Update(launch(), self._losses, self._applied) if launch is not None else None
            self._upd = (opt, self._whole_loader(up) if up is not None else None)
        loader = self._upd[1]
        return loader.poll() if loader is not None else None

    def _warm(self, update: Any = None) -> None:
        """Before the first per-op step: the kernels it will launch that numba has neither
        compiled nor cached, compiled here and by a worker process at once (``runtime.warmup``);
        with ``update``, its optimizer's kernel too."""
        if self._warmed:
            return
        self._warmed = True
        from .warmup import warm

        backward = [] if self.inference else [*self._backward, self._update_launch(update)]
        self.warmed = warm([*self._refold, *self._forward, *backward])

    def _update_launch(self, update: Any) -> Any:
        """``update``'s CPU launch; without one, that of the optimizer the plan was laid out for
        with its default hyperparameters (a caller that runs ``opt.step()`` after the step most
        likely has one of that kind: its kernel and argument types do not depend on the values)."""
        from .optim import Optimizer, segments

        if update is None:
            try:
                update = Optimizer(self._opt_kind, self.params, self.grads, segments(self.plan),
                                   state=self.opt_state)  # fmt: skip
            except Exception:  # a kind the CPU optimizers do not know: nothing to warm
                return nothing
        launch = getattr(update, "cpu_launch", None)
        return launch() if launch is not None else nothing

    def forward(self, inputs: Mapping[str, np.ndarray] | None = None) -> None:
        whole = self._whole_ready()
        if whole is None:
            self._warm()
            return super().forward(inputs)
        if inputs is not None:
            self.set_inputs(inputs)
        whole(True, False)

    def backward(self) -> None:
        whole = self._whole
        if whole is None:
            return super().backward()
        whole(False, True)

    def step(self, inputs: Mapping[str, np.ndarray] | None = None, update: Any = None) -> bool:
        if update is not None and (whole := self._update_ready(update)) is not None:
            if inputs is not None:
                self.set_inputs(inputs)
            update.load_hyper(update.t + 1)
            whole(True, True)  # forward, backward, and the update where the loss is finite
            if self._applied[0] == 0:
                return False
            update.t += 1
            return True
        # With an update, the function without it is not compiled for this (only used if ready).
        whole = self._whole_ready() if update is None else self._whole
        if whole is None:
            self._warm(update)
            super().forward(inputs)
            super().backward()
            return self._update(update)
        if inputs is not None:
            self.set_inputs(inputs)
        whole(True, True)
        return self._update(update)

    _with_tied_sums = staticmethod(with_sums_cpu)

    def param(self, name: str) -> np.ndarray:
        """A parameter's view (a tied name gives its owner's)."""
        p = self.plan.param_info(name)
        return self.params[p.offset : p.offset + p.numel].reshape(p.shape)

    def grad(self, name: str) -> np.ndarray | None:
        """A parameter's gradient; a tied name gives its own use's slot (``runtime.tied``)."""
        p, t = self.plan.param_info(name), self.plan.tie(name)
        if t is not None:
            if t.grad_offset is None or not self.n_tied:
                return None
            return self.tied_grads[t.grad_offset : t.grad_offset + t.numel].reshape(p.shape)
        if p.grad_offset is None:
            return None
        return self.grads[p.grad_offset : p.grad_offset + p.numel].reshape(p.shape)

    def parameters(self) -> dict[str, np.ndarray]:
        """Parameter name -> view into the flat buffer (writes go through)."""
        return {p.name: self.param(p.name) for p in self.plan.params}

    def loss(self) -> float:
        """The weighted total of all losses of the last forward pass."""
        return float(sum(w * float(v[0]) for v, w in self._losses))

    def losses(self) -> dict[str, float]:
        return {n: float(self.view(n)[0]) for n in self.plan.losses}

    def outputs(self) -> dict[str, np.ndarray]:
        return {n: self.view(n).copy() for n in self.plan.outputs}
