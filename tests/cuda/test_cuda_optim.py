"""Device optimizers, clipping and the global norm (runtime/optim.py) equal the CPU ones."""

import math

import numpy as np
import pytest
from helpers import dev

from netc.runtime.kernels.cuda_core import Reducer
from netc.runtime.optim import (
    CudaOptimizer,
    Optimizer,
    clip_by_norm,
    clip_by_norm_cuda,
    clip_by_value,
    clip_by_value_cuda,
    global_norm,
    global_norm_cuda,
)

# Three trainable segments over a 29-element parameter buffer: one at half the learning rate and
# exempt from weight decay, and a gap (elements 7..9, 17..19: frozen parameters) nobody may touch.
SEGS = np.array([[0, 0, 7, 1_000_000, 1], [10, 7, 5, 500_000, 0], [20, 12, 9, 1_000_000, 1]], np.int64)

CONFIGS = [
    ("sgd", {"weight_decay": 0.1}),
    ("momentum", {"dampening": 0.1, "weight_decay": 0.01}),
    ("momentum", {"nesterov": True}),
    ("adam", {"weight_decay": 0.1}),
    ("adamw", {}),
    ("rmsprop", {"weight_decay": 0.05}),
    ("rmsprop", {"centered": True, "momentum": 0.9}),
    ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 0.1}),
    ("adadelta", {}),
    ("adadelta", {"rho": 0.8, "eps": 1e-4, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("kind", "hp"), CONFIGS, ids=[f"{k}-{'-'.join(h)}" for k, h in CONFIGS])
def test_five_steps_equal_the_cpu_optimizer(kind, hp):
    rng = np.random.default_rng(5)
    p = rng.standard_normal(29).astype(np.float32)
    cpu_p, cpu_g = p.copy(), np.zeros(21, np.float32)
    gpu_p, gpu_g = dev(p), dev(cpu_g)
    cpu = Optimizer(kind, cpu_p, cpu_g, SEGS, lr=0.05, **hp)
    gpu = Optimizer(kind, gpu_p, gpu_g, SEGS, lr=0.05, **hp)
    assert type(gpu) is CudaOptimizer and gpu.slot_names == cpu.slot_names
    for _ in range(5):
        g = rng.standard_normal(21).astype(np.float32)
        cpu_g[:] = g
        gpu_g.copy_to_device(g)
        cpu.step()
        gpu.step()
    got = gpu_p.copy_to_host()
    np.testing.assert_allclose(got, cpu_p, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gpu.state.copy_to_host(), cpu.state, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[[7, 8, 9, 17, 18, 19]], p[[7, 8, 9, 17, 18, 19]])
    assert gpu.state_dict() == cpu.state_dict()


def test_from_config_and_resume_on_the_device():
    p, g = dev(np.ones(29, np.float32)), dev(np.full(21, 0.5, np.float32))
    state = dev(np.zeros((2, 21), np.float32))
    opt = Optimizer.from_config({"type": "adam", "lr": 0.01, "betas": [0.8, 0.9]}, p, g, SEGS, state)
    assert type(opt) is CudaOptimizer and opt.state is state and opt.hp["betas"] == (0.8, 0.9)
    opt.step()
    again = CudaOptimizer("adam", p, g, SEGS, state, lr=0.01, betas=(0.8, 0.9))
    again.load_state_dict(opt.state_dict())
    assert again.t == 1 and again.lr == 0.01
    with pytest.raises(ValueError, match=r"needs state \(2, 21\)"):
        CudaOptimizer("adam", p, g, SEGS, dev(np.zeros((1, 21), np.float32)))


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_by_norm_and_global_norm(max_norm):
    g = np.random.default_rng(1).standard_normal(100).astype(np.float32)
    r = Reducer()
    d = dev(g)
    norm = global_norm_cuda(d, r)
    np.testing.assert_allclose(norm, global_norm(g), rtol=1e-12)
    want = g.copy()
    clip_by_norm(want, max_norm)
    clip_by_norm_cuda(d, max_norm, r)
    np.testing.assert_allclose(d.copy_to_host(), want, rtol=1e-6)
    np.testing.assert_allclose(math.sqrt(r.value()), norm, rtol=1e-12)  # the norm before clipping


def test_clip_by_value_and_a_nan_norm():
    g = np.array([-3.0, -0.5, 0.0, 0.25, 2.0, np.nan], np.float32)
    d = dev(g)
    want = g.copy()
    clip_by_value(want, 1.0)
    clip_by_value_cuda(d, 1.0)
    np.testing.assert_array_equal(d.copy_to_host(), want)
    clip_by_norm_cuda(d, 0.1, Reducer())  # a NaN norm leaves the gradient as it is, as on the CPU
    np.testing.assert_array_equal(d.copy_to_host(), want)


def test_penalty_on_the_device_equals_the_cpu() -> None:
    from netc.runtime.optim import PenaltyCuda, penalty

    rng = np.random.default_rng(5)
    p = rng.standard_normal(40)
    p[3] = 0.0  # sign(0) = 0: no l1 pull on an exact zero
    g = rng.standard_normal(30)
    segs = np.array([[0, 0, 13, 1_000_000, 1], [20, 13, 17, 1_000_000, 1]], np.int64)  # a gap: not penalized
    want_g = g.copy()
    want = penalty(p, want_g, segs, 0.01, 0.1)
    dp, dg = dev(p), dev(g)
    got = PenaltyCuda(segs, Reducer())(dp, dg, 0.01, 0.1)
    assert got == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(dg.copy_to_host(), want_g, rtol=1e-12)
