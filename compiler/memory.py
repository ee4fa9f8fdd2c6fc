"""Pass 7 — memory: buffer lifetimes, arena offsets and the byte ledger.

Lifetimes come from the step order. Buffers are packed into one arena by a
best-fit allocator replayed in step order (allocate when a tensor is first
written, free after its last reader, coalescing free blocks). It runs in
time linear in the number of steps for the chains and DAGs people write —
a greedy-by-size packer compares every pair of co-live buffers, which is
quadratic in a training plan, where all saved activations are co-live.
``lower_bound`` (the most bytes live at one instant) shows how close the
packing comes to optimal.

Two layouts are made: inference (forward steps only; a saved tensor lives only
during the step that writes it) and training (forward + backward; saved tensors
live until their backward step, gradients from their first writer to their last
reader). Tensors the fusion pass aliases (``Plan.aliases``) are one buffer: it
lives from the first use of any of them to the last. An inference plan
(``Plan.mode``, compiler.fusion) has no training layout: its gradient, optimizer
and training figures are 0.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace
from typing import Any

from .fusion import fuse, root
from .ops import OPS
from .ops.base import TensorType
from .plan import OPTIMIZER_SLOTS, Plan, Step, grad_name

ALIGN = 64  # bytes; keeps every buffer on a cache line / SIMD boundary


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _lifetimes(plan: Plan, steps: list[Step]) -> dict[str, list[int]]:
    """tensor -> [first step index, last step index] over ``steps``."""
    life: dict[str, list[int]] = {}

    def touch(name: str | None, t: int) -> None:
        if name is None:
            return
        name = root(plan.aliases, name)
        if name in life:
            life[name][1] = max(life[name][1], t)
        else:
            life[name] = [t, t]

    for name in plan.inputs:
        touch(name, 0)
    for t, s in enumerate(steps):
        if s.kind == "forward":
            for i in s.inputs:
                touch(i, t)
            touch(s.output, t)
            for x in s.saved:  # inference: scratch for this step only
                touch(x, t)
        else:
            op = OPS[s.op]
            for idx in op.saves_inputs(s.attrs):
                if idx < len(s.inputs):
                    touch(s.inputs[idx], t)
            if op.saves_output(s.attrs):
                touch(s.output, t)
            for x in s.saved:
                touch(x, t)
            touch(s.grad_output, t)
            for g in s.grad_inputs:
                touch(g, t)
    end = len(steps) - 1
    # The host reads outputs, losses and the gradients of spec inputs (gradient
    # checks, saliency) after the step; inputs stay intact so a step can be
    # replayed on the same batch (gradient checks, repeated forward).
    input_grads = [grad_name(n) for n in plan.inputs]
    for name in [*plan.inputs, *plan.outputs, *plan.losses, *input_grads]:
        name = root(plan.aliases, name)
        if name in life:
            life[name][1] = end
    return life


def _pack(sizes: dict[str, int], life: dict[str, list[int]]) -> tuple[dict[str, int], int]:
    """Best-fit allocation in step order; returns offsets and arena size."""
    starts: dict[int, list[str]] = {}
    ends: dict[int, list[str]] = {}
    for name, (a, b) in life.items():
        starts.setdefault(a, []).append(name)
        ends.setdefault(b, []).append(name)
    free: list[tuple[int, int]] = []  # sorted (offset, size) blocks below `top`
    top = 0
    offsets: dict[str, int] = {}
    for t in range(max((b for _, b in life.values()), default=-1) + 1):
        for name in sorted(starts.get(t, []), key=lambda n: -sizes[n]):
            need = sizes[name]
            best = None
            for i, (_, size) in enumerate(free):
                if size >= need and (best is None or size < free[best][1]):
                    best = i
            if best is None:
                # Grow the arena; reuse a free block that touches the top.
                if free and free[-1][0] + free[-1][1] == top:
                    off, _ = free.pop()
                    top = off
                offsets[name] = top
                top += need
            else:
                off, size = free.pop(best)
                offsets[name] = off
                if size > need:
                    bisect.insort(free, (off + need, size - need))
        for name in ends.get(t, []):
            bisect.insort(free, (offsets[name], sizes[name]))
            free = _coalesce(free)
    return offsets, top


def _coalesce(free: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for off, size in free:
        if out and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + size)
        else:
            out.append((off, size))
    return out


def _lower_bound(sizes: dict[str, int], life: dict[str, list[int]]) -> int:
    delta: dict[int, int] = {}
    for name, (a, b) in life.items():
        delta[a] = delta.get(a, 0) + sizes[name]
        delta[b + 1] = delta.get(b + 1, 0) - sizes[name]
    live = peak = 0
    for t in sorted(delta):
        live += delta[t]
        peak = max(peak, live)
    return peak


def _layout(plan: Plan, steps: list[Step], batch: int, fb: int) -> dict[str, Any]:
    life = _lifetimes(plan, steps)
    sizes = {n: _align(plan.tensors[n].nbytes(batch, fb)) for n in life}
    offsets, size = _pack(sizes, life)
    for name in plan.aliases:
        if root(plan.aliases, name) in offsets:
            offsets[name] = offsets[root(plan.aliases, name)]
    return {"offsets": offsets, "bytes": size, "lower_bound": _lower_bound(sizes, life)}


def _workspace(plan: Plan, step: Step, batch: int) -> int:
    tt = plan.tensors
    ins = [TensorType(tuple(tt[i].shape), tt[i].dtype, tt[i].batched) for i in step.inputs]
    o = tt[step.output]
    return OPS[step.op].workspace(step.attrs, ins, TensorType(tuple(o.shape), o.dtype, o.batched), batch)


def folded_numel(plan: Plan) -> int:
    """Elements of the weights and biases an inference plan folds batchnorm into (one copy of
    each folding producer's weight and a bias per output channel; the plan's own parameters
    stay as they are, so weights load and save unchanged)."""
    n = 0
    for s in plan.steps:
        if s.fold:
            w = plan.param_info(f"{s.module}.w").shape  # a tied weight: its owner's shape
            n += math.prod(w) + w[0]
    return n


def assign_memory(plan: Plan, batch: int, optimizer: str | None = None, float_bytes: int = 4) -> Plan:
    """A copy of ``plan`` with arena offsets and the ledger for ``batch``.
    ``float_bytes`` is 4 (float32) except for float64 gradient checks."""
    optimizer = optimizer or plan.optimizer
    fb = float_bytes
    # Contracts state workspace in float32 bytes.
    steps = [replace(s, workspace=_align(_workspace(plan, s, batch) * fb // 4)) for s in plan.steps]
    fwd = [s for s in steps if s.kind == "forward"]
    # The inference figures are the inference plan's (compiler.fusion), whatever the mode.
    inf = plan if plan.mode == "inference" else fuse(plan, "inference", epilogues=plan.fused)
    in_inf = {s.module for s in inf.steps}
    inf_fwd = [s for s in fwd if s.module in in_inf]
    infer = _layout(inf, inf_fwd, batch, fb)
    folded = folded_numel(inf) * fb
    training = plan.mode == "training"
    train = _layout(plan, steps, batch, fb) if training else {"offsets": {}, "bytes": 0, "lower_bound": 0}
    params = sum(p.numel for p in plan.params) * fb
    grads = sum(p.numel for p in plan.params if p.trainable) * fb if training else 0
    # one gradient slot per use of a shared parameter, summed into the owner's (compiler.plan)
    tied = plan.tied_grad_elements * fb if training else 0
    opt = grads * OPTIMIZER_SLOTS[optimizer]
    saved: set[str] = set()
    for s in steps:
        if s.kind != "backward":
            continue
        op = OPS[s.op]
        saved.update(s.inputs[i] for i in op.saves_inputs(s.attrs) if i < len(s.inputs))
        if op.saves_output(s.attrs):
            saved.add(s.output)
        saved.update(s.saved)
    saved = {root(plan.aliases, n) for n in saved}  # an aliased buffer is saved once
    activations = sum(plan.tensors[n].nbytes(batch, fb) for n in saved)
    ws_inf = max((s.workspace for s in inf_fwd), default=0)
    ws = max((s.workspace for s in steps), default=0)
    ledger = {
        "batch": batch,
        "float_bytes": fb,
        "optimizer": optimizer,
        "params_bytes": params,
        "grads_bytes": grads,
        "tied_grads_bytes": tied,
        "optimizer_bytes": opt,
        "activations_bytes": activations,
        "workspace_bytes": ws,
        "inference_arena_bytes": infer["bytes"],
        "training_arena_bytes": train["bytes"],
        "inference_lower_bound_bytes": infer["lower_bound"],
        "training_lower_bound_bytes": train["lower_bound"],
        "folded_params_bytes": folded,
        "inference_peak_bytes": params + folded + infer["bytes"] + ws_inf,
        "training_peak_bytes": params + grads + tied + opt + train["bytes"] + ws if training else 0,
    }
    memory = {
        "ledger": ledger,
        "inference_offsets": infer["offsets"],
        "training_offsets": train["offsets"],
    }
    return replace(plan, steps=steps, optimizer=optimizer, memory=memory)
