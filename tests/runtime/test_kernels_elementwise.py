"""Parity (vs PyTorch) and gradient checks of the elementwise group: activations, dropout,
add/mul, the data-movement ops (identity, flatten, reshape, transpose, concat, select), mean,
maxout, softmax and log_softmax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import OpRun, gradcheck

from netc.compiler.ops import OPS
from netc.compiler.ops.base import TensorType
from netc.runtime.kernels import kernel_module

RTOL, ATOL = 1e-4, 1e-5
N = 3  # batch


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def rebind(run: OpRun) -> None:
    """Bind again after editing run.binding (acc flags, index)."""
    run.forward, run.backward = kernel_module(run.binding.module).bind_cpu(run.binding)


def away_from_zero(x: np.ndarray, gap: float = 0.1) -> np.ndarray:
    """Keep values off a kink at 0 (relu family) so finite differences stay on one side."""
    return np.where(x >= 0, x + gap, x - gap)


def parity(
    op: str,
    attrs: dict[str, Any],
    inputs: list[np.ndarray],
    twin: Callable[..., torch.Tensor],
    need_dx: list[bool] | None = None,
    atol: float = ATOL,
) -> OpRun:
    """Forward and backward of an OpRun (float32) against PyTorch fed the same arrays and dy."""
    run = OpRun(op, attrs, inputs, need_dx=need_dx).run()
    ts = [torch.tensor(a, requires_grad=run.dx[i] is not None) for i, a in enumerate(run.x)]
    out = twin(*ts)
    np.testing.assert_allclose(run.y, out.detach().numpy(), rtol=RTOL, atol=atol, err_msg=f"{op} y")
    if run.dy is not None and any(g is not None for g in run.dx):
        out.backward(torch.tensor(run.dy))
        for i, g in enumerate(run.dx):
            if g is not None:
                np.testing.assert_allclose(g, ts[i].grad.numpy(), rtol=RTOL, atol=atol, err_msg=f"{op} dx{i}")
    return run


def check_acc(op: str, attrs: dict[str, Any], inputs: list[np.ndarray], seed: int = 0) -> None:
    """With acc set, backward adds into whatever dx holds."""
    ref = OpRun(op, attrs, inputs, seed=seed).run()
    run = OpRun(op, attrs, inputs, dy=ref.dy, seed=seed)
    run.binding.acc[:] = [True] * len(inputs)
    rebind(run)
    before = [rng(7).standard_normal(g.shape).astype(g.dtype) for g in run.dx]
    for g, b in zip(run.dx, before, strict=True):
        g[...] = b
    run.run()
    for i, (g, b) in enumerate(zip(run.dx, before, strict=True)):
        np.testing.assert_allclose(g, b + ref.dx[i], rtol=1e-6, atol=1e-6, err_msg=f"{op} acc dx{i}")


# -- unary activations ---------------------------------------------------------------------------

X = rng(1).standard_normal((N, 4, 5)) * 2
X[0, 0, :] = [-40.0, -12.0, 1e-5, 12.0, 40.0]  # saturation and the small-|x| branches

UNARY = [
    ("relu", {}, F.relu),
    ("leaky_relu", {}, lambda x: F.leaky_relu(x, 0.01)),
    ("leaky_relu", {"negative_slope": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    ("elu", {}, F.elu),
    ("elu", {"alpha": 0.5}, lambda x: F.elu(x, 0.5)),
    ("gelu", {}, F.gelu),
    ("gelu", {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh")),
    ("sigmoid", {}, torch.sigmoid),
    ("tanh", {}, torch.tanh),
    ("relu6", {}, F.relu6),
    ("hardtanh", {}, F.hardtanh),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}, lambda x: F.hardtanh(x, -0.5, 2.0)),
    ("hardsigmoid", {}, F.hardsigmoid),
    ("hardswish", {}, F.hardswish),
    ("silu", {}, F.silu),
    ("selu", {}, F.selu),
    ("softplus", {}, F.softplus),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, lambda x: F.softplus(x, 2.0, 5.0)),
    ("softplus", {"beta": 0.5, "threshold": 1.0}, lambda x: F.softplus(x, 0.5, 1.0)),
]


@pytest.mark.parametrize(("op", "attrs", "twin"), UNARY, ids=[f"{o}{a}" for o, a, _ in UNARY])
def test_unary_parity(op, attrs, twin):
    parity(op, attrs, [X], twin)


@pytest.mark.parametrize(("op", "attrs", "twin"), UNARY, ids=[f"{o}{a}" for o, a, _ in UNARY])
def test_unary_gradcheck(op, attrs, twin):
    x = away_from_zero(rng(2).standard_normal((N, 7)) * 1.5)
    gradcheck(OpRun(op, attrs, [x], dtype=np.float64))


#: Points exactly on each kink (and beside it), where torch picks one side's slope: (op, attributes,
#: torch twin, points). softplus's kink is beta·x = threshold: identity only strictly above it.
KINKS = [
    ("relu6", {}, F.relu6, [-1.0, 0.0, 3.0, 6.0, 7.0]),
    ("hardtanh", {}, F.hardtanh, [-2.0, -1.0, 0.0, 1.0, 2.0]),
    ("hardtanh", {"min_val": 0.5, "max_val": 0.5}, lambda x: F.hardtanh(x, 0.5, 0.5), [0.0, 0.5, 1.0]),
    ("hardsigmoid", {}, F.hardsigmoid, [-4.0, -3.0, 0.0, 3.0 - 2.0**-22, 3.0, 4.0]),
    ("hardswish", {}, F.hardswish, [-4.0, -3.0, -1.5, 0.0, 3.0, 4.0]),
    ("silu", {}, F.silu, [-100.0, 0.0, 100.0]),
    ("selu", {}, F.selu, [-1.0, 0.0, 1.0]),
    ("softplus", {}, F.softplus, [-1.0, 0.0, 20.0, 20.000002, 21.0]),
    ("softplus", {"beta": 2.0, "threshold": 10.0}, lambda x: F.softplus(x, 2.0, 10.0), [5.0, 5.0000005]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("op", "attrs", "twin", "points"), KINKS, ids=[f"{o}{a}" for o, a, _, _ in KINKS])
def test_gradient_on_the_kinks_is_torchs(op, attrs, twin, points, dtype):
    x = np.array([points], dtype)
    run = OpRun(op, attrs, [x], dy=np.ones_like(x), dtype=dtype).run()
    t = torch.tensor(x, requires_grad=True)
    y = twin(t)
    y.sum().backward()
    np.testing.assert_allclose(run.y, y.detach().numpy(), rtol=1e-6, atol=0)
    np.testing.assert_allclose(run.dx[0], t.grad.numpy(), rtol=1e-6, atol=0)


def test_softplus_does_not_overflow_where_torch_would():
    # beta·x = 100 under a threshold of 200: torch's float32 log1p(exp(100)) is inf; the stable form is x
    x = np.array([[100.0, -100.0]], np.float32)
    run = OpRun("softplus", {"threshold": 200.0}, [x], dy=np.ones_like(x)).run()
    np.testing.assert_allclose(run.y, [[100.0, 0.0]], atol=1e-30)
    np.testing.assert_allclose(run.dx[0], [[1.0, 0.0]], atol=1e-30)


# -- prelu ----------------------------------------------------------------------------------------

PRELU = [(1, (6,)), (1, (4, 5)), (4, (4,)), (4, (4, 3, 5)), (3, (3, 7))]


@pytest.mark.parametrize(("k", "shape"), PRELU)
def test_prelu_parity_and_gradcheck(k, shape):
    x = rng(13).standard_normal((N, *shape)) * 2
    x.reshape(-1)[:2] = 0.0  # the kink: torch's slope w there, and no slope gradient
    attrs = {"num_parameters": k}
    run = OpRun("prelu", attrs, [x]).run()
    t, w = torch.tensor(run.x[0], requires_grad=True), torch.tensor(run.params["weight"], requires_grad=True)
    y = F.prelu(t, w)
    y.backward(torch.tensor(run.dy))
    np.testing.assert_allclose(run.y, y.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(run.dx[0], t.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(run.dp["weight"], w.grad.numpy(), rtol=RTOL, atol=ATOL)
    gradcheck(OpRun("prelu", attrs, [away_from_zero(x)], dtype=np.float64))
    check_acc("prelu", attrs, [x])


def test_prelu_starts_at_torchs_slope():
    from netc.runtime.init import init_tensor

    (p,) = OPS["prelu"].params(OPS["prelu"].fill_defaults({}), [TensorType((3,))])
    assert (p.name, p.shape) == ("weight", (1,))
    w = init_tensor(p.init, p.shape, 1, 1, rng(0))
    np.testing.assert_array_equal(w, torch.nn.PReLU().weight.detach().numpy())


def test_tanh_small_and_large_inputs_are_accurate():
    x = np.array([[0.0, 1e-30, -1e-7, 1e-3, 0.0199, -0.0201, -0.3, 5.0, -20.0, 400.0, -400.0]])
    run = OpRun("tanh", {}, [x], dtype=np.float64).run()
    np.testing.assert_allclose(run.y, np.tanh(x), rtol=4e-15, atol=0)
    run = OpRun("sigmoid", {}, [x * 100], dtype=np.float64).run()
    np.testing.assert_allclose(run.y, torch.sigmoid(torch.tensor(x * 100)).numpy(), rtol=1e-15, atol=0)


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in float32 ulps of want (want in float64)."""
    return np.abs(got.astype(np.float64) - want) / np.abs(np.spacing(want.astype(np.float32)))


