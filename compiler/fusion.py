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
               tanh, sigmoid, relu6, hardtanh). The activation's output takes the producer's
               buffer; the producer's step names the activation module (``Step.epilogue``) and
               the activation's forward step is ``fused_into`` the producer. A kernel that knows
               the activation applies it while its output is still in cache; otherwise the
               executor runs the activation's own kernel in place. Backward is unchanged: the
               activation's backward reads its output, the producer's backward never reads its
               own. Inference plans have no backward, so there any pointwise activation without
               parameters fuses
               (``fusable_activation``: gelu, elu, leaky_relu, hardsigmoid, hardswish, silu,
               selu and softplus too, whose backward reads the input; never prelu, which has a
               parameter), and so does a producer whose backward would read its output.
    chain      (inference only) up to ``MAX_CHAIN`` pointwise activations after one another, each
               the only reader of the previous one's output, none but the last pinned (a
               network output, a loss or a loss input), share one buffer and run in one step:
               the producer's (``Step.epilogue`` is the first, ``Step.chain`` the rest, all
               ``fused_into`` the producer), or, where no producer may take them (after an
               input, a shape op, a layer a loss reads), the first activation's own step.
               Training plans never chain: a training plan fuses only activations whose
               backward reads their own output, and a second one in that buffer would
               overwrite it (relu -> sigmoid: relu's backward would read sigmoid's values).
    dropout    (inference only) removed: evaluation-mode dropout is the identity, so its output
               is its input's buffer and its step is dropped.
    fold       (inference only) a batchnorm whose input only it reads, after a conv2d (or a
               conv1d, or a linear with output [N, C]; the contract's ``folds_after``), is folded into that
               producer's weights: w' = w·s, b' = (b - running_mean)·s + β, s = γ/sqrt(var + eps).
               The producer's step names it (``Step.fold``) and runs on the folded copies (the
               ledger's ``folded_params_bytes``), refolded from the live parameters before each
               inference pass; the batchnorm's step stays (``fused_into`` the producer, for its
               attributes) but never runs, and its output is the producer's buffer. Training
               plans never fold: training-mode batchnorm normalises with batch statistics.

An epilogue is refused when the producer's output has a reader other than the activation, is a
network output or feeds a loss directly (its value must survive), or, in training plans, when the
producer's backward reads its output (the activation overwrites it) or the activation's backward
reads its input. Inference plans have no backward
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


def fusable_activation(step: Step, mode: str) -> bool:
    """Whether ``step`` may run in its producer's output buffer in a plan of ``mode``: an
    in-place activation (``in_place_activation``) in either mode; in inference, where no backward
    reads anything, also any pointwise activation without parameters (gelu, elu, silu, ...)."""
    if in_place_activation(step):
        return True
    op = OPS[step.op]
    return (
        mode == "inference"
        and isinstance(op, Elementwise)
        and op.family == "activation"
        and op.pointwise
        and not step.params
        and len(step.inputs) == 1
    )


def _readers(forward: list[Step], aliases: dict[str, str]) -> dict[str, list[str]]:
    """Buffer (root tensor) -> the modules among ``forward`` that read it under any name."""
    readers: dict[str, list[str]] = {}
    for s in forward:
        for i in s.inputs:
            readers.setdefault(root(aliases, i), []).append(s.module)
    return readers


def _pinned(plan: Plan, forward: list[Step], aliases: dict[str, str]) -> set[str]:
    """Buffers whose value must survive as computed: network outputs, losses, loss inputs."""
    names = set(plan.outputs) | set(plan.losses)
    names |= {i for s in forward if s.module in plan.losses for i in s.inputs}
    return {root(aliases, n) for n in names}


def _sole_reader(plan: Plan, forward: list[Step], aliases: dict[str, str]) -> dict[str, Step]:
    """Producer module -> the one step that reads its output, for producers whose output no
    one else reads and nothing pins."""
    readers = _readers(forward, aliases)
    pinned = _pinned(plan, forward, aliases)
    by_module = {s.module: s for s in forward}
    out = {}
    for s in forward:
        t = root(aliases, s.output)
        if t == s.output and t not in pinned and len(readers.get(t, [])) == 1:
            out[s.module] = by_module[readers[t][0]]
    return out


def _folds(plan: Plan, forward: list[Step], aliases: dict[str, str]) -> dict[str, str]:
    """(Inference) producer module -> the batchnorm folded into its weights: a conv2d,
    conv1d or linear whose output only that batchnorm reads (the contract's ``folds_after`` says which
    producer, at which per-sample rank: the channel axis must be the producer's output axis)."""
    ops = {s.module: s.op for s in forward}
    found = {}
    for p, b in _sole_reader(plan, forward, aliases).items():
        rank = OPS[b.op].folds_after.get(ops[p])
        if rank is not None and len(plan.tensors[p].shape) == rank:
            found[p] = b.module
    return found


