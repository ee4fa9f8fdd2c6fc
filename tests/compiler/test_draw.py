"""`netc draw`: the DOT text a plan gives (nodes, styles, edge shapes, nested
clusters, collapsed blocks, escaping, determinism) and the three ways it is
rendered (system Graphviz, graphviz-pure from PyPI, none: the .dot with
instructions), with the CLI's clean errors.

The machine running the suite may lack the system Graphviz, and nothing here
skips: the system path is exercised through a `dot` on a private PATH that
runs the real system dot when there is one, else graphviz-pure.
"""

from __future__ import annotations

import re
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import netc
from netc.cli import main
from netc.compiler.ops import OPS
from netc.compiler.ops.base import FAMILIES, Op
from netc.compiler.plan import Plan
from netc.compiler.report import draw as draw_mod
from netc.compiler.report.draw import DrawError, draw, shape_text, to_dot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BLOCKS_SPEC = """\
netc: 1
inputs: {x: {shape: [4]}}
blocks:
  res:
    args: {w: 4}
    input: x
    modules:
      l1: {op: linear, in: x, out_features: $w}
      r: {op: relu, in: l1}
      l2: {op: linear, in: r, out_features: 4}
modules:
  a: {op: linear, in: x, out_features: 4}
  s: {block: res, in: a, repeat: 2, w: 8}
  head: {op: linear, in: s, out_features: 3}
"""

# A block inside a block: instance "st" holds instances "st.b.1" and "st.b.2".
NESTED_SPEC = """\
netc: 1
name: nested
inputs: {x: {shape: [4]}}
blocks:
  res:
    args: {w: 4}
    input: x
    modules:
      l1: {op: linear, in: x, out_features: $w}
      r: {op: relu, in: l1}
      l2: {op: linear, in: r, out_features: 4}
  stage:
    args: {}
    input: x
    modules:
      b: {block: res, in: x, repeat: 2}
      o: {op: relu, in: b}
modules:
  a: {op: linear, in: x, out_features: 4}
  st: {block: stage, in: a}
  head: {op: linear, in: st, out_features: 3}
"""

LOSS_SPEC = """\
netc: 1
name: withloss
inputs:
  x: {shape: [5]}
  y: {shape: [], dtype: int64}
modules:
  h: {op: linear, in: x, out_features: 6}
  act: {op: relu, in: h}
  logits: {op: linear, in: act, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits]
"""


def _plan(tmp_path: Path, text: str, name: str = "net.yaml") -> Plan:
    path = tmp_path / name
    path.write_text(text)
    return netc.load(path).compile(batch=1)


@pytest.fixture
def blocks_plan(tmp_path: Path) -> Plan:
    return _plan(tmp_path, BLOCKS_SPEC, "blocks.yaml")


@pytest.fixture
def nested_plan(tmp_path: Path) -> Plan:
    return _plan(tmp_path, NESTED_SPEC, "nested.yaml")


@pytest.fixture
def loss_plan(tmp_path: Path) -> Plan:
    return _plan(tmp_path, LOSS_SPEC, "loss.yaml")


# -- a small reader for the DOT text netc writes (one statement per line) ------

NODE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" \[(.*)\];$')
EDGE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[label="((?:[^"\\]|\\.)*)"\];$')
CLUSTER = re.compile(r'^\s*subgraph "cluster_((?:[^"\\]|\\.)*)" \{$')


def nodes(dot: str) -> dict[str, str]:
    """Node id -> its attribute text."""
    out = {}
    for line in dot.splitlines():
        m = NODE.match(line)
        if m:
            assert m.group(1) not in out, f"node {m.group(1)} declared twice"
            out[m.group(1)] = m.group(2)
    return out


def edges(dot: str) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3].strip()) for m in map(EDGE.match, dot.splitlines()) if m]


def clusters_of(dot: str) -> dict[str, list[str]]:
    """Node id -> the clusters it sits in, outermost first."""
    stack: list[str] = []
    out = {}
    for line in dot.splitlines():
        if m := CLUSTER.match(line):
            stack.append(m.group(1))
        elif line.strip() == "}":
            if stack:
                stack.pop()
        elif m := NODE.match(line):
            out[m.group(1)] = list(stack)
    return out


