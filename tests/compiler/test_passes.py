"""compiler/graph.py, plan.py, memory.py: order, backward rules, JSON, ledger."""

import json
from importlib import resources

import jsonschema
import pytest

import netc
from netc.compiler.memory import assign_memory
from netc.compiler.plan import Plan
from netc.spec.errors import SpecError

FANOUT = """
netc: 1
inputs:
  x: {shape: [4]}
  y: {shape: [], dtype: int64}
modules:
  a: {op: linear, in: x, out_features: 4}
  b: {op: relu, in: a}
  c: {op: tanh, in: a}
  s: {op: add, in: [b, c, a]}
  logits: {op: linear, in: s, out_features: 3}
  side: {op: sigmoid, in: x}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits, side]
"""


def _plan(spec_file, text, batch=2):
    return netc.load(spec_file(text)).compile(batch=batch)


def test_topological_order_ties_follow_declaration(spec_file):
    plan = _plan(spec_file, FANOUT)
    assert [r.name for r in plan.modules] == ["a", "b", "c", "s", "logits", "side", "ce"]


def test_cycle_reports_its_path(spec_file):
    text = FANOUT.replace("a: {op: linear, in: x,", "a: {op: linear, in: s,")
    with pytest.raises(SpecError) as e:
        netc.load(spec_file(text))
    (d,) = e.value.diagnostics
    assert "cycle" in d.message
    for name in ("a", "b", "s"):
        assert name in d.message.split(":", 1)[1]


def test_fan_out_gradients_are_summed(spec_file):
    plan = _plan(spec_file, FANOUT)
    back = plan.backward_steps
    assert [s.module for s in back] == ["ce", "logits", "s", "c", "b", "a"]
    writes = [
        (s.module, g, acc)
        for s in back
        for g, acc in zip(s.grad_inputs, s.accumulate, strict=True)
        if g == "d:a"
    ]
    # s, c and b all read a: the first in backward order writes, the rest add.
    assert writes == [("s", "d:a", False), ("c", "d:a", True), ("b", "d:a", True)]
    # Spec inputs need no gradient; int labels never get one.
    assert back[-1].grad_inputs == [None]
    assert back[0].grad_inputs == ["d:logits", None]


def test_no_backward_where_no_trainable_parameter_is_reached(spec_file):
    plan = _plan(spec_file, FANOUT)
    assert "side" not in {s.module for s in plan.backward_steps}  # reaches no loss
    frozen = FANOUT.replace(
        "a: {op: linear, in: x, out_features: 4}", "a: {op: linear, in: x, out_features: 4, trainable: false}"
    )
    plan = _plan(spec_file, frozen)
    assert [s.module for s in plan.backward_steps] == ["ce", "logits"]
    assert plan.trainable_params == 15 and plan.total_params == 35
    assert next(r for r in plan.modules if r.name == "a").backward_flops == 0


def test_plan_json_round_trip_and_schema(spec_file):
    plan = _plan(spec_file, FANOUT)
    schema = json.loads(resources.files("netc.schemas").joinpath("plan.schema.json").read_text())
    data = json.loads(plan.to_json())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert Plan.from_json(plan.to_json()) == plan


def _overlap(a, b):
    return a[0] <= b[1] and b[0] <= a[1]


@pytest.mark.parametrize("kind", ["inference", "training"])
def test_co_live_buffers_never_share_bytes(spec_file, kind):
    from netc.compiler.fusion import root
    from netc.compiler.memory import _lifetimes

    plan = _plan(spec_file, FANOUT, batch=3)
    steps = plan.steps if kind == "training" else plan.forward_steps
    life = _lifetimes(plan, steps)
    offs = plan.memory[f"{kind}_offsets"]
    assert {root(plan.aliases, n) for n in offs} == set(life)  # an aliased tensor uses its root's bytes
    assert all(offs[n] == offs[root(plan.aliases, n)] for n in offs)
    size = {n: plan.tensors[n].nbytes(3) for n in offs}
    names = sorted(life)
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            if _overlap(life[p], life[q]):
                assert offs[p] + size[p] <= offs[q] or offs[q] + size[q] <= offs[p], (p, q)
    ledger = plan.memory["ledger"]
    assert ledger[f"{kind}_lower_bound_bytes"] <= ledger[f"{kind}_arena_bytes"]
    assert all(offs[n] + size[n] <= ledger[f"{kind}_arena_bytes"] for n in offs)


def test_ledger_of_a_small_mlp_by_hand(spec_file):
    text = """
    netc: 1
    inputs:
      x: {shape: [10]}
      y: {shape: [], dtype: int64}
    modules:
      fc1: {op: linear, in: x, out_features: 20}
      act: {op: relu, in: fc1}
      fc2: {op: linear, in: act, out_features: 5}
    losses:
      ce: {op: cross_entropy, in: [fc2, y]}
    """
    net = netc.load(spec_file(text))
    n_params = 10 * 20 + 20 + 20 * 5 + 5
    for opt, slots in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        led = net.compile(batch=8, optimizer=opt).memory["ledger"]
        assert led["params_bytes"] == led["grads_bytes"] == n_params * 4
        assert led["optimizer_bytes"] == slots * n_params * 4
    led = net.compile(batch=8).memory["ledger"]
    # Saved for backward: x (fc1's dW), relu's output, fc2's input (the same
    # relu output), fc2's logits and the labels (cross-entropy).
    assert led["activations_bytes"] == 8 * (10 + 20 + 5) * 4 + 8 * 8
    assert (
        led["training_peak_bytes"] == 2 * n_params * 4 + led["training_arena_bytes"] + led["workspace_bytes"]
    )
    assert led["inference_peak_bytes"] == n_params * 4 + led["inference_arena_bytes"]


def test_memory_pass_is_pure_and_batch_scales(spec_file):
    plan = _plan(spec_file, FANOUT, batch=2)
    before = plan.to_json()
    big = assign_memory(plan, 64)
    assert plan.to_json() == before
    assert big.memory["ledger"]["activations_bytes"] > plan.memory["ledger"]["activations_bytes"]


def test_graph_as_networkx(spec_file):
    import networkx as nx

    net = netc.load(spec_file(FANOUT))
    g = net.graph.to_networkx()
    assert nx.is_directed_acyclic_graph(g)
    assert set(g.predecessors("s")) == {"a", "b", "c"}
    assert g.nodes["ce"]["kind"] == "loss" and g.nodes["x"]["kind"] == "input"
    order = [m.name for m in net.graph.order]
    assert all(order.index(u) < order.index(v) for u, v in g.edges if u in order)


def test_a_constant_is_an_activation_not_a_parameter(spec_file):
    text = """
    netc: 1
    inputs:
      x: {shape: [10]}
      y: {shape: [4]}
    modules:
      fc: {op: linear, in: x, out_features: 4}
      c: {op: constant, value: [1, 2, 3, 4]}
      m: {op: mul, in: [fc, c]}
    losses:
      l: {op: mse, in: [m, y]}
    """
    plan = netc.load(spec_file(text)).compile(batch=8)
    led = plan.memory["ledger"]
    assert plan.total_params == 10 * 4 + 4 and led["params_bytes"] == (10 * 4 + 4) * 4
    assert next(r for r in plan.modules if r.name == "c").params == 0
    # saved: x (fc's dW), fc's output and the constant (mul reads both), m and y (mse): 8 samples
    assert led["activations_bytes"] == 8 * (10 + 4 + 4 + 4 + 4) * 4
    assert "c" not in {s.module for s in plan.backward_steps}  # nothing flows into a constant
