"""`netc draw`: the plan as a Graphviz drawing.

Two stages kept apart: ``to_dot`` turns a Plan into DOT text (pure, no
renderer needed, deterministic), and ``draw`` renders that text to .svg,
.png or .pdf with whichever Graphviz is at hand:

1. the system Graphviz ``dot`` on PATH (every format);
2. ``graphviz-pure``, a self-contained Graphviz port from PyPI that netc
   depends on, so a plain ``pip install`` can draw (svg and png, no pdf);
3. neither: the DOT text is written next to the requested file, with the
   command that renders it.

The DOT is fed to the renderer on stdin and its output read from stdout, so
netc writes every file itself and a person's bad path is one clear error.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ops import OPS

if TYPE_CHECKING:  # annotations only: Plan.summary()/draw() import these modules
    from ..plan import ModuleRow, Plan

FORMATS = (".svg", ".png", ".pdf", ".dot")
RENDERERS = ("auto", "system", "pypi", "none")
PYPI_NAME = "graphviz-pure"
TIMEOUT_S = 60
PNG_DPI = 144  # Graphviz's default 96 dpi makes small, blurry labels

# Pastel fills by op family (``compiler/ops/base.py`` FAMILIES), so a drawing reads at a glance.
# Loss nodes are drawn apart (an octagon in LOSS_COLOR).
FAMILY_COLORS = {
    "conv": "#ffd8a8",
    "linear": "#d3f9d8",
    "norm": "#fff3bf",
    "activation": "#e5dbff",
    "pooling": "#c5f6fa",
    "attention": "#fcc2d7",
    "merge": "#c3fae8",
    "shape": "#e9ecef",
    "regularization": "#f1f3f5",
    "parameter": "#fff9db",
    "loss": "#ffa8a8",  # salmon
    "other": "#f8f9fa",
}
INPUT_COLOR = "#d0ebff"
LOSS_COLOR = FAMILY_COLORS["loss"]
BLOCK_COLOR = "#dee2e6"
TIE_COLOR = "#c2255c"  # the dashed edge of a shared parameter (share:)
CLUSTER_FILLS = ("#f8f9fa", "#eef1f4", "#e4e8ec")  # by nesting depth


class DrawError(Exception):
    """A drawing that cannot be made: bad file name, missing or failing renderer."""


@dataclass
class DrawResult:
    path: str  # the file written (the .dot when no renderer could be used)
    renderer: str  # system | pypi | none
    message: str


def op_family(op: str) -> str:
    """The family that colors an op's node, as the op declares it (``Op.family``); "other" for
    a name the registry does not know (a plan read from JSON written by another netc)."""
    known = OPS.get(op)
    return (known.family if known else None) or "other"


def shape_text(shape: list[int], batched: bool) -> str:
    """A tensor shape as drawn on edges: N×6×28×28 (N = the batch)."""
    dims = [str(d) for d in shape]
    if batched:
        dims.insert(0, "N")
    return "×".join(dims) if dims else "scalar"


# -- DOT text ---------------------------------------------------------------


def _q(text: str) -> str:
    """A DOT double-quoted string (ids and plain labels)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**kv: Any) -> str:
    parts = []
    for k, v in kv.items():
        if v is None:
            continue
        if isinstance(v, _Html):
            parts.append(f"{k}=<{v.text}>")
        else:
            parts.append(f"{k}={_q(str(v))}")
    return "[" + ", ".join(parts) + "]"


@dataclass(frozen=True)
class _Html:
    text: str


def _html_label(title: str, lines: list[str], small: list[str]) -> _Html:
    """A node label: bold title, plain lines, then small gray lines."""
    out = [f"<b>{html.escape(title)}</b>"]
    out += [html.escape(s) for s in lines if s]
    out += [f'<font point-size="9" color="#495057">{html.escape(s)}</font>' for s in small if s]
    return _Html('<br align="center"/>'.join(out))