def cluster_labels(dot: str) -> dict[str, str]:
    out, current = {}, None
    for line in dot.splitlines():
        if m := CLUSTER.match(line):
            current = m.group(1)
        elif current and line.strip().startswith("graph ["):
            out[current] = re.search(r'label="([^"]*)"', line).group(1)
            current = None
    return out


# -- to_dot -------------------------------------------------------------------------


def test_one_node_per_module_and_input(blocks_plan):
    dot = to_dot(blocks_plan)
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    expected = ["x", "a", "s.1.l1", "s.1.r", "s.1.l2", "s.2.l1", "s.2.r", "s.2.l2", "head"]
    assert [r.name for r in blocks_plan.modules] == expected[1:]
    assert list(nodes(dot)) == expected


def test_node_label_has_name_op_attributes_and_params(blocks_plan):
    n = nodes(to_dot(blocks_plan))
    assert "<b>s.1.l1</b>" in n["s.1.l1"]
    assert "linear out_features=8" in n["s.1.l1"]
    assert "40 params" in n["s.1.l1"]  # 4*8 + 8
    assert "<b>s.1.r</b>" in n["s.1.r"] and "relu" in n["s.1.r"]
    assert "params" not in n["s.1.r"]  # parameter-free modules carry no count


def test_edges_carry_the_tensor_shape(blocks_plan):
    es = edges(to_dot(blocks_plan))
    assert ("x", "a", "N×4") in es
    assert ("s.1.l1", "s.1.r", "N×8") in es
    assert ("s.1.l2", "s.2.l1", "N×4") in es  # from one repeat to the next
    assert ("s.2.l2", "head", "N×4") in es  # the block's output alias is resolved
    assert len(es) == 8


def test_shape_text():
    assert shape_text([6, 28, 28], True) == "N×6×28×28"
    assert shape_text([], True) == "N"
    assert shape_text([3, 4], False) == "3×4"
    assert shape_text([], False) == "scalar"


def test_block_instances_are_clusters(blocks_plan):
    dot = to_dot(blocks_plan)
    where = clusters_of(dot)
    assert where["a"] == [] and where["head"] == [] and where["x"] == []
    for i in (1, 2):
        for m in ("l1", "r", "l2"):
            assert where[f"s.{i}.{m}"] == [f"s.{i}"]
    assert cluster_labels(dot) == {"s.1": "s.1 (res)", "s.2": "s.2 (res)"}


def test_nested_block_instances_are_nested_clusters(nested_plan):
    dot = to_dot(nested_plan)
    where = clusters_of(dot)
    for row in nested_plan.modules:
        assert where[row.name] == row.blocks, row.name
    assert where["st.b.2.r"] == ["st", "st.b.2"]
    assert where["st.o"] == ["st"]
    assert cluster_labels(dot) == {"st": "st (stage)", "st.b.1": "st.b.1 (res)", "st.b.2": "st.b.2 (res)"}


def test_collapse_draws_each_outermost_instance_as_one_node(blocks_plan):
    dot = to_dot(blocks_plan, collapse=True)
    n = nodes(dot)
    assert list(n) == ["x", "a", "s.1", "s.2", "head"]
    assert "subgraph" not in dot
    assert "<b>s.1</b>" in n["s.1"] and "block res" in n["s.1"]
    assert "76 params" in n["s.1"]  # 40 + 0 + 36
    assert "N×4" in n["s.1"]  # its output shape
    assert edges(dot) == [
        ("x", "a", "N×4"),
        ("a", "s.1", "N×4"),
        ("s.1", "s.2", "N×4"),
        ("s.2", "head", "N×4"),
    ]


def test_collapse_keeps_only_outermost_instances(nested_plan):
    dot = to_dot(nested_plan, collapse=True)
    n = nodes(dot)
    assert list(n) == ["x", "a", "st", "head"]
    inner = [r for r in nested_plan.modules if r.blocks]
    assert f"{sum(r.params for r in inner):,} params" in n["st"]
    assert f"{len(inner)} modules" in n["st"] and "block stage" in n["st"]
    assert edges(dot) == [("x", "a", "N×4"), ("a", "st", "N×4"), ("st", "head", "N×4")]


