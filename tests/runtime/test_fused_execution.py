"""Fused plans (compiler/fusion.py) run bit for bit like unfused ones; inference plans allocate
exactly their ledger and compute what evaluation mode computes."""

import numpy as np
import pytest
from harness import REPO as ROOT
from harness import SMALL_EXAMPLES as SMALL
from harness import check_fused_epilogue
from tinyspec import chain_tail

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor


def _step(plan, batch, inputs, dtype=np.float32):
    ex = Executor(plan, batch, seed=3, dtype=dtype)
    ex.forward(inputs)
    ex.backward()
    return ex


@pytest.mark.parametrize("name", SMALL)
def test_fused_training_equals_unfused_bitwise(name):
    net = netc.load(ROOT / "examples" / f"{name}.yaml")
    fused, plain = net.compile(4), net.compile(4, fuse=False)
    assert plain.fusion == []
    inputs = random_inputs(plain, 4, seed=5)
    a, b = _step(fused, 4, inputs), _step(plain, 4, inputs)
    assert a.losses() == b.losses()
    assert np.array_equal(a.grads, b.grads)
    for k, v in b.outputs().items():
        assert np.array_equal(a.outputs()[k], v), k


@pytest.mark.parametrize("name", [*SMALL, "charcnn", "mobilenet_v2_mini", "resnet18", "alexnet", "vgg16"])
@pytest.mark.parametrize("fuse", [True, False])
def test_an_inference_plan_allocates_its_ledger(name, fuse):
    net = netc.load(ROOT / "examples" / f"{name}.yaml")
    for batch in (1, 2):
        plan = net.compile(batch, mode="inference", fuse=fuse)
        ex = Executor(plan, batch)
        led = ex.plan.memory["ledger"]
        assert ex.allocated_bytes == led["inference_peak_bytes"] > 0
        assert ex.grads.size == 0 and not ex.training


def _perturb_norms(ex, seed=0):
    """Batchnorm statistics and affine parameters away from their (1, 0) initial values, so that a
    wrong fold shows."""
    rng = np.random.default_rng(seed)
    for p in ex.plan.params:
        if p.role in ("stat", "norm"):
            v = ex.param(p.name)
            v[...] = rng.uniform(0.5, 1.5, v.shape)


@pytest.mark.parametrize("name", [*SMALL, "mobilenet_v2_mini"])  # batchnorm folds into depthwise convs
def test_inference_plans_compute_what_evaluation_mode_computes(name):
    net = netc.load(ROOT / "examples" / f"{name}.yaml")
    train = net.compile(3)
    inputs = random_inputs(train, 3, seed=1)
    ex = Executor(train, 3, seed=2)
    _perturb_norms(ex)
    ex.training = False
    ex.forward(inputs)
    plan = net.compile(3, mode="inference")
    inf = Executor(plan, 3)
    inf.params[...] = ex.params
    inf.forward(inputs)
    if not any(s.fold for s in plan.steps):  # the same kernels on the same numbers: the same bits
        assert inf.losses() == ex.losses()
        for k, v in ex.outputs().items():
            assert np.array_equal(inf.outputs()[k], v), k
    else:  # folded weights round differently
        for k, v in ex.outputs().items():
            np.testing.assert_allclose(inf.outputs()[k], v, rtol=1e-5, atol=1e-5, err_msg=k)
    with pytest.raises(ValueError, match="is an inference plan: it cannot train"):
        inf.training = True


FOLDS = """
netc: 1
inputs:
  x: {shape: [2, 6, 6]}
  v: {shape: [5]}
  y: {shape: [], dtype: int64}
modules:
  c: {op: conv2d, in: x, out_channels: 3, kernel: 3, padding: 1, groups: 1}
  bn: {op: batchnorm2d, in: c}
  r: {op: relu, in: bn}
  flat: {op: flatten, in: r}
  fc: {op: linear, in: v, out_features: 4, bias: false}
  bn1: {op: batchnorm1d, in: fc, affine: false}
  both: {op: concat, in: [flat, bn1], axis: 0}
  logits: {op: linear, in: both, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits]
"""


def test_folded_batchnorm_follows_the_live_parameters(spec_file):
    net = netc.load(spec_file(FOLDS))
    plan = net.compile(4, mode="inference")
    assert [s.fold for s in plan.steps if s.fold] == ["bn", "bn1"]
    train = Executor(net.compile(4), 4, seed=1)
    train.training = False
    inf = Executor(plan, 4)
    inputs = random_inputs(plan, 4, seed=3)
    for seed in (0, 1):  # weights changed between two passes are refolded
        _perturb_norms(train, seed)
        inf.params[...] = train.params
        train.forward(inputs)
        inf.forward(inputs)
        np.testing.assert_allclose(inf.outputs()["logits"], train.outputs()["logits"], rtol=1e-5, atol=1e-6)
    assert inf.allocated_bytes == inf.plan.memory["ledger"]["inference_peak_bytes"]
    assert inf.folded.size == 3 * 2 * 9 + 3 + 4 * 5 + 4