#: The most activations one step applies after its own work: the CPU kernels' ``act`` argument
#: holds three (runtime/kernels/_epilogue.py), an activation head's own kind among them.
MAX_CHAIN = 3


def _chains(plan: Plan, forward: list[Step], aliases: dict[str, str], mode: str) -> dict[str, list[str]]:
    """head module -> the activation modules fused into it, in order: its epilogue, then (in
    inference plans) the activations chained after it."""
    by_module = {s.module: s for s in forward}
    sole = _sole_reader(plan, forward, aliases)
    chains: dict[str, list[str]] = {}
    owner: dict[str, str] = {}  # chained activation -> its head
    for s in forward:
        a = sole.get(s.module)
        if (
            a is None
            or not fusable_activation(a, mode)
            or plan.tensors[s.output].dtype != plan.tensors[a.output].dtype
        ):
            continue
        if s.module in owner:
            # Training never chains: every in-place activation's backward reads its own output,
            # which the next one would overwrite (relu -> sigmoid: relu's backward would read
            # sigmoid's values). Inference has no backward, so any chain of them runs in one loop.
            h = owner[s.module]
            room = MAX_CHAIN - len(chains[h]) - (h in by_module and fusable_activation(by_module[h], mode))
            if mode == "inference" and room > 0:
                chains[h].append(a.module)
                owner[a.module] = h
            continue
        op = OPS[s.op]
        producer = op.epilogue_producer and not (mode == "training" and op.saves_output(s.attrs))
        # an activation with no fusable producer heads its own chain: one pass applies them all
        head = mode == "inference" and fusable_activation(s, mode)
        if producer or head:
            chains[s.module] = [a.module]
            owner[a.module] = s.module
    return chains


def removed_in_inference(plan: Plan) -> dict[str, str]:
    """The forward steps an inference plan drops, as output -> the input it aliases: dropout
    (the identity in evaluation mode) unless its output is a network output."""
    return {
        s.output: s.inputs[0]
        for s in plan.forward_steps
        if s.op == "dropout" and s.output not in plan.outputs
    }


def fuse(plan: Plan, mode: str = "training", epilogues: bool = True) -> Plan:
    """The plan with its fusions for ``mode`` ("training": forward and backward steps;
    "inference": forward steps only, dropout removed, batchnorm folded). ``epilogues=False``
    keeps every step separate (NETC_FUSE=0; inference plans still drop their dropout). Pure:
    ``plan`` is left as it was."""
    if mode not in MODES:
        raise ValueError(f"unknown plan mode '{mode}'; expected one of: {', '.join(MODES)}")
    if plan.mode == "inference" and mode == "training":
        raise ValueError("an inference plan has no backward steps: compile a training plan instead")
    # Decided afresh from the steps: fusing a fused training plan for inference (the memory pass
    # does, for the ledger's inference figures) gives what fusing the unfused plan gives.
    forward = list(plan.forward_steps)
    aliases: dict[str, str] = {}
    decisions: list[dict[str, Any]] = []
    folds: dict[str, str] = {}
    if mode == "inference":
        removed = removed_in_inference(plan)
        aliases.update(removed)
        decisions += [{"kind": "removed", "modules": [m], "note": "identity in inference"} for m in removed]
        forward = [s for s in forward if s.module not in removed]
        if epilogues:
            folds = _folds(plan, forward, aliases)
            for p, b in folds.items():
                aliases[b] = p
                decisions.append({"kind": "folded", "modules": [p, b], "note": "into the weights"})
    # A folded batchnorm keeps its step (its attributes say how to fold) but never runs.
    running = [s for s in forward if s.module not in folds.values()]
    chains = _chains(plan, running, aliases, mode) if epilogues else {}
    into = {a: h for h, c in chains.items() for a in c} | {b: p for p, b in folds.items()}
    steps: list[Step] = []
    for s in forward:
        c = chains.get(s.module, [])
        if len(c) == 1:
            decisions.append({"kind": "epilogue", "modules": [s.module, c[0]], "note": ""})
        elif c:
            decisions.append({"kind": "chain", "modules": [s.module, *c], "note": "one loop"})
        if s.module in into:
            aliases[s.output] = into[s.module]
        steps.append(
            replace(
                s,
                epilogue=c[0] if c else None,
                chain=c[1:],
                fused_into=into.get(s.module),
                fold=folds.get(s.module),
            )
        )
    if mode == "training":
        steps += plan.backward_steps
    return replace(plan, steps=steps, mode=mode, aliases=aliases, fusion=decisions, fused=epilogues)


def root(aliases: dict[str, str], name: str) -> str:
    """The tensor whose buffer ``name`` uses (itself unless aliased, following chains)."""
    while name in aliases:
        name = aliases[name]
    return name