def test_inputs_losses_and_outputs_are_styled_apart(loss_plan):
    n = nodes(to_dot(loss_plan))
    assert 'shape="ellipse"' in n["x"] and 'shape="ellipse"' in n["y"]
    assert "int64" in n["y"] and "input N" in n["y"]
    assert 'shape="octagon"' in n["ce"] and draw_mod.LOSS_COLOR in n["ce"]
    assert 'peripheries="2"' in n["logits"] and "output N×3" in n["logits"]
    for ordinary in ("h", "act"):
        assert "shape=" not in n[ordinary] and "peripheries" not in n[ordinary]
    assert draw_mod.INPUT_COLOR in n["x"]
    # op families get their own fill
    assert draw_mod.FAMILY_COLORS["linear"] in n["h"]
    assert draw_mod.FAMILY_COLORS["activation"] in n["act"]
    assert draw_mod.FAMILY_COLORS["linear"] != draw_mod.FAMILY_COLORS["activation"]


def test_op_families(monkeypatch):
    assert draw_mod.op_family("conv2d") == "conv"
    assert draw_mod.op_family("batchnorm2d") == "norm"
    assert draw_mod.op_family("maxpool2d") == "pooling"
    assert draw_mod.op_family("multi_head_attention") == "attention"

    # an op added later gets the family it declares (the registry test makes every op declare one)
    class DepthwiseConv3d(Op):
        name = "depthwise_conv3d"
        family = "conv"

    monkeypatch.setitem(OPS, "depthwise_conv3d", DepthwiseConv3d())
    assert draw_mod.op_family("depthwise_conv3d") == "conv"
    assert draw_mod.op_family("something_new") == "other"
    for fam in FAMILIES:
        assert fam in draw_mod.FAMILY_COLORS
    for op in OPS.values():
        assert op.family in draw_mod.FAMILY_COLORS


def test_deterministic(tmp_path, blocks_plan):
    (tmp_path / "other").mkdir()
    again = _plan(tmp_path / "other", BLOCKS_SPEC, "blocks.yaml")  # same name: the name is drawn
    assert to_dot(blocks_plan) == to_dot(again) == to_dot(blocks_plan)
    assert to_dot(blocks_plan, collapse=True) == to_dot(again, collapse=True)
    # the plan alone decides: a JSON round trip draws the same
    assert to_dot(Plan.from_json(blocks_plan.to_json())) == to_dot(blocks_plan)


def test_names_and_labels_are_escaped(loss_plan, tmp_path):
    loss_plan.name = 'odd "net" \\ <name>'
    loss_plan.modules[0].describe = 'k=<3> & "q"'
    dot = to_dot(loss_plan)
    assert 'digraph "odd \\"net\\" \\\\ <name>" {' in dot
    assert "k=&lt;3&gt; &amp; &quot;q&quot;" in dot
    # Graphviz accepts the text: render it with graphviz-pure
    out = tmp_path / "odd.svg"
    draw(loss_plan, out, renderer="pypi")
    assert ET.parse(out).getroot().tag.endswith("svg")


# -- rendering ----------------------------------------------------------------------


def _svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t for t in root.itertext())


def test_pypi_renders_svg(blocks_plan, tmp_path):
    out = tmp_path / "net.svg"
    res = draw(blocks_plan, out, renderer="pypi")
    assert res.renderer == "pypi" and res.path == str(out)
    assert res.message.startswith(f"wrote {out} (8 modules, rendered with graphviz-pure ")
    text = _svg_text(out)
    for row in blocks_plan.modules:
        assert row.name in text
    assert "s.1 (res)" in text and "N×8" in text


def test_pypi_renders_png(nested_plan, tmp_path):
    out = tmp_path / "net.png"
    res = draw(nested_plan, out, collapse=True, renderer="pypi")
    assert res.renderer == "pypi"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pypi_renderer_found_beside_python_off_path(monkeypatch, tmp_path):
    # graphviz-pure is a dependency: its console script sits next to this Python
    monkeypatch.setenv("PATH", str(tmp_path))
    assert draw_mod.find_pypi_renderer() is not None