def _wrap(text: str, width: int = 30) -> list[str]:
    """Split a long attribute line on spaces so nodes stay narrow."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(cur)
    return lines


def _params_text(params: int, trainable: int, buffers: int = 0) -> str:
    parts = []
    if params:
        unit = "param" if params == 1 else "params"
        parts.append(f"{params:,} {unit}")
        if trainable < params:
            parts[-1] += f" ({params - trainable:,} frozen)"
    if buffers:
        parts.append(f"{buffers:,} buffers")
    return " · ".join(parts)


def _tensor_shape(plan: Plan, name: str) -> str:
    t = plan.tensors.get(name)
    return shape_text(t.shape, t.batched) if t is not None else ""


@dataclass
class _Group:
    """A block instance (or the top level) with its items in first-seen order."""

    name: str
    depth: int
    items: list[tuple[str, Any]] = field(default_factory=list)  # ("module", row) | ("group", _Group)
    children: dict[str, _Group] = field(default_factory=dict)


def _module_node(plan: Plan, row: ModuleRow, outputs: set[str]) -> str:
    lines = _wrap(f"{row.op} {row.describe}".strip())
    small = [_params_text(row.params, row.trainable_params, row.buffers)]
    small += [f"shares {', '.join(ps)} of {m}" for m, ps in _shared(plan, row.name).items()]
    kw: dict[str, Any]
    if row.is_loss:
        weight = plan.losses.get(row.name, 1.0)
        if weight != 1.0:
            small.append(f"weight {weight:g}")
        kw = {"shape": "octagon", "style": "filled", "fillcolor": LOSS_COLOR}
    else:
        kw = {"fillcolor": FAMILY_COLORS[op_family(row.op)]}
    if row.name in outputs:
        small.append("output " + shape_text(row.output_shape, row.batched))
        kw.update(penwidth="2.5", peripheries="2")
    return f"{_q(row.name)} {_attrs(label=_html_label(row.name, lines, small), **kw)};"


def _input_node(plan: Plan, name: str) -> str:
    t = plan.tensors.get(name)
    small = ["input " + _tensor_shape(plan, name)]
    if t is not None and t.dtype != "float32":
        small.append(t.dtype)
    label = _html_label(name, [], small)
    return f"{_q(name)} {_attrs(label=label, shape='ellipse', style='filled', fillcolor=INPUT_COLOR)};"


def _edges(plan: Plan, rep: dict[str, str]) -> list[str]:
    """One edge per (producer, consumer) pair, labelled with the tensor's shape;
    ``rep`` maps a node name to the node drawn for it (collapsed blocks)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for step in plan.forward_steps:
        dst = rep.get(step.module, step.module)
        for src_tensor in step.inputs:
            if src_tensor not in rep and src_tensor not in plan.tensors:
                continue
            src = rep.get(src_tensor, src_tensor)
            if src == dst:
                continue  # inside one collapsed block
            key = (src, dst, src_tensor)
            if key in seen:
                continue
            seen.add(key)
            label = " " + _tensor_shape(plan, src_tensor) + " "
            out.append(f"{_q(src)} -> {_q(dst)} {_attrs(label=label)};")
    return out


def _shared(plan: Plan, module: str) -> dict[str, list[str]]:
    """Owner module -> the parameters (owner's names) ``module`` uses from it (``share:``)."""
    out: dict[str, list[str]] = {}
    for t in plan.ties:
        if t.module == module:
            owner, _, name = t.owner.rpartition(".")
            out.setdefault(owner, []).append(name)
    return out


def _tie_edges(plan: Plan, rep: dict[str, str]) -> list[str]:
    """A dashed edge from each owner of shared parameters to each module that uses them, labelled
    with the parameters; it does not move the layout (``constraint=false``)."""
    out = []
    for row in plan.modules:
        for owner, names in _shared(plan, row.name).items():
            src, dst = rep.get(owner, owner), rep.get(row.name, row.name)
            if src != dst:
                label = f" shares {', '.join(names)} "
                kw = {"style": "dashed", "color": TIE_COLOR, "fontcolor": TIE_COLOR, "arrowhead": "odot"}
                out.append(f"{_q(src)} -> {_q(dst)} {_attrs(label=label, constraint='false', **kw)};")
    return list(dict.fromkeys(out))


def _default(kind: str, **kv: Any) -> str:
    """A default-attribute statement: graph/node/edge [...];"""
    return f"{kind} {_attrs(**kv)};"


def _header(plan: Plan) -> list[str]:
    # Trainable parameters are the headline; frozen ones and running
    # statistics (buffers, not parameters) only when there are any.
    title = f"{plan.name} · {plan.trainable_params:,} trainable params"
    if plan.non_trainable_params:
        title += f" · {plan.non_trainable_params:,} frozen"
    if plan.buffers:
        title += f" · {plan.buffers:,} buffers"
    graph = _default(
        "graph",
        label=title,
        labelloc="t",
        fontname="Helvetica",
        fontsize="16",
        rankdir="TB",
        nodesep="0.3",
        ranksep="0.35",
        charset="UTF-8",
    )
    node = _default(
        "node", fontname="Helvetica", fontsize="11", shape="box", style="rounded,filled", margin="0.12,0.06"
    )
    edge = _default("edge", fontname="Helvetica", fontsize="9", color="#495057", arrowsize="0.7")
    return [f"digraph {_q(plan.name or 'netc')} {{", "  " + graph, "  " + node, "  " + edge]


