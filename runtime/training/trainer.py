"""The training loop: epochs, minibatches, optimizer steps, metrics, early stopping and the
run's end (finished, early stopped, interrupted, diverged), plus the one-batch overfit check.

A :class:`Trainer` drives one executor over a :class:`~..data.Dataset`. It is
deterministic for a given seed and thread count, and every piece of its
randomness is a pure function of (seed, epoch, batch): the epoch's sample
order, the augmentation of a batch and the dropout stream of a step. A
checkpoint therefore only has to record *where* the run is (epoch, batch
cursor, optimizer step) plus the parameter, optimizer and schedule state, and a
resumed run replays exactly the arithmetic of an uninterrupted one — its final
weights are bitwise equal (state.py saves and restores it).

The run directory::

    RUN/config.json        the resolved train and data sections (flags applied)
    RUN/spec.yaml          the resolved (expanded) spec; RUN/plan.json the plan
    RUN/metrics.jsonl      one JSON record per epoch
    RUN/plots/*.png        losses, metrics, learning rate, gradient norms, histograms
    RUN/checkpoints/       <tag>.safetensors + <tag>.json, latest.json, best.*
    RUN/weights.safetensors  the final weights (the best epoch's under early stopping)
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import rundir
from ..backends import Executor
from ..buffers import buffers
from ..data import Augmenter, Dataset, Normalizer
from ..store.safetensors import write_safetensors
from .batches import check_batch_fits, epoch_order, step_seed
from .callbacks import EarlyStopping, EpochCallback, StepCallback
from .errors import TrainError
from .metrics import Evaluator, Meter
from .progress import Progress
from .state import CheckpointState


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


class Trainer(CheckpointState):
    """Trains ``ex`` (an executor at the training batch size) on ``train``,
    validating on ``val``, as the train section ``cfg`` says."""

    def __init__(
        self,
        ex: Executor,
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
        from ..optim import segments
        from ..schedules import make_schedule

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
        optimizer = ex.backend.optimizer_class()  # the one that updates this device's buffers
        segs = segments(self.plan, no_decay)
        self.optimizer = optimizer.from_config(opt_cfg, ex.params, ex.grads, segs, ex.opt_state)
        self.base_lr = self.optimizer.lr
        self.schedule = make_schedule(cfg.get("schedule"), self.base_lr, self.steps_per_epoch, self.epochs)
        self.l1, self.l2 = float(cfg.get("l1", 0.0)), float(cfg.get("l2", 0.0))
        self._wsegs = segments(self.plan, (), roles=("weight",)) if (self.l1 or self.l2) else None
        clip = cfg.get("grad_clip") or {}
        self.clip_norm, self.clip_value = clip.get("norm"), clip.get("value")
        # Nothing to do between backward and the update (no accumulation, penalty or clipping):
        # the executor runs the update in the step's native call (Executor.step(update=...)).
        self._fused = getattr(ex, "fuses_update", False) and self.accumulate == 1 and self._wsegs is None
        self._fused = self._fused and not (self.clip_norm or self.clip_value)
        self._updated = False  # whether the last micro-step's call ran the update
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
        self.callbacks: list[EpochCallback] = []  # after each epoch
        self.step_callbacks: list[StepCallback] = []  # after each optimizer step

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
        if not self._updated:  # else the micro-step's call ran it, with this lr
            self.optimizer.step()
        self._updated = False
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
            rundir.append_jsonl(self.run_dir / rundir.STEPS, self._steps)
            self._steps = []

    def _micro_step(self, idx: np.ndarray, update: bool = False) -> float:
        """Forward and backward on the batch ``idx``, and with ``update`` (the caller runs
        ``_optimizer_step`` after a finite loss) the optimizer's update too where nothing comes
        between them: one native call. The update never runs on a non-finite loss."""
        ex = self.ex
        ex.training = True
        aug = self.augmenter if self.augmenter.active else None
        rng = np.random.default_rng([self.seed, self.epoch, self.cursor, 0xA06]) if aug else None
        self.buf.feed(self.train, idx, aug, rng)
        ex.state.seed[0] = step_seed(self.seed, self.micro)
        opt = self.optimizer if update and self._fused else None
        if opt is not None:
            opt.lr = self.schedule.lr
        # forward, backward (and the update): one native call once the whole-step function is ready
        self._updated = ex.step(update=opt)
        losses = ex.losses()
        loss = sum(self.meter.weights[k] * v for k, v in losses.items())
        if not math.isfinite(loss):
            return loss  # training stops (_diverged): the gradients of this step are never used
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
                loss = self._micro_step(order[b * self.batch : (b + 1) * self.batch], update=True)
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
                rundir.append_jsonl(self.run_dir / rundir.METRICS, [record])
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
        from ..plots import plot_histograms

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
        from ..plots import plot_history, plot_steps

        self._flush_steps()
        if self.history:
            plot_history(self.history, self.run_dir / "plots")  # type: ignore[operator]
        steps = rundir.read_steps(self.run_dir / rundir.STEPS)  # type: ignore[operator]
        if steps:
            plot_steps(steps, self.run_dir / "plots")  # type: ignore[operator]
        self._plot_images()

    def _plot_images(self) -> None:
        """For an image-to-image net (the target a float image [C, H, W] the shape of the first
        input, and an output of that shape): plots/images.png, a few validation (else training)
        inputs, the net's outputs in evaluation mode and the targets."""
        from ..plots import MAX_IMAGES, plot_images

        ds = self.val if self.val is not None else self.train
        first, target = next(iter(ds.arrays)), ds.target
        shape = ds.arrays[first].shape[1:]
        if target is None or len(shape) != 3 or ds.arrays[target].shape[1:] != shape:
            return
        out = next((o for o in self.plan.outputs if tuple(self.plan.tensors[o].shape) == shape), None)
        if out is None or ds.arrays[target].dtype != np.float32:
            return
        # samples spread over the split (a class-sorted one would show one class)
        idx = np.unique(np.linspace(0, len(ds) - 1, min(MAX_IMAGES, self.batch, len(ds))).astype(np.int64))
        self.buf.feed(ds, idx, None, None)
        self.ex.training = False
        self.ex.forward()
        self.ex.training = True
        rows = {first: ds.arrays[first][idx], out: np.array(self.buf.view(out))[: len(idx)]}
        plot_images({**rows, target: ds.arrays[target][idx]}, self.run_dir / "plots" / "images.png")  # type: ignore[operator]

    # -- sanity check ------------------------------------------------------------
    def overfit_batch(self, max_steps: int = 1000, target: float = 1e-3) -> Result:
        """Train on one minibatch until its loss is near zero (the classic check
        that the network and its gradients can learn at all)."""
        idx = np.arange(self.batch)
        first = None
        loss = float("nan")
        for i in range(max_steps):
            loss = self._micro_step(idx, update=True)
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
