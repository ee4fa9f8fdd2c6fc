"""The training loop: epochs, minibatches, metrics, early stopping, checkpoints.

A :class:`Trainer` drives one executor over a :class:`~.data.Dataset`. It is
deterministic for a given seed and thread count, and every piece of its
randomness is a pure function of (seed, epoch, batch): the epoch's sample
order, the augmentation of a batch and the dropout stream of a step. A
checkpoint therefore only has to record *where* the run is (epoch, batch
cursor, optimizer step) plus the parameter, optimizer and schedule state, and a
resumed run replays exactly the arithmetic of an uninterrupted one — its final
weights are bitwise equal.

The run directory::

    RUN/config.json        the resolved train and data sections (flags applied)
    RUN/spec.yaml          the resolved (expanded) spec; RUN/plan.json the plan
    RUN/metrics.jsonl      one JSON record per epoch
    RUN/plots/*.png        losses, metrics, learning rate, gradient norms, histograms
    RUN/checkpoints/       <tag>.safetensors + <tag>.json, latest.json, best.*
    RUN/weights.safetensors  the final weights (the best epoch's under early stopping)
"""

from __future__ import annotations

import errno
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler.plan import Plan
from .buffers import buffers
from .data import Augmenter, Dataset, Normalizer

CLASSIFICATION_LOSSES = ("cross_entropy", "hinge")  # every other loss but bce is a regression


class TrainError(Exception):
    """A run that cannot start or go on for a reason the person can fix."""


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


# -- what the network predicts ------------------------------------------------
@dataclass(frozen=True)
class Head:
    """One loss term: what it compares, and which metrics that gives."""

    loss: str
    kind: str  # classification | binary | regression
    pred: str
    target: str
    suffix: str = ""  # "_<loss>" when several heads of one kind share a metric name


def heads(plan: Plan) -> list[Head]:
    found = []
    for s in plan.forward_steps:
        if s.output not in plan.losses:
            continue
        kind = (
            "classification"
            if s.op in CLASSIFICATION_LOSSES
            else "binary"
            if s.op == "binary_cross_entropy"
            else "regression"
        )
        found.append(Head(s.output, kind, s.inputs[0], s.inputs[1]))
    out = []
    for h in found:
        group = "regression" if h.kind == "regression" else "labels"
        same = [g for g in found if ("regression" if g.kind == "regression" else "labels") == group]
        out.append(Head(h.loss, h.kind, h.pred, h.target, f"_{h.loss}" if len(same) > 1 else ""))
    return out


def label_classes(plan: Plan) -> dict[str, int]:
    """Label input -> number of classes the network predicts (for the data range check)."""
    return {
        h.target: int(plan.tensors[h.pred].shape[-1])
        for h in heads(plan)
        if h.kind == "classification" and h.target in plan.inputs
    }


class Meter:
    """Sums over an epoch (or an evaluation) from which the metrics follow."""

    def __init__(self, plan: Plan) -> None:
        self.heads = heads(plan)
        self.weights = dict(plan.losses)
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.loss = {k: 0.0 for k in self.weights}
        self.correct = {h.loss: 0 for h in self.heads}
        self.abs = {h.loss: 0.0 for h in self.heads}
        self.sq = {h.loss: 0.0 for h in self.heads}
        self.count = {h.loss: 0 for h in self.heads}
        self.penalty = 0.0
        self.steps = 0

    def add(self, ex: Any, take: int, losses: dict[str, float] | None = None) -> None:
        """Add the last forward pass's first ``take`` samples (losses are batch means)."""
        losses = ex.losses() if losses is None else losses
        for k, v in losses.items():
            self.loss[k] += v * take
        view = buffers(ex).view
        for h in self.heads:
            pred, target = view(h.pred)[:take], view(h.target)[:take]
            if h.kind == "classification":
                self.correct[h.loss] += int(np.count_nonzero(pred.argmax(axis=-1) == target))
                self.count[h.loss] += take
            elif h.kind == "binary":
                self.correct[h.loss] += int(np.count_nonzero((pred > 0) == (target > 0.5)))
                self.count[h.loss] += pred.size
            else:
                d = (pred - target).astype(np.float64)
                self.abs[h.loss] += float(np.abs(d).sum())
                self.sq[h.loss] += float((d * d).sum())
                self.count[h.loss] += d.size
        self.n += take

    def metrics(self, prefix: str) -> dict[str, float]:
        n = max(self.n, 1)
        out = {f"{prefix}_loss": sum(self.weights[k] * v / n for k, v in self.loss.items())}
        if len(self.loss) > 1:
            out.update({f"{prefix}_{k}": v / n for k, v in self.loss.items()})
        for h in self.heads:
            c = max(self.count[h.loss], 1)
            if h.kind == "regression":
                out[f"{prefix}_mae{h.suffix}"] = self.abs[h.loss] / c
                out[f"{prefix}_rmse{h.suffix}"] = math.sqrt(self.sq[h.loss] / c)
            else:
                out[f"{prefix}_accuracy{h.suffix}"] = self.correct[h.loss] / c
        if self.penalty and self.steps:
            out[f"{prefix}_penalty"] = self.penalty / self.steps
        return out

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("heads", "weights")}

    def load_state(self, d: dict[str, Any]) -> None:
        for k, v in d.items():
            setattr(self, k, v)


