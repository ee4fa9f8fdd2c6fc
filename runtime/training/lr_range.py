"""The learning-rate range test (``netc lr-find``): the loss of one minibatch after another at an
exponentially growing learning rate, on a trainer whose weights it restores afterwards."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .batches import epoch_order


def lr_find(
    trainer: Any, start: float = 1e-7, end: float = 10.0, steps: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Grow the LR exponentially from ``start`` each minibatch, recording the
    loss, until ``end``, ``steps`` or divergence; the weights are restored after."""
    params, state = trainer.buf.params(), trainer.buf.opt_state()
    lrs, losses = [], []
    factor = (end / start) ** (1 / max(steps - 1, 1))
    n = trainer.batches_per_epoch
    best, avg = math.inf, 0.0
    for i in range(steps):
        lr = start * factor**i
        epoch, b = divmod(i, n)
        order = epoch_order(trainer.seed, epoch, len(trainer.train))
        loss = trainer._micro_step(order[b * trainer.batch : (b + 1) * trainer.batch])
        if not math.isfinite(loss):
            break
        lrs.append(lr)
        losses.append(loss)
        avg = 0.98 * avg + 0.02 * loss  # stop on the smoothed loss: one noisy batch is no divergence
        smooth = avg / (1 - 0.98 ** (i + 1))
        best = min(best, smooth)
        if smooth > 4 * best and i > 10:
            break
        trainer.optimizer.lr = lr
        trainer.optimizer.step()
    trainer.buf.set_params(params)
    trainer.buf.set_opt_state(state)
    return np.array(lrs), np.array(losses)
