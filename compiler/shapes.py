"""Pass 5 — shapes: every tensor's type, every module's parameters and FLOPs.

Runs each op contract's shape rule in topological order. A failing rule
becomes a SpecError naming the module, its place in the file and both
shapes; modules downstream of a failure are skipped, so independent errors
are all reported in one run. Then every ``share:`` is checked against the
parameters' shapes and resolved to its owner (compiler.ties, ``Shaped.ties``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..spec.errors import Diagnostic, SpecError, pointer
from ..spec.expand import Module
from .graph import Graph
from .ops import OPS
from .ops.base import Param, ShapeError, TensorType
from .ties import resolve as resolve_ties


@dataclass
class Shaped:
    graph: Graph
    types: dict[str, TensorType]  # tensor name (input or module) -> type
    params: dict[str, list[Param]]  # module -> its parameters
    flops: dict[str, tuple[int, int]]  # module -> (forward, backward) per sample
    ties: dict[str, str] = field(default_factory=dict)  # sharing parameter -> its owner (compiler.ties)


def _in_ptr(m: Module, i: int) -> str:
    return "/in" if len(m.inputs) == 1 else pointer("in", i)


def _typed(t: TensorType) -> str:
    return str(t) if t.dtype == "float32" else f"{t} {t.dtype}"


def _name_inputs(message: str, names: list[str]) -> str:
    """Name each input an op's message mentions, at its first mention: "input 1 'x' is [N, 4]"."""
    seen: set[int] = set()

    def name(mo: re.Match[str]) -> str:
        i = int(mo.group(1))
        if i in seen or i >= len(names):
            return mo.group(0)
        seen.add(i)
        return f"{mo.group(0)} '{names[i]}'"

    return re.sub(r"\binput (\d+)\b(?! ')", name, message)


def infer_shapes(graph: Graph) -> Shaped:
    net = graph.net
    types = {
        name: TensorType(tuple(spec["shape"]), spec.get("dtype", "float32"))
        for name, spec in net.inputs.items()
    }
    params: dict[str, list[Param]] = {}
    flops: dict[str, tuple[int, int]] = {}
    errors: list[Diagnostic] = []
    advised: list[Diagnostic] = []  # warnings from the op contracts (Op.advice)
    for m in graph.order:
        if any(i not in types for i in m.inputs):
            continue  # an upstream module failed and was reported
        op = OPS[m.op]
        lo, hi = op.arity_range()
        n = len(m.inputs)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            errors.append(
                Diagnostic(
                    f"module '{m.name}' ({m.op}) takes {want} input(s), got {n}",
                    m.where("/in"),
                    m.ptr + "/in",
                )
            )
            continue
        ins = [types[i] for i in m.inputs]
        masks = op.mask_inputs(m.attrs, n)  # either dtype: the op's shape rule checks them
        bad_dtype = next(
            (i for i, t in enumerate(ins) if i not in masks and (t.dtype == "int64") != (i in op.int_inputs)),
            None,
        )
        shapes = ", ".join(f"'{i}' {_typed(t)}" for i, t in zip(m.inputs, ins, strict=True))
        hint = f"its inputs: {shapes}" if ins else None  # constant, zeros: no inputs to show
        try:
            if bad_dtype is not None:
                want = "int64" if bad_dtype in op.int_inputs else "float32"
                name = m.inputs[bad_dtype]
                if want == "float32":
                    hint = "int64 values (class labels, token ids) feed an embedding, or a loss as its labels"
                elif name in net.inputs:
                    hint = f"declare input '{name}' with `dtype: int64`"
                got = ins[bad_dtype].dtype
                raise ShapeError(f"input {bad_dtype} '{name}' must be {want}, got {got}", bad_dtype)
            out = op.shape(m.attrs, ins)
            ps = op.params(m.attrs, ins)
        except ShapeError as e:
            sub = _in_ptr(m, e.input_index) if e.input_index is not None else ""
            ctx = m.note and f" (in {m.note})"
            text = _name_inputs(str(e), m.inputs)
            # "module 'c1': conv2d kernel ..." rather than "module 'c1' (conv2d): conv2d kernel ..."
            who = f"module '{m.name}'" if text.startswith(m.op + " ") else f"module '{m.name}' ({m.op})"
            errors.append(Diagnostic(f"{who}: {text}{ctx}", m.where(sub), m.ptr + sub, hint))
            continue
        advice = op.advice(m.attrs, ins)
        if advice:
            ctx = m.note and f" (in {m.note})"
            advised.append(
                Diagnostic(f"module '{m.name}': {advice}{ctx}", m.where(), m.ptr, severity="warning")
            )
        if not m.trainable:
            ps = [Param(p.name, p.shape, p.init, False, p.fan_in, p.fan_out) for p in ps]
        types[m.name] = out
        params[m.name] = ps
        flops[m.name] = op.flops(m.attrs, ins, out)
    if errors:
        # The warnings go along: a linear given [N, C, H, W] explains the error at the loss.
        raise SpecError(advised + errors)
    ties = resolve_ties(graph.order, params)  # `share:` is checked against the parameters' shapes
    graph.warnings.extend(advised)
    return Shaped(graph, types, params, flops, ties)