# -- the kernels' own epilogues (runtime/kernels/_epilogue.py) ---------------------------------------

#: Every activation the CPU kernels apply as an epilogue, with attributes away from the defaults.
ACTS = [
    ("relu", {}),
    ("tanh", {}),
    ("sigmoid", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("elu", {"alpha": 0.7}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("relu6", {}),
    ("hardtanh", {"min_val": -0.5}),
    ("hardsigmoid", {}),
    ("hardswish", {}),
    ("silu", {}),
    ("selu", {}),
    ("softplus", {"beta": 2.0}),
]
ACT_IDS = [f"{a}-{v}" if v else a for a, at in ACTS for v in [next(iter(at.values()), "")]]


def _x(shape, seed=4):
    return np.random.default_rng(seed).standard_normal(shape) * 2.0 + 0.3


@pytest.mark.parametrize(("act", "act_attrs"), ACTS, ids=ACT_IDS)
@pytest.mark.parametrize(
    ("op", "attrs", "shape"),
    [
        ("batchnorm1d", {}, (6, 5)),  # one value per row: the pass after the loop
        ("batchnorm1d", {"affine": False}, (4, 5, 20)),  # row by row
        ("batchnorm2d", {}, (3, 4, 5, 6)),
        ("layernorm", {}, (3, 4, 10)),
        ("linear", {"out_features": 7}, (6, 2, 9)),
        ("conv2d", {"out_channels": 4, "kernel": 3, "padding": 1}, (3, 3, 7, 8)),  # im2col + GEMM
        ("conv2d", {"out_channels": 6, "kernel": 5, "padding": 2}, (2, 1, 28, 28)),  # direct
    ],
)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_epilogue_is_bitwise_the_activation_after(op, attrs, shape, act, act_attrs, training):
    check_fused_epilogue(op, attrs, _x(shape), act, act_attrs=act_attrs, training=training)


@pytest.mark.parametrize(("act", "act_attrs"), ACTS, ids=ACT_IDS)
@pytest.mark.parametrize("n", [7, 5000, 1 << 19])  # one block; several (add.BLOCK); threads
@pytest.mark.parametrize("k", [2, 3])
def test_add_fused_epilogue_is_bitwise_the_activation_after(act, act_attrs, n, k):
    xs = [_x((1, n), seed) for seed in range(k)]
    check_fused_epilogue("add", {}, xs, act, act_attrs=act_attrs)


@pytest.mark.parametrize(("act", "act_attrs"), [ACTS[1], ACTS[3], ACTS[5]], ids=["tanh", "gelu", "elu"])
@pytest.mark.parametrize("op", ["batchnorm2d", "layernorm", "linear"])
def test_fused_epilogue_float64(op, act, act_attrs):
    attrs = {"out_features": 5} if op == "linear" else {}
    check_fused_epilogue(op, attrs, _x((3, 4, 5, 6)), act, dtype=np.float64, act_attrs=act_attrs)


# -- whole plans with every producer and activation fused --------------------------------------------

EVERY = """
netc: 1
inputs:
  x: {shape: [2, 6, 6]}
  y: {shape: [], dtype: int64}
modules:
  c: {op: conv2d, in: x, out_channels: 3, kernel: 3, padding: 1}
  e: {op: elu, in: c, alpha: 0.5}
  c2: {op: conv2d, in: e, out_channels: 3, kernel: 3, padding: 1, bias: false}
  g: {op: gelu, in: c2}
  sum: {op: add, in: [g, e]}
  l: {op: leaky_relu, in: sum, negative_slope: 0.1}
  bn: {op: batchnorm2d, in: l}
  r2: {op: relu, in: bn}
  flat: {op: flatten, in: r2}
  ln: {op: layernorm, in: flat}
  s: {op: sigmoid, in: ln}
  fc: {op: linear, in: s, out_features: 16}
  gt: {op: gelu, in: fc, approximate: tanh}
  fc2: {op: linear, in: gt, out_features: 8}
  bn1: {op: batchnorm1d, in: fc2}
  r: {op: relu, in: bn1}
  t: {op: tanh, in: r}
  logits: {op: linear, in: t, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits]
"""


@pytest.mark.parametrize("batch", [3, 8])
def test_every_epilogue_in_a_plan_runs_like_the_unfused_plan(spec_file, batch):
    net = netc.load(spec_file(EVERY))
    inputs = random_inputs(net.compile(batch), batch, seed=4)
    # training: bitwise, step by step
    a, b = _step(net.compile(batch), batch, inputs), _step(net.compile(batch, fuse=False), batch, inputs)
    assert a.plan.fusion and a.losses() == b.losses() and np.array_equal(a.grads, b.grads)
    # inference: every activation fused (bn1 folds into fc2, then r and t chain after it), against
    # evaluation mode
    plan = net.compile(batch, mode="inference")
    kinds = {d["modules"][1]: d["kind"] for d in plan.fusion}
    assert kinds == {"e": "epilogue", "g": "epilogue", "l": "epilogue", "r2": "epilogue", "s": "epilogue",
                     "gt": "epilogue", "bn1": "folded", "r": "chain"}  # fmt: skip
    assert {"kind": "chain", "modules": ["fc2", "r", "t"], "note": "one loop"} in plan.fusion
    _perturb_norms(b)
    b.training = False
    b.forward(inputs)
    inf = Executor(plan, batch)
    inf.params[...] = b.params
    inf.forward(inputs)
    np.testing.assert_allclose(inf.outputs()["logits"], b.outputs()["logits"], rtol=1e-5, atol=1e-6)
    assert inf.allocated_bytes == inf.plan.memory["ledger"]["inference_peak_bytes"]
    # the same plan unfolded: bit for bit
    plain = Executor(net.compile(batch, mode="inference", fuse=False), batch)
    plain.params[...] = b.params
    plain.forward(inputs)
    assert np.array_equal(plain.outputs()["logits"], b.outputs()["logits"])


@pytest.mark.parametrize(("act", "act_attrs"), [ACTS[0], ACTS[3]], ids=["relu", "gelu"])
def test_linear_applies_a_large_epilogue_on_numbas_threads(act, act_attrs):
    # 2^19 outputs from an unsplit GEMM (8M multiply-adds): the activation runs in chunks (act_par)
    check_fused_epilogue("linear", {"out_features": 512}, _x((1024, 16)), act, act_attrs=act_attrs)


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_stepwise_runs_fused_steps_apart_and_ends_where_forward_does(spec_file, mode):
    # forward_stepwise (profiles, histograms) shows each producer's own output before its activation
    net = netc.load(spec_file(EVERY))
    plan = net.compile(3, mode=mode)
    ex = Executor(plan, 3, seed=1)
    inputs = random_inputs(plan, 3, seed=2)
    ex.training = False
    ex.forward(inputs)
    want = ex.outputs()["logits"]
    plain = Executor(net.compile(3, mode=mode, fuse=False), 3, seed=1)
    plain.params[...] = ex.params
    plain.training = False
    plain.forward(inputs)
    seen = {}
    for s in plain.forward_stepwise():
        seen[s.module] = plain.view(s.output).copy()
    for s in ex.forward_stepwise():
        if s.epilogue and not s.fold:  # the producer's output, before the activation overwrote it
            np.testing.assert_array_equal(ex.view(s.output), seen[s.module], err_msg=s.module)
    assert np.array_equal(ex.outputs()["logits"], want)


CHAINS = """
netc: 1
inputs:
  x: {shape: [2, 6, 6]}
  y: {shape: [], dtype: int64}
modules:
  t0: {op: sigmoid, in: x}
  r0: {op: relu, in: t0}
  c: {op: conv2d, in: r0, out_channels: 2, kernel: 3, padding: 1}
  cr: {op: relu, in: c}
  cl: {op: leaky_relu, in: cr, negative_slope: 0.1}
  ct: {op: tanh, in: cl}
  sum: {op: add, in: [ct, r0]}
  sr: {op: relu, in: sum}
  ss: {op: sigmoid, in: sr}
  flat: {op: flatten, in: ss}
  ft: {op: tanh, in: flat}
  fr: {op: relu, in: ft}
  ln: {op: layernorm, in: fr}
  le: {op: elu, in: ln, alpha: 0.5}
  lg: {op: gelu, in: le, approximate: tanh}
""" + chain_tail("lg", 16, "sr2")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chains_run_bitwise_like_the_unfused_plan(spec_file, dtype):
    # inference: chains inside conv2d, add, layernorm and linear, and chains headed by their first
    # activation (after the input, flatten, and the loss's input), against fuse=False bit for bit
    net = netc.load(spec_file(CHAINS))
    batch = 3
    plan = net.compile(batch, mode="inference")
    assert {d["modules"][0] for d in plan.fusion if d["kind"] == "chain"} == {"c", "sum", "ln", "fc"}
    assert {d["modules"][0] for d in plan.fusion if d["kind"] == "epilogue"} == {"t0", "ft", "e", "s"}
    inputs = random_inputs(plan, batch, seed=6)
    inputs["x"] = inputs["x"].astype(dtype)
    fused, plain = (
        Executor(plan, batch, dtype=dtype),
        Executor(net.compile(batch, mode="inference", fuse=False), batch, dtype=dtype),
    )
    assert fused.allocated_bytes == fused.plan.memory["ledger"]["inference_peak_bytes"]
    # every chained activation runs inside its head's kernel (none as its own kernel in place)
    assert fused._fused_in_kernel == {
        a for d in plan.fusion for a in d["modules"][1:] if d["kind"] != "folded"
    }
    plain.params[...] = fused.params
    fused.forward(inputs)
    plain.forward(inputs)
    assert np.array_equal(fused.outputs()["sr2"], plain.outputs()["sr2"])
    # stepwise (profiles) runs the chain's members apart, to the same end
    for _ in fused.forward_stepwise():
        pass
    assert np.array_equal(fused.outputs()["sr2"], plain.outputs()["sr2"])
    # training never chains and stays bitwise
    a, b = _step(net.compile(batch), batch, inputs), _step(net.compile(batch, fuse=False), batch, inputs)
    assert a.losses() == b.losses() and np.array_equal(a.grads, b.grads)


def test_a_large_chain_head_runs_on_numbas_threads(spec_file):
    # 2^19 elements: the head's loop (copy_par) and linear's (act_par) run in chunks
    net = netc.load(
        spec_file("""
    netc: 1
    inputs:
      x: {shape: [512]}
    modules:
      s: {op: sigmoid, in: x}
      r: {op: tanh, in: s}
      fc: {op: linear, in: r, out_features: 512}
      g: {op: gelu, in: fc}
      t: {op: tanh, in: g}
    outputs: [t]
    """)
    )
    plan = net.compile(1024, mode="inference")
    assert len(plan.fusion) == 2
    inputs = random_inputs(plan, 1024, seed=1)
    fused, plain = Executor(plan, 1024), Executor(net.compile(1024, mode="inference", fuse=False), 1024)
    plain.params[...] = fused.params
    fused.forward(inputs)
    plain.forward(inputs)
    assert np.array_equal(fused.outputs()["t"], plain.outputs()["t"])


NEW_ACTS = """
netc: 1
inputs:
  x: {shape: [2, 6, 6]}
  y: {shape: [], dtype: int64}
modules:
  c: {op: conv2d, in: x, out_channels: 3, kernel: 3, padding: 1}
  r6: {op: relu6, in: c}
  c2: {op: conv2d, in: r6, out_channels: 3, kernel: 3, padding: 1}
  bn: {op: batchnorm2d, in: c2}
  hs: {op: hardswish, in: bn}
  c3: {op: conv2d, in: hs, out_channels: 3, kernel: 1}
  hsig: {op: hardsigmoid, in: c3}
  gate: {op: mul, in: [hsig, hs]}
  sum: {op: add, in: [gate, r6]}
  ht: {op: hardtanh, in: sum, min_val: -0.5, max_val: 2.0}
  flat: {op: flatten, in: ht}
  fc: {op: linear, in: flat, out_features: 16}
  si: {op: silu, in: fc}
  ln: {op: layernorm, in: si}
  se: {op: selu, in: ln}
  sp: {op: softplus, in: se, beta: 2.0}
  pr: {op: prelu, in: sp}
  logits: {op: linear, in: pr, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits]
"""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_new_activations_fuse_and_run_like_the_unfused_plan(spec_file, dtype):
    # training: relu6 and hardtanh read their output in backward, so they run in their producer's
    # buffer (conv2d's, add's loop), bitwise; inference: every pointwise one, se -> sp chained after
    # ln; prelu (a parameter) never fuses
    net = netc.load(spec_file(NEW_ACTS))
    batch = 3
    train = net.compile(batch)
    assert [tuple(d["modules"]) for d in train.fusion] == [("c", "r6"), ("sum", "ht")]
    plan = net.compile(batch, mode="inference")
    got = {tuple(d["modules"]) for d in plan.fusion if d["kind"] != "folded"}
    assert got == {("c", "r6"), ("c2", "hs"), ("c3", "hsig"), ("sum", "ht"), ("fc", "si"), ("ln", "se", "sp")}
    inputs = random_inputs(plan, batch, seed=6)
    inputs["x"] = inputs["x"].astype(dtype)
    a, b = _step(train, batch, inputs, dtype), _step(net.compile(batch, fuse=False), batch, inputs, dtype)
    assert a.losses() == b.losses() and np.array_equal(a.grads, b.grads)
    fused = Executor(plan, batch, dtype=dtype)
    plain = Executor(net.compile(batch, mode="inference", fuse=False), batch, dtype=dtype)
    fused.params[...] = plain.params[...] = a.params
    assert fused._fused_in_kernel >= {"r6", "hs", "hsig", "ht", "si", "se", "sp"}
    fused.forward(inputs)
    plain.forward(inputs)
    # bn folds into c2's weights: the same function, other roundings
    np.testing.assert_allclose(fused.outputs()["logits"], plain.outputs()["logits"], rtol=1e-5, atol=1e-6)
