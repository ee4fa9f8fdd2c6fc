"""Run one op's kernels outside any plan, for parity and gradient tests.

``OpRun`` builds a Binding straight from the op contract: inputs given as
arrays with the batch axis, parameters given or random, the output gradient
given or random. PyTorch twins in the parity tests use the same arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from netc.compiler.ops import OPS
from netc.compiler.ops.base import TensorType
from netc.runtime.binding import Binding, State
from netc.runtime.kernels import kernel_module

#: The repository root (REPO), and the examples small enough to run whole in every executor test (the
#: ImageNet-sized ones allocate hundreds of MB).
REPO = Path(__file__).resolve().parents[2]
SMALL_EXAMPLES = ["xor_mlp", "iris_mlp", "digits_mlp", "lenet5", "multitask", "transformer_encoder",
                  "vit_tiny", "resnet_mini", "unet_mnist"]  # fmt: skip

# Which ops the kernel tests ran in float32 (parity with torch) and through a
# finite-difference gradcheck; tests/runtime/conftest.py checks coverage.
RAN_FLOAT32: set[str] = set()
GRADCHECKED: set[str] = set()


class OpRun:
    def __init__(
        self,
        op: str,
        attrs: dict[str, Any],
        inputs: list[np.ndarray],
        params: dict[str, np.ndarray] | None = None,
        dy: np.ndarray | None = None,
        training: bool = True,
        seed: int = 0,
        dtype: Any = np.float32,
        need_dx: list[bool] | None = None,
        weight: float = 1.0,
        batch: int = 2,
    ) -> None:
        contract = OPS[op]
        self.op = op
        if np.dtype(dtype) == np.float32:
            RAN_FLOAT32.add(op)
        self.contract = contract
        self.attrs = contract.fill_defaults(attrs)
        rng = np.random.default_rng(seed)
        n = inputs[0].shape[0] if inputs else batch  # ``batch``: an op with no inputs (constant)
        types = [
            TensorType(tuple(a.shape[1:]), "int64" if a.dtype == np.int64 else "float32") for a in inputs
        ]
        out = contract.shape(self.attrs, types)
        self.x = [a if a.dtype == np.int64 else np.ascontiguousarray(a, dtype=dtype) for a in inputs]
        shape = (n, *out.shape) if out.batched else out.shape
        self.y = np.zeros(shape if shape else (1,), np.int64 if out.dtype == "int64" else dtype)
        self.params = {}
        for p in contract.params(self.attrs, types):
            given = (params or {}).get(p.name)
            if given is not None:
                arr = given
            elif p.name == "running_var":  # a variance must be positive
                arr = rng.uniform(0.5, 1.5, p.shape)
            else:
                arr = rng.standard_normal(p.shape) * 0.5 + (1.0 if p.init == "ones" else 0)
            self.params[p.name] = np.ascontiguousarray(arr, dtype=dtype)
        self.dp = {
            p.name: np.zeros(p.shape, dtype) if p.trainable else None
            for p in contract.params(self.attrs, types)
        }
        self.saved = {
            s.name: np.zeros(
                (n, *s.shape) if s.batched else s.shape, np.int64 if s.dtype == "int64" else dtype
            )
            for s in contract.saved(self.attrs, types, out)
        }
        if contract.is_loss:
            self.dy = None
        else:
            self.dy = np.ascontiguousarray(
                dy if dy is not None else rng.standard_normal(self.y.shape), dtype=dtype
            )
        masks = contract.mask_inputs(self.attrs, len(types))
        need = need_dx or [
            t.dtype != "int64" and i not in contract.int_inputs and i not in masks
            for i, t in enumerate(types)
        ]
        self.dx = [np.zeros_like(a) if need[i] else None for i, a in enumerate(self.x)]
        ws = contract.workspace(self.attrs, types, out, n) * np.dtype(dtype).itemsize // 4
        self.state = State()
        self.state.training[0] = int(training)
        self.state.seed[0] = seed
        self.binding = Binding(
            op,
            self.attrs,
            self.x,
            self.y,
            self.params,
            self.dp,
            self.saved,
            self.dy,
            self.dx,
            [False] * len(inputs),
            np.zeros(max(ws, 64), np.uint8),
            self.state,
            weight,
        )
        self.forward, self.backward = kernel_module(op).bind_cpu(self.binding)

    def run(self) -> OpRun:
        self.forward()
        self.backward()
        return self


def t(a: np.ndarray, grad: bool = False) -> Any:
    """``a`` as a torch tensor (the parity tests' twins)."""
    import torch  # here: the CUDA tests import this module and need no torch

    return torch.tensor(a, requires_grad=grad)


def close(got: np.ndarray, want: Any, what: str, atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """``got`` equals ``want`` (a NumPy array or a torch tensor) within the float32 parity tolerance."""
    want = want.detach().numpy() if hasattr(want, "detach") else want
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def rebind(run: OpRun) -> None:
    """Bind again after editing run.binding (acc flags)."""
    run.forward, run.backward = kernel_module(run.binding.module).bind_cpu(run.binding)


def rand(shape: tuple[int, ...], seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def numeric_grad(f, x: np.ndarray, idx: list[tuple[int, ...]], eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar f() w.r.t. x at the given indices."""
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        out[k] = (fp - fm) / (2 * eps)
    return out


def gradcheck(
    run: OpRun, samples: int = 12, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7
) -> None:
    """Finite-difference check (float64) of every input and parameter gradient
    of an OpRun: the scalar is sum(y * dy) (or the loss itself)."""
    rng = np.random.default_rng(1)
    GRADCHECKED.add(run.op)

    def scalar() -> float:
        run.forward()
        return float(run.y.sum() if run.dy is None else (run.y * run.dy).sum())

    run.forward()
    run.backward()
    targets = [(f"dx{i}", run.x[i], run.dx[i]) for i in range(len(run.x)) if run.dx[i] is not None]
    targets += [(f"d{k}", run.params[k], g) for k, g in run.dp.items() if g is not None]
    for name, arr, grad in targets:
        analytic = grad.copy()
        flat = [
            np.unravel_index(j, arr.shape)
            for j in rng.choice(arr.size, min(samples, arr.size), replace=False)
        ]
        num = numeric_grad(scalar, arr, flat, eps)
        ana = np.array([analytic[i] for i in flat])
        np.testing.assert_allclose(ana, num, rtol=rtol, atol=atol, err_msg=name)


def check_fused_epilogue(
    op: str,
    attrs: dict[str, Any],
    x: np.ndarray | list[np.ndarray],
    act: str,
    dtype: Any = np.float32,
    act_attrs: dict[str, Any] | None = None,
    training: bool = True,
) -> None:
    """A forward with ``act`` (attributes ``act_attrs``) fused as its epilogue (Binding.epilogue)
    leaves in y exactly, bit for bit, what the plain forward followed by the activation's own
    kernel gives. ``x``: the input, or the list of inputs."""
    xs = x if isinstance(x, list) else [x]
    plain = OpRun(op, attrs, xs, dtype=dtype, training=training)
    fused = OpRun(op, attrs, xs, dtype=dtype, training=training)  # same seed: same parameters
    assert act in kernel_module(op).EPILOGUES_CPU
    fused.binding.epilogue = act
    fused.binding.epilogue_attrs = OPS[act].fill_defaults(act_attrs or {})
    fused.forward, fused.backward = kernel_module(op).bind_cpu(fused.binding)
    plain.forward()
    fused.forward()
    want = np.empty_like(plain.y)
    a = OpRun(act, act_attrs or {}, [plain.y], dtype=dtype)
    a.binding.y = want
    kernel_module(act).bind_cpu(a.binding)[0]()  # the activation's own kernel
    assert not np.array_equal(plain.y, want)  # the activation did change the output
    bits = np.uint32 if np.dtype(dtype) == np.float32 else np.uint64
    np.testing.assert_array_equal(fused.y.view(bits), want.view(bits))


#: A three-feature, four-class tanh MLP with a training section (trainer tests).
TINY_MLP = """
netc: 1
name: mlp
inputs:
  x: {shape: [3]}
  label: {shape: [], dtype: int64}
modules:
  fc1: {op: linear, in: x, out_features: 5}
  act: {op: tanh, in: fc1}
  logits: {op: linear, in: act, out_features: 4}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
train: {optimizer: {type: sgd, lr: 0.5}, batch_size: 4, epochs: 1, seed: 3}
"""


def per_op_and_whole_step(monkeypatch: Any, path: Path, batch: int = 4) -> tuple[Any, dict[str, np.ndarray]]:
    """One training step of the spec at ``path`` per op and as whole-step native code, from the
    same weights and random inputs: asserts both give the same losses and gradients bit for bit
    and that the step function was used; returns the per-op executor (its relu fused into the
    kernel before it checked by the caller) and the inputs, for a comparison with PyTorch."""
    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.executor import Executor

    plan = netc.load(path).compile(batch)
    monkeypatch.setenv("NETC_WHOLE_STEP", "0")
    per_op = Executor(plan, batch, seed=3)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    whole = Executor(plan, batch, seed=3)
    assert whole._whole is not None, whole.whole_step_reason
    inputs = random_inputs(plan, batch, seed=5)
    for ex in (per_op, whole):
        ex.set_inputs(inputs)
        ex.step()
    assert per_op.losses() == whole.losses() and np.array_equal(per_op.grads, whole.grads)
    return per_op, inputs
