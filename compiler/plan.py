"""Pass 6 — plan: shaped graph → forward, backward and optimizer steps.

The plan is pure data (dataclasses of lists, dicts, strings and numbers), so
it serializes to JSON that validates against schemas/plan.schema.json and
loads back equal.

Backward rules: a tensor *requires grad* when its producer has trainable
parameters or reads a tensor that requires grad; a module gets a backward
step when its output requires grad and reaches a loss. Steps run in reverse
topological order. A tensor read by several modules receives the sum of
their gradients: the first backward step to reach it (in backward order)
writes its gradient, later ones accumulate (``accumulate[i]``), so fan-out
needs no extra buffer and no zeroing pass.

Tied weights (``share:``, compiler.ties): a sharing module's step names its own parameters
("dec.w"), and ``Plan.ties`` maps each to the owner's ``ParamInfo`` ("emb.w"), the only one in
``params``: counted, initialized, optimized and checkpointed once. Each trainable use gets a
slot of its own in the tied-gradient buffer (``Tie.grad_offset``), written by its backward step
like any weight gradient; after the backward pass the runtime adds every slot into the owner's
gradient, which then holds the sum over all users (ledger: ``tied_grads_bytes``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import optimizers
from .ops import OPS
from .shapes import Shaped

# Ledger key -> optimizer state slots, each one float per trainable parameter
# element, from the optimizer contracts (compiler/optimizers/). The key says
# which optional buffers the configuration needs, so the ledger (and the
# executor's state buffer) is exact: rmsprop keeps its square average, plus a
# gradient average when centered, plus a momentum buffer when momentum > 0.
OPTIMIZER_SLOTS: dict[str, int] = {key: len(names) for key, names in optimizers.SLOT_NAMES.items()}


def optimizer_key(cfg: dict[str, Any] | None) -> str:
    """The OPTIMIZER_SLOTS key of a ``train.optimizer`` mapping, e.g.
    ``{"type": "sgd", "momentum": 0.9}`` -> ``"momentum"``. Absent fields take
    the optimizer's own default (``momentum`` 0.9 for type momentum, else 0)."""
    return optimizers.ledger_key(cfg)


@dataclass
class Tensor:
    name: str
    shape: list[int]  # per sample unless batched is False
    dtype: str
    batched: bool
    kind: str  # input | activation | loss | saved | grad
    producer: str | None  # module name; None for spec inputs
    consumers: list[str] = field(default_factory=list)

    def nbytes(self, batch: int, float_bytes: int = 4) -> int:
        """Bytes at ``batch``; float tensors take ``float_bytes`` per element
        (8 when the runtime computes in float64 for gradient checks)."""
        n = 1
        for d in self.shape:
            n *= d
        size = 8 if self.dtype == "int64" else float_bytes
        return n * size * (batch if self.batched else 1)


@dataclass
class ParamInfo:
    name: str  # "<module>.<param>"
    module: str
    shape: list[int]
    init: str
    trainable: bool
    fan_in: int
    fan_out: int
    offset: int  # element offset in the flat parameter buffer
    grad_offset: int | None  # element offset in the flat gradient buffer (trainable only)
    lr_mult: float
    role: str  # weight | bias | norm | stat

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Tie:
    """A parameter a module uses but does not own (``share:``)."""

    name: str  # "<module>.<param>": the sharing module's own name for it
    module: str
    owner: str  # the owner's ParamInfo name (the root of a chain of shares)
    grad_offset: int | None  # element offset in the tied-gradient buffer (None: owner frozen)
    numel: int


@dataclass
class Step:
    kind: str  # forward | backward
    module: str
    op: str
    attrs: dict[str, Any]
    inputs: list[str]
    output: str
    params: list[str]
    saved: list[str]  # extra tensors forward writes and backward reads
    grad_output: str | None = None  # backward: gradient of the output
    grad_inputs: list[str | None] = field(default_factory=list)  # backward: None = not needed
    accumulate: list[bool] = field(default_factory=list)  # backward: add into grad_inputs[i]
    weight: float = 1.0  # losses: weight in the total loss
    workspace: int = 0  # bytes at the plan's batch (filled by the memory pass)
    epilogue: str | None = None  # forward: the activation module fused into this step (fusion pass)
    # inference forward: the activations applied after ``epilogue``, in order (a chain, one loop)
    chain: list[str] = field(default_factory=list)
    fused_into: str | None = None  # forward: the producer this activation runs inside
    fold: str | None = None  # inference forward: the batchnorm folded into this step's weights