def test_gelu_float32_stays_within_a_few_ulp():
    """float32 gelu runs float32 arithmetic (Φ from a fitted erfc): y within 6 ulp of x·Φ(x) in
    float64 on 400k values from 1e-6 to 12 of each sign, the negative tail included (relative, not
    absolute: 1 + erf would cancel there), and dy/dx within 3e-7 of the float64 derivative."""
    from scipy.special import ndtr

    from netc.runtime.kernels import gelu

    mag = np.geomspace(1e-6, 12, 200_000).astype(np.float32)
    x = np.concatenate([mag, -mag, np.float32([0.0])])
    xd, y = x.astype(np.float64), np.empty_like(x)
    gelu.forward_cpu(x, y, gelu.ERF, 0, x.size)
    assert ulps(y[x != 0], (xd * ndtr(xd))[x != 0]).max() <= 6.0
    gelu.backward_cpu(x, np.ones_like(x), y, False, gelu.ERF, 0, x.size)
    want = ndtr(xd) + xd * np.exp(-0.5 * xd * xd) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(y, want, rtol=0, atol=3e-7)
    special = np.float32([np.nan, np.inf, 40.0, -40.0, 0.0])
    out = np.empty_like(special)
    gelu.forward_cpu(special, out, gelu.ERF, 0, special.size)
    np.testing.assert_array_equal(out, [np.nan, np.inf, 40.0, 0.0, 0.0])