def to_dot(plan: Plan, collapse: bool = False) -> str:
    """Graphviz DOT text for ``plan``: a node per module (or per outermost
    block instance when ``collapse``), inputs as blue ellipses, losses as
    salmon octagons, outputs with a double border, edges labelled with the
    shape of the tensor they carry, block instances as nested clusters."""
    outputs = set(plan.outputs)
    lines = _header(plan)
    for name in plan.inputs:
        lines.append("  " + _input_node(plan, name))

    if collapse:
        lines += _collapsed_body(plan, outputs)
    else:
        root = _Group("", 0)
        for row in plan.modules:
            g = root
            for inst in row.blocks:
                if inst not in g.children:
                    child = _Group(inst, g.depth + 1)
                    g.children[inst] = child
                    g.items.append(("group", child))
                g = g.children[inst]
            g.items.append(("module", row))
        lines += _group_body(plan, root, outputs, "  ")
        lines += ["  " + e for e in [*_edges(plan, {}), *_tie_edges(plan, {})]]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _group_body(plan: Plan, group: _Group, outputs: set[str], indent: str) -> list[str]:
    out = []
    for kind, item in group.items:
        if kind == "module":
            out.append(indent + _module_node(plan, item, outputs))
            continue
        sub: _Group = item
        block = plan.clusters.get(sub.name)
        label = f"{sub.name} ({block})" if block else sub.name
        fill = CLUSTER_FILLS[min(sub.depth - 1, len(CLUSTER_FILLS) - 1)]
        out.append(f"{indent}subgraph {_q('cluster_' + sub.name)} {{")
        style = _default(
            "graph",
            label=label,
            labeljust="l",
            style="rounded,filled",
            fillcolor=fill,
            color="#adb5bd",
            fontname="Helvetica",
            fontsize="11",
        )
        out.append(f"{indent}  {style}")
        out += _group_body(plan, sub, outputs, indent + "  ")
        out.append(f"{indent}}}")
    return out


def _collapsed_body(plan: Plan, outputs: set[str]) -> list[str]:
    rep: dict[str, str] = {}
    members: dict[str, list[ModuleRow]] = {}
    for row in plan.modules:
        if row.blocks:
            rep[row.name] = row.blocks[0]
            members.setdefault(row.blocks[0], []).append(row)
    out = []
    drawn: set[str] = set()
    for row in plan.modules:
        if not row.blocks:
            out.append("  " + _module_node(plan, row, outputs))
            continue
        inst = row.blocks[0]
        if inst in drawn:
            continue
        drawn.add(inst)
        rows = members[inst]
        names = {r.name for r in rows}
        # The instance's result: the last member read from outside (or the last member).
        leaving = [
            r
            for r in rows
            if r.name in outputs
            or any(c not in names for c in (plan.tensors[r.name].consumers if r.name in plan.tensors else []))
        ]
        last = (leaving or rows)[-1]
        n = len(rows)
        block = plan.clusters.get(inst, "?")
        counts = (sum(getattr(r, k) for r in rows) for k in ("params", "trainable_params", "buffers"))
        small = [
            _params_text(*counts),
            "→ " + shape_text(last.output_shape, last.batched),
        ]
        label = _html_label(inst, [f"block {block} · {n} module{'s' if n != 1 else ''}"], small)
        kw: dict[str, Any] = {
            "shape": "box3d",
            "style": "filled",
            "fillcolor": BLOCK_COLOR,
            "margin": "0.15,0.1",
        }
        if any(r.name in outputs for r in rows):
            kw.update(penwidth="2.5", peripheries="2")
        out.append(f"  {_q(inst)} {_attrs(label=label, **kw)};")
    out += ["  " + e for e in [*_edges(plan, rep), *_tie_edges(plan, rep)]]
    return out


# -- rendering ----------------------------------------------------------------


def find_system_dot() -> str | None:
    """The system Graphviz `dot` on PATH."""
    return shutil.which("dot")


