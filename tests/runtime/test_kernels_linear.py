"""linear kernels: parity with torch.nn.Linear, gradcheck, accumulation."""

import numpy as np
import pytest
import torch
from harness import OpRun, check_fused_epilogue, gradcheck

from netc.runtime.kernels import kernel_module


@pytest.fixture(params=[False, True], ids=["one_thread", "split"])
def split(request, monkeypatch):
    """Both thread layouts: the products on one thread, and split over numba's threads (forced)."""
    if request.param:
        from netc.runtime.kernels import linear

        monkeypatch.setattr(linear, "SPLIT_MACS", 0)


@pytest.mark.parametrize(("shape", "bias"), [((4, 5), True), ((3, 2, 5), True), ((4, 5), False)])
def test_linear_matches_torch(shape, bias, split):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    run = OpRun("linear", {"out_features": 7, "bias": bias}, [x]).run()
    tx = torch.tensor(x, requires_grad=True)
    lin = torch.nn.Linear(5, 7, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(run.params["w"]))
        if bias:
            lin.bias.copy_(torch.tensor(run.params["b"]))
    lin(tx).backward(torch.tensor(run.dy))
    close = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(run.y, lin(tx).detach().numpy(), **close)
    np.testing.assert_allclose(run.dx[0], tx.grad.numpy(), **close)
    np.testing.assert_allclose(run.dp["w"], lin.weight.grad.numpy(), **close)
    if bias:
        np.testing.assert_allclose(run.dp["b"], lin.bias.grad.numpy(), **close)


def test_linear_gradcheck(split):
    x = np.random.default_rng(1).standard_normal((3, 2, 5))
    gradcheck(OpRun("linear", {"out_features": 4}, [x], dtype=np.float64))


def test_linear_accumulates_dx_when_asked(split):
    x = np.random.default_rng(2).standard_normal((4, 5))
    ref = OpRun("linear", {"out_features": 3}, [x], dtype=np.float64).run()
    run = OpRun("linear", {"out_features": 3}, [x], dtype=np.float64, dy=ref.dy)
    run.binding.acc[0] = True
    run.dx[0][...] = 1.5
    _, backward = kernel_module("linear").bind_cpu(run.binding)
    run.forward()
    backward()
    np.testing.assert_allclose(run.dx[0], ref.dx[0] + 1.5, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_linear_fused_epilogue_is_bitwise_the_activation_after(act, bias, split):
    x = np.random.default_rng(3).standard_normal((6, 2, 9))
    check_fused_epilogue("linear", {"out_features": 7, "bias": bias}, x, act)
