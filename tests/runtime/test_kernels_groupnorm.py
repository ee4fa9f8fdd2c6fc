"""Parity (vs PyTorch) and gradient checks of groupnorm and instancenorm, which share one kernel:
forward, backward (x, w, b), saved statistics, instancenorm's running statistics over several
training steps and in evaluation, accumulation, the fused epilogue, and thread-count determinism."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pytest
import torch
from harness import OpRun, check_fused_epilogue, close, gradcheck, rand, rebind, t
from torch import nn


def copy_params(run: OpRun, module: nn.Module) -> None:
    """run's parameters into the PyTorch twin (netc's w and b are PyTorch's weight and bias)."""
    names = {"w": "weight", "b": "bias", "running_mean": "running_mean", "running_var": "running_var"}
    with torch.no_grad():
        for k, v in run.params.items():
            getattr(module, names[k]).copy_(t(v))


def check_step(run: OpRun, module: nn.Module, x: np.ndarray) -> None:
    """One forward and backward of run on x against module: y, dx, dw, db and the parameters."""
    run.x[0][...] = x
    run.run()
    xt = t(run.x[0], True)
    yt = module(xt)
    yt.backward(t(run.dy))
    close(run.y, yt, "y")
    close(run.dx[0], xt.grad, "dx")
    if run.attrs["affine"]:
        close(run.dp["w"], module.weight.grad, "dw")
        close(run.dp["b"], module.bias.grad, "db")
        module.zero_grad()
    for k in ("running_mean", "running_var"):
        if k in run.params:
            close(run.params[k], getattr(module, k), k, 1e-6)
            assert run.dp[k] is None


# -- groupnorm --------------------------------------------------------------------------------------

GN_CASES = [
    # (attributes, input shape with batch)
    ({"num_groups": 1}, (3, 4, 5, 6)),
    ({"num_groups": 2}, (3, 6, 4, 5)),
    ({"num_groups": 6, "affine": False}, (2, 6, 7)),  # groups = C: instance norm without stats
    ({"num_groups": 2, "eps": 1e-3, "affine": False}, (4, 4, 3, 2)),
    ({"num_groups": 3}, (5, 6)),  # [N, C]: per-sample rank 1
    ({"num_groups": 4}, (2, 8, 3, 2, 5)),  # [N, C, D, H, W]
    ({"num_groups": 2}, (2, 4, 40)),  # channels of 40 values: the fused activation runs per channel
]


def gn_run(attrs: dict[str, Any], shape: tuple[int, ...], training: bool = True, dtype: Any = np.float32):
    return OpRun("groupnorm", attrs, [rand(shape, 7, 2.0, 0.5)], training=training, dtype=dtype, seed=3)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("attrs", "shape"), GN_CASES)
def test_groupnorm_parity(attrs: dict[str, Any], shape: tuple[int, ...], training: bool) -> None:
    run = gn_run(attrs, shape, training)
    full = run.attrs
    gn = nn.GroupNorm(full["num_groups"], shape[1], eps=full["eps"], affine=full["affine"])
    copy_params(run, gn)
    gn.train(training)
    check_step(run, gn, run.x[0].copy())
    xd = t(run.x[0]).double().reshape(shape[0], full["num_groups"], -1)
    close(run.saved["mean"], xd.mean(-1), "saved mean", 1e-6)
    close(run.saved["invstd"], 1 / (xd.var(-1, unbiased=False) + full["eps"]).sqrt(), "saved invstd", 1e-5)


@pytest.mark.parametrize("case", [1, 2, 4, 5])
def test_groupnorm_gradcheck(case: int) -> None:
    gradcheck(gn_run(*GN_CASES[case], dtype=np.float64))


def test_groupnorm_accumulates_and_skips() -> None:
    attrs, shape = GN_CASES[1]
    ref = gn_run(attrs, shape).run()
    run = gn_run(attrs, shape)
    run.binding.acc[0] = True
    rebind(run)
    run.dx[0][:] = 1.5
    run.run()
    close(run.dx[0], ref.dx[0] + 1.5, "dx accumulated")
    run.run()  # parameter gradients are overwritten, not accumulated
    close(run.dp["w"], ref.dp["w"], "dw after a second backward")
    # no input gradient wanted: parameter gradients still come
    run = OpRun("groupnorm", attrs, [ref.x[0]], params=ref.params, dy=ref.dy, need_dx=[False]).run()
    close(run.dp["w"], ref.dp["w"], "dw without dx")
    close(run.dp["b"], ref.dp["b"], "db without dx")


