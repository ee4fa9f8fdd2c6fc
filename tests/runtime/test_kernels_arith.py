"""Broadcasting arithmetic (add, sub, mul, div), matmul, constant and zeros against PyTorch (float32,
forward and backward) and float64 finite differences.

A per-sample shape broadcasts in netc as NumPy's rule says, right-aligned after the shared batch
axis; PyTorch's twins align the whole arrays on the right, so ``lift`` views each input with the
size-1 axes inserted after its batch axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import OpRun, gradcheck

from netc.runtime.kernels import _broadcast, kernel_module

RTOL, ATOL = 1e-4, 1e-5
N = 3


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def lift(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each [N, *s] as [N, 1, ..., *s], every input at the largest rank (netc's alignment)."""
    r = max(t.dim() for t in ts)
    return [t.reshape(t.shape[0], *(1,) * (r - t.dim()), *t.shape[1:]) for t in ts]


TWINS = {
    "add": lambda *xs: sum(xs[1:], xs[0]),
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
}


def parity(op: str, attrs: dict, xs: list[np.ndarray], twin, acc: bool = False) -> OpRun:
    """netc's float32 forward and backward against ``twin`` on the same arrays and dy; with
    ``acc`` every gradient adds into random contents."""
    run = OpRun(op, attrs, xs)
    before = [rng(9).standard_normal(g.shape).astype(np.float32) for g in run.dx]
    if acc:
        run.binding.acc[:] = [True] * len(xs)
        run.forward, run.backward = kernel_module(op).bind_cpu(run.binding)
        for g, b in zip(run.dx, before, strict=True):
            g[...] = b
    run.run()
    ts = [torch.tensor(a, requires_grad=True) for a in run.x]
    out = twin(*ts)
    np.testing.assert_allclose(run.y, out.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{op} y")
    out.backward(torch.tensor(run.dy))
    for i, (g, t) in enumerate(zip(run.dx, ts, strict=True)):
        want = t.grad.numpy() + (before[i] if acc else 0)
        np.testing.assert_allclose(g, want, rtol=RTOL, atol=ATOL, err_msg=f"{op} dx{i}")
    return run


# per-sample shapes: scalar-like [1], a [C, 1, 1] bias, leading-axis broadcasts, both sides at once
PATTERNS = [
    [(3, 4, 5), (1,)],
    [(3, 4, 5), (3, 1, 1)],
    [(4, 5), (3, 4, 5)],
    [(2, 1, 5), (1, 4, 1)],
    [(6,), (6,)],
]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", PATTERNS, ids=lambda s: "-".join(str(list(x)) for x in s))
def test_broadcast_parity(op, shapes):
    a, b = (rng(i).standard_normal((N, *s)) for i, s in enumerate(shapes))
    if op == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)  # away from 0
    parity(op, {}, [a, b], lambda x, y: TWINS[op](*lift([x, y])))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_gradcheck_and_acc(op):
    a, b = rng(1).standard_normal((N, 2, 1, 3)), rng(2).uniform(0.5, 1.5, (N, 4, 1))
    gradcheck(OpRun(op, {}, [a, b], dtype=np.float64))
    gradcheck(OpRun(op, {}, [b, a], dtype=np.float64))
    parity(op, {}, [a, b], lambda x, y: TWINS[op](*lift([x, y])), acc=True)


def test_add_broadcasts_three_inputs_and_fuses_an_activation():
    xs = [rng(i).standard_normal((N, *s)) for i, s in enumerate([(3, 4), (1,), (3, 1), (4,)])]
    parity("add", {}, xs, lambda *ts: sum(lift(list(ts))))
    gradcheck(OpRun("add", {}, xs, dtype=np.float64))
    run = OpRun("add", {}, xs)
    run.binding.epilogue = "relu"
    run.forward, _ = kernel_module("add").bind_cpu(run.binding)
    run.forward()
    want = np.maximum(sum(lift([torch.tensor(x) for x in run.x])).numpy(), 0)
    np.testing.assert_allclose(run.y, want, rtol=1e-6, atol=1e-7)


def test_layout_merges_axes_and_keeps_the_batch_first():
    # [N, C, H, W] + [N, C, 1, 1]: N and C merge, H and W merge; the bias has stride 0 along H·W
    shape, (sx, sb) = _broadcast.layout((2, 3, 4, 5), [(2, 3, 4, 5), (2, 3, 1, 1)])
    assert shape == (1, 1, 1, 1, 6, 20)
    assert sx == (0, 0, 0, 0, 20, 1) and sb == (0, 0, 0, 0, 1, 0)
    # a [1] per-sample scalar against [N, 3, 4]: one stride per sample, none within
    shape, (_, sc) = _broadcast.layout((2, 3, 4), [(2, 3, 4), (2, 1)])
    assert shape[-2:] == (2, 12) and sc[-2:] == (1, 0)


