"""Training parity: LeNet-5 trained by netc's Trainer and by a PyTorch twin
from the same initial weights, on the same real MNIST batches in the same
order, has the same loss at every one of the first 20 steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netc.runtime.run import build, datasets
from netc.runtime.train import Trainer, epoch_order

ROOT = Path(__file__).resolve().parents[2]
STEPS = 20
CFG = {
    "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    "batch_size": 64,
    "epochs": 1,
    "seed": 3,
}


class LeNet5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.f5 = nn.Linear(400, 120)
        self.f6 = nn.Linear(120, 84)
        self.logits = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.c3(x)), 2).flatten(1)
        return self.logits(torch.tanh(self.f6(torch.tanh(self.f5(x)))))


def test_lenet5_losses_match_pytorch_for_20_steps() -> None:
    s = build(ROOT / "examples" / "lenet5.yaml", dict(CFG))
    train, _, _, _ = datasets(s)
    t = Trainer(s.ex, s.train_cfg, train, None, progress=False, plots=False)
    ours: list[float] = []
    t.step_callbacks.append(lambda tr: ours.append(tr.ex.loss()))

    torch.manual_seed(0)
    twin = LeNet5()
    with torch.no_grad():
        for name, p in s.ex.parameters().items():
            module, short = name.rsplit(".", 1)
            getattr(getattr(twin, module), {"w": "weight", "b": "bias"}[short]).copy_(
                torch.from_numpy(p.copy())
            )
    o = CFG["optimizer"]
    opt = torch.optim.SGD(twin.parameters(), lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"],
                          weight_decay=o["weight_decay"])  # fmt: skip
    order = epoch_order(CFG["seed"], 0, len(train))
    theirs = []
    for b in range(STEPS):
        idx = order[b * 64 : (b + 1) * 64]
        x = torch.from_numpy(train.arrays["image"][idx])
        y = torch.from_numpy(train.arrays["label"][idx])
        opt.zero_grad()
        loss = F.cross_entropy(twin(x), y)
        loss.backward()
        opt.step()
        theirs.append(loss.item())

    # Run netc for exactly STEPS optimizer steps of its first epoch.
    t.batches_per_epoch = STEPS
    t.fit()
    assert len(ours) == STEPS
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert theirs[-1] < theirs[0] - 0.3  # it really trained: the comparison is not of a flat line