def test_float32_activations_stay_within_a_few_ulp():
    """float32 data runs float32 arithmetic (exp32, branch-free selects): tanh within 1.5 ulp,
    sigmoid and elu within ~2 of the float64 functions, on 200k values from 1e-6 to 30 of each sign."""
    from netc.runtime.kernels import elu, sigmoid, tanh

    mag = np.geomspace(1e-6, 30, 100_000).astype(np.float32)
    x = np.concatenate([mag, -mag, np.float32([0.0])])
    xd, y = x.astype(np.float64), np.empty_like(x)
    tanh.forward_cpu(x, y, 0, x.size)
    assert ulps(y, np.tanh(xd)).max() <= 1.5
    sigmoid.forward_cpu(x, y, 0, x.size)
    assert ulps(y, 1.0 / (1.0 + np.exp(-xd))).max() <= 2.2
    elu.forward_cpu(x, y, 1.0, 0, x.size)
    assert ulps(y, np.where(xd > 0, xd, np.expm1(xd))).max() <= 2.0
    elu.backward_cpu(x, np.ones_like(x), y, False, 1.0, 0, x.size)
    assert ulps(y, np.where(xd > 0, 1.0, np.exp(xd))).max() <= 2.0
    special = np.float32([np.nan, np.inf, -np.inf, 100.0, -100.0])
    out = np.empty_like(special)
    tanh.forward_cpu(special, out, 0, special.size)
    np.testing.assert_array_equal(out, [np.nan, 1.0, -1.0, 1.0, -1.0])
    sigmoid.forward_cpu(special, out, 0, special.size)
    np.testing.assert_array_equal(out, [np.nan, 1.0, 0.0, 1.0, 0.0])  # e^-100: subnormal, flushed


