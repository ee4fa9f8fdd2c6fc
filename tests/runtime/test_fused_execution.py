"""Fused plans (compiler/fusion.py) run bit for bit like unfused ones; inference plans allocate
exactly their ledger and compute what evaluation mode computes."""

import numpy as np
import pytest
from harness import REPO as ROOT
from harness import SMALL_EXAMPLES as SMALL

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor


def _step(plan, batch, inputs):
    ex = Executor(plan, batch, seed=3)
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


@pytest.mark.parametrize("name", [*SMALL, "resnet18", "alexnet", "vgg16"])
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


@pytest.mark.parametrize("name", SMALL)
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
