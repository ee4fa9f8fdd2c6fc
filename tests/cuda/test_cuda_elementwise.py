"""The elementwise family's CUDA kernels equal their CPU kernels: activations, dropout (the same
mask), add/mul, the data-movement ops (identity, flatten, reshape, transpose, concat, select),
mean, the per-sample tables (parameter, cls_token, positional_encoding), maxout, softmax and
log_softmax — forward and every gradient, overwriting and accumulating, in float32 and float64.

Shapes are tiny (the simulator runs every GPU thread as a Python thread) and deliberately not
multiples of a warp; the row reductions include a row wider than one block of threads."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from helpers import Pair

from netc.runtime.kernels import kernel_module

F32, F64 = np.float32, np.float64
TOL = {F32: (1e-5, 1e-6), F64: (1e-10, 1e-12)}  # (rtol, atol)
# float32 without / with accumulation, and float64 accumulating: every kernel branch, both dtypes
VARIANTS = [(F32, False), (F32, True), (F64, True)]

OPS = [
    *("sigmoid", "tanh", "gelu", "elu", "leaky_relu", "dropout", "add", "mul"),
    *("identity", "flatten", "reshape", "transpose", "concat", "select", "mean"),
    *("parameter", "cls_token", "positional_encoding", "maxout", "softmax", "log_softmax"),
    *("relu6", "hardtanh", "hardsigmoid", "hardswish", "silu", "selu", "softplus", "prelu"),
]


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def check(op: str, attrs: dict, inputs: list[np.ndarray], dtype=F32, acc=False, **kw) -> Pair:
    p = Pair(op, attrs, inputs, acc=acc, dtype=dtype, **kw).run()
    rtol, atol = TOL[dtype]
    p.compare(rtol=rtol, atol=atol)
    return p


def rebind(p: Pair, **changes) -> Pair:
    """Change both bindings (index, aliased inputs, acc flags) and bind them again."""
    for b in (p.cpu_binding, p.gpu_binding):
        for k, v in changes.items():
            setattr(b, k, v(b) if callable(v) else v)
    p.cpu = kernel_module(p.cpu_binding.module).bind_cpu(p.cpu_binding)
    p.gpu = kernel_module(p.gpu_binding.module).bind_cuda(p.gpu_binding)
    return p


@pytest.mark.parametrize("op", OPS)
def test_every_op_has_bind_cuda(op):
    assert list(inspect.signature(kernel_module(op).bind_cuda).parameters) == ["b"]


# -- unary activations ---------------------------------------------------------------------------

X = randn(3, 5, 7) * 2  # 105 elements: not a warp multiple
X[0, 0] = [-40.0, -12.0, -0.01, 0.0, 1e-5, 12.0, 40.0]  # saturation, the kink, the small-|x| branches

UNARY = [
    ("sigmoid", {}),
    ("tanh", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("relu6", {}),
    ("hardtanh", {}),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}),
    ("hardsigmoid", {}),
    ("hardswish", {}),
    ("silu", {}),
    ("selu", {}),
    ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
]

#: The kinks of the piecewise activations, on which CPU and GPU must pick the same side
KINKS = np.array([[-3.0, -1.0, -0.5, 0.0, 1.0, 2.0, 3.0, 6.0, 2.5, 10.0]])


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("relu6", {}),
        ("hardtanh", {"min_val": -0.5, "max_val": 2.0}),
        ("hardsigmoid", {}),
        ("hardswish", {}),
        ("softplus", {"beta": 4.0, "threshold": 10.0}),
    ],
)
def test_unary_on_the_kinks(op, attrs, dtype):
    check(op, attrs, [KINKS], dtype)


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("k", "shape"), [(1, (5, 7)), (5, (5, 3, 7))])
def test_prelu(k, shape, dtype, acc):
    x = randn(3, *shape)
    x[0, 0, :2] = 0.0  # the kink: slope w, and nothing to the slope gradient
    p = check("prelu", {"num_parameters": k}, [x], dtype, acc)
    assert p.gpu_binding.dp["weight"].shape == (k,)


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("op", "attrs"), UNARY)
def test_unary(op, attrs, dtype, acc):
    check(op, attrs, [X], dtype, acc)


# -- dropout -------------------------------------------------------------------------------------

# The simulator runs mix64 on NumPy uint64 scalars, which warn on the wraparound the hash relies on
# (compiled code wraps silently).
UINT64_WRAPS = pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")


@UINT64_WRAPS
@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
def test_dropout_drops_the_same_elements_as_the_cpu(dtype, acc):
    p = Pair("dropout", {"p": 0.3}, [randn(3, 37)], acc=acc, dtype=dtype, seed=5)
    rebind(p, index=4)  # another module's stream
    p.run()
    p.compare(rtol=0, atol=0)  # the same mask and the same float64 scale: bit for bit
    mask = p.gpu_binding.saved["mask"].copy_to_host()
    np.testing.assert_array_equal(mask, p.cpu_binding.saved["mask"])
    kept = mask != 0
    assert 0 < kept.sum() < mask.size
    np.testing.assert_allclose(mask[kept], 1 / 0.7, rtol=1e-7)
    # the seed is read when the thunk runs: a new step draws a new mask, still the CPU's
    p.cpu_binding.state.seed[0] = 6
    p.run()
    mask2 = p.gpu_binding.saved["mask"].copy_to_host()
    np.testing.assert_array_equal(mask2, p.cpu_binding.saved["mask"])
    assert (mask2 != mask).any()


@pytest.mark.parametrize("acc", [False, True])
def test_dropout_in_inference_passes_through(acc):
    p = check("dropout", {"p": 0.5}, [randn(2, 45)], acc=acc, training=False)
    np.testing.assert_array_equal(p.gpu_binding.y.copy_to_host(), p.cpu_binding.x[0])


# -- add, mul ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
def test_add_three_inputs(dtype, acc):
    xs = [randn(2, 3, 11, seed=s) for s in range(3)]
    check("add", {}, xs, dtype, acc)


def test_add_with_one_gradient_unneeded():
    xs = [randn(2, 13, seed=s) for s in range(2)]
    p = check("add", {}, xs, need_dx=[False, True])
    assert p.gpu_binding.dx[0] is None


def test_add_of_one_tensor_twice_sums_both_gradients():
    p = Pair("add", {}, [randn(2, 13), randn(2, 13)])
    rebind(p, x=lambda b: [b.x[0], b.x[0]], dx=lambda b: [b.dx[0], b.dx[0]], acc=[False, True]).run()
    p.compare(rtol=1e-6)
    np.testing.assert_allclose(p.gpu_binding.dx[0].copy_to_host(), 2 * p.cpu_binding.dy, rtol=1e-6)


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
def test_mul(dtype, acc):
    check("mul", {}, [randn(2, 13), randn(2, 13, seed=1)], dtype, acc)


def test_mul_with_one_gradient_unneeded():
    check("mul", {}, [randn(2, 13), randn(2, 13, seed=1)], need_dx=[True, False])


def test_mul_of_one_tensor_by_itself():
    # x * x: one buffer, dx1 accumulating into dx0: dx = 2·dy·x
    p = Pair("mul", {}, [randn(2, 13), randn(2, 13)])
    rebind(p, x=lambda b: [b.x[0], b.x[0]], dx=lambda b: [b.dx[0], b.dx[0]], acc=[False, True]).run()
    p.compare(rtol=1e-6)
    c = p.cpu_binding
    np.testing.assert_allclose(p.gpu_binding.dx[0].copy_to_host(), 2 * c.dy * c.x[0], rtol=1e-6)


# -- copies: identity, flatten, reshape ----------------------------------------------------------


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(
    ("op", "attrs", "shape"),
    [
        ("identity", {}, (2, 3, 7)),
        ("flatten", {}, (2, 3, 2, 5)),
        ("flatten", {"start_axis": 1}, (2, 3, 2, 5)),
        ("reshape", {"shape": [-1, 6]}, (2, 4, 3)),
    ],
)
def test_copies(op, attrs, shape, dtype, acc):
    check(op, attrs, [randn(*shape)], dtype, acc)


def test_identity_of_int64_ids():
    ids = np.arange(2 * 9, dtype=np.int64).reshape(2, 9) - 4
    p = check("identity", {}, [ids])
    np.testing.assert_array_equal(p.gpu_binding.y.copy_to_host(), ids)


# -- transpose, concat, select -------------------------------------------------------------------

TRANSPOSE = [
    ({"perm": [1, 0]}, (2, 5, 7)),
    ({"perm": [2, 0, 1]}, (2, 3, 4, 5)),
    ({"perm": [0, 2, 1, 3]}, (2, 3, 4, 5, 2)),  # the batch and first axis merge: [6, 4, 5, 2]
    ({"perm": [2, 1, 0]}, (2, 3, 1, 5)),  # a size-1 axis is dropped
    ({"perm": [3, 2, 1, 0, 4]}, (2, 2, 3, 2, 3, 2)),  # 6 axes after merging: the kernels' limit
]


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("attrs", "shape"), TRANSPOSE)
def test_transpose(attrs, shape, dtype, acc):
    check("transpose", attrs, [randn(*shape)], dtype, acc)


CONCAT = [
    ({}, [(2, 3, 4), (2, 5, 4), (2, 1, 4)]),
    ({"axis": -1}, [(2, 3, 4), (2, 3, 7)]),
    ({"axis": 1}, [(2, 2, 3, 5), (2, 2, 6, 5)]),
]


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("attrs", "shapes"), CONCAT)
def test_concat(attrs, shapes, dtype, acc):
    check("concat", attrs, [randn(*s, seed=i) for i, s in enumerate(shapes)], dtype, acc)


def test_concat_with_one_gradient_unneeded():
    p = check("concat", {}, [randn(2, 3, 4), randn(2, 5, 4, seed=1)], need_dx=[True, False])
    assert p.gpu_binding.dx[1] is None


SELECT = [
    ({"axis": 0, "index": 0}, (2, 5, 7)),
    ({"axis": 1, "index": -1}, (2, 5, 7)),
    ({"axis": -1, "index": 2}, (3, 4)),
]


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("attrs", "shape"), SELECT)
def test_select(attrs, shape, dtype, acc):
    check("select", attrs, [randn(*shape)], dtype, acc)


# -- mean ----------------------------------------------------------------------------------------

MEAN = [
    ({"axes": [0]}, (2, 5, 7)),  # reduced axes outside the innermost: column lanes
    ({"axes": [0]}, (2, 3, 40)),  # two tiles of 32 outputs
    ({"axes": [-1]}, (2, 5, 7)),  # the innermost axis: a block per output
    ({"axes": [0, 2], "keepdims": True}, (2, 3, 4, 5)),  # alternating runs [1, 1, 2, 3, 4, 5]
    ({"axes": [0, 1]}, (2, 3, 1, 5)),  # a size-1 axis among the reduced
]


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("attrs", "shape"), MEAN)
def test_mean(attrs, shape, dtype, acc):
    check("mean", attrs, [randn(*shape)], dtype, acc)


def test_mean_over_a_row_wider_than_a_block():
    check("mean", {"axes": [0]}, [randn(2, 300)], F32, True)


# -- per-sample tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize("op", ["parameter", "cls_token"])
def test_learned_tables(op, dtype, acc):
    p = check(op, {}, [randn(3, 4, 5)], dtype, acc)
    assert p.gpu_binding.dp["w"] is not None


@pytest.mark.parametrize("op", ["parameter", "cls_token"])
def test_learned_tables_without_input_gradient(op):
    p = check(op, {}, [randn(2, 3, 5)], need_dx=[False])
    assert p.gpu_binding.dx == [None]


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
def test_positional_encoding(dtype, acc):
    check("positional_encoding", {}, [randn(2, 6, 8)], dtype, acc)


# -- maxout --------------------------------------------------------------------------------------


def maxout_input(shape: tuple[int, ...]) -> np.ndarray:
    x = randn(*shape)
    x.reshape(-1)[1::4] = x.reshape(-1)[::4]  # ties: the first piece wins on both targets
    return x


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(
    ("attrs", "shape"),
    [({"pieces": 2}, (2, 6, 5)), ({"pieces": 3, "axis": -1}, (2, 4, 9)), ({"pieces": 4}, (3, 8))],
)
def test_maxout(attrs, shape, dtype, acc):
    p = check("maxout", attrs, [maxout_input(shape)], dtype, acc)
    np.testing.assert_array_equal(p.gpu_binding.saved["argmax"].copy_to_host(), p.cpu_binding.saved["argmax"])


# -- softmax, log_softmax ------------------------------------------------------------------------

ROWS = [
    ({}, (2, 37)),  # the last axis: contiguous rows, 64 threads
    ({"axis": 0}, (2, 5, 2)),  # rows of stride 2 (inner > 1)
    ({"axis": 1}, (2, 1, 3, 2)),  # a middle axis: [2, 3, 2]
]


@pytest.mark.parametrize(("dtype", "acc"), VARIANTS)
@pytest.mark.parametrize(("attrs", "shape"), ROWS)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, attrs, shape, dtype, acc):
    check(op, attrs, [randn(*shape) * 3], dtype, acc)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_over_a_row_wider_than_a_block(op):
    x = randn(1, 2, 300) * 3
    x[0, 0, 0] = 30.0  # a dominant logit: the max must be found across threads
    check(op, {}, [x], F32, True)


# -- a whole plan: every op of the family on the executor's arena --------------------------------

NET = """
netc: 1
inputs:
  x: {shape: [3, 2]}
  label: {shape: [], dtype: int64}