def test_equal_shapes_keep_the_flat_kernels():
    x = rng(0).standard_normal((N, 4, 5))
    for op in ("add", "mul"):
        run = OpRun(op, {}, [x, x + 1])
        assert run.forward.kernel is kernel_module(op).forward_cpu
    run = OpRun("add", {}, [x, x[:, :1]])
    assert run.forward.kernel is _broadcast.forward_cpu


def test_div_by_zero_gives_inf_as_torch():
    a, b = np.ones((N, 2)), np.zeros((N, 1))
    run = OpRun("div", {}, [a, b]).run()
    assert np.isinf(run.y).all()


# -- matmul ---------------------------------------------------------------------------------------


def mm_twin(ta: bool, tb: bool):
    def f(a, b):
        a, b = lift([a, b])
        return (a.transpose(-1, -2) if ta else a) @ (b.transpose(-1, -2) if tb else b)

    return f


MATMUL = [
    ((3, 4), (4, 5), False, False),
    ((3, 4), (5, 4), False, True),
    ((4, 3), (4, 5), True, False),
    ((4, 3), (5, 4), True, True),
    ((2, 3, 4), (2, 4, 5), False, False),  # equal leading axes: one product per head
    ((2, 3, 4), (4, 5), False, False),  # b broadcast over the heads
    ((4, 3), (2, 5, 4), True, True),  # a broadcast
    ((2, 1, 3, 4), (3, 5, 4), False, True),  # both broadcast
]


@pytest.mark.parametrize(("sa", "sb", "ta", "tb"), MATMUL)
def test_matmul_parity(sa, sb, ta, tb):
    a, b = rng(0).standard_normal((N, *sa)), rng(1).standard_normal((N, *sb))
    attrs = {"transpose_a": ta, "transpose_b": tb}
    parity("matmul", attrs, [a, b], mm_twin(ta, tb))
    parity("matmul", attrs, [a, b], mm_twin(ta, tb), acc=True)


@pytest.mark.parametrize(("sa", "sb", "ta", "tb"), [MATMUL[3], MATMUL[6], MATMUL[7]])
def test_matmul_gradcheck(sa, sb, ta, tb):
    a, b = rng(0).standard_normal((2, *sa)), rng(1).standard_normal((2, *sb))
    gradcheck(OpRun("matmul", {"transpose_a": ta, "transpose_b": tb}, [a, b], dtype=np.float64))


def test_matmul_of_a_tensor_with_itself():
    # x xᵀ: one buffer as both inputs, the second gradient accumulating into the first's
    x = rng(3).standard_normal((N, 3, 4)).astype(np.float32)
    run = OpRun("matmul", {"transpose_b": True}, [x, x])
    run.binding.x[1], run.binding.dx[1], run.binding.acc[1] = run.x[0], run.dx[0], True
    run.forward, run.backward = kernel_module("matmul").bind_cpu(run.binding)
    run.run()
    t = torch.tensor(x, requires_grad=True)
    (t @ t.transpose(-1, -2)).backward(torch.tensor(run.dy))
    np.testing.assert_allclose(run.dx[0], t.grad.numpy(), rtol=RTOL, atol=ATOL)


# -- constant, zeros ------------------------------------------------------------------------------


def test_constant_and_zeros_fill_every_sample():
    value = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    run = OpRun("constant", {"value": value}, [], batch=4)
    run.y[...] = 7.0  # the buffer held something else: forward rewrites it
    run.run()
    np.testing.assert_array_equal(run.y, np.broadcast_to(np.array(value, np.float32), (4, 3, 2)))
    assert run.dx == []
    run = OpRun("constant", {"value": 2, "shape": [2, 1], "dtype": "int64"}, [], batch=3).run()
    assert run.y.dtype == np.int64 and (run.y == 2).all() and run.y.shape == (3, 2, 1)
    run = OpRun("constant", {"value": 0.5}, [], batch=2).run()
    np.testing.assert_array_equal(run.y, np.full((2, 1), 0.5, np.float32))
    run = OpRun("zeros", {"shape": [3]}, [], batch=2)
    run.y[...] = 1.0
    run.run()
    assert run.y.shape == (2, 3) and not run.y.any()


def test_constant_scale_parity_and_gradcheck():
    """A constant through a broadcast mul: the same numbers as PyTorch, and no gradient into it."""
    c = OpRun("constant", {"value": [[[2.0]], [[-0.5]]]}, [], batch=N).run()
    gradcheck(OpRun("constant", {"value": 1.5, "shape": [2]}, [], batch=2, dtype=np.float64))
    gradcheck(OpRun("zeros", {"shape": [2]}, [], batch=2, dtype=np.float64))
    x = rng(4).standard_normal((N, 2, 3, 3))
    run = parity("mul", {}, [x, c.y], torch.mul)
    assert run.y[0, 1, 0, 0] == np.float32(x[0, 1, 0, 0]) * np.float32(-0.5)
