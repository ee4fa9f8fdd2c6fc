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
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))


def grad_name(tensor: str) -> str:
    return f"d:{tensor}"


def _role(module_op: str, pname: str, trainable: bool) -> str:
    if not trainable and pname.startswith("running_"):
        return "stat"
    if module_op in ("batchnorm1d", "batchnorm2d", "layernorm"):
        return "norm"
    return "bias" if pname.startswith("b") else "weight"


def build_plan(shaped: Shaped, optimizer: str = "sgd", input_grads: bool = False) -> Plan:
    """Steps, tensors and parameters of a shaped graph (memory not yet assigned).
    ``input_grads`` also computes gradients of the float spec inputs
    (for gradient checks and saliency)."""
    graph = shaped.graph
    net = graph.net
    types = shaped.types
    tensors: dict[str, Tensor] = {}
    for name, t in types.items():
        producer = None if name in net.inputs else name
        kind = "input" if producer is None else "activation"
        tensors[name] = Tensor(
            name, list(t.shape), t.dtype, t.batched, kind, producer, list(graph.consumers[name])
        )
    for m in graph.losses:
        tensors[m.name].kind = "loss"

    # Parameters: one flat buffer for all, one for the gradients of trainable ones.
    params: list[ParamInfo] = []
    offset = goffset = 0
    for m in graph.order:
        for p in shaped.params[m.name]:
            trainable = p.trainable and m.trainable
            params.append(
                ParamInfo(
                    f"{m.name}.{p.name}",
                    m.name,
                    list(p.shape),
                    p.init,
                    trainable,
                    p.fan_in,
                    p.fan_out,
                    offset,
                    goffset if trainable else None,
                    m.lr_mult,
                    _role(m.op, p.name, trainable),
                )
            )
            offset += p.numel
            if trainable:
                goffset += p.numel
    by_module: dict[str, list[ParamInfo]] = {}
    for p in params:
        by_module.setdefault(p.module, []).append(p)

    # Which tensors need gradients, and which modules reach a loss.
    requires = {n: input_grads and spec.get("dtype", "float32") != "int64" for n, spec in net.inputs.items()}
    for m in graph.order:
        own = any(p.trainable for p in by_module.get(m.name, []))
        requires[m.name] = own or any(requires[i] for i in m.inputs)
    reaches: dict[str, bool] = {}
    for m in reversed(graph.order):
        reaches[m.name] = m.is_loss or any(reaches.get(c, False) for c in graph.consumers[m.name])

    forward: list[Step] = []
    for m in graph.order:
        op = OPS[m.op]
        ins = [types[i] for i in m.inputs]
        saved = []
        for s in op.saved(m.attrs, ins, types[m.name]):
            sname = f"{m.name}:{s.name}"
            tensors[sname] = Tensor(sname, list(s.shape), s.dtype, s.batched, "saved", m.name, [m.name])
            saved.append(sname)
        forward.append(
            Step(
                "forward",
                m.name,
                m.op,
                m.attrs,
                list(m.inputs),
                m.name,
                [p.name for p in by_module.get(m.name, [])],
                saved,
                weight=m.weight,
            )
        )

    backward: list[Step] = []
    written: set[str] = set()
    for fs, m in zip(reversed(forward), reversed(graph.order), strict=True):
        if not (requires[m.name] and reaches[m.name]):
            continue
        op = OPS[m.op]
        gins: list[str | None] = []
        acc: list[bool] = []
        for idx, i in enumerate(m.inputs):
            if requires[i] and idx not in op.int_inputs:
                g = grad_name(i)
                gins.append(g)
                acc.append(g in written)
                written.add(g)
                if g not in tensors:
                    t = types[i]
                    tensors[g] = Tensor(g, list(t.shape), t.dtype, t.batched, "grad", m.name, [i])
            else:
                gins.append(None)
                acc.append(False)
        backward.append(
            Step(
                "backward",
                m.name,
                m.op,
                m.attrs,
                list(m.inputs),
                m.name,
                fs.params,
                fs.saved,
                grad_output=None if m.is_loss else grad_name(m.name),
                grad_inputs=gins,
                accumulate=acc,
                weight=m.weight,
            )
        )

    has_backward = {s.module for s in backward}
    rows = []
    for m in graph.order:
        ps = by_module.get(m.name, [])
        f, b = shaped.flops[m.name]
        t = types[m.name]
        rows.append(
            ModuleRow(
                m.name,
                m.op,
                OPS[m.op].describe(m.attrs),
                list(t.shape),
                t.batched,
                sum(p.numel for p in ps if p.role != "stat"),
                sum(p.numel for p in ps if p.trainable),
                f,
                b if m.name in has_backward else 0,
                list(m.blocks),
                m.is_loss,
                sum(p.numel for p in ps if p.role == "stat"),
            )
        )
    return Plan(
        name=net.name,
        inputs=list(net.inputs),
        outputs=list(graph.outputs),
        losses={m.name: m.weight for m in graph.losses},
        tensors=tensors,
        params=params,
        steps=forward + backward,
        modules=rows,
        clusters=dict(net.clusters),
        optimizer=optimizer,
    )
