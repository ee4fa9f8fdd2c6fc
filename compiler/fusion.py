"""Pass 6b — fusion: which steps run as one, decided on the whole plan before any kernel runs.

An eager framework sees one op at a time; the plan sees every reader of every tensor, so it can
prove when two steps may share a buffer and one loop. ``fuse(plan, mode)`` returns a new plan
(the input is not changed) whose steps say what runs fused, whose ``aliases`` say which tensors
share memory, and whose ``fusion`` lists each decision for ``netc compile`` and the plan JSON.
The memory pass then lays out the aliased tensors once, so the ledger shrinks by exactly the
buffers fusion saves.

Patterns
    epilogue   a producer (its contract sets ``epilogue_producer``: conv2d, linear, the norms,
               add) followed by an in-place activation (an elementwise activation with no
               parameters and no saved tensors whose backward reads only its output: relu,
               tanh, sigmoid). The activation's output takes the producer's buffer; the producer's
               step names the activation module (``Step.epilogue``) and the activation's forward
               step is ``fused_into`` the producer. A kernel that knows the activation applies it
               while its output is still in cache; otherwise the executor runs the activation's
               own kernel in place. Backward is unchanged: the activation's backward reads its
               output, the producer's backward never reads its own.
    dropout    (inference only) removed: evaluation-mode dropout is the identity, so its output
               is its input's buffer and its step is dropped.

An epilogue is refused when the producer's output has a reader other than the activation, is a
network output or feeds a loss directly (its value must survive), or when the producer's
backward reads its output (the activation overwrites it). Inference plans have no backward
steps and allocate no saved activations beyond the step that writes them.

``NETC_FUSE=0`` (read by the pipeline, not here) compiles unfused plans: the debugging mode, and
the reference the fused plans are tested against.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .ops import OPS
from .ops.base import Elementwise
from .plan import Plan, Step

MODES = ("training", "inference")


def in_place_activation(step: Step) -> bool:
    """Whether ``step`` is an activation that may overwrite its input: elementwise, no
    parameters, nothing saved, and a backward that reads only the output."""
    op = OPS[step.op]
    return (
        isinstance(op, Elementwise)
        and op.family == "activation"
        and not step.params
        and not step.saved
        and op.saves_inputs(step.attrs) == ()
        and op.saves_output(step.attrs)
    )


def _epilogues(plan: Plan, forward: list[Step]) -> dict[str, str]:
    """producer module -> the activation module fused into it."""
    by_module = {s.module: s for s in forward}
    keep = set(plan.outputs) | set(plan.losses)
    loss_inputs = {i for s in forward if s.module in plan.losses for i in s.inputs}
    found: dict[str, str] = {}
    for s in forward:
        if not in_place_activation(s) or len(s.inputs) != 1:
            continue
        p = by_module.get(s.inputs[0])
        if p is None or p.module in found:
            continue
        t = plan.tensors[p.output]
        if (
            OPS[p.op].epilogue_producer
            and not OPS[p.op].saves_output(p.attrs)
            and t.consumers == [s.module]
            and p.output not in keep
            and p.output not in loss_inputs
            and t.dtype == plan.tensors[s.output].dtype
        ):
            found[p.module] = s.module
    return found


def removed_in_inference(plan: Plan) -> dict[str, str]:
    """The forward steps an inference plan drops, as output -> the input it aliases: dropout
    (the identity in evaluation mode) unless its output is a network output. The memory pass
    uses it too, so a training plan's inference figures are the inference plan's."""
    return {
        s.output: s.inputs[0]
        for s in plan.forward_steps
        if s.op == "dropout" and s.output not in plan.outputs and s.module not in plan.aliases
    }


def fuse(plan: Plan, mode: str = "training", epilogues: bool = True) -> Plan:
    """The plan with its fusions for ``mode`` ("training": forward and backward steps;
    "inference": forward steps only, dropout removed). ``epilogues=False`` keeps every step
    separate (NETC_FUSE=0). Pure: ``plan`` is left as it was."""
    if mode not in MODES:
        raise ValueError(f"unknown plan mode '{mode}'; expected one of: {', '.join(MODES)}")
    forward = list(plan.forward_steps)
    aliases: dict[str, str] = dict(plan.aliases)
    decisions: list[dict[str, Any]] = []
    if mode == "inference":
        removed = removed_in_inference(plan)
        aliases.update(removed)
        decisions += [{"kind": "removed", "modules": [m], "note": "identity in inference"} for m in removed]
        forward = [s for s in forward if s.module not in removed]
    epi = _epilogues(plan, forward) if epilogues else {}
    into = {a: p for p, a in epi.items()}
    steps: list[Step] = []
    for s in forward:
        if s.module in epi:
            s = replace(s, epilogue=epi[s.module])
            decisions.append({"kind": "epilogue", "modules": [s.module, epi[s.module]], "note": ""})
        elif s.module in into:
            s = replace(s, fused_into=into[s.module])
            aliases[s.output] = into[s.module]
        steps.append(s)
    if mode == "training":
        steps += plan.backward_steps
    return replace(plan, steps=steps, mode=mode, aliases=aliases, fusion=decisions)


def root(aliases: dict[str, str], name: str) -> str:
    """The tensor whose buffer ``name`` uses (itself unless aliased, following chains)."""
    while name in aliases:
        name = aliases[name]
    return name
