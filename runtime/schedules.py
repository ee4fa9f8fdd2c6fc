"""Learning-rate schedules for the training loop, each equal to its
``torch.optim.lr_scheduler`` counterpart, with an optional linear warmup.

The trainer asks ``schedule.lr`` before every optimizer step, calls
``after_step()`` after it and ``after_epoch(metrics)`` at each epoch end. A
schedule counts either optimizer steps or completed epochs (``per``; see
``DEFAULT_PER``): step, multistep, exponential and reduce_on_plateau count
epochs by default, like the torch recipes they come from; the others count
optimizer steps. Every length a schedule takes (``step_size``, ``milestones``,
``T_max``, ``T_0``, ``step_size_up``, ...) is in the unit it counts.

Warmup always counts optimizer steps: the LR of step ``k`` (0-based) is the
schedule's times ``min(1, (k + 1) / (warmup + 1))``, a line from
``base / (warmup + 1)`` reaching the schedule's own value at step ``warmup``
(``torch.optim.lr_scheduler.LinearLR(start_factor=1 / (warmup + 1),
total_iters=warmup)`` multiplied onto the schedule).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from ..spec.schema import SCHEDULE_FIELDS

DEFAULT_PER = {"step": "epoch", "multistep": "epoch", "exponential": "epoch", "reduce_on_plateau": "epoch"}
_POSITIVE_INTS = ("step_size", "T_max", "T_0", "T_mult", "step_size_up", "step_size_down")
_MODES = {"cyclic": ("triangular", "triangular2", "exp_range"), "reduce_on_plateau": ("min", "max")}


def _validate(cfg: Mapping[str, Any]) -> str:
    """The schedule's type, after the checks the schema states, as errors that
    name the field (``train.schedule.<field>``)."""
    kind = cfg.get("type", "constant")
    if kind not in SCHEDULE_FIELDS:
        raise ValueError(
            f"train.schedule.type: unknown schedule {kind!r}; expected one of: {', '.join(SCHEDULE_FIELDS)}"
        )
    required, optional = SCHEDULE_FIELDS[kind]
    for f in required:
        if cfg.get(f) is None:
            raise ValueError(f"train.schedule.{f} is required for schedule '{kind}'")
    allowed = {"type", "warmup", *required, *optional}
    for f in cfg:
        if f not in allowed:
            raise ValueError(
                f"train.schedule.{f} does not apply to schedule '{kind}' "
                f"(its fields: {', '.join(sorted(allowed))})"
            )
    for f in _POSITIVE_INTS:
        v = cfg.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"train.schedule.{f} must be a positive integer, got {v!r}")
    w = cfg.get("warmup", 0)
    if not isinstance(w, int) or isinstance(w, bool) or w < 0:
        raise ValueError(f"train.schedule.warmup must be a non-negative integer, got {w!r}")
    if kind in _MODES and "mode" in cfg and cfg["mode"] not in _MODES[kind]:
        raise ValueError(
            f"train.schedule.mode must be one of {', '.join(_MODES[kind])} for schedule '{kind}'"
        )
    if kind == "reduce_on_plateau" and not 0 <= cfg.get("factor", 0.1) < 1:
        raise ValueError(f"train.schedule.factor must be in [0, 1), got {cfg['factor']!r}")
    if cfg.get("per") not in (None, "step", "epoch"):
        raise ValueError(f"train.schedule.per must be 'step' or 'epoch', got {cfg['per']!r}")
    return kind


class Schedule:
    """The LR for each optimizer step of a run of ``epochs`` epochs of
    ``steps_per_epoch`` optimizer steps, from the spec's ``train.schedule``."""

    def __init__(
        self, cfg: Mapping[str, Any] | None, base_lr: float, steps_per_epoch: int, epochs: int
    ) -> None:
        cfg = dict(cfg or {})
        self.type = _validate(cfg)
        self.cfg = cfg
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.per: str = cfg.get("per") or DEFAULT_PER.get(self.type, "step")
        self.warmup = int(cfg.get("warmup", 0))
        # Units of the whole run, in what the schedule counts.
        self.total = max(1, self.steps_per_epoch * self.epochs if self.per == "step" else self.epochs)
        self.steps = 0  # optimizer steps taken
        self.epochs_done = 0
        # reduce_on_plateau's own state (torch's ReduceLROnPlateau fields).
        self._mode = cfg.get("mode", "min")
        self._plateau_lr = self.base_lr
        self._best = math.inf if self._mode == "min" else -math.inf
        self._bad = 0
        self._cooldown = 0

    # -- the LR ---------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The LR for the next optimizer step."""
        t = self.steps if self.per == "step" else self.epochs_done
        lr = self._scheduled(t)
        if self.steps < self.warmup:
            lr *= (self.steps + 1) / (self.warmup + 1)
        return lr

    def _scheduled(self, t: int) -> float:
        c, base, kind = self.cfg, self.base_lr, self.type
        if kind == "constant":
            return base
        if kind == "step":
            return base * c.get("gamma", 0.1) ** (t // c["step_size"])
        if kind == "multistep":
            return base * c.get("gamma", 0.1) ** bisect.bisect_right(sorted(c["milestones"]), t)
        if kind == "exponential":
            return base * c["gamma"] ** t
        if kind == "inverse_sqrt":
            return base / math.sqrt(t + 1)
        if kind == "cosine":
            eta = c.get("eta_min", 0.0)
            period = c.get("T_max")
            if period is None:  # the run's length; an extended run holds eta_min past it
                period, t = self.total, min(t, self.total)
            return eta + (base - eta) * (1 + math.cos(math.pi * t / period)) / 2
        if kind == "cosine_restarts":
            return self._sgdr(t)
        if kind == "cyclic":
            return self._cyclic(t)
        if kind == "one_cycle":
            return self._one_cycle(t)
        return self._plateau_lr  # reduce_on_plateau

    def _sgdr(self, t: int) -> float:
        # CosineAnnealingWarmRestarts: cycles of T_0, T_0 T_mult, T_0 T_mult^2, ...
        c = self.cfg
        period, mult, eta = c["T_0"], c.get("T_mult", 1), c.get("eta_min", 0.0)
        if mult == 1:
            t %= period
        else:
            while t >= period:
                t -= period
                period *= mult
        return eta + (self.base_lr - eta) * (1 + math.cos(math.pi * t / period)) / 2

    def _cyclic(self, t: int) -> float:
        # CyclicLR, written as torch writes it so the values agree to the last bit.
        c = self.cfg
        lo, hi = c.get("base_lr", self.base_lr), c["max_lr"]
        up = c.get("step_size_up", 2000)
        total = float(up + c.get("step_size_down", up))
        ratio = up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        height = (hi - lo) * scale
        mode = c.get("mode", "triangular")
        if mode == "triangular2":
            return lo + height * (1 / (2.0 ** (cycle - 1)))
        if mode == "exp_range":
            return lo + height * c.get("gamma", 1.0) ** t
        return lo + height

    def _one_cycle(self, t: int) -> float:
        # OneCycleLR (two phases): initial -> max over pct_start of the run, then -> min.
        c = self.cfg
        peak = c.get("max_lr", self.base_lr)
        initial = peak / c.get("div_factor", 25.0)
        final = initial / c.get("final_div_factor", 1e4)
        cos = c.get("anneal_strategy", "cos") == "cos"
        t = min(t, self.total - 1)  # an extended run holds the final learning rate
        phases = (
            (float(c.get("pct_start", 0.3) * self.total) - 1, initial, peak),
            (self.total - 1, peak, final),
        )
        start = 0.0
        for i, (end, a, b) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                pct = (t - start) / (end - start) if end > start else 1.0
                return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1) if cos else (b - a) * pct + a
            start = end
        raise AssertionError("unreachable")

    # -- the trainer's calls -----------------------------------------------------
    def after_step(self) -> None:
        """After each optimizer step."""
        self.steps += 1

    def after_epoch(self, metrics: Mapping[str, float]) -> None:
        """At each epoch end, with the epoch's metrics (reduce_on_plateau reads
        ``metrics[monitor]``, by default ``val_loss``)."""
        self.epochs_done += 1
        if self.type != "reduce_on_plateau":
            return
        name = self.cfg.get("monitor", "val_loss")
        if name not in metrics:
            have = ", ".join(sorted(metrics)) or "none"
            raise ValueError(
                f"train.schedule.monitor: reduce_on_plateau monitors '{name}', which the epoch did not "
                f"report (its metrics: {have})"
            )
        self._plateau(float(metrics[name]))

    def _plateau(self, current: float) -> None:
        # ReduceLROnPlateau.step, threshold_mode "rel".
        c = self.cfg
        th = c.get("threshold", 1e-4)
        better = current < self._best * (1 - th) if self._mode == "min" else current > self._best * (1 + th)
        if better:
            self._best = current
            self._bad = 0
        else:
            self._bad += 1
        if self._cooldown > 0:
            self._cooldown -= 1
            self._bad = 0
        if self._bad > c.get("patience", 10):
            new = max(self._plateau_lr * c.get("factor", 0.1), c.get("min_lr", 0.0))
            if self._plateau_lr - new > 1e-8:
                self._plateau_lr = new
            self._cooldown = c.get("cooldown", 0)
            self._bad = 0

    # -- resume ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able counters (and plateau state) from which ``load_state_dict``
        continues the exact same LR sequence."""
        best = self._best if math.isfinite(self._best) else None  # JSON has no infinity
        return {
            "type": self.type,
            "steps": self.steps,
            "epochs": self.epochs_done,
            # The length the schedule was planned over: a run extended with --epochs keeps it.
            "total": self.total,
            "plateau": {"lr": self._plateau_lr, "best": best, "bad": self._bad, "cooldown": self._cooldown},
        }

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        if d.get("type") != self.type:
            raise ValueError(
                f"checkpoint schedule state is for '{d.get('type')}', this run uses '{self.type}'"
            )
        self.steps = int(d["steps"])
        self.epochs_done = int(d["epochs"])
        self.total = int(d.get("total", self.total))
        p = d["plateau"]
        self._plateau_lr = float(p["lr"])
        self._best = (
            (math.inf if self._mode == "min" else -math.inf) if p["best"] is None else float(p["best"])
        )
        self._bad = int(p["bad"])
        self._cooldown = int(p["cooldown"])


def make_schedule(
    cfg: Mapping[str, Any] | None, base_lr: float, steps_per_epoch: int, epochs: int
) -> Schedule:
    """The spec's ``train.schedule`` (None: constant) for a run of ``epochs``
    epochs of ``steps_per_epoch`` optimizer steps starting from ``base_lr``."""
    return Schedule(cfg or {"type": "constant"}, base_lr, steps_per_epoch, epochs)
