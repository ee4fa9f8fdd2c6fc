"""runtime/executor_cuda.py and runtime/device.py on a (simulated) GPU: a tiny network on the
device equals the CPU executor, byte for byte in what it allocates."""

import numpy as np
import pytest
from numba import cuda

import netc
from netc.runtime.check import random_inputs
from netc.runtime.device import DeviceError, cuda_usable, make_executor
from netc.runtime.executor import Executor
from netc.runtime.executor_cuda import CudaExecutor
from netc.runtime.kernels import kernel_module
from netc.runtime.optim import Optimizer, segments

NET = """
netc: 1
inputs:
  x: {shape: [6]}
  label: {shape: [], dtype: int64}
modules:
  l1: {op: linear, in: x, out_features: 7}
  r1: {op: relu, in: l1}
  l2: {op: linear, in: r1, out_features: 4}
losses:
  ce: {op: cross_entropy, in: [l2, label], label_smoothing: 0.1}
outputs: [l2]
"""

CONV = """
netc: 1
inputs:
  image: {shape: [1, 4, 4]}
modules:
  c: {op: conv2d, in: image, out_channels: 2, kernel: 3}
outputs: [c]
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    p = tmp_path_factory.mktemp("net") / "net.yaml"
    p.write_text(NET)
    return netc.load(p).compile(5)


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_tiny_network_equals_the_cpu_executor(plan, dtype, rtol):
    cpu = Executor(plan, 5, dtype=dtype, seed=4, optimizer="momentum")
    gpu = CudaExecutor(plan, 5, dtype=dtype, seed=4, optimizer="momentum")
    assert gpu.allocated_bytes == cpu.allocated_bytes == gpu.plan.memory["ledger"]["training_peak_bytes"]
    assert gpu.arena.nbytes == cpu.arena.nbytes
    np.testing.assert_array_equal(gpu.sync_params_to_host(), cpu.params)  # same initialization
    feed = random_inputs(plan, 5, seed=6)
    for ex in (cpu, gpu):
        ex.forward(feed)
        ex.backward()
    np.testing.assert_allclose(gpu.outputs()["l2"], cpu.outputs()["l2"], rtol=rtol, atol=rtol / 10)
    np.testing.assert_allclose(gpu.losses()["ce"], cpu.losses()["ce"], rtol=rtol)
    np.testing.assert_allclose(gpu.loss(), cpu.loss(), rtol=rtol)
    for p in plan.params:
        want = cpu.grad(p.name)
        np.testing.assert_allclose(gpu.grad(p.name), want, rtol=rtol, atol=rtol / 10, err_msg=p.name)
    np.testing.assert_allclose(gpu.sync_grads_to_host(), cpu.grads, rtol=rtol, atol=rtol / 10)
    # a training step: the optimizer over the executors' own flat buffers, then the next loss
    segs = segments(plan)
    for ex in (cpu, gpu):
        Optimizer("momentum", ex.params, ex.grads, segs, state=ex.opt_state, lr=0.5).step()
        ex.forward()
    np.testing.assert_allclose(gpu.sync_params_to_host(), cpu.params, rtol=rtol, atol=rtol / 10)
    np.testing.assert_allclose(gpu.sync_opt_state_to_host(), cpu.opt_state, rtol=rtol, atol=rtol / 10)
    np.testing.assert_allclose(gpu.loss(), cpu.loss(), rtol=rtol)


def test_buffers_views_and_transfers(plan):
    ex = CudaExecutor(plan, 5, seed=1, optimizer="adam")
    assert ex.opt_state.shape == (2, ex.grads.size) and not ex.sync_opt_state_to_host().any()
    assert ex.view("l1").shape == (5, 7) and ex.view("label").dtype == np.int64
    params = ex.parameters()
    assert set(params) == {"l1.w", "l1.b", "l2.w", "l2.b"}
    np.testing.assert_array_equal(params["l2.w"], ex.param("l2.w"))
    new = np.arange(ex.params.size, dtype=np.float32)
    ex.load_params(new)
    np.testing.assert_array_equal(ex.sync_params_to_host(), new)
    np.testing.assert_array_equal(ex.param("l1.b"), new[42:49])  # l1.w is 7x6
    state = np.ones((2, ex.grads.size))
    ex.load_opt_state(state)
    np.testing.assert_array_equal(ex.sync_opt_state_to_host(), state)
    with pytest.raises(ValueError, match=r"parameters: expected shape \(81,\)"):
        ex.load_params(new[:-1])
    with pytest.raises(ValueError, match=r"input 'x': expected shape \(5, 6\), got \(4, 6\)"):
        ex.set_inputs({"x": np.zeros((4, 6))})
    ex.training = False
    assert not ex.training and ex.state.training[0] == 0


def test_a_bad_label_raises_when_the_loss_is_read(plan):
    ex = CudaExecutor(plan, 5)
    feed = random_inputs(plan, 5, seed=2)
    feed["label"] = np.array([0, 1, 9, 2, 3])
    ex.forward(feed)
    with pytest.raises(ValueError, match=r"cross_entropy 'ce': label 9 out of range \[0, 4\)"):
        ex.loss()


def test_ops_without_cuda_kernels_are_named(tmp_path, monkeypatch):
    spec = tmp_path / "conv.yaml"
    spec.write_text(CONV)
    plan = netc.load(spec).compile(2)
    monkeypatch.delattr(kernel_module("conv2d"), "bind_cuda", raising=False)
    want = r"op 'conv2d' has no CUDA kernels yet \(module 'c'\); use --device cpu"
    with pytest.raises(DeviceError, match=want):
        CudaExecutor(plan, 2)
    with pytest.raises(DeviceError, match="op 'conv2d' has no CUDA kernels yet"):
        make_executor(plan, 2, "cuda")
    assert type(make_executor(plan, 2, "auto")) is Executor  # auto runs what the GPU cannot on the CPU


def test_device_selection_where_cuda_is_usable(plan):
    ok, why = cuda_usable()
    assert ok and why
    assert type(make_executor(plan, 5, "cuda", seed=2)) is CudaExecutor
    assert type(make_executor(plan, 5, "auto")) is CudaExecutor
    assert type(make_executor(plan, 5, "cpu")) is Executor


def test_binding_workspace_is_a_device_view():
    from netc.runtime.binding import Binding, State
    from netc.runtime.kernels import cuda_core

    ws = cuda.device_array(128, np.uint8)
    cuda_core.zero(ws)
    b = Binding("m", {}, [], None, {}, {}, {}, None, [], [], ws, State())
    v = b.workspace(np.float64, 5)
    assert v.shape == (5,) and v.dtype == np.float64
    cuda_core.fill(v, 1.5)
    host = ws.copy_to_host()
    assert (host[:40].view(np.float64) == 1.5).all() and not host[40:].any()


FOLD = """
netc: 1
inputs:
  image: {shape: [2, 5, 5]}
  label: {shape: [], dtype: int64}