# -- feeding batches ---------------------------------------------------------
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def step_seed(seed: int, step: int) -> int:
    """The dropout stream of one minibatch (distinct per step, reproducible on resume)."""
    return (seed * 0x9E3779B1 + step * 0x85EBCA77 + 1) % (1 << 62)


class Evaluator:
    """Exact dataset means in evaluation mode: full batches on the training
    executor, the remainder on a second executor of exactly that size (zero
    padding would bias every batch-mean loss)."""

    def __init__(self, ex: Any) -> None:
        self.ex = ex
        self.buf = buffers(ex)
        self._rest: dict[int, Any] = {}

    def _executor(self, size: int) -> Any:
        if size == self.ex.batch:
            return self.ex
        if size not in self._rest:
            self._rest[size] = self.buf.executor_like(size)
        rest = self._rest[size]
        self.buf.copy_params_to(rest)
        return rest

    def batches(self, ds: Dataset) -> Iterator[tuple[Any, int, int]]:
        """Run forward over ``ds`` in order; yields (executor, start, count) after each batch."""
        n, b = len(ds), self.ex.batch
        was = self.ex.training
        try:
            for start in range(0, n, b):
                take = min(b, n - start)
                ex = self._executor(take)
                ex.training = False
                buffers(ex).feed(ds, np.arange(start, start + take), None, None)
                ex.forward()
                yield ex, start, take
        finally:
            self.ex.training = was

    def evaluate(self, ds: Dataset, meter: Meter, prefix: str) -> dict[str, float]:
        meter.reset()
        for ex, _, take in self.batches(ds):
            meter.add(ex, take)
        return meter.metrics(prefix)

    def predict(self, ds: Dataset, names: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {k: [] for k in names}
        for ex, _, take in self.batches(ds):
            view = buffers(ex).view
            for k in names:
                out[k].append(np.array(view(k)[:take]))
        return {k: np.concatenate(v) for k, v in out.items()}


# -- progress ----------------------------------------------------------------
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


# -- early stopping ------------------------------------------------------------
@dataclass
class EarlyStopping:
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


# -- the trainer ---------------------------------------------------------------
@dataclass
class Result:
    status: str  # finished | early_stopped | interrupted | diverged | overfit | overfit_failed
    epoch: int
    step: int
    history: list[dict[str, Any]]
    best: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    message: str = ""


@contextmanager
def _catch_sigint(flag: list[bool]) -> Iterator[None]:
    """Ctrl-C sets a flag the loop checks between steps, so a checkpoint is
    never written from inside a half-done step."""
    if not _main_thread():  # signal handlers can only be installed from the main thread
        yield
        return
    old = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag[0]:  # a second Ctrl-C while saving: give up at once
            signal.signal(signal.SIGINT, old)
            raise KeyboardInterrupt
        flag[0] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class Trainer:
    """Trains ``ex`` (an executor at the training batch size) on ``train``,
    validating on ``val``, as the train section ``cfg`` says."""

    def __init__(
        self,
        ex: Any,
        cfg: dict[str, Any],
        train: Dataset,
        val: Dataset | None = None,
        *,
        run_dir: Path | None = None,
        normalizer: Normalizer | None = None,
        augment: dict[str, Any] | None = None,
        spec_hash: str = "",
        progress: bool | str = True,
        plots: bool = True,
        keep: int = 2,
    ) -> None:
        from .optim import Optimizer, segments
        from .schedules import make_schedule

        self.ex, self.cfg, self.train, self.val = ex, cfg, train, val
        self.buf = buffers(ex)
        self.plan = ex.plan
        self.run_dir = run_dir
        self.normalizer = normalizer
        self.augmenter = Augmenter(
            augment, {k: {"shape": list(v.shape[1:])} for k, v in train.arrays.items()}
        )
        self.spec_hash = spec_hash
        self.plots = plots and run_dir is not None
        self.keep = keep
        self.seed = int(cfg.get("seed", 0))
        self.batch = ex.batch
        self.accumulate = int(cfg.get("accumulate", 1))
        check_batch_fits(self.batch, len(train), self.plan)
        # The partial last batch is dropped, and so are batches that would not
        # fill an accumulation group: every epoch ends on an optimizer step, so
        # no half-accumulated gradient ever has to go into a checkpoint.
        self.steps_per_epoch = len(train) // self.batch // self.accumulate
        if self.steps_per_epoch < 1:
            raise TrainError(
                f"train.accumulate {self.accumulate} x batch_size {self.batch} is more than the training "
                f"split ({len(train)} samples)"
            )
        self.batches_per_epoch = self.steps_per_epoch * self.accumulate
        self.epochs = int(cfg.get("epochs", 10))
        opt_cfg = dict(cfg.get("optimizer") or {"type": "sgd"})
        no_decay = tuple(opt_cfg.get("no_decay", ()))
        self.optimizer = Optimizer.from_config(opt_cfg, ex.params, ex.grads, segments(self.plan, no_decay),
                                               ex.opt_state)  # fmt: skip
        self.base_lr = self.optimizer.lr
        self.schedule = make_schedule(cfg.get("schedule"), self.base_lr, self.steps_per_epoch, self.epochs)
        self.l1, self.l2 = float(cfg.get("l1", 0.0)), float(cfg.get("l2", 0.0))
        self._wsegs = segments(self.plan, (), roles=("weight",)) if (self.l1 or self.l2) else None
        clip = cfg.get("grad_clip") or {}
        self.clip_norm, self.clip_value = clip.get("norm"), clip.get("value")
        es = cfg.get("early_stopping")
        self.early = EarlyStopping(**es) if es else None
        if self.early and self.early.monitor.startswith("val_") and val is None:
            raise TrainError(
                f"train.early_stopping.monitor '{self.early.monitor}' needs a validation split: "
                "set data.split.val > 0, or monitor a train_ metric"
            )
        self.meter = Meter(self.plan)
        self.val_meter = Meter(self.plan)
        self.evaluator = Evaluator(ex)
        self.history: list[dict[str, Any]] = []
        self.epoch, self.cursor, self.step, self.micro = 0, 0, 0, 0
        self.best_params: np.ndarray | None = None
        self.ended: str | None = None  # "finished" or "early_stopped", saved in the last checkpoint
        self.resume_command = ""  # how the person resumes this run (named when a write fails)
        self._lrs: list[float] = []
        self._norm_sums: np.ndarray | None = None
        self._norm_count = 0
        self._gnorm_sum = 0.0
        self._epoch_t = 0.0
        # steps.jsonl: each optimizer step's record, appended at each epoch end and checkpoint
        self._steps: list[dict[str, Any]] = []
        self._step_losses: dict[str, float] = {}
        self.progress = Progress(self.epochs, self.batches_per_epoch, progress)
        self.callbacks: list[Callable[[Trainer, dict[str, Any]], None]] = []  # after each epoch
        self.step_callbacks: list[Callable[[Trainer], None]] = []  # after each optimizer step

    # -- checkpoints -------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "netc": __version__,
            "spec_hash": self.spec_hash,
            "epoch": self.epoch,
            "cursor": self.cursor,
            "step": self.step,
            "micro": self.micro,
            "seed": self.seed,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "early_stopping": self.early.state() if self.early else None,
            "meter": self.meter.state(),
            "grad_norms": {
                "sums": None if self._norm_sums is None else self._norm_sums.tolist(),
                "count": self._norm_count,
                "global": self._gnorm_sum,
            },
            "lrs": self._lrs,
            "epoch_time": self._epoch_t,
            "normalize": self.normalizer.mode if self.normalizer else "none",
            "ended": self.ended,
            "epochs": self.epochs,  # the run's length then: a longer one now was extended
            # Every random choice is a function of (seed, epoch, batch, step);
            # these are the only generator states a resume needs.
            "rng": {"order": [self.seed, self.epoch], "dropout_step": self.step},
        }

    def _tensors(self) -> dict[str, np.ndarray]:
        from .checkpoint import training_tensors

        extra = {f"data/{k}": v for k, v in self.normalizer.state().items()} if self.normalizer else None
        return training_tensors(self.plan, self.buf.params(), self.buf.opt_state(), extra)

    def _named(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {p.name: flat[p.offset : p.offset + p.numel].reshape(p.shape) for p in self.plan.params}

    def save(self, tag: str) -> Path | None:
        if self.run_dir is None:
            return None
        from .checkpoint import save_checkpoint

        self._flush_steps()  # the step log reaches at least as far as every checkpoint
        return save_checkpoint(
            self.run_dir / "checkpoints", tag, self._tensors(), self._meta(), keep=self.keep
        )

    def _save_best(self) -> None:
        if self.run_dir is None:
            return
        from .checkpoint import write_safetensors

        write_safetensors(self.run_dir / "checkpoints" / "best.safetensors", self._named(self.buf.params()))
        # (a plain tensors file, rewritten atomically: only the final restore reads it)

    def check_meta(self, ckpt: Any) -> None:
        """Refuse metadata that does not fit this run (its schema, bounded by the run's epochs
        and batches, and the counters' arithmetic), naming the record and the key."""
        from .checkpoint import CheckpointError
        from .rundir import check, meta_schema

        m = ckpt.meta
        schema = meta_schema(
            epochs=self.epochs,
            batches_per_epoch=self.batches_per_epoch,
            steps_per_epoch=self.steps_per_epoch,
            losses=list(self.meter.weights),
            heads=[h.loss for h in self.meter.heads],
            trainable=sum(p.trainable for p in self.plan.params),
        )
        check(m, schema, ckpt.path, "meta")
        # Every epoch ends on an optimizer step and a save happens only on one, so the
        # counters follow from (epoch, cursor).
        e, c = m["epoch"], m["cursor"]
        want = {
            "step": e * self.steps_per_epoch + c // self.accumulate,
            "micro": e * self.batches_per_epoch + c,
            "schedule.steps": e * self.steps_per_epoch + c // self.accumulate,
            "schedule.epochs": e,
        }
        have = {"step": m["step"], "micro": m["micro"], "schedule.steps": m["schedule"]["steps"],
                "schedule.epochs": m["schedule"]["epochs"]}  # fmt: skip
        for k, v in want.items():
            if have[k] != v:
                raise CheckpointError(
                    f"{ckpt.path}: meta.{k} is {have[k]}, but epoch {e} and cursor {c} of this run "
                    f"({self.batches_per_epoch} batches per epoch) make it {v} (edited or damaged?)"
                )
        if c % self.accumulate or (e == self.epochs and c):
            raise CheckpointError(f"{ckpt.path}: meta.cursor {c} is not a point where a checkpoint is saved")

    def restore(self, ckpt: Any) -> None:
        """Continue from a checkpoint written by :meth:`save`."""
        from .checkpoint import CheckpointError, restore_training_tensors

        self.check_meta(ckpt)
        m = ckpt.meta
        params, state = self.buf.params(), self.buf.opt_state()
        restore_training_tensors(ckpt, self.plan, params, state)
        try:
            self.optimizer.load_state_dict(m["optimizer"])
            self.schedule.load_state_dict(m["schedule"])
        except ValueError as e:
            raise CheckpointError(f"{ckpt.path}: {e}") from None
        self.buf.set_params(params)
        self.buf.set_opt_state(state)
        self.epoch, self.cursor, self.step, self.micro = m["epoch"], m["cursor"], m["step"], m["micro"]
        # An ended run whose length has grown since (--epochs on resume) goes on where it stopped.
        self.ended = m.get("ended") if m.get("epochs", self.epochs) >= self.epochs else None
        if self.early and m["early_stopping"]:
            for k, v in m["early_stopping"].items():
                setattr(self.early, k, v)
        self.meter.load_state(m["meter"])
        g = m["grad_norms"]
        self._norm_sums = None if g["sums"] is None else np.array(g["sums"])
        self._norm_count, self._gnorm_sum = g["count"], g["global"]
        self._lrs = list(m["lrs"])
        self._epoch_t = m["epoch_time"]
        if self.run_dir is not None:
            self._restore_best()
            from .rundir import METRICS, STEPS, read_metrics, read_steps

            log = self.run_dir / METRICS
            records = read_metrics(log)
            if len(records) < self.epoch:
                raise CheckpointError(
                    f"{log} has {len(records)} epoch record(s), but checkpoint {ckpt.path.name} is at "
                    f"the end of epoch {self.epoch} (the log was cut or replaced)"
                )
            self.history = records[: self.epoch]
            with self._writes(log):
                _write_jsonl(log, self.history)  # drop records past the checkpoint
            steps_log = self.run_dir / STEPS
            steps = read_steps(steps_log)
            if steps and steps[-1]["step"] > self.step:
                with self._writes(steps_log):
                    _write_jsonl(steps_log, [r for r in steps if r["step"] <= self.step])

    def _restore_best(self) -> None:
        """The best epoch's weights so far (early stopping), from checkpoints/best.safetensors."""
        from .checkpoint import Checkpoint, CheckpointError, check_compatible, read_safetensors

        best = self.run_dir / "checkpoints" / "best.safetensors"  # type: ignore[operator]
        if not best.exists():
            if self.early is not None and self.early.best_epoch > 0:
                raise CheckpointError(
                    f"{best} is missing, but the checkpoint says epoch {self.early.best_epoch} was the best: "
                    "its weights are lost (restore the file, or start a new run)"
                )
            return
        tensors, _ = read_safetensors(best, unverified="warn")
        check_compatible(Checkpoint(tensors, {}, best), self.plan)
        self.best_params = self.buf.params()
        for p in self.plan.params:
            self.best_params[p.offset : p.offset + p.numel] = tensors[p.name].ravel()

    @contextmanager
    def _writes(self, path: Path) -> Iterator[None]:
        """A failed write (a full disk, above all) as one message: what was being written, that
        the previous checkpoint is intact, and how to resume once the cause is fixed."""
        try:
            yield
        except OSError as e:
            from .checkpoint import CheckpointError, _resolve

            what = e.filename or path
            cause = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            try:
                kept = _resolve(self.run_dir / "checkpoints")  # type: ignore[operator]
                last = f"the previous checkpoint {kept.name} is intact"
            except CheckpointError:
                last = "no checkpoint was written before it (the run restarts from the beginning)"
            how = f"resume with: {self.resume_command}" if self.resume_command else f"resume {self.run_dir}"
            raise TrainError(f"{cause} while writing {what}; {last}; free space and {how}") from None

    # -- one step ----------------------------------------------------------
    def _grad_norms(self) -> float:
        norm = self.buf.global_norm()
        self._gnorm_sum += norm
        every = max(self.steps_per_epoch // 10, 1)
        if self.step % every == 0:
            g = self.buf.grads()
            norms = np.array(
                [
                    np.linalg.norm(g[p.grad_offset : p.grad_offset + p.numel])
                    for p in self.plan.params
                    if p.trainable
                ],
                np.float64,  # float64 sums, as a resume restores them from JSON: the same bits either way
            )
            self._norm_sums = norms if self._norm_sums is None else self._norm_sums + norms
            self._norm_count += 1
        return norm

    def _optimizer_step(self) -> None:
        if self.accumulate > 1:
            self.buf.finish_accumulation(self.accumulate)
        if self._wsegs is not None:
            self.meter.penalty += self.buf.penalty(self._wsegs, self.l1, self.l2)
        norm = self._grad_norms()
        if self.clip_value:
            self.buf.clip_value(float(self.clip_value))
        if self.clip_norm:
            self.buf.clip_norm(float(self.clip_norm))
        lr = self.schedule.lr
        self.optimizer.lr = lr
        self._lrs.append(lr)
        self.optimizer.step()
        self.schedule.after_step()
        self.step += 1
        self.meter.steps += 1
        self._log_step(lr, norm)

    def _log_step(self, lr: float, norm: float) -> None:
        """The step's record for steps.jsonl: its loss (the weighted total, averaged over an
        accumulation group, and each term where there are several), learning rate and gradient
        norm (before clipping)."""
        terms, self._step_losses = self._step_losses, {}
        if self.run_dir is None:
            return
        k = 1.0 / self.accumulate
        rec: dict[str, Any] = {"step": self.step, "epoch": self.epoch + 1, "loss": terms.pop("", 0.0) * k,
                               "lr": lr, "grad_norm": norm}  # fmt: skip
        if len(terms) > 1:
            rec["losses"] = {name: v * k for name, v in terms.items()}
        self._steps.append(rec)

    def _flush_steps(self) -> None:
        if self._steps and self.run_dir is not None:
            from .rundir import STEPS

            _append_jsonl(self.run_dir / STEPS, self._steps)
            self._steps = []

    def _micro_step(self, idx: np.ndarray) -> float:
        ex = self.ex
        ex.training = True
        aug = self.augmenter if self.augmenter.active else None
        rng = np.random.default_rng([self.seed, self.epoch, self.cursor, 0xA06]) if aug else None
        self.buf.feed(self.train, idx, aug, rng)
        ex.state.seed[0] = step_seed(self.seed, self.micro)
        ex.forward()
        losses = ex.losses()
        loss = sum(self.meter.weights[k] * v for k, v in losses.items())
        if not math.isfinite(loss):
            return loss
        ex.backward()
        self.meter.add(ex, len(idx), losses)
        acc = self._step_losses
        acc[""] = acc.get("", 0.0) + loss
        for name, v in losses.items():
            acc[name] = acc.get(name, 0.0) + v
        if self.accumulate > 1:
            self.buf.accumulate()
        self.micro += 1
        return loss

    # -- the loop ------------------------------------------------------------
    def fit(self) -> Result:
        flag = [False]
        writes = self._writes(self.run_dir) if self.run_dir is not None else nullcontext()
        with _catch_sigint(flag), writes:
            return self._fit(flag)

    def _fit(self, flag: list[bool]) -> Result:
        if self.ended:  # resumed from the checkpoint that ended the run: only its final weights remain
            return self._finish(self.ended, self._ended_message())
        status, message = "finished", ""
        while self.epoch < self.epochs:
            t0 = time.perf_counter() - self._epoch_t
            order = epoch_order(self.seed, self.epoch, len(self.train))
            self.progress.start_epoch(self.epoch + 1, self.cursor)
            while self.cursor < self.batches_per_epoch:
                b = self.cursor
                loss = self._micro_step(order[b * self.batch : (b + 1) * self.batch])
                if not math.isfinite(loss):
                    return self._diverged(loss)
                self.cursor += 1
                boundary = self.micro % self.accumulate == 0
                if boundary:
                    self._optimizer_step()
                    for scb in self.step_callbacks:
                        scb(self)
                if self.progress.live:
                    self.progress.update(self.epoch + 1, self.cursor, self.meter.metrics("train"))
                if flag[0] and boundary:
                    self._epoch_t = time.perf_counter() - t0
                    return self._interrupted()
            self._epoch_t = time.perf_counter() - t0
            record = self._end_epoch()
            if bad := self._non_finite(record):  # before the record and checkpoint of a broken state
                return self._diverged(bad[1], bad[0], f"at the end of epoch {self.epoch + 1}", record["lr"])
            improved, stop = self._watch(record)
            self.epoch += 1
            self.cursor = 0
            self._epoch_t = 0.0
            # The decision is saved with the checkpoint, so a resume knows the run has ended.
            self.ended = "early_stopped" if stop else "finished" if self.epoch >= self.epochs else None
            self.history.append(record)
            if self.run_dir is not None:
                self._flush_steps()
                _append_jsonl(self.run_dir / "metrics.jsonl", [record])
                if improved:
                    self._save_best()
                if self.epoch % int(self.cfg.get("checkpoint_every", 1)) == 0 or self.ended:
                    self.save(f"epoch-{self.epoch:04d}")
                self._histograms(record)
            note = "  *" if improved and self.early else ""
            self.progress.epoch_end(self.epoch, record, note)
            for cb in self.callbacks:
                cb(self, record)
            if stop:
                status, message = "early_stopped", self._ended_message()
                break
            if flag[0]:
                return self._interrupted()
        return self._finish(status, message)

    def _ended_message(self) -> str:
        if self.ended != "early_stopped":
            return ""
        return (
            f"early stopping: {self.early.monitor} has not improved for "  # type: ignore[union-attr]
            f"{self.early.patience + 1} epochs"  # type: ignore[union-attr]
        )

    def _end_epoch(self) -> dict[str, Any]:
        record: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.step}
        record.update(self.meter.metrics("train"))
        if self.val is not None:
            record.update(self.evaluator.evaluate(self.val, self.val_meter, "val"))
        record["lr"] = self._lrs[-1] if self._lrs else self.schedule.lr
        record["lrs"] = self._lrs
        steps = max(self.meter.steps, 1)
        record["grad_norm"] = self._gnorm_sum / steps
        if self._norm_sums is not None and self._norm_count:
            names = [p.name for p in self.plan.params if p.trainable]
            record["grad_norms"] = dict(
                zip(names, (self._norm_sums / self._norm_count).tolist(), strict=True)
            )
        record["time"] = self._epoch_t
        record["samples_per_s"] = self.meter.n / max(self._epoch_t, 1e-9)
        self.schedule.after_epoch({k: v for k, v in record.items() if isinstance(v, float)})
        self.meter.reset()
        self._lrs, self._norm_sums, self._norm_count, self._gnorm_sum = [], None, 0, 0.0
        return record

    def _watch(self, record: dict[str, Any]) -> tuple[bool, bool]:
        if self.early is None:
            self.best_params = None
            return False, False
        if self.early.monitor not in record:
            have = ", ".join(k for k in record if k.startswith(("train_", "val_")))
            raise TrainError(
                f"train.early_stopping.monitor: no metric '{self.early.monitor}'; this run has {have}"
            )
        improved, stop = self.early.update(record["epoch"], float(record[self.early.monitor]))
        if improved:
            self.best_params = self.buf.params()
        return improved, stop

    def _histograms(self, record: dict[str, Any]) -> None:
        if not self.plots:
            return
        e = record["epoch"]
        marks = {1, self.epochs, max(self.epochs // 2, 1)}
        if e not in marks:
            return
        from .plots import plot_histograms

        buffers = [p.name for p in self.plan.params if not p.trainable]
        plot_histograms(e, self._named(self.buf.params()), self._activations(), self.run_dir / "plots",  # type: ignore[operator]
                        buffers)  # fmt: skip

    def _activations(self) -> dict[str, np.ndarray]:
        """Every float activation, in network order, of one forward pass in evaluation mode (it
        changes no running statistic) on the first training batch, each copied out as soon as
        its step has run."""
        ex = self.ex
        self.buf.feed(self.train, np.arange(self.batch), None, None)
        ex.training = False
        out = {}
        for s in ex.forward_stepwise():
            t = s.output
            if t not in self.plan.losses and self.plan.tensors[t].dtype != "int64":
                out[t] = np.array(self.buf.view(t))
        ex.training = True
        return out

    def _finish(self, status: str, message: str) -> Result:
        best: dict[str, Any] = {}
        if self.early is not None and self.best_params is not None:
            self.buf.set_params(self.best_params)  # the best epoch's weights, however training ended
            best = {"epoch": self.early.best_epoch, self.early.monitor: self.early.best}
        if self.run_dir is not None:
            from .checkpoint import write_safetensors

            mode = {"normalize": self.normalizer.mode} if self.normalizer else None
            write_safetensors(self.run_dir / "weights.safetensors", self._tensors(), mode)
            self._plot()
        return Result(status, self.epoch, self.step, self.history, best, self.run_dir, message)

    def _interrupted(self) -> Result:
        path = self.save(f"step-{self.step:08d}")
        self._plot()
        where = f" (checkpoint {path.name})" if path else ""
        return Result("interrupted", self.epoch, self.step, self.history, {}, self.run_dir,
                      f"interrupted at epoch {self.epoch + 1}, step {self.step}{where}")  # fmt: skip

    def _non_finite(self, record: dict[str, Any]) -> tuple[str, float] | None:
        """(what, value) when an epoch's metrics or the weights are NaN or infinite: the last
        step can leave weights whose validation loss is NaN although every training loss was finite."""
        for k, v in record.items():
            if k.startswith(("train_", "val_")) and isinstance(v, float) and not math.isfinite(v):
                return k, v
        params = self.buf.params()
        finite = np.isfinite(params)
        if not finite.all():
            return "a weight", float(params[~finite][0])
        return None

    def _diverged(
        self, loss: float, what: str = "the loss", where: str = "", lr: float | None = None
    ) -> Result:
        self._plot()
        where = where or f"at epoch {self.epoch + 1}, step {self.step + 1}"
        lr = self.schedule.lr if lr is None else lr
        msg = f"{what} became {loss} {where} (learning rate {lr:.3g}); try a lower learning rate (--lr)."
        if self.run_dir is not None:
            kept = (self.run_dir / "checkpoints" / "latest.json").exists()
            msg += " The last good checkpoint is kept." if kept else " No checkpoint was written before it."
        return Result("diverged", self.epoch, self.step, self.history, {}, self.run_dir, msg)

    def _plot(self) -> None:
        if not self.plots:
            return
        from .plots import plot_history, plot_steps
        from .rundir import STEPS, read_steps

        self._flush_steps()
        if self.history:
            plot_history(self.history, self.run_dir / "plots")  # type: ignore[operator]
        steps = read_steps(self.run_dir / STEPS)  # type: ignore[operator]
        if steps:
            plot_steps(steps, self.run_dir / "plots")  # type: ignore[operator]

    # -- sanity check ------------------------------------------------------------
    def overfit_batch(self, max_steps: int = 1000, target: float = 1e-3) -> Result:
        """Train on one minibatch until its loss is near zero (the classic check
        that the network and its gradients can learn at all)."""
        idx = np.arange(self.batch)
        first = None
        loss = float("nan")
        for i in range(max_steps):
            loss = self._micro_step(idx)
            if not math.isfinite(loss):
                return self._diverged(loss)
            first = loss if first is None else first
            if self.micro % self.accumulate == 0:
                self._optimizer_step()
            self.progress.update(1, i + 1, {"loss": loss})
            if loss < target:
                msg = f"overfit one batch of {self.batch}: loss {first:.4g} -> {loss:.3g} in {i + 1} steps"
                return Result("overfit", 0, self.step, [], {}, None, msg)
        msg = (
            f"could not overfit one batch of {self.batch}: loss {first:.4g} -> {loss:.4g} after {max_steps} "
            f"steps (target {target:g}); check the learning rate, the labels and the loss"
        )
        return Result("overfit_failed", 0, self.step, [], {}, None, msg)


# -- learning-rate range test ------------------------------------------------------
def lr_find(
    trainer: Trainer, start: float = 1e-7, end: float = 10.0, steps: int = 100
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


# -- metrics log ----------------------------------------------------------------------
def _append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    try:
        with path.open("a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
    except OSError as e:  # name the file: the message says what could not be written
        raise OSError(e.errno, e.strerror, str(path)) from e


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    from .rundir import write_metrics

    write_metrics(path, records)