@dataclass
class ModuleRow:
    name: str
    op: str
    describe: str
    output_shape: list[int]
    batched: bool
    params: int  # learned parameters, trainable or frozen (running statistics not included)
    trainable_params: int
    forward_flops: int  # per sample
    backward_flops: int  # per sample; 0 when the module has no backward step
    blocks: list[str]
    is_loss: bool
    buffers: int = 0  # running statistics (BatchNorm): state, not parameters


@dataclass
class Plan:
    name: str
    inputs: list[str]
    outputs: list[str]
    losses: dict[str, float]  # loss module -> weight
    tensors: dict[str, Tensor]
    params: list[ParamInfo]
    steps: list[Step]  # forward steps, then backward steps
    modules: list[ModuleRow]
    clusters: dict[str, str]  # block instance -> block name
    optimizer: str = "sgd"
    memory: dict[str, Any] | None = None  # filled by compiler.memory
    mode: str = "training"  # or "inference": forward steps only (compiler.fusion)
    fused: bool = False  # the fusion pass ran with its patterns on (off: NETC_FUSE=0)
    aliases: dict[str, str] = field(default_factory=dict)  # tensor -> tensor whose buffer it uses
    fusion: list[dict[str, Any]] = field(default_factory=list)  # the fusion pass's decisions
    ties: list[Tie] = field(default_factory=list)  # parameters used but not owned (share:)

    # -- views ------------------------------------------------------------
    @property
    def forward_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "forward"]

    @property
    def backward_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "backward"]

    # Parameter counts follow PyTorch's ``parameters()`` / ``buffers()`` split:
    # running statistics are state the forward pass updates, not parameters,
    # so ResNet-18 reports its published 11,689,512 (the flat parameter buffer
    # still holds them: ``stored_elements``, and the memory ledger counts them).
    @property
    def total_params(self) -> int:
        """Learned parameters, trainable and frozen (buffers not included)."""
        return sum(p.numel for p in self.params if p.role != "stat")

    @property
    def trainable_params(self) -> int:
        return sum(p.numel for p in self.params if p.trainable)

    @property
    def non_trainable_params(self) -> int:
        """Frozen parameters (``trainable: false``), buffers not included."""
        return self.total_params - self.trainable_params

    @property
    def buffers(self) -> int:
        """Elements of the running statistics (BatchNorm running_mean/var)."""
        return sum(p.numel for p in self.params if p.role == "stat")

    @property
    def stored_elements(self) -> int:
        """Length of the flat parameter buffer: parameters plus buffers."""
        return sum(p.numel for p in self.params)

    @property
    def tied_grad_elements(self) -> int:
        """Length of the tied-gradient buffer: one slot per trainable use of a shared parameter."""
        return sum(t.numel for t in self.ties if t.grad_offset is not None)

    def param_info(self, name: str) -> ParamInfo:
        """The ParamInfo a step's parameter name stands for: its own, or its owner's when tied."""
        owner = next((t.owner for t in self.ties if t.name == name), name)
        return next(p for p in self.params if p.name == owner)

    def tie(self, name: str) -> Tie | None:
        """The tie of a sharing parameter name, None for an owned one."""
        return next((t for t in self.ties if t.name == name), None)

    @property
    def forward_flops(self) -> int:
        return sum(r.forward_flops for r in self.modules)

    @property
    def backward_flops(self) -> int:
        return sum(r.backward_flops for r in self.modules)

    def summary(self) -> str:
        from .report.summary import summary_table

        return summary_table(self)

    def draw(self, path: str, collapse: bool = False) -> str:
        """Render to ``path`` (.svg/.png/.pdf/.dot); returns what was written."""
        from .report.draw import draw

        return draw(self, path, collapse=collapse).message

    # -- JSON ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"netc_plan": 1, **asdict(self)}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        d = {k: v for k, v in d.items() if k != "netc_plan"}
        d["tensors"] = {k: Tensor(**v) for k, v in d["tensors"].items()}
        d["params"] = [ParamInfo(**p) for p in d["params"]]
        d["steps"] = [Step(**s) for s in d["steps"]]
        d["modules"] = [ModuleRow(**r) for r in d["modules"]]
        d["ties"] = [Tie(**t) for t in d.get("ties", [])]
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))


def grad_name(tensor: str) -> str:
    return f"d:{tensor}"


