"""`netc lr-find`'s suggestion on every shipped example that brings its data (the ImageNet-sized
ones need files of the user's): a short run at the suggested learning rate reaches about the
loss that the example's tuned train section reaches in the same steps (both at a constant
rate, from the same initial weights and batches)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from netc.runtime.plots import suggest_lr
from netc.runtime.run import Setup, build, datasets, find_lr
from netc.runtime.train import Trainer, epoch_order

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILE_EXAMPLES = {"alexnet", "resnet18", "vgg16"}
STEPS = 100


def _short_run(s: Setup, lr: float) -> float:
    """The mean training loss of the last fifth of STEPS steps at a constant ``lr``; the
    executor's weights and optimizer state are put back after."""
    train, _, _, norm = datasets(s)
    cfg = {k: v for k, v in s.train_cfg.items() if k not in ("early_stopping", "schedule")}
    cfg["optimizer"] = {**cfg["optimizer"], "lr": lr}
    t = Trainer(s.ex, cfg, train, None, normalizer=norm, progress=False, plots=False)
    params, state = t.buf.params(), t.buf.opt_state()
    losses = []
    for i in range(STEPS):
        epoch, b = divmod(i, t.batches_per_epoch)
        order = epoch_order(t.seed, epoch, len(train))
        loss = t._micro_step(order[b * t.batch : (b + 1) * t.batch])
        if not math.isfinite(loss):
            return math.inf
        losses.append(loss)
        t._optimizer_step()
    t.buf.set_params(params)
    t.buf.set_opt_state(state)
    return float(np.mean(losses[-STEPS // 5 :]))


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem not in FILE_EXAMPLES)
)
def test_a_short_run_at_the_suggestion_gets_close_to_the_tuned_loss(name):
    s = build(EXAMPLES / f"{name}.yaml", bind=False)
    lrs, losses = find_lr(s)  # the command's default range and length
    lr = suggest_lr(lrs, losses)
    assert lr is not None
    assert 1e-5 < lr < 1.0, lr  # no blip at the range's ends
    tuned = _short_run(s, s.train_cfg["optimizer"]["lr"])
    at = _short_run(s, lr)
    assert at <= 1.5 * tuned + 0.02, (
        f"{name}: suggested {lr:.3g} reached {at:.4f}, the tuned rate {tuned:.4f}"
    )
