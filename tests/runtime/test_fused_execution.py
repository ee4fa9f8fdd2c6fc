"""Fused plans (compiler/fusion.py) run bit for bit like unfused ones; inference plans allocate
exactly their ledger and compute what evaluation mode computes."""

from pathlib import Path

import numpy as np
import pytest

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "xor_mlp",
    "iris_mlp",
    "digits_mlp",
    "lenet5",
    "multitask",
    "transformer_encoder",
    "vit_tiny",
    "resnet_mini",
]


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


@pytest.mark.parametrize("name", SMALL)
def test_inference_plans_compute_what_evaluation_mode_computes(name):
    net = netc.load(ROOT / "examples" / f"{name}.yaml")
    train = net.compile(3)
    inputs = random_inputs(train, 3, seed=1)
    ex = Executor(train, 3, seed=2)
    ex.training = False
    ex.forward(inputs)
    inf = Executor(net.compile(3, mode="inference"), 3, seed=2)
    inf.forward(inputs)
    assert inf.losses() == ex.losses()
    for k, v in ex.outputs().items():
        assert np.array_equal(inf.outputs()[k], v), k
    with pytest.raises(ValueError, match="is an inference plan: it cannot train"):
        inf.training = True
