"""groupnorm and instancenorm in a network (tinyspec.NORM_NET) on the executor: equal to a PyTorch
twin in training (losses, every gradient, the running statistics) and evaluation (on the running
statistics); fused and whole-step plans bit for bit like the per-op unfused one; an inference
plan computes what evaluation mode computes; the running statistics survive a checkpoint."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tinyspec import NORM_NET
from torch import nn

import netc
from netc.runtime.check import random_inputs
from netc.runtime.checkpoint import (
    load_checkpoint,
    restore_training_tensors,
    save_checkpoint,
    training_tensors,
)
from netc.runtime.executor import Executor

BATCH = 3


class Twin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.inorm = nn.InstanceNorm2d(4, momentum=0.2, affine=True, track_running_stats=True)
        self.logits = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.inorm(F.relu(self.gn(self.c1(x)))))
        return self.logits(x.mean((2, 3)))


def tensor(twin: Twin, pname: str) -> torch.Tensor:
    module, short = pname.split(".")
    return getattr(getattr(twin, module), {"w": "weight", "b": "bias"}.get(short, short))


def plan_of(spec_file, **kw):
    return netc.load(spec_file(NORM_NET, "norm.yaml")).compile(BATCH, **kw)


def test_the_norms_in_a_network_equal_pytorch(spec_file) -> None:
    plan = plan_of(spec_file)
    ex = Executor(plan, BATCH, dtype=np.float64, seed=1)
    twin = Twin().double()
    with torch.no_grad():
        for p in plan.params:
            tensor(twin, p.name).copy_(torch.from_numpy(ex.param(p.name).copy()))
    feed = random_inputs(plan, BATCH, seed=2)
    x, label = torch.from_numpy(feed["image"]), torch.from_numpy(feed["label"])
    for training in (True, False):
        ex.training = training
        twin.train(training)
        ex.forward(feed)
        ex.backward()
        twin.zero_grad()
        loss = F.cross_entropy(twin(x), label)
        loss.backward()
        np.testing.assert_allclose(ex.loss(), loss.item(), rtol=1e-10)
        for p in plan.params:
            t = tensor(twin, p.name)
            if p.trainable:
                np.testing.assert_allclose(
                    ex.grad(p.name), t.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=p.name
                )
            else:  # the running statistics, moved by the training forward only
                np.testing.assert_allclose(ex.param(p.name), t.detach().numpy(), rtol=1e-10, err_msg=p.name)


def test_fused_and_whole_step_plans_equal_the_unfused_per_op_plan(spec_file, monkeypatch) -> None:
    plain, fused = plan_of(spec_file, fuse=False), plan_of(spec_file)
    assert [f["modules"] for f in fused.fusion] == [["gn", "r1"], ["inorm", "r2"]]  # relu in the norm
    feed = random_inputs(plain, BATCH, seed=4)
    runs = []
    for plan, whole in ((plain, "0"), (fused, "0"), (fused, "sync")):
        monkeypatch.setenv("NETC_WHOLE_STEP", whole)
        ex = Executor(plan, BATCH, seed=3)
        assert (ex._whole is not None) == (whole == "sync"), ex.whole_step_reason
        assert ex.allocated_bytes == plan.memory["ledger"]["training_peak_bytes"]
        ex.set_inputs(feed)
        ex.step()
        runs.append(ex)
    a = runs[0]
    for b in runs[1:]:
        assert a.losses() == b.losses()
        assert np.array_equal(a.grads, b.grads)
        assert np.array_equal(a.params, b.params)  # the running statistics


def test_an_inference_plan_computes_evaluation_mode(spec_file) -> None:
    train, infer = plan_of(spec_file), plan_of(spec_file, mode="inference")
    a, b = Executor(train, BATCH, seed=5), Executor(infer, BATCH, seed=5)
    assert b.allocated_bytes == infer.memory["ledger"]["inference_peak_bytes"] > 0
    a.params[:] = np.random.default_rng(1).uniform(0.5, 1.5, a.params.shape)  # positive variances
    b.params[:] = a.params
    a.training = False
    feed = random_inputs(train, BATCH, seed=6)
    a.forward(feed)
    b.forward(feed)
    np.testing.assert_array_equal(b.outputs()["logits"], a.outputs()["logits"])


def test_running_statistics_survive_a_checkpoint(spec_file, tmp_path) -> None:
    plan = plan_of(spec_file)
    ex = Executor(plan, BATCH, seed=7)
    for seed in range(3):
        ex.forward(random_inputs(plan, BATCH, seed=seed))
    stats = {k: ex.param(f"inorm.{k}").copy() for k in ("running_mean", "running_var")}
    assert not np.allclose(stats["running_var"], 1)  # they moved
    save_checkpoint(tmp_path / "ck", "a", training_tensors(plan, ex.params), {})
    fresh = Executor(plan, BATCH, seed=8)
    restore_training_tensors(load_checkpoint(tmp_path / "ck"), plan, fresh.params)
    for k, v in stats.items():
        np.testing.assert_array_equal(fresh.param(f"inorm.{k}"), v)
    assert np.array_equal(fresh.params, ex.params)