def _fake_dot(tmp_path: Path, body: str | None = None) -> Path:
    """A directory holding an executable `dot`: the real system dot when there
    is one, else graphviz-pure (or ``body`` for a failing one)."""
    real = shutil.which("dot") or draw_mod.find_pypi_renderer()
    assert real, "neither a system dot nor graphviz-pure is installed"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "dot"
    script.write_text("#!/bin/sh\n" + (body or f'exec "{real}" "$@"\n'))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


def test_auto_prefers_the_system_dot(blocks_plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_dot(tmp_path)))
    for suffix in (".svg", ".png"):
        out = tmp_path / f"net{suffix}"
        res = draw(blocks_plan, out)
        assert res.renderer == "system", res.message
        assert res.message.startswith(f"wrote {out} (8 modules, rendered with system Graphviz dot")
        assert out.stat().st_size > 0
    assert "s.2.l2" in _svg_text(tmp_path / "net.svg")


def test_forced_system_without_dot_is_an_error(blocks_plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DrawError, match="apt-get install graphviz"):
        draw(blocks_plan, tmp_path / "net.svg", renderer="system")


def test_renderer_failure_is_a_draw_error(blocks_plan, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(_fake_dot(tmp_path, body='echo "Error: syntax boom" >&2\nexit 3\n')))
    with pytest.raises(DrawError, match=r"failed \(exit 3\): Error: syntax boom"):
        draw(blocks_plan, tmp_path / "net.svg")
    assert not (tmp_path / "net.svg").exists()


