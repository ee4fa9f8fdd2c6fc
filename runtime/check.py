"""Whole-network checks on a user's own spec: random inputs that fit it (integer inputs in the
range their ops declare), finite-difference gradient checks (float64) and per-module timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..compiler.ops import OPS
from ..compiler.ops.base import TensorType
from ..compiler.plan import Plan
from .buffers import buffers
from .device import make_executor


def _tensor_type(plan: Plan, name: str) -> TensorType:
    t = plan.tensors[name]
    return TensorType(tuple(t.shape), t.dtype, t.batched)


def int_input_high(plan: Plan, name: str) -> int:
    """The exclusive upper bound of valid values of the int64 spec input ``name``, as the ops
    that read it declare (``Op.int_input_range``: class labels, token ids); 2 when none does
    (0/1 values). Where several ops read it, the last in forward order decides."""
    high = 2
    for s in plan.forward_steps:
        if name not in s.inputs:
            continue
        ranges = OPS[s.op].int_input_range(s.attrs, [_tensor_type(plan, x) for x in s.inputs])
        for i, x in enumerate(s.inputs):
            if x == name and i in ranges:
                high = ranges[i]
    return high


def random_inputs(plan: Plan, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the right shapes; int64 inputs hold valid class labels or
    token ids, in the range the ops that consume them declare."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in plan.inputs:
        t = plan.tensors[name]
        shape = (batch, *t.shape)
        if t.dtype != "int64":
            out[name] = rng.standard_normal(shape)
            continue
        out[name] = rng.integers(0, int_input_high(plan, name), shape)
    return out


def target_inputs(plan: Plan) -> list[str]:
    """Float spec inputs that only feed losses as their target operand (a
    ``mse``/``binary_cross_entropy`` target, say): data, not something the
    network computes, so gradient checks leave them out unless asked."""
    out = []
    for name in plan.inputs:
        uses = [(s, i) for s in plan.forward_steps for i, x in enumerate(s.inputs) if x == name]
        if uses and all(s.module in plan.losses and i > 0 for s, i in uses):
            out.append(name)
    return out


INPUT_CHOICES = ("data", "all", "none")


@dataclass
class GradRow:
    name: str
    kind: str  # parameter | input
    checked: int
    max_rel_error: float  # over the checked elements
    kinks: int = 0  # elements skipped: a kink (relu at 0, a max tie, |x| at 0) within ±eps


# A sample is near a kink when the loss bends within ±eps: the one-sided
# differences (up - base)/eps and (base - down)/eps then differ by about the
# jump in slope, and the central difference is off by about half of that gap.
# A smooth loss bends by only ~eps·L'' there, far below the error a wrong
# gradient leaves, so the error must be a sizeable share of the gap (not just
# below it) for the sample to count as a kink. (Caffe's GradientChecker skips
# samples within ``kink_range`` of a known ``kink``; this finds them from the
# loss alone, for every op.)
KINK_SHARE = (0.01, 1.0)
# A sample over the tolerance is measured again with smaller steps: in a wide
# relu network one step of a first-layer weight moves thousands of units and
# several may cross zero, which no single-kink test sees; a tenth of the step
# crosses a tenth as many, while a wrong gradient stays wrong at every step.
# float64 rounding (~1e-16·|L|/eps) is still far below the tolerance at eps/100.
STEP_DIVISORS = (1, 10, 100)


# Loss differences below ROUNDING·|L| (some 10⁴ float64 roundings) are noise,
# and noise is no evidence of a kink (a tolerance below rounding still fails).
ROUNDING = 1e-12


def _near_kink(grad: float, base: float, up: float, down: float, eps: float) -> bool:
    gap = abs((up - base) - (base - down)) / eps
    err = abs(grad - (up - down) / (2 * eps))
    noise = ROUNDING * max(1.0, abs(base)) / eps
    return err > noise and KINK_SHARE[0] * gap <= err <= KINK_SHARE[1] * gap


def gradcheck(
    plan: Plan,
    batch: int = 4,
    samples: int = 6,
    eps: float = 1e-5,
    seed: int = 0,
    device: str = "cpu",
    tol: float = 1e-4,
    inputs: str = "data",
    tensors: int | None = None,
) -> list[GradRow]:
    """Analytic vs central-difference gradients of the total loss, float64,
    training mode (dropout masks stay fixed: they derive from the seed), on
    ``device``'s kernels. ``samples`` elements per tensor; one whose error
    exceeds ``tol`` because a kink lies within ±eps is skipped and another
    drawn in its place (``GradRow.kinks`` counts them). ``inputs``: ``data``
    checks the gradients of spec inputs except loss targets, ``all`` those too,
    ``none`` only parameters. ``tensors``: check only that many tensors,
    spread evenly from the first to the last (for networks where a forward
    pass takes seconds); all by default."""
    if not plan.losses:
        raise ValueError("gradcheck needs a loss: add a `losses:` section to the spec")
    if inputs not in INPUT_CHOICES:
        raise ValueError(f"inputs must be one of {', '.join(INPUT_CHOICES)}, not {inputs!r}")
    ex = make_executor(plan, batch, device, dtype=np.float64, seed=seed)
    buf = buffers(ex)
    # Small random weights keep tanh/sigmoid away from saturation.
    params = np.random.default_rng(seed + 1).standard_normal(ex.params.size) * 0.3
    for p in plan.params:
        if p.role == "stat" and p.name.endswith("running_var"):
            params[p.offset : p.offset + p.numel] = 1.0
    buf.set_params(params)
    data = random_inputs(plan, batch, seed)
    ex.set_inputs(data)
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
        ex.set_inputs(data)

    skip = set(plan.inputs) if inputs == "none" else set(target_inputs(plan)) if inputs == "data" else set()
    targets += [
        (n, "input", data[n].reshape(-1), send_inputs, np.array(buf.view(f"d:{n}")).reshape(-1))
        for n in plan.inputs if f"d:{n}" in plan.tensors and n not in skip
    ]  # fmt: skip
    if tensors is not None and tensors < len(targets):
        picks = np.linspace(0, len(targets) - 1, tensors).round().astype(int)
        targets = [targets[i] for i in sorted(set(picks))]
    rows = []
    for name, kind, flat, send, grad in targets:
        # Errors relative to the tensor's gradient scale, so a gradient that is
        # analytically ~0 (a bias before batchnorm) is not judged on noise.
        # Central differences of a loss L carry ~1e-16·|L|/eps of rounding noise.
        floor = max(1e-6 * max(1.0, abs(base)), 1e-3 * float(np.abs(grad).max()))
        # Elements in random order; kinks are skipped, up to 2·samples of them.
        order = rng.choice(flat.size, min(3 * samples, flat.size), replace=False)
        worst, checked, kinks = 0.0, 0, 0
        for i in order:
            if checked == samples or kinks == 2 * samples:
                break
            old = flat[i]

            def at(x: float, flat: np.ndarray = flat, i: int = i, send: Callable[[], None] = send) -> float:
                flat[i] = x
                send()
                return loss()

            errs, kinked = [], False
            for div in STEP_DIVISORS:
                e = eps / div
                up, down = at(old + e), at(old - e)
                num = (up - down) / (2 * e)
                errs.append(abs(grad[i] - num) / max(abs(grad[i]), abs(num), floor))
                kinked = kinked or _near_kink(grad[i], base, up, down, e)
                if errs[-1] <= tol:
                    break
            at(old)
            if errs[-1] > tol and kinked:
                kinks += 1
                continue
            worst = max(worst, errs[-1] if errs[-1] <= tol else errs[0])
            checked += 1
        rows.append(GradRow(name, kind, checked, worst, kinks))
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
