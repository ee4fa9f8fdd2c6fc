"""The spatial ops' CUDA kernels (conv2d, maxpool2d, avgpool2d, global_avgpool, embedding,
batchnorm1d, batchnorm2d, layernorm) equal their CPU kernels, forward and backward.

Shapes are tiny (the simulator runs every GPU thread as a Python thread) but never multiples of the
GEMM tile (16) or of a warp, and each row/channel reduction has a case wider than one block."""

import numpy as np
import pytest
from helpers import Pair, dev, executors_agree

from netc.runtime.kernels import kernel_module

RNG = np.random.default_rng(11)

TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-10, 1e-12)}


def same(got, want, rtol: float, atol: float, name: str) -> None:
    np.testing.assert_allclose(got.copy_to_host(), want, rtol=rtol, atol=atol, err_msg=name)


# -- conv2d -----------------------------------------------------------------------------------------

CONV_CASES = [
    # (attributes, per-sample input shape, dtype, acc)
    ({"out_channels": 4, "kernel": 3, "padding": 1}, (3, 5, 6), np.float32, False),
    (
        {"out_channels": 3, "kernel": [3, 2], "stride": 2, "padding": "valid", "bias": False},
        (2, 7, 6),
        np.float32,
        True,
    ),
    ({"out_channels": 3, "kernel": 4, "padding": "same", "dilation": [1, 2]}, (2, 5, 7), np.float64, True),
    (
        {"out_channels": 6, "kernel": 3, "stride": [2, 1], "padding": [0, 2, 1, 0], "groups": 3},
        (3, 6, 5),
        np.float32,
        False,
    ),
    (
        {"out_channels": 5, "kernel": [2, 3], "stride": [1, 3], "padding": [1, 2], "dilation": [2, 1]},
        (2, 5, 7),
        np.float32,
        True,
    ),
    (
        {"out_channels": 4, "kernel": 3, "stride": 2, "padding": 1, "groups": 2, "bias": False},
        (2, 5, 5),
        np.float64,
        False,
    ),
    ({"out_channels": 5, "kernel": 1}, (3, 4, 5), np.float32, True),  # 1x1: x is the column matrix
    ({"out_channels": 4, "kernel": 1, "groups": 2}, (4, 3, 5), np.float64, False),  # 1x1 grouped
    ({"out_channels": 4, "kernel": 1, "stride": 2, "padding": 1, "groups": 2}, (2, 5, 6), np.float32, False),
]


def conv_pair(attrs, shape, dtype=np.float32, acc=False, n=3, **kw) -> Pair:
    x = RNG.standard_normal((n, *shape))
    return Pair("conv2d", attrs, [x], acc=acc, dtype=dtype, **kw)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(("attrs", "shape", "dtype", "acc"), CONV_CASES)
def test_conv2d(attrs, shape, dtype, acc):
    p = conv_pair(attrs, shape, dtype, acc, n=2).run()
    p.compare(*TOL[dtype])


def test_conv2d_chunks_inside_the_declared_workspace_and_a_second_step(monkeypatch):
    # The contract's workspace (sized for the CPU's threads, here one sample per GEMM) holds a few
    # column matrices [C·3·3, 4·5]; one sample more than fit makes the chunk loop run twice, and dW
    # adds the second chunk's sum (beta 1). Given 4x the declared workspace, the kernels use only
    # the declared part (the ledger's bytes). A second step overwrites dW.
    from netc.compiler.ops import conv2d as contract

    monkeypatch.setattr(contract, "CHUNK_BYTES", 1)  # the CPU's chunk: one sample
    attrs, shape = {"out_channels": 3, "kernel": 3, "padding": 1}, (2, 4, 5)
    fits = conv_pair(attrs, shape, n=2).gpu_binding.ws.size // (18 * 20 * 4)
    assert fits >= 2
    p = conv_pair(attrs, shape, n=fits + 1, acc=True)
    declared = p.gpu_binding.ws.size
    assert fits * 18 * 20 * 4 <= declared < (fits + 1) * 18 * 20 * 4
    p.gpu_binding.ws = dev(np.zeros(declared * 4, np.uint8))
    p.gpu = kernel_module("conv2d").bind_cuda(p.gpu_binding)
    p.run().compare(*TOL[np.float32])
    ws = p.gpu_binding.ws.copy_to_host()
    assert np.any(ws[:declared]) and not np.any(ws[declared:])
    p.run().compare(*TOL[np.float32])


