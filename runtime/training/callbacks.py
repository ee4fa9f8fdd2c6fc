"""What watches a run from outside its loop: early stopping, and the shape of the callbacks a
:class:`~.trainer.Trainer` calls after each optimizer step (``step_callbacks``) and after each
epoch (``callbacks``, with the epoch's record)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The Trainer is passed as Any: it imports this module, not the other way round.
StepCallback = Callable[[Any], None]
EpochCallback = Callable[[Any, dict[str, Any]], None]


@dataclass
class EarlyStopping:
    """Stop once ``monitor`` has not improved (by more than ``min_delta``, in direction ``mode``)
    for more than ``patience`` epochs; remembers the best value and its epoch."""

    monitor: str = "val_loss"
    patience: int = 5
    mode: str = "min"
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0
    bad: int = 0

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """Returns (improved, stop)."""
        better = self.best is None or (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        )
        if better:
            self.best, self.best_epoch, self.bad = value, epoch, 0
        else:
            self.bad += 1
        return better, self.bad > self.patience

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad}
