"""Tied weights at run time: the gradient of a shared parameter is the sum over its users.

A module that shares a parameter (``share:``, compiler.ties) reads the owner's values in the
flat parameter buffer, but its backward kernel writes the weight gradient into a slot of its
own in the executor's tied-gradient buffer (``Plan.ties``, ``Tie.grad_offset``): every weight
kernel overwrites its gradient, so two users writing one slot would keep only the last. After
the last backward step each slot is added into the owner's gradient — flat ``dst += src``
copies (``copy_cpu`` on the CPU, ``cuda_core.copy`` on CUDA; ``dst = src`` for the first where
the owner's own module has no backward step) over views made at bind time, so a step allocates
nothing. The sums ride on the last backward thunk (a ``Seq`` of Launches on the
CPU, so ``runtime.wholestep`` generates them into the step function like any kernel), and the
optimizer, clipping and checkpoints see one parameter with one gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..compiler.plan import Plan
from .binding import Thunk
from .kernels import cuda_core
from .kernels._copies import copy_cpu
from .launch import Launch, Seq

Pair = tuple[Any, Any, bool]  # (use's gradient slot, owner's gradient, add rather than copy)


def tied_pairs(plan: Plan, grads: Any, tied: Any) -> list[Pair]:
    """The flat views of every trainable tie, in plan order, and whether its slot is added to the
    owner's gradient: an owner whose module has no backward step (its output reaches no loss, only
    its users' outputs do) never writes its gradient, so its first tie copies, and the rest add."""
    written = {p for s in plan.backward_steps for p in s.params}
    pairs = []
    for t in plan.ties:
        if t.grad_offset is None:
            continue
        owner = plan.param_info(t.owner)
        assert owner.grad_offset is not None  # a tie has a slot only when its owner trains
        src = tied[t.grad_offset : t.grad_offset + t.numel]
        pairs.append((src, grads[owner.grad_offset : owner.grad_offset + t.numel], owner.name in written))
        written.add(owner.name)
    return pairs


def with_sums_cpu(last: Thunk, pairs: list[Pair]) -> Thunk:
    """The last backward thunk followed by the sums (Launches: whole-step code includes them)."""
    return Seq(last, *(Launch(copy_cpu, src, dst, acc) for src, dst, acc in pairs))


def with_sums_cuda(last: Thunk, pairs: list[Pair]) -> Callable[[], None]:
    """The last backward thunk followed by the sums on the device."""

    def run() -> None:
        last()
        for src, dst, acc in pairs:
            cuda_core.copy(src, dst, acc=acc)

    return run