def build_plan(shaped: Shaped, optimizer: str = "sgd", input_grads: bool = False) -> Plan:
    """Steps, tensors and parameters of a shaped graph (memory not yet assigned).
    ``input_grads`` also computes gradients of the float spec inputs
    (for gradient checks and saliency)."""
    graph = shaped.graph
    tensors = _tensors(shaped)
    params = _params(shaped)
    ties = _ties(shaped, params)
    by_module: dict[str, list[ParamInfo]] = {}  # owned parameters (the counts)
    for p in params:
        by_module.setdefault(p.module, []).append(p)
    # every parameter a module's steps use, owned or tied, in the op's order
    used = {m: [f"{m}.{p.name}" for p in ps] for m, ps in shaped.params.items()}
    trainable = {p.name: p.trainable for p in params} | {t.name: t.grad_offset is not None for t in ties}
    # The step phases add tensors (saved ones, then gradients) in the order they meet them,
    # and that order is the plan's tensor table, so its JSON: keep them in this order.
    forward = _forward_steps(shaped, used, tensors)
    requires = _requires_grad(shaped, used, trainable, input_grads)
    backward = _backward_steps(shaped, forward, requires, _reaches_loss(shaped), tensors)
    return Plan(
        name=graph.net.name,
        inputs=list(graph.net.inputs),
        outputs=list(graph.outputs),
        losses={m.name: m.weight for m in graph.losses},
        tensors=tensors,
        params=params,
        steps=forward + backward,
        modules=_module_rows(shaped, by_module, {s.module for s in backward}),
        clusters=dict(graph.net.clusters),
        optimizer=optimizer,
        ties=ties,
    )


def _tensors(shaped: Shaped) -> dict[str, Tensor]:
    """The spec inputs and every module's output, losses marked (the step phases add the
    saved tensors and the gradients)."""
    graph, net = shaped.graph, shaped.graph.net
    tensors: dict[str, Tensor] = {}
    for name, t in shaped.types.items():
        producer = None if name in net.inputs else name
        tensors[name] = Tensor(
            name=name,
            shape=list(t.shape),
            dtype=t.dtype,
            batched=t.batched,
            kind="input" if producer is None else "activation",
            producer=producer,
            consumers=list(graph.consumers[name]),
        )
    for m in graph.losses:
        tensors[m.name].kind = "loss"
    return tensors


def _params(shaped: Shaped) -> list[ParamInfo]:
    """Every parameter in network order: one flat buffer for all, one for the gradients of
    the trainable ones."""
    params: list[ParamInfo] = []
    offset = goffset = 0
    for m in shaped.graph.order:
        for p in shaped.params[m.name]:
            if f"{m.name}.{p.name}" in shaped.ties:
                continue  # the owner's (a Tie)
            trainable = p.trainable and m.trainable
            params.append(
                ParamInfo(
                    name=f"{m.name}.{p.name}",
                    module=m.name,
                    shape=list(p.shape),
                    init=p.init,
                    trainable=trainable,
                    fan_in=p.fan_in,
                    fan_out=p.fan_out,
                    offset=offset,
                    grad_offset=goffset if trainable else None,
                    lr_mult=m.lr_mult,
                    role=OPS[m.op].param_role(p.name, trainable),  # the op says what decays
                )
            )
            offset += p.numel
            if trainable:
                goffset += p.numel
    return params


def _ties(shaped: Shaped, params: list[ParamInfo]) -> list[Tie]:
    """The tie of every sharing parameter, in network order; a trainable owner gives each use a
    gradient slot of its own in the tied-gradient buffer."""
    info = {p.name: p for p in params}
    ties: list[Tie] = []
    offset = 0
    for name, owner in shaped.ties.items():
        p = info[owner]
        ties.append(Tie(name, name.rpartition(".")[0], owner, offset if p.trainable else None, p.numel))
        offset += p.numel if p.trainable else 0
    return ties


def _requires_grad(
    shaped: Shaped, used: dict[str, list[str]], trainable: dict[str, bool], input_grads: bool
) -> dict[str, bool]:
    """Tensor -> whether it requires grad (see the module docstring)."""
    graph, net = shaped.graph, shaped.graph.net
    requires = {n: input_grads and spec.get("dtype", "float32") != "int64" for n, spec in net.inputs.items()}
    for m in graph.order:
        own = any(trainable[n] for n in used.get(m.name, []))
        requires[m.name] = own or any(requires[i] for i in m.inputs)
    return requires


