"""The op contract and the bases ops share: what the compiler and the runtime know about an op.

Every op file in this folder defines one subclass of :class:`Op` and one
instance of it named ``OP``. The compiler reads only this contract; kernels
live in ``runtime/kernels/<op>.py``. An op states every fact a pass or the
runtime needs about it here, on its class, so no side table elsewhere has to
know op names: its drawing ``family``, the ``param_role`` of each parameter
(what weight decay and penalties apply to), the ``loss_kind`` of a loss (how
the trainer scores it) and the ``int_input_range`` of its integer inputs.
``missing_facts`` (in ``__init__``) lists what an op left out.

This module also owns the bases several ops derive from (:class:`Elementwise`,
:class:`Movement`, :class:`Loss`, :class:`ClassificationLoss`, :class:`Normalization`;
the pools' ``Pool2d`` lives in ``maxpool2d``) and the shape helpers they share.

Conventions every contract follows
----------------------------------
* Shapes are **per sample**: the batch dimension is implicit. Axis 0 of a
  per-sample shape is axis 1 of the runtime array. Loss ops are the exception:
  they reduce over the batch and output a batchless scalar.
* FLOPs are **per sample**; one multiply-add counts as 2 FLOPs. Backward FLOPs
  cover the gradient with respect to every input and parameter.
* Attribute schemas are JSON-Schema fragments with explicit ``default``s. The
  validator only checks; netc fills defaults itself (``fill_defaults``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, ClassVar

#: CPU threads whose private scratch the workspace budget covers (conv2d runs
#: one block of samples per thread). NETC_THREADS overrides; kernels use no
#: more threads than the workspace they are given holds.
THREADS = max(1, int(os.environ.get("NETC_THREADS", "2")))

DTYPE_BYTES = {"float32": 4, "float64": 8, "int64": 8}


class ShapeError(Exception):
    """A shape rule failed. The message names the offending input and shapes;
    the shapes pass adds the module name and source location."""

    def __init__(self, message: str, input_index: int | None = None) -> None:
        super().__init__(message)
        self.input_index = input_index


@dataclass(frozen=True)
class TensorType:
    """A tensor's per-sample shape and dtype. ``batched=False`` marks a value
    with no batch dimension (a reduced loss)."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    batched: bool = True

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def nbytes(self, batch: int) -> int:
        n = self.numel * DTYPE_BYTES[self.dtype]
        return n * batch if self.batched else n

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"[N, {dims}]" if self.batched and dims else ("[N]" if self.batched else f"[{dims}]")


