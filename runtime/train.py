"""The public face of training: re-exports what ``runtime/training/`` implements (the
trainer and its loop, checkpoint state, batches, metrics, progress, callbacks and the
learning-rate range test), so ``from netc.runtime.train import Trainer`` keeps working.
"""

from __future__ import annotations

from .training.batches import check_batch_fits, epoch_order, step_seed
from .training.callbacks import EarlyStopping, EpochCallback, StepCallback
from .training.errors import TrainError
from .training.lr_range import lr_find
from .training.metrics import CLASSIFICATION_LOSSES, Evaluator, Head, Meter, heads, label_classes
from .training.progress import Progress
from .training.trainer import Result, Trainer

__all__ = [
    "CLASSIFICATION_LOSSES",
    "EarlyStopping",
    "EpochCallback",
    "Evaluator",
    "Head",
    "Meter",
    "Progress",
    "Result",
    "StepCallback",
    "TrainError",
    "Trainer",
    "check_batch_fits",
    "epoch_order",
    "heads",
    "label_classes",
    "lr_find",
    "step_seed",
]
