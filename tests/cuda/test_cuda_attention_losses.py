"""CUDA kernels of multi_head_attention and the mse, l1, binary_cross_entropy and hinge losses equal
their CPU kernels (forward, every gradient, acc both ways, float32 and float64)."""

import numpy as np
import pytest
from helpers import Pair, dev

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor
from netc.runtime.executor_cuda import CudaExecutor
from netc.runtime.kernels import multi_head_attention as mha

RNG = np.random.default_rng(11)

TOL = {np.float32: 1e-5, np.float64: 1e-10}

# -- pointwise losses ------------------------------------------------------------------------------


def pointwise_inputs(op: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    x = RNG.standard_normal(shape) * 2
    t = RNG.uniform(0, 1, shape) if op == "binary_cross_entropy" else RNG.standard_normal(shape)
    if op == "l1":
        t.flat[::5] = x.flat[::5]  # |x - t|'s kink: gradient 0 where equal, as on the CPU
    return [x, t]


POINTWISE = [
    # (attributes, dtype, acc, shape): 15 elements (under one warp), 84 (a block of 128 threads)
    ({}, np.float32, False, (3, 5)),
    ({"reduction": "sum"}, np.float64, True, (3, 4, 7)),
]


@pytest.mark.parametrize("op", ["mse", "l1", "binary_cross_entropy"])
@pytest.mark.parametrize(("attrs", "dtype", "acc", "shape"), POINTWISE)
def test_pointwise_loss(op, attrs, dtype, acc, shape):
    p = Pair(op, attrs, pointwise_inputs(op, shape), acc=acc, dtype=dtype, weight=0.7).run()
    p.compare(rtol=TOL[dtype], atol=1e-7)


@pytest.mark.parametrize("op", ["mse", "binary_cross_entropy"])
def test_pointwise_loss_over_several_blocks(op):
    # 3·211 = 633 elements: three blocks of partials, then device_sum's second pass
    p = Pair(op, {}, pointwise_inputs(op, (3, 211)), acc=True, weight=1.3).run()
    p.compare(rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("need", [[True, False], [False, True]])
def test_pointwise_loss_with_one_gradient(need):
    p = Pair("l1", {}, pointwise_inputs("l1", (2, 9)), need_dx=need).run()
    assert [d is None for d in p.gpu_binding.dx] == [not n for n in need]
    p.compare(rtol=1e-6, atol=0)


def test_pointwise_loss_without_gradients_has_no_backward():
    p = Pair("mse", {}, pointwise_inputs("mse", (2, 3)), need_dx=[False, False]).run()
    assert p.gpu[1].__name__ == "nothing"
    p.compare(rtol=1e-6)


# -- hinge -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "dtype", "acc", "n", "c"),
    [
        ({}, np.float32, False, 4, 7),
        ({"margin": 0.5, "reduction": "sum"}, np.float64, True, 3, 37),  # two warps' worth of classes
        ({"margin": 2.0}, np.float32, True, 2, 300),  # wider than one block of 256 threads
    ],
)
def test_hinge(attrs, dtype, acc, n, c):
    x = RNG.standard_normal((n, c))
    labels = RNG.integers(0, c, n)
    p = Pair("hinge", attrs, [x, labels], acc=acc, dtype=dtype, weight=0.7).run()
    p.compare(rtol=TOL[dtype], atol=1e-7)


def test_hinge_bad_label_gives_nan_and_its_check_raises():
    x = RNG.standard_normal((3, 4))
    p = Pair("hinge", {}, [x, np.array([1, -1, 2])])
    fwd, bwd = p.gpu  # the CPU kernels would raise; the device ones cannot
    fwd()
    bwd()
    assert np.isnan(p.gpu_binding.y.copy_to_host()[0])
    dx = p.gpu_binding.dx[0].copy_to_host()
    assert np.isnan(dx[1]).all() and np.isfinite(dx[[0, 2]]).all()  # only the bad row
    (check,) = p.gpu_binding.checks
    with pytest.raises(ValueError, match=r"hinge 'hinge': label -1 out of range \[0, 4\)"):
        check()


def test_hinge_check_passes_good_labels():
    p = Pair("hinge", {}, [RNG.standard_normal((2, 3)), np.array([0, 2])])
    p.gpu_binding.checks[0]()  # no error


# -- multi_head_attention --------------------------------------------------------------------------


def mha_pair(attrs, tq, tk, d, n=3, dtype=np.float32, acc=False, **kw):
    xs = [RNG.standard_normal((n, tq, d))] + ([RNG.standard_normal((n, tk, d))] if tk else [])
    return Pair("multi_head_attention", attrs, xs, acc=acc, dtype=dtype, **kw).run()


MHA_TOL = {np.float32: (1e-4, 1e-5), np.float64: (1e-10, 1e-12)}


@pytest.mark.parametrize(
    ("attrs", "tq", "tk", "d", "dtype", "acc"),
    [
        # N = 3: backward takes the samples in groups of 2, then 1 (the workspace holds two
        # [Tq, Tk] blocks per CPU thread); no size is a multiple of the 16-wide GEMM tile
        ({"num_heads": 2}, 5, None, 8, np.float32, False),
        ({"num_heads": 2, "causal": True}, 5, None, 6, np.float64, True),
        ({"num_heads": 2, "bias": False}, 3, 7, 8, np.float32, True),  # cross, Tk > Tq
        ({"num_heads": 1, "causal": True}, 6, 4, 5, np.float32, False),  # cross, causal, Tq > Tk
    ],
)
def test_mha(attrs, tq, tk, d, dtype, acc):
    p = mha_pair(attrs, tq, tk, d, dtype=dtype, acc=acc)
    p.compare(*MHA_TOL[dtype])
    rtol, atol = MHA_TOL[dtype]
    st = p.gpu_binding.saved["softmax"].copy_to_host()  # each score row's (max, 1/sum)
    np.testing.assert_allclose(st, p.cpu_binding.saved["softmax"], rtol=rtol, atol=atol)


def test_mha_kdim_vdim_masks():
    """[q, k, v] of widths 6, 5, 3 with an int64 key-padding mask (sample 2 fully padded: a zero
    context) and a float per-head attn mask with -inf entries, causal, accumulating."""
    n, tq, tk = 3, 4, 5
    xs = [RNG.standard_normal((n, tq, 6)), RNG.standard_normal((n, tk, 5)), RNG.standard_normal((n, tk, 3))]
    kpm = (RNG.random((n, tk)) < 0.3).astype(np.int64)
    kpm[:, 0], kpm[2] = 0, 1
    am = RNG.standard_normal((n, 2, tq, tk))
    am[RNG.random(am.shape) < 0.2] = -np.inf
    am[..., 0] = 0
    attrs = {"num_heads": 2, "causal": True, "masks": ["key_padding", "attn"]}
    p = Pair("multi_head_attention", attrs, [*xs, kpm, am], acc=True).run()
    assert p.gpu_binding.dx[3] is None and p.gpu_binding.dx[4] is None
    p.compare(*MHA_TOL[np.float32])
    y = p.gpu_binding.y.copy_to_host()
    np.testing.assert_allclose(y[2], np.broadcast_to(p.cpu_binding.p["b_o"], y[2].shape), rtol=1e-6)


def test_mha_cross_without_key_value_gradient():
    p = mha_pair({"num_heads": 2}, 4, 3, 4, n=2, need_dx=[True, False])
    assert p.gpu_binding.dx[1] is None
    p.compare(*MHA_TOL[np.float32])


def test_mha_inference_has_no_backward():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    p = Pair("multi_head_attention", {"num_heads": 2}, [x], need_dx=[False])
    p.gpu_binding.dy = None
    fwd, bwd = mha.bind_cuda(p.gpu_binding)
    assert bwd.__name__ == "nothing"
    fwd()
    p.cpu[0]()
    np.testing.assert_allclose(p.gpu_binding.y.copy_to_host(), p.cpu_binding.y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_rows_wider_than_a_block(causal):
    # 300 keys: every thread of a 256-thread block takes two columns; rows are queries 0 and 1
    s = RNG.standard_normal((2, 300)).astype(np.float32) * 3
    want, want_st = s.copy(), np.zeros((2, 2), np.float32)
    mha.softmax_rows(want, causal, want_st)
    got, st = dev(s.reshape(1, 2, 300)), dev(np.zeros((1, 2, 2), np.float32))
    mha.softmax_cuda[2, 256](got, st, causal)
    np.testing.assert_allclose(got.copy_to_host()[0], want, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(st.copy_to_host()[0], want_st, rtol=1e-6)
    # and the backward's recomputation from the statistics gives the same attention
    again = dev(s.reshape(1, 2, 300))
    mha.softmax_again_cuda[2, 256](again, st, causal)
    np.testing.assert_allclose(again.copy_to_host(), got.copy_to_host(), rtol=1e-6, atol=0)


def test_softmax_backward_rows_wider_than_a_block():
    a = RNG.uniform(0, 0.01, (2, 300))
    da = RNG.standard_normal((2, 300))
    want = da.copy()
    mha.softmax_rows_backward(a, want)
    got = dev(da.reshape(1, 2, 300))
    mha.softmax_backward_cuda[2, 256](dev(a.reshape(1, 2, 300)), got)
    np.testing.assert_allclose(got.copy_to_host()[0], want, rtol=1e-10)


# -- in a plan -------------------------------------------------------------------------------------

NET = """
netc: 1
inputs:
  x: {shape: [3, 4]}
  t: {shape: [3, 4]}
  z: {shape: [5]}
  p: {shape: [4]}
  label: {shape: [], dtype: int64}
modules:
  att: {op: multi_head_attention, in: x, num_heads: 2, causal: true}
  lin: {op: linear, in: z, out_features: 4}
losses:
  m: {op: mse, in: [att, t], weight: 0.5}
  a: {op: l1, in: [att, t], reduction: sum}
  h: {op: hinge, in: [lin, label], margin: 0.5}
  b: {op: binary_cross_entropy, in: [lin, p]}
outputs: [att]
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "net.yaml"
    path.write_text(NET)
    return netc.load(path).compile(2)


def test_network_equals_the_cpu_executor(plan):
    # the executor's own bindings: the shared workspace, the losses' weights, att feeding two losses
    cpu, gpu = Executor(plan, 2, seed=4), CudaExecutor(plan, 2, seed=4)
    feed = random_inputs(plan, 2, seed=5)
    for ex in (cpu, gpu):
        ex.forward(feed)
        ex.backward()
    np.testing.assert_allclose(gpu.outputs()["att"], cpu.outputs()["att"], rtol=1e-4, atol=1e-6)
    for name, want in cpu.losses().items():
        np.testing.assert_allclose(gpu.losses()[name], want, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(gpu.sync_grads_to_host(), cpu.grads, rtol=1e-4, atol=1e-6)


def test_network_bad_label_is_reported_when_the_losses_come_back(plan):
    gpu = CudaExecutor(plan, 2, seed=4)
    feed = random_inputs(plan, 2, seed=5)
    feed["label"][1] = 4  # lin has 4 outputs
    gpu.forward(feed)
    with pytest.raises(ValueError, match=r"hinge 'h': label 4 out of range \[0, 4\)"):
        gpu.losses()


# -- smooth_l1, and the class losses' weights, ignore_index and axis --------------------------------


@pytest.mark.parametrize(("beta", "shape"), [(1.0, (3, 5)), (0.0, (3, 4, 7)), (0.4, (3, 211))])
def test_smooth_l1(beta, shape):
    xs = pointwise_inputs("l1", shape)  # with d = 0 at every fifth element
    p = Pair("smooth_l1", {"beta": beta, "reduction": "sum"}, xs, acc=True, weight=0.7).run()
    p.compare(rtol=1e-5, atol=1e-7)


W5 = [0.5, 1.0, 2.0, 0.0, 3.0]


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize(
    ("attrs", "shape", "dtype", "acc"),
    [
        ({"class_weights": W5, "ignore_index": 1}, (6, 5), np.float32, False),
        ({"axis": 1, "reduction": "sum", "class_weights": W5}, (3, 5, 2, 3), np.float64, True),
        ({"axis": 1, "ignore_index": 255}, (2, 5, 4), np.float32, True),
    ],
)
def test_class_losses(op, attrs, shape, dtype, acc):
    if op == "cross_entropy":
        attrs = {**attrs, "label_smoothing": 0.2}
    axis = attrs.get("axis", -1)
    labels = RNG.integers(0, 5, shape[:-1] if axis == -1 else (shape[0], *shape[2:]))
    labels.flat[::3] = attrs.get("ignore_index", -100)
    p = Pair(op, attrs, [RNG.standard_normal(shape), labels], acc=acc, dtype=dtype, weight=0.7).run()
    p.compare(rtol=TOL[dtype], atol=1e-7)


def test_nll_loss_bad_label_gives_nan_and_its_check_raises():
    p = Pair("nll_loss", {"ignore_index": 9}, [RNG.standard_normal((4, 3)), np.array([0, 9, 3, 1])])
    p.gpu[0]()
    assert np.isnan(p.gpu_binding.y.copy_to_host()[0])
    with pytest.raises(ValueError, match=r"nll_loss 'nll_loss': label 3 out of range \[0, 3\)"):
        for check in p.gpu_binding.checks:
            check()