modules:
  cls: {op: cls_token, in: x, init: normal}
  pe: {op: positional_encoding, in: cls}
  par: {op: parameter, in: pe, init: normal}
  l1: {op: linear, in: par, out_features: 2}
  g: {op: gelu, in: l1}
  d: {op: dropout, in: g, p: 0.25}
  res: {op: add, in: [d, par]}
  sq: {op: mul, in: [res, res]}
  t: {op: transpose, in: sq, perm: [1, 0]}
  s: {op: softmax, in: t, axis: 0}
  ls: {op: log_softmax, in: t}
  c: {op: concat, in: [s, ls, t], axis: 0}
  mo: {op: maxout, in: c, pieces: 3}
  first: {op: select, in: mo, axis: 0, index: 0}
  avg: {op: mean, in: mo, axes: [0]}
  sig: {op: sigmoid, in: avg}
  th: {op: tanh, in: first}
  e: {op: elu, in: th}
  lr: {op: leaky_relu, in: sig}
  both: {op: add, in: [e, lr, th]}
  id: {op: identity, in: both}
  rs: {op: reshape, in: id, shape: [2, 2]}
  fl: {op: flatten, in: rs}
  out: {op: linear, in: fl, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [out, label]}
outputs: [out]
"""


@UINT64_WRAPS
def test_a_network_of_the_family_equals_the_cpu_executor(tmp_path):
    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.executor import Executor
    from netc.runtime.executor_cuda import CudaExecutor

    path = tmp_path / "net.yaml"
    path.write_text(NET)
    plan = netc.load(path).compile(2)
    cpu = Executor(plan, 2, seed=2)
    gpu = CudaExecutor(plan, 2, seed=2)
    feed = random_inputs(plan, 2, seed=5)
    for step in range(2):  # the second step draws new dropout masks on both
        for ex in (cpu, gpu):
            ex.state.seed[0] = step + 11
            ex.forward(feed)
            ex.backward()
        np.testing.assert_allclose(gpu.outputs()["out"], cpu.outputs()["out"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gpu.loss(), cpu.loss(), rtol=1e-5)
        np.testing.assert_allclose(gpu.sync_grads_to_host(), cpu.grads, rtol=1e-4, atol=1e-6)
