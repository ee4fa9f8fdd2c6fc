"""The op registry: an explicit list, no import magic, and what a registered op must state.

Adding an op: write compiler/ops/<op>.py (the contract, one ``OP`` instance,
with its facts: ``family``, ``loss_kind`` for a loss, ``int_input_range`` for
integer inputs) and runtime/kernels/<op>.py, then add its name to ``NAMES``
below. ``missing_facts`` says what a contract left out; the registry tests
run it (and ``runtime.kernels.missing_parts``, which adds the kernels) on
every op.
"""

from __future__ import annotations

import importlib
import inspect

from .base import FAMILIES, LOSS_KINDS, ROLES, Op

# The explicit list of ops: one name per file in this folder (no directory scanning).
NAMES = (
    "add",
    "avgpool2d",
    "batchnorm1d",
    "batchnorm2d",
    "binary_cross_entropy",
    "cls_token",
    "concat",
    "conv2d",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "flatten",
    "gelu",
    "global_avgpool",
    "groupnorm",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "hinge",
    "identity",
    "instancenorm",
    "l1",
    "layernorm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "maxout",
    "maxpool2d",
    "mean",
    "mse",
    "mul",
    "multi_head_attention",
    "parameter",
    "positional_encoding",
    "prelu",
    "relu",
    "relu6",
    "reshape",
    "select",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
    "transpose",
    "smooth_l1",
    "nll_loss",
    "conv1d",
    "maxpool1d",
    "avgpool1d",
    "global_maxpool",
    "sub",
    "div",
    "matmul",
    "constant",
    "zeros",
    "rnn",
    "lstm",
    "gru",
    "conv_transpose2d",
    "upsample",
)

_MODULES = [importlib.import_module(f".{name}", __name__) for name in NAMES]

OPS: dict[str, Op] = {m.OP.name: m.OP for m in _MODULES}
LOSSES = sorted(name for name, op in OPS.items() if op.is_loss)
LAYERS = sorted(name for name, op in OPS.items() if not op.is_loss)


def get(name: str) -> Op:
    return OPS[name]


def missing_facts(op: Op) -> list[str]:
    """What the contract ``op`` fails to state, one line per fact (empty when complete): its
    name and module (``OP``, a docstring "name: formula" that docs/ops.md is generated from),
    an ``example``, its ``family``, a ``loss_kind`` exactly when it is a loss, an
    ``int_input_range`` bound for each of its ``int_inputs``, and a known role per parameter."""
    name = getattr(op, "name", None)
    if not name:
        return ["name: not set"]
    out = []
    module = inspect.getmodule(type(op))
    doc = (module.__doc__ if module else None) or ""
    if not doc.startswith(f"{name}:"):
        out.append(f"docs: the module docstring must start with '{name}: <formula>' (docs/ops.md)")
    if module is None or getattr(module, "OP", None) is not op:
        out.append(f"OP: the op's module must define OP = {type(op).__name__}()")
    if op.family not in FAMILIES:
        out.append(f"family: {op.family!r} is not one of {', '.join(FAMILIES)}")
    if op.is_loss and op.loss_kind not in LOSS_KINDS:
        out.append(f"loss_kind: a loss must say {' | '.join(LOSS_KINDS)}, not {op.loss_kind!r}")
    if not op.is_loss and op.loss_kind is not None:
        out.append(f"loss_kind: {op.loss_kind!r} set on an op that is not a loss")
    if op.example is None:
        out.append("example: not set (docs/ops.md shows every op on its example)")
        return out
    attrs, ins = op.example
    attrs = op.fill_defaults(attrs)
    ranges = op.int_input_range(attrs, list(ins))
    if set(ranges) != set(op.int_inputs):
        out.append(
            f"int_input_range: bounds inputs {sorted(ranges)}, but the int64 inputs are "
            f"{sorted(op.int_inputs)}"
        )
    for p in op.params(attrs, list(ins)):
        role = op.param_role(p.name, p.trainable)
        if role not in ROLES:
            out.append(f"param_role: {p.name} has role {role!r}, not one of {', '.join(ROLES)}")
    return out