@pytest.mark.parametrize(("beta", "threshold"), [(1.0, 20.0), (2.0, 5.0), (0.5, 200.0)])
def test_float32_softplus_stays_within_a_few_ulp(beta, threshold):
    """float32 softplus runs float32 arithmetic (exp32, log1p as 2·atanh): y within 3.5 ulp of the
    float64 function on 200k values from 1e-6 to 80 of each sign (the tail e^z relative, not
    absolute; torch's float32 stays within 1.4), dy/dx within 2.2 ulp of σ(z)."""
    from netc.runtime.kernels import softplus

    mag = np.geomspace(1e-6, 80, 100_000).astype(np.float32)
    x = np.concatenate([mag, -mag, np.float32([0.0])])
    b, t = np.float32(beta), np.float32(threshold)
    z = (x * b).astype(np.float64)  # torch's z: the product in float32
    xd, y = x.astype(np.float64), np.empty_like(x)
    softplus.forward_cpu(x, y, b, t, 0, x.size)
    want = np.where(z > t, xd, np.logaddexp(0.0, z) / beta)
    keep = want > 1e-37  # e^z flushed below float32's normal range (exp32 flushes subnormals)
    assert ulps(y[keep], want[keep]).max() <= 3.5
    softplus.backward_cpu(x, np.ones_like(x), y, False, b, t, 0, x.size)
    want = np.where(z > t, 1.0, 1.0 / (1.0 + np.exp(-z)))
    keep = want > 1e-37
    assert ulps(y[keep], want[keep]).max() <= 2.2
    special = np.float32([np.nan, np.inf, -np.inf, -200.0])
    out = np.empty_like(special)
    softplus.forward_cpu(special, out, b, t, 0, special.size)
    np.testing.assert_array_equal(out, [np.nan, np.inf, 0.0, 0.0])


# -- add, mul ---------------------------------------------------------------------------------------


def test_add_two_and_three_inputs():
    a, b, c = (rng(s).standard_normal((N, 4, 5)) for s in (3, 4, 5))
    parity("add", {}, [a, b], lambda x, y: x + y)
    parity("add", {}, [a, b, c], lambda x, y, z: x + y + z, need_dx=[True, False, True])
    gradcheck(OpRun("add", {}, [a, b, c], dtype=np.float64))


def test_mul():
    a, b = (rng(s).standard_normal((N, 6)) for s in (3, 4))
    parity("mul", {}, [a, b], lambda x, y: x * y)
    parity("mul", {}, [a, b], lambda x, y: x * y, need_dx=[False, True])
    gradcheck(OpRun("mul", {}, [a, b], dtype=np.float64))


# -- data movement ----------------------------------------------------------------------------------

