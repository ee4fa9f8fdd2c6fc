"""How a run cuts its training split into batches: whether a batch size fits the split and the
plan, the sample order of each epoch and the dropout seed of each step. The last two are pure
functions of (seed, epoch, step), which is why a checkpoint only has to record where a run is.
"""

from __future__ import annotations

import math

import numpy as np

from ...compiler.plan import Plan
from .errors import TrainError


def check_batch_fits(batch: int, n: int, plan: Plan | None = None) -> None:
    """Refuse a training batch the run cannot use, before anything is allocated for it: one
    larger than the training split (``n`` samples), or one that gives a batchnorm a single
    value per channel, whose batch variance is 0: PyTorch refuses it ("Expected more than 1
    value per channel when training"), and training on it goes on silently to nonsense."""
    if n < batch:
        raise TrainError(
            f"train.batch_size {batch} is larger than the training split ({n} samples); lower --batch-size"
        )
    for st in plan.forward_steps if plan is not None else []:
        if (
            st.op in ("batchnorm1d", "batchnorm2d")
            and batch * math.prod(plan.tensors[st.inputs[0]].shape[1:]) < 2
        ):
            raise TrainError(
                f"module '{st.module}' ({st.op}): a training batch of {batch} gives it 1 value per channel, "
                'and batch statistics need more (as PyTorch: "Expected more than 1 value per channel '
                'when training"); use --batch-size 2 or more'
            )


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def step_seed(seed: int, step: int) -> int:
    """The dropout stream of one minibatch (distinct per step, reproducible on resume)."""
    return (seed * 0x9E3779B1 + step * 0x85EBCA77 + 1) % (1 << 62)