modules:
  c: {op: conv2d, in: image, out_channels: 3, kernel: 3, padding: 1, bias: false}
  bn: {op: batchnorm2d, in: c}
  r: {op: relu, in: bn}
  flat: {op: flatten, in: r}
  drop: {op: dropout, in: flat, p: 0.3}
  logits: {op: linear, in: drop, out_features: 4}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
"""


def test_an_inference_plan_folds_and_fuses_on_the_device_as_on_the_cpu(tmp_path):
    p = tmp_path / "fold.yaml"
    p.write_text(FOLD)
    plan = netc.load(p).compile(3, mode="inference")
    assert [d["kind"] for d in plan.fusion] == ["removed", "folded", "epilogue"]
    cpu, gpu = Executor(plan, 3, seed=1), CudaExecutor(plan, 3, seed=1)
    assert gpu.allocated_bytes == cpu.allocated_bytes == plan.memory["ledger"]["inference_peak_bytes"]
    rng = np.random.default_rng(0)
    stats = rng.uniform(0.5, 1.5, cpu.params.shape).astype(np.float32)
    cpu.params[...] = stats
    gpu.params.copy_to_device(stats)
    feed = random_inputs(plan, 3, seed=2)
    for ex in (cpu, gpu):
        ex.forward(feed)
    np.testing.assert_allclose(gpu.outputs()["logits"], cpu.outputs()["logits"], rtol=1e-5, atol=1e-6)


WIDE = """
netc: 1
inputs:
  image: {shape: [2, 4, 4]}
  label: {shape: [], dtype: int64}
modules:
  c: {op: conv2d, in: image, out_channels: 2, kernel: 3, padding: 1}
  e: {op: elu, in: c, alpha: 0.5}
  c2: {op: conv2d, in: e, out_channels: 2, kernel: 3, padding: 1}
  sum: {op: add, in: [c2, e]}
  l: {op: leaky_relu, in: sum, negative_slope: 0.1}
  flat: {op: flatten, in: l}
  ln: {op: layernorm, in: flat}
  s: {op: sigmoid, in: ln}
  fc: {op: linear, in: s, out_features: 6}
  g: {op: gelu, in: fc}
  logits: {op: linear, in: g, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
"""


def test_inference_epilogues_of_any_activation_run_in_place_on_the_device(tmp_path):
    # the CUDA backend applies none itself: each activation's kernel runs in its producer's buffer
    p = tmp_path / "wide.yaml"
    p.write_text(WIDE)
    plan = netc.load(p).compile(2, mode="inference")
    assert [d["modules"][1] for d in plan.fusion] == ["e", "l", "s", "g"]
    cpu, gpu = Executor(plan, 2, seed=1), CudaExecutor(plan, 2, seed=1)
    feed = random_inputs(plan, 2, seed=2)
    for ex in (cpu, gpu):
        ex.forward(feed)
    np.testing.assert_allclose(gpu.outputs()["logits"], cpu.outputs()["logits"], rtol=1e-5, atol=1e-6)


def test_inference_chains_run_in_place_on_the_device(tmp_path):
    # compiler.fusion's chains: on the device each activation's own kernel runs in the shared buffer
    p = tmp_path / "chains.yaml"
    p.write_text(
        "netc: 1\n"
        "inputs:\n  x: {shape: [6]}\n"
        "modules:\n"
        "  s: {op: sigmoid, in: x}\n"
        "  r: {op: relu, in: s}\n"
        "  fc: {op: linear, in: r, out_features: 8}\n"
        "  t: {op: tanh, in: fc}\n"
        "  g: {op: gelu, in: t}\n"
        "  e: {op: elu, in: g, alpha: 0.5}\n"
        "outputs: [e]\n"
    )
    plan = netc.load(p).compile(2, mode="inference")
    assert [d["kind"] for d in plan.fusion] == ["epilogue", "chain"]
    cpu, gpu = Executor(plan, 2, seed=1), CudaExecutor(plan, 2, seed=1)
    assert gpu.allocated_bytes == cpu.allocated_bytes == plan.memory["ledger"]["inference_peak_bytes"]
    feed = random_inputs(plan, 2, seed=2)
    for ex in (cpu, gpu):
        ex.forward(feed)
    np.testing.assert_allclose(gpu.outputs()["e"], cpu.outputs()["e"], rtol=1e-5, atol=1e-6)
