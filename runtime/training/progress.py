"""What a run prints while it trains: the live status line with its ETA, the epoch summaries
and the notes (see :class:`Progress` for the levels)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """What a run prints, by ``level``: ``live`` (the default; True) redraws a status line with
    the epoch's ETA on a terminal and prints the epoch summaries and notes; ``quiet`` keeps the
    summaries and notes; ``silent`` (False) prints nothing."""

    LEVELS = ("live", "quiet", "silent")

    def __init__(self, epochs: int, steps: int, level: bool | str = "live", stream: Any = None) -> None:
        level = "live" if level is True else "silent" if level is False else level
        if level not in self.LEVELS:
            raise ValueError(f"progress: expected one of {', '.join(self.LEVELS)}, got {level!r}")
        self.epochs, self.steps = epochs, steps
        self.stream = stream or sys.stderr
        self.enabled = level != "silent"
        self.live = level == "live" and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self.start_epoch(1, 0)

    def start_epoch(self, epoch: int, step: int) -> None:
        """Time the ETA from here: the epoch's start, or the step a resume continues from."""
        self._epoch, self._step0, self._t0 = epoch, step, time.perf_counter()

    def update(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and step < self.steps:
            return
        self._last = now
        if epoch != self._epoch:  # a caller that does not announce its epochs
            self.start_epoch(epoch, step - 1)
        frac = step / max(self.steps, 1)
        width = 24
        bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
        el = now - self._t0
        done = step - self._step0  # steps timed since start_epoch: a resumed epoch's earlier ones were not
        eta = el / done * (self.steps - step) if done > 0 else 0.0
        live = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        line = f"epoch {epoch}/{self.epochs} [{bar}] {step}/{self.steps} {_clock(el)}<{_clock(eta)}  {live}"
        self.stream.write("\r" + line[:160].ljust(100))
        self.stream.flush()

    def epoch_end(self, epoch: int, record: dict[str, Any], note: str = "") -> None:
        # About 20 lines for a long run: the first, the last, every k-th and each new best.
        every = max(self.epochs // 20, 1)
        if not self.enabled or not (epoch in (1, self.epochs) or epoch % every == 0 or note):
            if self.live:
                self.stream.write("\r")
            return
        keys = [k for k in record if k.startswith(("train_", "val_")) and isinstance(record[k], float)]
        text = "  ".join(f"{k} {record[k]:.4f}" for k in keys)
        prefix = "\r" if self.live else ""
        line = f"epoch {epoch}/{self.epochs}  {text}  lr {record['lr']:.3g}  {record['time']:.1f}s{note}"
        self.stream.write(prefix + line.ljust(100 if self.live else 0) + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.enabled:
            self.stream.write(("\n" if self.live else "") + text + "\n")
            self.stream.flush()


def _clock(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
