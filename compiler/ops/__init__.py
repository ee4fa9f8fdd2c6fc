"""The op registry: an explicit list, no import magic.

Adding an op: write compiler/ops/<op>.py (the contract, one ``OP`` instance)
and runtime/kernels/<op>.py, then add its name to ``NAMES`` below.
"""

from __future__ import annotations

import importlib

from .base import Op

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
    "hinge",
    "identity",
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
    "relu",
    "reshape",
    "select",
    "sigmoid",
    "softmax",
    "tanh",
    "transpose",
)

_MODULES = [importlib.import_module(f".{name}", __name__) for name in NAMES]

OPS: dict[str, Op] = {m.OP.name: m.OP for m in _MODULES}
LOSSES = sorted(name for name, op in OPS.items() if op.is_loss)
LAYERS = sorted(name for name, op in OPS.items() if not op.is_loss)


def get(name: str) -> Op:
    return OPS[name]