def find_pypi_renderer() -> str | None:
    """The `graphviz-pure` console script: on PATH, or beside this Python
    (a virtual environment that is not activated)."""
    return shutil.which(PYPI_NAME) or shutil.which(PYPI_NAME, path=str(Path(sys.executable).parent))


def _with_version(what: str, exe: str) -> str:
    """``what`` and the version ``exe -V`` reports (both renderers print it on stderr)."""
    try:
        p = subprocess.run([exe, "-V"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return what
    m = re.search(r"version\s+([0-9][0-9A-Za-z.~+-]*)", (p.stdout + p.stderr).decode(errors="replace"))
    return f"{what} {m.group(1)}" if m else what


def _render(exe: str, what: str, dot: str, fmt: str) -> bytes:
    cmd = [exe, f"-T{fmt}"]
    if fmt == "png":
        cmd.append(f"-Gdpi={PNG_DPI}")
    try:
        p = subprocess.run(
            cmd, input=dot.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise DrawError(f"{what} did not finish within {TIMEOUT_S} s") from None
    except OSError as e:
        raise DrawError(f"cannot run {what} ({exe}): {e.strerror or e}") from None
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip() or "no message"
        raise DrawError(f"{what} failed (exit {p.returncode}): {err}")
    if not p.stdout:
        raise DrawError(f"{what} wrote nothing for -T{fmt}")
    return p.stdout


def _write(path: Path, data: bytes | str) -> None:
    try:
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
    except OSError as e:
        raise DrawError(f"cannot write {path}: {e.strerror or e}") from None


def draw(plan: Plan, path: str | Path, collapse: bool = False, renderer: str = "auto") -> DrawResult:
    """Draw ``plan`` to ``path`` (.svg, .png, .pdf or .dot).

    ``renderer``: "auto" (system `dot`, else graphviz-pure, else write the
    .dot with instructions), or force "system", "pypi" or "none" (DOT only).
    Raises DrawError for an unknown suffix, a forced renderer that is missing
    or cannot write the format, a renderer that fails, or an unwritable path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        got = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise DrawError(f"cannot draw to {path}: {got}; choose a .svg, .png, .pdf or .dot file")
    if renderer not in RENDERERS:
        raise DrawError(f"unknown renderer '{renderer}'; choose one of {', '.join(RENDERERS)}")
    fmt = suffix[1:]
    dot = to_dot(plan, collapse=collapse)
    n = len(plan.modules)
    count = f"{n} module{'s' if n != 1 else ''}"

    if fmt == "dot":
        _write(path, dot)
        return DrawResult(str(path), "none", f"wrote {path} ({count})")

    system = find_system_dot() if renderer in ("auto", "system") else None
    if renderer == "system" and system is None:
        raise DrawError(
            "the system Graphviz `dot` is not on PATH; install Graphviz "
            "(apt-get install graphviz / brew install graphviz)"
        )
    if system is not None:
        data = _render(system, "Graphviz dot", dot, fmt)
        _write(path, data)
        by = _with_version("system Graphviz dot", system)
        return DrawResult(str(path), "system", f"wrote {path} ({count}, rendered with {by})")

    pypi = find_pypi_renderer() if renderer in ("auto", "pypi") else None
    if renderer == "pypi":
        if pypi is None:
            raise DrawError(f"{PYPI_NAME} is not installed; pip install {PYPI_NAME}")
        if fmt == "pdf":
            raise DrawError(
                f"{PYPI_NAME} cannot write PDF; draw to .svg or .png, or install the system Graphviz"
            )
    if pypi is not None and fmt != "pdf":
        data = _render(pypi, PYPI_NAME, dot, fmt)
        _write(path, data)
        by = _with_version(PYPI_NAME, pypi)
        return DrawResult(str(path), "pypi", f"wrote {path} ({count}, rendered with {by})")

    # No renderer for this format: leave the DOT and say how to finish.
    dot_path = path.with_suffix(".dot")
    _write(dot_path, dot)
    how = f"dot -T{fmt} {dot_path} -o {path}"
    if fmt == "pdf":
        why = (
            "PDF needs the system Graphviz (apt-get install graphviz / brew install graphviz), "
            f"then `{how}`; or draw to .svg or .png"
        )
    elif renderer == "none":
        why = f"render it with `{how}`"
    else:
        why = (
            f"no Graphviz found; render it with `{how}` (system Graphviz), "
            f"or `pip install {PYPI_NAME}` and draw again"
        )
    return DrawResult(str(dot_path), "none", f"wrote {dot_path} instead of {path} ({count}): {why}")