@dataclass(frozen=True)
class Param:
    """A parameter of a module. ``fan_in``/``fan_out`` feed the initializers;
    non-trainable parameters (batchnorm running statistics) get no gradient
    and no optimizer state."""

    name: str
    shape: tuple[int, ...]
    init: str
    trainable: bool = True
    fan_in: int = 1
    fan_out: int = 1

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Saved:
    """An extra tensor the forward pass saves for backward (a dropout mask,
    batchnorm's batch mean and inverse std, attention probabilities)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    batched: bool = True


# JSON-Schema fragments shared by several contracts.
INT_POS = {"type": "integer", "minimum": 1}
INT_NONNEG = {"type": "integer", "minimum": 0}
PAIR_POS = {"oneOf": [INT_POS, {"type": "array", "items": INT_POS, "minItems": 2, "maxItems": 2}]}
PAIR_NONNEG = {"oneOf": [INT_NONNEG, {"type": "array", "items": INT_NONNEG, "minItems": 2, "maxItems": 2}]}
AXIS = {"type": "integer"}
PROB = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
INITS = [
    "kaiming_uniform",
    "kaiming_normal",
    "xavier_uniform",
    "xavier_normal",
    "normal",
    "uniform",
    "zeros",
    "ones",
]
INIT_ATTR = {
    "enum": INITS,
    "default": "kaiming_uniform",
    "description": "weight initializer; biases follow the PyTorch rule U[-1,1]/sqrt(fan_in) "
    "for kaiming_uniform and are zero otherwise",
}


def bias_init(weight_init: str) -> str:
    """PyTorch's rule: with its default (Kaiming uniform) weights, biases are
    U[-1,1]/sqrt(fan_in) ("fan_in_uniform"); with any other chosen init, zero."""
    return "fan_in_uniform" if weight_init == "kaiming_uniform" else "zeros"


#: Op families, by which a drawing colours its nodes (``compiler/report/draw.py``).
FAMILIES = (
    "conv",
    "linear",
    "norm",
    "activation",
    "pooling",
    "attention",
    "merge",
    "shape",
    "regularization",
    "parameter",
    "loss",
    "other",
)
#: Parameter roles in the plan (``Op.param_role``): optimizers exempt bias and norm from weight
#: decay, penalties apply to weights only, stats are never trained.
ROLES = ("weight", "bias", "norm", "stat")
#: What a loss's targets are, which decides how the trainer scores it: class labels
#: (accuracy), 0/1 targets (accuracy at 0.5), or values (error only).
LOSS_KINDS = ("classification", "binary", "regression")

REDUCTION = {"enum": ["mean", "sum"], "default": "mean", "description": "how the loss reduces over the batch"}


class Op:
    """Base class of every op contract. Subclasses set the class attributes and
    override the methods whose default does not fit."""

    name: ClassVar[str]
    #: attribute name -> JSON-Schema fragment (with "default" unless required)
    attributes: ClassVar[dict[str, Any]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    #: number of inputs: an int, or (min, max) with max None for "any"
    arity: ClassVar[int | tuple[int, int | None]] = 1
    is_loss: ClassVar[bool] = False
    #: one of FAMILIES: how a drawing colours the op (every op must set it)
    family: ClassVar[str | None] = None
    #: whether an in-place activation may follow this op in its output buffer (compiler.fusion):
    #: the op writes a fresh output, and its backward never reads that output
    epilogue_producer: ClassVar[bool] = False
    #: (normalisations) producer op -> the per-sample rank of its output at which an inference
    #: plan may fold this op into the producer's weights (compiler.fusion); empty = never
    folds_after: ClassVar[dict[str, int]] = {}
    #: one of LOSS_KINDS for a loss (every loss must set it); None for every other op
    loss_kind: ClassVar[str | None] = None
    #: attributes worth printing on a drawing's node
    key_attributes: ClassVar[tuple[str, ...]] = ()
    #: indices of inputs that take int64 (labels, token ids); ``int_input_range`` bounds each
    int_inputs: ClassVar[tuple[int, ...]] = ()
    #: what ``saves_inputs``/``saves_output`` answer unless overridden; None = every required input
    reads_inputs: ClassVar[tuple[int, ...] | None] = None
    reads_output: ClassVar[bool] = False
    #: (attributes, per-sample input types) of a typical use, shown in docs/ops.md and tested
    example: ClassVar[tuple[dict[str, Any], tuple[TensorType, ...]] | None] = None

    # -- attributes -----------------------------------------------------
    def fill_defaults(self, attrs: dict[str, Any]) -> dict[str, Any]:
        out = {k: v["default"] for k, v in self.attributes.items() if "default" in v}
        out.update(attrs)
        return out

    def arity_range(self) -> tuple[int, int | None]:
        return (self.arity, self.arity) if isinstance(self.arity, int) else self.arity

    # -- facts the passes and the runtime read ---------------------------
    def param_role(self, pname: str, trainable: bool) -> str:
        """The role of parameter ``pname`` in the plan: "weight", "bias", "norm" (a
        normalisation's scale and shift) or "stat" (running statistics, never trained).
        Optimizers exempt roles from weight decay and penalties by it. Default: the house
        naming rule, "b" or "b_…" is a bias, anything else a weight."""
        return "bias" if pname.startswith("b") else "weight"

    def mask_inputs(self, attrs: dict[str, Any], n_inputs: int) -> tuple[int, ...]:
        """Indices of inputs that only mask (attention's masks): int64 or float32 as ``shape``
        checks, and never given a gradient. Default: none."""
        return ()

    def int_input_range(self, attrs: dict[str, Any], ins: list[TensorType]) -> dict[int, int]:
        """For each input in ``int_inputs``, the exclusive upper bound of its valid values
        (0 is the lower bound): what random test inputs draw from, and what the kernels
        reject beyond. Ops with integer inputs must override it."""
        return {}

    # -- the contract ---------------------------------------------------
    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        """Output type from input types. Raise ShapeError with both shapes."""
        return ins[0]

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        return []

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        """(forward, backward) FLOPs per sample. Default: one op per output
        element forward, two backward (elementwise ops)."""
        return out.numel, 2 * out.numel

    def advice(self, attrs: dict[str, Any], ins: list[TensorType]) -> str | None:
        """A warning for a use that is valid but most likely not what was meant (the shapes
        pass reports it at the module), or None."""
        return None

    def saves_inputs(self, attrs: dict[str, Any]) -> tuple[int, ...]:
        """Indices of inputs the backward pass reads. An index at or past the number of inputs
        a module actually has (an optional input left out) is to be ignored."""
        return self.reads_inputs if self.reads_inputs is not None else tuple(range(self.arity_range()[0]))

    def saves_output(self, attrs: dict[str, Any]) -> bool:
        """Whether the backward pass reads the output."""
        return self.reads_output

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        """Extra tensors forward writes for backward."""
        return []

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        """Scratch bytes a step needs while it runs (shared by all steps)."""
        return 0

    def describe(self, attrs: dict[str, Any]) -> str:
        """Short attribute text for tables and drawings."""
        parts = []
        for k in self.key_attributes:
            v = attrs.get(k)
            default = self.attributes.get(k, {}).get("default", object())
            if v is None or v is False or v == default:  # defaults are noise in a table
                continue
            parts.append(f"{k}={_fmt(k, v)}")
        return " ".join(parts)


def _fmt(key: str, v: Any) -> str:
    # Window sizes read as 3x3; other lists (axes, perm, shape) stay lists.
    if isinstance(v, list) and key in ("kernel", "stride", "dilation"):
        return "x".join(str(x) for x in v)
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)


def pair(v: int | list[int]) -> tuple[int, int]:
    """An int or a 2-list as a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """A possibly negative per-sample axis as a non-negative index."""
    if not -rank <= axis < rank:
        raise ShapeError(f"{what} {axis} is out of range for a per-sample shape of rank {rank}")
    return axis % rank


def same_shapes(ins: list[TensorType], opname: str) -> TensorType:
    """Shape rule for ops whose inputs must all have one shape."""
    for i, t in enumerate(ins[1:], start=1):
        if t.shape != ins[0].shape:
            raise ShapeError(
                f"{opname} needs inputs of one shape, but input 0 is {ins[0]} and input {i} is {t}", i
            )
    return TensorType(ins[0].shape, ins[0].dtype)


def broadcast_shapes(ins: list[TensorType], opname: str) -> TensorType:
    """NumPy's broadcasting rule over the per-sample axes (the batch axis is shared): shapes align
    on the right, and each axis is equal or 1 in all but one input."""
    out: list[int] = []
    for i, t in enumerate(ins):
        float_input(t, i)
        pad = [1] * (len(t.shape) - len(out)) + out
        dims = [1] * (len(pad) - len(t.shape)) + list(t.shape)
        for ax, (a, d) in enumerate(zip(pad, dims, strict=True)):
            if a != d and 1 not in (a, d):
                before = f"input 0 {ins[0]}" if i == 1 else f"{TensorType(tuple(pad))} (inputs 0 to {i - 1})"
                raise ShapeError(
                    f"{opname} cannot broadcast input {i} {t} against {before}: axis {ax - len(pad)} is "
                    f"{d} against {a}; each axis must be equal or 1",
                    i,
                )
        out = [max(a, d) for a, d in zip(pad, dims, strict=True)]
    return TensorType(tuple(out), ins[0].dtype)


def float_input(t: TensorType, index: int = 0) -> None:
    if t.dtype != "float32":
        raise ShapeError(f"input {index} must be float32, got {t.dtype}", index)


class Elementwise(Op):
    """Unary elementwise op: output shape = input shape. ``cost`` is the
    (forward, backward) FLOPs per element; a transcendental (exp, tanh, erf)
    counts as one FLOP."""

    family = "activation"  # unless the op says otherwise (dropout, parameter)
    #: whether y[i] depends on x[i] alone (not softmax): an inference plan may then apply the op
    #: in its producer's output buffer whatever its backward reads (compiler.fusion)
    pointwise: ClassVar[bool] = True
    cost: ClassVar[tuple[int, int]] = (1, 2)
    example = ({}, (TensorType((16,)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        float_input(ins[0])
        return ins[0]

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return self.cost[0] * out.numel, self.cost[1] * out.numel


# -- helpers shared by several contracts ---------------------------------------------------------------

PAIR_OR_NULL = {"oneOf": [*PAIR_POS["oneOf"], {"type": "null"}]}
AXES = {"type": "array", "items": AXIS, "minItems": 1}
EPS = {"type": "number", "exclusiveMinimum": 0, "default": 1e-5, "description": "added to the variance"}
AFFINE = {"type": "boolean", "default": True, "description": "learn a per-feature scale w and shift b"}


def check_rank(opname: str, t: TensorType, index: int, ranks: Container[int], layout: str) -> None:
    """Raise unless input ``index`` has a per-sample rank in ``ranks``; ``layout`` names the
    expected shape, e.g. ``"[N, C, H, W]"``."""
    if len(t.shape) not in ranks:
        raise ShapeError(f"{opname} needs input {index} of shape {layout}, but input {index} is {t}", index)


def check_dtype(opname: str, t: TensorType, index: int, dtype: str, what: str = "") -> None:
    if t.dtype != dtype:
        what = f" ({what})" if what else ""
        raise ShapeError(f"{opname} needs input {index}{what} of dtype {dtype}, got {t.dtype} {t}", index)


def axes_set(opname: str, axes: list[int], rank: int) -> tuple[int, ...]:
    """Per-sample axes (negative allowed) as sorted non-negative indices; duplicates are an error."""
    out = sorted(norm_axis(a, rank, f"{opname} axis") for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"{opname} axes {axes} name an axis twice (per-sample rank {rank})", 0)
    return tuple(out)


def window_out(
    opname: str,
    x: TensorType,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilation: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Output (height, width) of a 2-d sliding window over the last two axes of ``x``:
    floor((size + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1, as PyTorch
    (ceil_mode off). ``pads`` is (top, bottom, left, right)."""
    (kh, kw), (dh, dw) = kernel, dilation or (1, 1)
    ph, pw = x.shape[-2] + pads[0] + pads[1], x.shape[-1] + pads[2] + pads[3]
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if eh > ph or ew > pw:
        dil = f" (dilated {eh}x{ew})" if (dh, dw) != (1, 1) else ""
        raise ShapeError(
            f"{opname} kernel {kh}x{kw}{dil} is larger than the padded input {ph}x{pw} (input 0 is {x})", 0
        )
    return (ph - eh) // stride[0] + 1, (pw - ew) // stride[1] + 1


class Movement(Op):
    """An op that only moves or views data (reshape, transpose, concat, select): no FLOPs,
    and backward needs nothing but shapes."""

    family = "shape"  # unless the op says otherwise (concat merges)
    reads_inputs = ()

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return 0, 0


class Loss(Op):
    """A loss: two inputs, reduced over the batch to one batchless scalar. Backward reads both
    inputs. ``cost`` is the (forward, backward) FLOPs per element of input 0."""

    arity = 2
    is_loss = True
    family = "loss"
    attributes: ClassVar[dict[str, Any]] = {"reduction": REDUCTION}
    key_attributes = ("reduction",)
    cost: ClassVar[tuple[int, int]] = (3, 3)
    example = ({}, (TensorType((10,)), TensorType((10,))))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        """Default rule: a prediction and a float target of one shape."""
        for i, t in enumerate(ins):
            float_input(t, i)
        same_shapes(ins, self.name)
        return TensorType((), batched=False)

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return self.cost[0] * ins[0].numel, self.cost[1] * ins[0].numel


class ClassificationLoss(Loss):
    """A loss over float logits [..., C] and int64 class labels [...] (input 1), each in [0, C)."""

    loss_kind = "classification"
    int_inputs = (1,)
    example = ({}, (TensorType((10,)), TensorType((), "int64")))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        logits, labels = ins
        float_input(logits, 0)
        check_dtype(self.name, labels, 1, "int64", "class labels")
        if not logits.shape or labels.shape != logits.shape[:-1]:
            raise ShapeError(
                f"{self.name} needs labels shaped like the logits without their last (class) axis, but "
                f"input 0 is {logits} and input 1 is {labels}",
                1,
            )
        return TensorType((), batched=False)

    def int_input_range(self, attrs: dict[str, Any], ins: list[TensorType]) -> dict[int, int]:
        return {1: ins[0].shape[-1]}  # labels index the logits' last axis


class Normalization(Op):
    """A normalisation layer (batch or layer norm): an optional learned scale ``w`` and shift
    ``b`` (role "norm": no weight decay) and possibly running statistics (role "stat").
    FLOPs per element: forward 7 (+2 with affine), backward 10 (+3 with affine)."""

    family = "norm"
    epilogue_producer = True

    def param_role(self, pname: str, trainable: bool) -> str:
        return "stat" if not trainable and pname.startswith("running_") else "norm"

    @staticmethod
    def affine_params(shape: tuple[int, ...], affine: bool) -> list[Param]:
        """w ("ones") and b ("zeros") of the layer, when affine."""
        return [Param("w", shape, "ones"), Param("b", shape, "zeros")] if affine else []

    @staticmethod
    def running_params(shape: tuple[int, ...]) -> list[Param]:
        """running_mean ("zeros") and running_var ("ones"): statistics, never trained."""
        return [
            Param("running_mean", shape, "zeros", trainable=False),
            Param("running_var", shape, "ones", trainable=False),
        ]

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        n, affine = out.numel, attrs["affine"]
        return 7 * n + 2 * n * affine, 10 * n + 3 * n * affine