def _no_grad(m: Any) -> tuple[int, ...]:
    """Input positions of module ``m`` that never get a gradient: int64 inputs, masks."""
    op = OPS[m.op]
    return (*op.int_inputs, *op.mask_inputs(m.attrs, len(m.inputs)))


def _reaches_loss(shaped: Shaped) -> dict[str, bool]:
    """Module -> whether its output reaches a loss along inputs that carry a gradient (a module
    read only as a mask gets no backward step)."""
    graph = shaped.graph
    by_name = {m.name: m for m in graph.order}
    reaches: dict[str, bool] = {}
    for m in reversed(graph.order):
        reaches[m.name] = m.is_loss or any(
            reaches.get(c, False)
            and any(i == m.name and k not in _no_grad(by_name[c]) for k, i in enumerate(by_name[c].inputs))
            for c in graph.consumers[m.name]
        )
    return reaches


def _forward_steps(shaped: Shaped, used: dict[str, list[str]], tensors: dict[str, Tensor]) -> list[Step]:
    """One forward step per module in topological order; adds each one's saved tensors."""
    types = shaped.types
    forward: list[Step] = []
    for m in shaped.graph.order:
        saved = []
        for s in OPS[m.op].saved(m.attrs, [types[i] for i in m.inputs], types[m.name]):
            sname = f"{m.name}:{s.name}"
            tensors[sname] = Tensor(
                name=sname,
                shape=list(s.shape),
                dtype=s.dtype,
                batched=s.batched,
                kind="saved",
                producer=m.name,
                consumers=[m.name],
            )
            saved.append(sname)
        forward.append(
            Step(
                kind="forward",
                module=m.name,
                op=m.op,
                attrs=m.attrs,
                inputs=list(m.inputs),
                output=m.name,
                params=list(used.get(m.name, [])),
                saved=saved,
                weight=m.weight,
            )
        )
    return forward


def _backward_steps(
    shaped: Shaped,
    forward: list[Step],
    requires: dict[str, bool],
    reaches: dict[str, bool],
    tensors: dict[str, Tensor],
) -> list[Step]:
    """One backward step, in reverse topological order, per module whose output requires grad
    and reaches a loss; adds the gradient tensors. The first step to reach a gradient writes
    it, later ones accumulate into it."""
    graph, types = shaped.graph, shaped.types
    backward: list[Step] = []
    written: set[str] = set()
    for fs, m in zip(reversed(forward), reversed(graph.order), strict=True):
        if not (requires[m.name] and reaches[m.name]):
            continue
        no_grad = _no_grad(m)
        gins: list[str | None] = []
        acc: list[bool] = []
        for idx, i in enumerate(m.inputs):
            if requires[i] and idx not in no_grad:
                g = grad_name(i)
                gins.append(g)
                acc.append(g in written)
                written.add(g)
                if g not in tensors:
                    t = types[i]
                    tensors[g] = Tensor(
                        name=g,
                        shape=list(t.shape),
                        dtype=t.dtype,
                        batched=t.batched,
                        kind="grad",
                        producer=m.name,
                        consumers=[i],
                    )
            else:
                gins.append(None)
                acc.append(False)
        backward.append(
            Step(
                kind="backward",
                module=m.name,
                op=m.op,
                attrs=m.attrs,
                inputs=list(m.inputs),
                output=m.name,
                params=fs.params,
                saved=fs.saved,
                grad_output=None if m.is_loss else grad_name(m.name),
                grad_inputs=gins,
                accumulate=acc,
                weight=m.weight,
            )
        )
    return backward


def _module_rows(
    shaped: Shaped, by_module: dict[str, list[ParamInfo]], has_backward: set[str]
) -> list[ModuleRow]:
    """The summary table's row of each module: shape, parameter counts and FLOPs."""
    rows = []
    for m in shaped.graph.order:
        ps = by_module.get(m.name, [])
        f, b = shaped.flops[m.name]
        t = shaped.types[m.name]
        rows.append(
            ModuleRow(
                name=m.name,
                op=m.op,
                describe=OPS[m.op].describe(m.attrs),
                output_shape=list(t.shape),
                batched=t.batched,
                params=sum(p.numel for p in ps if p.role != "stat"),
                trainable_params=sum(p.numel for p in ps if p.trainable),
                forward_flops=f,
                backward_flops=b if m.name in has_backward else 0,
                blocks=list(m.blocks),
                is_loss=m.is_loss,
                buffers=sum(p.numel for p in ps if p.role == "stat"),
            )
        )
    return rows