@pytest.mark.parametrize(
    ("act", "act_attrs"), [("relu", {}), ("gelu", {}), ("leaky_relu", {"negative_slope": 0.2})]
)
@pytest.mark.parametrize("case", [1, 4, 6])
def test_groupnorm_fused_activation(case: int, act: str, act_attrs: dict[str, Any]) -> None:
    attrs, shape = GN_CASES[case]
    check_fused_epilogue("groupnorm", attrs, rand(shape, 5), act, act_attrs=act_attrs)


def test_groupnorm_is_the_same_on_one_thread_and_two() -> None:
    attrs, shape = GN_CASES[1]
    results = []
    before = numba.get_num_threads()
    try:
        for nt in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(nt)
            run = gn_run(attrs, shape).run()
            results.append((run.y.copy(), run.dx[0].copy(), run.dp["w"].copy()))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


# -- instancenorm -----------------------------------------------------------------------------------

IN_CASES = [
    # (attributes, input shape with batch)
    ({}, (3, 4, 7)),
    ({"affine": True}, (3, 4, 5, 6)),
    ({"track_running_stats": True}, (4, 3, 6)),
    ({"affine": True, "track_running_stats": True, "momentum": 0.3, "eps": 1e-3}, (3, 4, 5, 4)),
    ({"affine": True, "track_running_stats": True}, (2, 3, 2)),  # L = 2: the unbiased factor is 2
]


def in_run(attrs: dict[str, Any], shape: tuple[int, ...], training: bool = True, dtype: Any = np.float32):
    c = shape[1]
    params = {"running_mean": rand((c,), 5, 0.5), "running_var": rand((c,), 6, 0.3) ** 2 + 0.5}
    x = rand(shape, 8, 1.5, -0.4)
    return OpRun("instancenorm", attrs, [x], params=params, training=training, dtype=dtype, seed=4)


def torch_in(run: OpRun, shape: tuple[int, ...]) -> nn.Module:
    a = run.attrs
    cls = nn.InstanceNorm1d if len(shape) == 3 else nn.InstanceNorm2d
    m = cls(shape[1], eps=a["eps"], momentum=a["momentum"], affine=a["affine"],
            track_running_stats=a["track_running_stats"])  # fmt: skip
    copy_params(run, m)
    return m


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("attrs", "shape"), IN_CASES)
def test_instancenorm_parity(attrs: dict[str, Any], shape: tuple[int, ...], training: bool) -> None:
    run = in_run(attrs, shape, training)
    m = torch_in(run, shape)
    m.train(training)
    check_step(run, m, run.x[0].copy())


@pytest.mark.parametrize("case", [2, 3])
def test_instancenorm_running_statistics_over_steps(case: int) -> None:
    """Three training steps on fresh batches move the running statistics as PyTorch's do; then
    evaluation normalises with them, and the backward treats them as constants."""
    attrs, shape = IN_CASES[case]
    run = in_run(attrs, shape, True)
    m = torch_in(run, shape)
    m.train()
    for step in range(3):
        check_step(run, m, rand(shape, 20 + step, 1.0 + step, 0.3 * step))
    run.state.training[0] = 0  # the mode is read per call, as an executor switches it
    m.eval()
    rm = run.params["running_mean"].copy()
    check_step(run, m, rand(shape, 30, 2.0))
    np.testing.assert_array_equal(run.params["running_mean"], rm)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", [0, 3])
def test_instancenorm_gradcheck(case: int, training: bool) -> None:
    gradcheck(in_run(*IN_CASES[case], training=training, dtype=np.float64))


def test_instancenorm_is_groupnorm_with_one_group_per_channel() -> None:
    attrs, shape = IN_CASES[1]
    inst = in_run(attrs, shape).run()
    grp = OpRun("groupnorm", {"num_groups": shape[1]}, inst.x, params=inst.params, dy=inst.dy).run()
    for a, b in ((inst.y, grp.y), (inst.dx[0], grp.dx[0]), (inst.dp["w"], grp.dp["w"])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_instancenorm_fused_activation(training: bool) -> None:
    attrs = {"affine": True, "track_running_stats": True}
    check_fused_epilogue("instancenorm", attrs, rand((2, 3, 20), 9), "tanh", training=training)