@pytest.mark.parametrize("need_dx", [True, False])
def test_conv2d_frozen_weight(need_dx):
    p = conv_pair(CONV_CASES[0][0], (2, 4, 5), n=2, need_dx=[need_dx])
    for b in (p.cpu_binding, p.gpu_binding):
        b.dp["w"] = None
    p.cpu = kernel_module("conv2d").bind_cpu(p.cpu_binding)
    p.gpu = kernel_module("conv2d").bind_cuda(p.gpu_binding)
    p.run().compare(*TOL[np.float32])


# -- pooling ----------------------------------------------------------------------------------------


def distinct(shape, seed=0):
    """Values without ties (maxpool's argmax is unambiguous)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) * 0.01


POOL_CASES = [
    ({"kernel": 2}, (2, 4, 6)),
    ({"kernel": 3, "stride": 2, "padding": 1}, (2, 5, 6)),  # overlapping windows and padding
    ({"kernel": [3, 2], "stride": [1, 2], "padding": [1, 0]}, (1, 5, 7)),
    ({"kernel": [2, 4], "stride": 1, "padding": [1, 2]}, (1, 4, 5)),
]


@pytest.mark.parametrize("acc", [False, True])
@pytest.mark.parametrize(("attrs", "shape"), POOL_CASES)
def test_maxpool2d(attrs, shape, acc):
    p = Pair("maxpool2d", attrs, [distinct((2, *shape))], acc=acc).run()
    p.compare(0, 0)  # the same maximum, and the same terms added in the same order
    p.compare_state(0, 0)  # argmax


def test_maxpool2d_infinite_and_nan_windows_float64():
    # -inf windows keep their first cell inside the input; NaN wins, as on the CPU
    x = distinct((2, 2, 5, 5))
    x[0, 0, :2, :2] = -np.inf
    x[1, 1, 2, 3] = np.nan
    x[1, 1, 3, 2] = np.nan
    p = Pair("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, [x], acc=True, dtype=np.float64).run()
    p.compare(0, 0)
    p.compare_state(0, 0)


@pytest.mark.parametrize("acc", [False, True])
@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize(("attrs", "shape"), POOL_CASES[1:])
def test_avgpool2d(attrs, shape, include, acc):
    attrs = {**attrs, "count_include_pad": include}
    p = Pair("avgpool2d", attrs, [RNG.standard_normal((2, *shape))], acc=acc).run()
    p.compare(1e-6, 1e-6)


# ceil_mode (a last window over the edge), per-side padding and, for the max pool, dilation: the
# gather's covering range spans the dilated window, the divisor clips to the padded input
OPTIONS = {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1], "ceil_mode": True}


@pytest.mark.parametrize("acc", [False, True])
def test_maxpool2d_options(acc):
    p = Pair("maxpool2d", {**OPTIONS, "dilation": [2, 1]}, [distinct((2, 2, 7, 8))], acc=acc).run()
    p.compare(0, 0)
    p.compare_state(0, 0)


@pytest.mark.parametrize("include", [True, False])
def test_avgpool2d_options(include):
    attrs = {**OPTIONS, "count_include_pad": include}
    Pair("avgpool2d", attrs, [RNG.standard_normal((2, 2, 7, 8))], acc=True).run().compare(1e-6, 1e-6)


def test_avgpool2d_float64():
    attrs = {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}
    Pair("avgpool2d", attrs, [RNG.standard_normal((2, 2, 5, 6))], acc=True, dtype=np.float64).run().compare(
        1e-12, 1e-14
    )


@pytest.mark.parametrize(
    ("shape", "dtype", "acc"),
    [
        ((3, 4, 5), np.float32, False),
        ((2, 3), np.float64, True),  # [N, C, L]: any trailing cells
        ((1, 17, 16), np.float32, True),  # 272 cells: wider than one block of threads
    ],
)
def test_global_avgpool(shape, dtype, acc):
    p = Pair("global_avgpool", {}, [RNG.standard_normal((2, *shape))], acc=acc, dtype=dtype).run()
    p.compare(*TOL[dtype])


# -- embedding --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids_shape", "n_emb", "dim", "dtype"),
    [((3, 5), 7, 5, np.float32), ((2,), 4, 37, np.float64), ((2, 3, 2), 5, 3, np.float32)],
)
def test_embedding(ids_shape, n_emb, dim, dtype):
    # repeated ids sum in position order (exactly as the CPU); unused rows get zero gradient
    ids = RNG.integers(0, n_emb - 1, ids_shape)  # the last row is never used
    ids.flat[0] = ids.flat[-1] = 1
    p = Pair("embedding", {"num_embeddings": n_emb, "dim": dim}, [ids], dtype=dtype).run()
    p.compare(0, 0)
    assert not p.gpu_binding.dp["w"].copy_to_host()[n_emb - 1].any()


def test_embedding_bad_id_gives_nan_and_its_check_raises():
    ids = np.array([[0, 3], [10, 2]])
    p = Pair("embedding", {"num_embeddings": 10, "dim": 4}, [ids])
    p.gpu[0]()  # the CPU kernel would raise; the device one cannot
    y = p.gpu_binding.y.copy_to_host()
    assert np.isnan(y[1, 0]).all() and np.isfinite(y[0]).all() and np.isfinite(y[1, 1]).all()
    (check,) = p.gpu_binding.checks
    with pytest.raises(ValueError, match=r"embedding 'embedding': token id 10 out of range \[0, 10\)"):
        check()


def test_embedding_frozen_table_has_no_backward():
    p = Pair("embedding", {"num_embeddings": 6, "dim": 3}, [RNG.integers(0, 6, (2, 3))])
    p.gpu_binding.dp["w"] = None
    fwd, bwd = kernel_module("embedding").bind_cuda(p.gpu_binding)
    fwd()
    assert bwd.__name__ == "nothing"
    same(p.gpu_binding.y, p.cpu_binding.p["w"][p.cpu_binding.x[0]], 0, 0, "y")


# -- batchnorm --------------------------------------------------------------------------------------

BN_CASES = [
    # (op, attributes, input shape with batch, dtype, acc)
    ("batchnorm1d", {}, (6, 5), np.float32, False),
    ("batchnorm1d", {"momentum": 0.3, "eps": 1e-3, "affine": False}, (4, 3, 7), np.float32, True),
    ("batchnorm1d", {"momentum": 0.05}, (3, 2, 6), np.float64, True),
    ("batchnorm2d", {}, (3, 2, 5, 6), np.float32, True),
    ("batchnorm2d", {"momentum": 0.2, "eps": 1e-2, "affine": False}, (2, 3, 4, 5), np.float64, False),
    ("batchnorm2d", {}, (2, 2, 13, 11), np.float32, False),  # 286 values a channel: > one block
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("op", "attrs", "shape", "dtype", "acc"), BN_CASES)
def test_batchnorm(op, attrs, shape, dtype, acc, training):
    x = RNG.standard_normal(shape) * 2 + 0.5
    p = Pair(op, attrs, [x], acc=acc, dtype=dtype, training=training).run()
    rtol, atol = TOL[dtype]
    p.compare(rtol, atol)
    p.compare_state(rtol, atol)  # saved mean/invstd, running statistics (momentum, unbiased var)


def test_batchnorm_mode_is_read_per_call_and_dx_optional():
    op, attrs, shape, *_ = BN_CASES[3]
    p = Pair(op, attrs, [RNG.standard_normal(shape)], need_dx=[False])
    rm = p.gpu_binding.p["running_mean"].copy_to_host()
    p.gpu_binding.state.training[0] = 0  # the bindings share the state, as an executor's modules do
    p.run()
    same(p.gpu_binding.p["running_mean"], rm, 0, 0, "eval leaves the running mean")
    p.compare(*TOL[np.float32])
    p.gpu_binding.state.training[0] = 1
    p.run()
    assert not np.array_equal(p.gpu_binding.p["running_mean"].copy_to_host(), rm)
    p.compare(*TOL[np.float32])
    p.compare_state(*TOL[np.float32])


# -- layernorm --------------------------------------------------------------------------------------

LN_CASES = [
    ({}, (4, 10), np.float32, False),
    ({"normalized_axes": 1}, (3, 5, 8), np.float32, True),
    ({"normalized_axes": 2, "eps": 1e-3}, (2, 3, 5, 7), np.float64, True),
    ({"normalized_axes": 3, "affine": False}, (3, 2, 3, 5), np.float32, False),
    ({"normalized_axes": 2}, (2, 1, 37), np.float32, True),  # 37 columns: two column blocks in dw/db
    ({}, (2, 300), np.float32, False),  # a row wider than one block of threads
]


@pytest.mark.parametrize(("attrs", "shape", "dtype", "acc"), LN_CASES)
def test_layernorm(attrs, shape, dtype, acc):
    x = RNG.standard_normal(shape) * 1.5 + 0.3
    p = Pair("layernorm", attrs, [x], acc=acc, dtype=dtype).run()
    rtol, atol = TOL[dtype]
    p.compare(rtol, atol)
    p.compare_state(rtol, atol)


def test_layernorm_parameter_gradients_without_dx():
    p = Pair("layernorm", {}, [RNG.standard_normal((3, 9))], need_dx=[False]).run()
    assert p.gpu_binding.dx == [None]
    p.compare(*TOL[np.float32])


def test_every_spatial_op_binds_on_the_device():
    import inspect

    ops = ("conv2d", "maxpool2d", "avgpool2d", "global_avgpool", "embedding", "batchnorm1d", "batchnorm2d")
    for op in (*ops, "layernorm"):
        assert list(inspect.signature(kernel_module(op).bind_cuda).parameters) == ["b"], op


# -- the ops in a network, on the CUDA executor ---------------------------------------------------

NET = """
netc: 1
inputs:
  image: {shape: [1, 5, 4]}
  tokens: {shape: [3], dtype: int64}
  label: {shape: [], dtype: int64}
modules:
  c1: {op: conv2d, in: image, out_channels: 2, kernel: 3, padding: 1}
  bn: {op: batchnorm2d, in: c1}
  r1: {op: relu, in: bn}
  mp: {op: maxpool2d, in: r1, kernel: 2, stride: 1}
  ap: {op: avgpool2d, in: mp, kernel: 2, padding: 1}
  gap: {op: global_avgpool, in: ap}
  logits: {op: linear, in: gap, out_features: 4}
  emb: {op: embedding, in: tokens, num_embeddings: 5, dim: 4}
  ln: {op: layernorm, in: emb}
  tgap: {op: global_avgpool, in: ln}
  bn1: {op: batchnorm1d, in: tgap}
  tlogits: {op: linear, in: bn1, out_features: 4}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
  ce2: {op: cross_entropy, in: [tlogits, label], weight: 0.5}
outputs: [logits, tlogits]
"""


def test_a_network_of_the_spatial_ops_on_the_cuda_executor_equals_the_cpu_executor(tmp_path):
    (tmp_path / "net.yaml").write_text(NET)
    executors_agree(tmp_path / "net.yaml", 2, ["logits", "tlogits"])
