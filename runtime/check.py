"""Whole-network checks on a user's own spec: random inputs that fit it,
finite-difference gradient checks (float64) and per-module timing."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..compiler.plan import Plan
from .buffers import buffers
from .device import make_executor


def random_inputs(plan: Plan, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the right shapes; int64 inputs hold valid class labels or
    token ids, read off the ops that consume them."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in plan.inputs:
        t = plan.tensors[name]
        shape = (batch, *t.shape)
        if t.dtype != "int64":
            out[name] = rng.standard_normal(shape)
            continue
        high = 2
        for s in plan.forward_steps:
            if name not in s.inputs:
                continue
            if s.op == "embedding":
                high = s.attrs["num_embeddings"]
            elif s.op in ("cross_entropy", "hinge"):
                high = plan.tensors[s.inputs[0]].shape[-1]
        out[name] = rng.integers(0, high, shape)
    return out


@dataclass
class GradRow:
    name: str
    kind: str  # parameter | input
    checked: int
    max_rel_error: float


def gradcheck(
    plan: Plan, batch: int = 4, samples: int = 6, eps: float = 1e-5, seed: int = 0, device: str = "cpu"
) -> list[GradRow]:
    """Analytic vs central-difference gradients of the total loss, float64,
    training mode (dropout masks stay fixed: they derive from the seed), on
    ``device``'s kernels."""
    if not plan.losses:
        raise ValueError("gradcheck needs a loss: add a `losses:` section to the spec")
    ex = make_executor(plan, batch, device, dtype=np.float64, seed=seed)
    buf = buffers(ex)
    # Small random weights keep tanh/sigmoid away from saturation.
    params = np.random.default_rng(seed + 1).standard_normal(ex.params.size) * 0.3
    for p in plan.params:
        if p.role == "stat" and p.name.endswith("running_var"):
            params[p.offset : p.offset + p.numel] = 1.0
    buf.set_params(params)
    inputs = random_inputs(plan, batch, seed)
    ex.set_inputs(inputs)
    ex.training = True

    def loss() -> float:
        ex.forward()
        return ex.loss()

    base = loss()
    ex.backward()
    rng = np.random.default_rng(seed + 2)
    # (name, kind, host array to perturb, how to send it, analytic gradient)
    targets = [
        (p.name, "parameter", params[p.offset : p.offset + p.numel], lambda: buf.set_params(params),
         np.array(ex.grad(p.name)).reshape(-1))
        for p in plan.params if p.trainable
    ]  # fmt: skip

    def send_inputs() -> None:
        ex.set_inputs(inputs)

    targets += [
        (n, "input", inputs[n].reshape(-1), send_inputs, np.array(buf.view(f"d:{n}")).reshape(-1))
        for n in plan.inputs if f"d:{n}" in plan.tensors
    ]  # fmt: skip
    rows = []
    for name, kind, flat, send, grad in targets:
        # Errors relative to the tensor's gradient scale, so a gradient that is
        # analytically ~0 (a bias before batchnorm) is not judged on noise.
        # Central differences of a loss L carry ~1e-16·|L|/eps of rounding noise.
        floor = max(1e-6 * max(1.0, abs(base)), 1e-3 * float(np.abs(grad).max()))
        idx = rng.choice(flat.size, min(samples, flat.size), replace=False)
        worst = 0.0
        for i in idx:
            old = flat[i]
            flat[i] = old + eps
            send()
            up = loss()
            flat[i] = old - eps
            send()
            down = loss()
            flat[i] = old
            send()
            num = (up - down) / (2 * eps)
            worst = max(worst, abs(grad[i] - num) / max(abs(grad[i]), abs(num), floor))
        rows.append(GradRow(name, kind, len(idx), worst))
    return rows


@dataclass
class TimeRow:
    module: str
    op: str
    forward_s: float
    backward_s: float


def profile(plan: Plan, batch: int, repeats: int = 10, seed: int = 0, device: str = "cpu") -> list[TimeRow]:
    """Median forward and backward time per module (after one warm-up step,
    which compiles or loads the kernels); on a GPU each step is timed between
    device synchronizations, since kernel launches return at once."""
    ex = make_executor(plan, batch, device, seed=seed)
    sync = getattr(ex, "synchronize", lambda: None)
    ex.set_inputs(random_inputs(plan, batch, seed))
    fw = {s.module: [] for s in plan.forward_steps}
    bw = {s.module: [] for s in plan.backward_steps}
    fsteps = list(zip(plan.forward_steps, ex._forward, strict=True))
    bsteps = list(zip(plan.backward_steps, ex._backward, strict=True))
    for r in range(repeats + 1):
        for s, f in fsteps:
            sync()
            t = time.perf_counter()
            f()
            sync()
            if r:
                fw[s.module].append(time.perf_counter() - t)
        for s, f in bsteps:
            sync()
            t = time.perf_counter()
            f()
            sync()
            if r:
                bw[s.module].append(time.perf_counter() - t)
    return [
        TimeRow(
            s.module,
            s.op,
            statistics.median(fw[s.module]),
            statistics.median(bw[s.module]) if bw.get(s.module) else 0.0,
        )
        for s in plan.forward_steps
    ]