MOVES = [
    ("identity", {}, (4, 5), lambda x: x * 1),
    ("flatten", {}, (2, 3, 4), lambda x: torch.flatten(x, 1)),
    ("flatten", {"start_axis": 1}, (2, 3, 4), lambda x: torch.flatten(x, 2)),
    ("flatten", {"start_axis": -1}, (2, 3, 4), lambda x: x * 1),
    ("reshape", {"shape": [-1, 6]}, (2, 3, 4), lambda x: x.reshape(N, -1, 6)),
    ("transpose", {"perm": [1, 0]}, (4, 5), lambda x: x.permute(0, 2, 1)),
    ("transpose", {"perm": [2, 0, 1]}, (3, 4, 5), lambda x: x.permute(0, 3, 1, 2)),
    ("transpose", {"perm": [0, 2, 1, 3]}, (2, 3, 4, 5), lambda x: x.permute(0, 1, 3, 2, 4)),
    ("transpose", {"perm": [-1, 1, 0]}, (3, 1, 4), lambda x: x.permute(0, 3, 2, 1)),
    ("transpose", {"perm": [0, 1]}, (3, 4), lambda x: x * 1),
    ("transpose", {"perm": [3, 4, 0, 1, 2]}, (2, 3, 2, 2, 3), lambda x: x.permute(0, 4, 5, 1, 2, 3)),
    ("select", {"axis": 0, "index": 0}, (5, 6), lambda x: x.select(1, 0)),
    ("select", {"axis": -1, "index": -2}, (3, 4, 5), lambda x: x.select(3, -2)),
    ("select", {"axis": 1, "index": 2}, (3, 4, 5), lambda x: x.select(2, 2)),
]


@pytest.mark.parametrize(("op", "attrs", "shape", "twin"), MOVES, ids=[f"{o}{a}" for o, a, _, _ in MOVES])
def test_movement(op, attrs, shape, twin):
    x = rng(6).standard_normal((N, *shape))
    parity(op, attrs, [x], twin)
    gradcheck(OpRun(op, attrs, [x], dtype=np.float64), samples=6)


def test_movement_of_int64_tensors():
    x = rng(6).integers(0, 100, (N, 3, 4))
    run = OpRun("transpose", {"perm": [1, 0]}, [x]).run()
    np.testing.assert_array_equal(run.y, x.transpose(0, 2, 1))
    run = OpRun("select", {"axis": 1, "index": 1}, [x]).run()
    np.testing.assert_array_equal(run.y, x[:, :, 1])
    run = OpRun("concat", {"axis": 1}, [x, x]).run()
    np.testing.assert_array_equal(run.y, np.concatenate([x, x], 2))


@pytest.mark.parametrize(
    ("axis", "shapes", "need"),
    [
        (0, [(3, 4), (2, 4)], None),
        (-1, [(3, 2), (3, 4), (3, 1)], [True, False, True]),
        (1, [(2, 3, 2)] * 2, None),
    ],
)
def test_concat(axis, shapes, need):
    xs = [rng(i).standard_normal((N, *s)) for i, s in enumerate(shapes)]
    dim = axis % len(shapes[0]) + 1
    parity("concat", {"axis": axis}, xs, lambda *ts: torch.cat(ts, dim), need_dx=need)
    gradcheck(OpRun("concat", {"axis": axis}, xs, dtype=np.float64), samples=6)


# -- mean, maxout, softmax ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axes", "keepdims", "shape"),
    [
        ([0], False, (5, 6)),
        ([1], True, (3, 4, 5)),
        ([-1], False, (3, 4, 5)),
        ([0, 2], False, (3, 4, 5)),
        ([2, 0], True, (3, 4, 5, 2)),
        ([0, 1, 2], False, (3, 4, 5)),
        ([0, 2, 4], False, (2, 3, 2, 3, 2)),
    ],
)
def test_mean(axes, keepdims, shape):
    x = rng(8).standard_normal((N, *shape))
    dims = [a % len(shape) + 1 for a in axes]
    attrs = {"axes": axes, "keepdims": keepdims}
    parity("mean", attrs, [x], lambda t: t.mean(dim=dims, keepdim=keepdims))
    gradcheck(OpRun("mean", attrs, [x], dtype=np.float64), samples=6)