def _no_renderer(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setattr(draw_mod, "find_pypi_renderer", lambda: None)


def test_no_renderer_writes_the_dot_and_says_how(blocks_plan, tmp_path, monkeypatch):
    _no_renderer(monkeypatch, tmp_path)
    out = tmp_path / "net.svg"
    res = draw(blocks_plan, out)
    dot_path = tmp_path / "net.dot"
    assert res.renderer == "none" and res.path == str(dot_path)
    assert not out.exists()
    assert dot_path.read_text() == to_dot(blocks_plan)
    assert f"dot -Tsvg {dot_path} -o {out}" in res.message
    assert "pip install graphviz-pure" in res.message


def test_pdf_without_system_dot_falls_back(blocks_plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # graphviz-pure is still found
    assert draw_mod.find_pypi_renderer() is not None
    out = tmp_path / "net.pdf"
    res = draw(blocks_plan, out)
    assert res.renderer == "none" and Path(res.path).suffix == ".dot"
    assert Path(res.path).read_text() == to_dot(blocks_plan)
    assert "PDF needs the system Graphviz" in res.message
    assert "apt-get install graphviz" in res.message and ".svg or .png" in res.message
    assert not out.exists()
    with pytest.raises(DrawError, match="cannot write PDF"):
        draw(blocks_plan, out, renderer="pypi")


def test_pdf_with_system_dot(blocks_plan, tmp_path, monkeypatch):
    if shutil.which("dot") is None:
        # graphviz-pure behind the fake `dot` cannot write PDF: the error is clean
        monkeypatch.setenv("PATH", str(_fake_dot(tmp_path)))
        with pytest.raises(DrawError, match="failed"):
            draw(blocks_plan, tmp_path / "net.pdf")
        return
    out = tmp_path / "net.pdf"
    res = draw(blocks_plan, out)
    assert res.renderer == "system" and out.read_bytes().startswith(b"%PDF")


def test_dot_suffix_writes_the_text(blocks_plan, tmp_path):
    out = tmp_path / "net.dot"
    res = draw(blocks_plan, out, collapse=True)
    assert res.renderer == "none" and res.path == str(out)
    assert out.read_text() == to_dot(blocks_plan, collapse=True)
    assert res.message == f"wrote {out} (8 modules)"


def test_forced_none_writes_the_dot(blocks_plan, tmp_path):
    res = draw(blocks_plan, tmp_path / "net.png", renderer="none")
    assert res.renderer == "none" and res.path.endswith("net.dot")
    assert "dot -Tpng" in res.message


@pytest.mark.parametrize("name", ["net.jpg", "net", "net.svgz"])
def test_unknown_suffix_is_a_draw_error(blocks_plan, tmp_path, name):
    with pytest.raises(DrawError, match=r"choose a \.svg, \.png, \.pdf or \.dot file"):
        draw(blocks_plan, tmp_path / "out" / name)
    assert not (tmp_path / "out").exists()


def test_unwritable_path_is_a_draw_error(blocks_plan, tmp_path):
    with pytest.raises(DrawError, match="cannot write"):
        draw(blocks_plan, tmp_path / "missing" / "net.dot")
    with pytest.raises(DrawError, match="cannot write"):
        draw(blocks_plan, tmp_path / "missing" / "net.svg", renderer="pypi")


def test_plan_draw_method(blocks_plan, tmp_path):
    out = tmp_path / "net.dot"
    assert blocks_plan.draw(str(out)) == f"wrote {out} (8 modules)"


# -- the CLI ------------------------------------------------------------------------


def test_cli_draws(tmp_path, capsys):
    spec = tmp_path / "blocks.yaml"
    spec.write_text(BLOCKS_SPEC)
    out = tmp_path / "net.svg"
    assert main(["draw", str(spec), "-o", str(out), "--renderer", "pypi", "--collapse"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (8 modules, rendered with graphviz-pure")
    assert "s.2" in _svg_text(out)


def test_cli_bad_suffix_is_one_clean_line(tmp_path, capsys):
    spec = tmp_path / "blocks.yaml"
    spec.write_text(BLOCKS_SPEC)
    assert main(["draw", str(spec), "-o", str(tmp_path / "net.jpg")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("netc draw: cannot draw to ") and "'.jpg'" in err


def test_cli_missing_renderer_is_one_clean_line(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "blocks.yaml"
    spec.write_text(BLOCKS_SPEC)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert main(["draw", str(spec), "-o", str(tmp_path / "n.svg"), "--renderer", "system"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "Graphviz" in err


# -- every example draws --------------------------------------------------------------

EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=[p.stem for p in EXAMPLE_SPECS])
def test_examples_draw(spec, tmp_path):
    plan = netc.load(spec).compile(batch=1)
    dot = to_dot(plan)
    n = nodes(dot)
    assert list(n) == plan.inputs + [r.name for r in plan.modules]
    where = clusters_of(dot)
    for row in plan.modules:
        assert where[row.name] == row.blocks
    consumed = {(i, s.module) for s in plan.forward_steps for i in s.inputs}
    assert {(a, b) for a, b, _ in edges(dot)} == consumed
    out = tmp_path / f"{spec.stem}.svg"
    assert draw(plan, out, renderer="pypi").renderer == "pypi"
    text = _svg_text(out)
    assert all(r.name in text for r in plan.modules)
    top = [r.name for r in plan.modules if not r.blocks]
    outer = list(dict.fromkeys(r.blocks[0] for r in plan.modules if r.blocks))
    collapsed = to_dot(plan, collapse=True)
    assert sorted(nodes(collapsed)) == sorted(plan.inputs + top + outer)
    draw(plan, tmp_path / f"{spec.stem}_c.svg", collapse=True, renderer="pypi")


def test_there_are_examples():
    assert len(EXAMPLE_SPECS) >= 1


def test_resnet18_headline_is_the_published_parameter_count():
    """Running statistics are buffers, not parameters: the title quotes torch's
    11,689,512 and shows the 9,600 running-statistics elements apart; a
    BatchNorm node shows its own buffers."""
    plan = netc.load(EXAMPLES / "resnet18.yaml").compile(batch=1)
    dot = to_dot(plan)
    assert "resnet18 · 11,689,512 trainable params · 9,600 buffers" in dot
    assert "11,699,112" not in dot
    assert "128 params · 128 buffers" in nodes(dot)["bn1"]  # 64 channels: w+b, mean+var