def maxout_twin(axis: int, pieces: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(x: torch.Tensor) -> torch.Tensor:
        d = axis % (x.ndim - 1) + 1
        return x.unflatten(d, (x.shape[d] // pieces, pieces)).max(dim=d + 1).values

    return f


@pytest.mark.parametrize(("pieces", "axis", "shape"), [(2, 0, (8,)), (3, 1, (2, 6, 3)), (4, -1, (3, 8))])
def test_maxout(pieces, axis, shape):
    x = rng(9).standard_normal((N, *shape))
    attrs = {"pieces": pieces, "axis": axis}
    run = parity("maxout", attrs, [x], maxout_twin(axis, pieces))
    assert run.saved["argmax"].min() >= 0 and run.saved["argmax"].max() < pieces
    gradcheck(OpRun("maxout", attrs, [x], dtype=np.float64), samples=8)


SOFTMAX = [(-1, (4, 7)), (0, (5, 3, 4)), (1, (2, 6, 3))]


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize(("axis", "shape"), SOFTMAX)
def test_softmax(op, axis, shape):
    x = rng(10).standard_normal((N, *shape)) * 3
    x[0] += 1000.0  # stability: exp of a large logit must not overflow
    fn = F.softmax if op == "softmax" else F.log_softmax
    parity(op, {"axis": axis}, [x], lambda t: fn(t, dim=axis % len(shape) + 1), atol=1e-4)
    gradcheck(OpRun(op, {"axis": axis}, [x[1:]], dtype=np.float64), samples=8)


# -- accumulation -----------------------------------------------------------------------------------

ACC = [
    ("relu", {}, [(4, 5)]),
    ("gelu", {}, [(4, 5)]),
    *(
        (op, {}, [(4, 5)])
        for op in ("relu6", "hardtanh", "hardsigmoid", "hardswish", "silu", "selu", "softplus")
    ),
    ("softmax", {"axis": 0}, [(4, 5)]),
    ("log_softmax", {}, [(4, 5)]),
    ("add", {}, [(4, 5)] * 3),
    ("mul", {}, [(4, 5)] * 2),
    ("identity", {}, [(4, 5)]),
    ("transpose", {"perm": [1, 0]}, [(4, 5)]),
    ("concat", {"axis": 1}, [(4, 2), (4, 3)]),
    ("select", {"axis": 1, "index": 1}, [(4, 5)]),
    ("mean", {"axes": [0]}, [(4, 5)]),
    ("maxout", {"pieces": 2, "axis": 1}, [(4, 6)]),
    ("dropout", {"p": 0.4}, [(4, 5)]),
]


@pytest.mark.parametrize(("op", "attrs", "shapes"), ACC, ids=[o for o, _, _ in ACC])
def test_backward_accumulates_with_acc(op, attrs, shapes):
    check_acc(op, attrs, [rng(i).standard_normal((N, *s)) for i, s in enumerate(shapes)])


# -- dropout ----------------------------------------------------------------------------------------


def dropout_run(p: float, shape: tuple[int, ...] = (64, 4096), **kw: Any) -> OpRun:
    return OpRun("dropout", {"p": p}, [np.ones(shape)], **kw).run()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    run = dropout_run(p, seed=3)
    n, scale = run.y.size, 1 / (1 - p)
    kept = run.saved["mask"] != 0
    se = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 4 * se
    np.testing.assert_allclose(run.saved["mask"][kept], scale, rtol=1e-6)
    np.testing.assert_array_equal(run.y, run.saved["mask"])  # x is ones
    assert abs(run.y.mean() - 1.0) < 4 * np.sqrt(p / (1 - p) / n)  # the mean is preserved
    np.testing.assert_allclose(run.dx[0], run.dy * run.saved["mask"], rtol=1e-6)
    # neighbouring elements are independent: keep(i) and keep(i+1) agree as often as chance says
    agree = (kept[:, 1:] == kept[:, :-1]).mean()
    assert abs(agree - (p * p + (1 - p) ** 2)) < 6 * se


def test_dropout_on_random_input_and_gradcheck():
    x = rng(11).standard_normal((N, 50))
    run = OpRun("dropout", {"p": 0.3}, [x]).run()
    np.testing.assert_allclose(run.y, x * run.saved["mask"], rtol=1e-6)
    gradcheck(OpRun("dropout", {"p": 0.3}, [x], dtype=np.float64))


def test_dropout_identity_when_p0_or_eval():
    x = rng(12).standard_normal((N, 40)).astype(np.float32)
    for run in (dropout_run(0.0, (N, 40)), OpRun("dropout", {"p": 0.7}, [x], training=False).run()):
        np.testing.assert_array_equal(run.y, run.x[0])
        np.testing.assert_array_equal(run.dx[0], run.dy)


def test_dropout_reads_mode_and_seed_at_call_time():
    run = OpRun("dropout", {"p": 0.5}, [np.ones((N, 1000))], seed=1)
    run.state.training[0] = 0
    run.forward()
    np.testing.assert_array_equal(run.y, 1.0)
    run.state.training[0] = 1
    run.forward()
    first = run.y.copy()
    assert (first == 0).any()
    run.state.seed[0] = 2
    run.forward()
    assert (run.y != first).any()


def test_dropout_masks_are_reproducible_and_distinct():
    def mask(seed: int, index: int = 0, dtype: Any = np.float32) -> np.ndarray:
        run = OpRun("dropout", {"p": 0.5}, [np.ones((8, 500))], dtype=dtype)
        run.state.seed[0] = seed  # any int64, negative too
        run.binding.index = index
        rebind(run)
        run.forward()
        return run.saved["mask"] != 0

    a = mask(5)
    np.testing.assert_array_equal(a, mask(5))
    np.testing.assert_array_equal(a, mask(5, dtype=np.float64))  # the same bits whatever the dtype
    for other in (mask(6), mask(5, index=1), mask(-5)):
        assert 0.45 < (a == other).mean() < 0.55  # independent streams agree half the time


# -- serial and parallel kernels ----------------------------------------------------------------------

CHUNKED = [
    ("relu", {}, 1),
    ("leaky_relu", {"negative_slope": 0.2}, 1),
    ("elu", {}, 1),
    ("gelu", {}, 1),
    ("gelu", {"approximate": "tanh"}, 1),
    ("sigmoid", {}, 1),
    ("tanh", {}, 1),
    ("relu6", {}, 1),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, 1),
    ("hardsigmoid", {}, 1),
    ("hardswish", {}, 1),
    ("silu", {}, 1),
    ("selu", {}, 1),
    ("softplus", {"beta": 2.0}, 1),
    ("add", {}, 3),
    ("mul", {}, 2),
    ("dropout", {"p": 0.3}, 1),
]


def run_with_threads(monkeypatch: pytest.MonkeyPatch, nt: int, acc: bool, *args: Any, **kw: Any) -> OpRun:
    """An OpRun (backward accumulating when acc) bound with ``_pointwise.threads`` (the bind-time
    choice) answering nt: 1 binds the serial kernels, more the parallel drivers with nt chunks
    (run on however many threads numba has)."""
    from netc.runtime.kernels import _pointwise, _windows

    with monkeypatch.context() as m:
        m.setattr(_pointwise, "threads", lambda size: nt)
        m.setattr(_windows, "threads", lambda size: nt)
        run = OpRun(*args, **kw)
        run.binding.acc[:] = [acc] * len(run.x)
        rebind(run)
    for g in run.dx:
        if g is not None:
            g[...] = 0.5
    return run.run()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("op", "attrs", "k"), CHUNKED, ids=[f"{o}{a}" for o, a, _ in CHUNKED])
def test_parallel_kernels_are_bitwise_the_serial_ones(monkeypatch, op, attrs, k, dtype):
    xs = [rng(3 + i).standard_normal((5, 1001)) * 4 for i in range(k)]  # odd sizes: chunks end mid-vector
    xs[0][0, :8] = [0.0, -0.0, 1e-30, -1e-4, 0.01, -100.0, np.nan, np.inf]
    for acc in (False, True):
        serial, par = (run_with_threads(monkeypatch, nt, acc, op, attrs, xs, dtype=dtype) for nt in (1, 3))
        np.testing.assert_array_equal(par.y, serial.y)  # NaN == NaN here: bitwise equal
        for g, want in zip(par.dx, serial.dx, strict=True):
            np.testing.assert_array_equal(g, want)
