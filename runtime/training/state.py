"""A trainer's state in a run directory: what a checkpoint holds (the tensors and the
metadata that say where the run is), saving it, checking and restoring it on resume
(metrics and step logs cut back to the checkpoint), and one message for a failed write.
:class:`~.trainer.Trainer` inherits these methods; they read and set its attributes.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...version import __version__
from .. import rundir
from ..store.compat import check_compatible, restore_training_tensors, training_tensors
from ..store.errors import CheckpointError
from ..store.records import Checkpoint, resolve_checkpoint, save_checkpoint
from ..store.safetensors import read_safetensors, write_safetensors
from .errors import TrainError


class CheckpointState:
    """Checkpoint save and restore of a :class:`~.trainer.Trainer`."""

    def _meta(self) -> dict[str, Any]:
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
        extra = {f"data/{k}": v for k, v in self.normalizer.state().items()} if self.normalizer else None
        return training_tensors(self.plan, self.buf.params(), self.buf.opt_state(), extra)

    def _named(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {p.name: flat[p.offset : p.offset + p.numel].reshape(p.shape) for p in self.plan.params}

    def save(self, tag: str) -> Path | None:
        if self.run_dir is None:
            return None
        self._flush_steps()  # the step log reaches at least as far as every checkpoint
        return save_checkpoint(
            self.run_dir / "checkpoints", tag, self._tensors(), self._meta(), keep=self.keep
        )

    def _save_best(self) -> None:
        if self.run_dir is None:
            return
        write_safetensors(self.run_dir / "checkpoints" / "best.safetensors", self._named(self.buf.params()))
        # (a plain tensors file, rewritten atomically: only the final restore reads it)

    def check_meta(self, ckpt: Any) -> None:
        """Refuse metadata that does not fit this run (its schema, bounded by the run's epochs
        and batches, and the counters' arithmetic), naming the record and the key."""
        m = ckpt.meta
        schema = rundir.meta_schema(
            epochs=self.epochs,
            batches_per_epoch=self.batches_per_epoch,
            steps_per_epoch=self.steps_per_epoch,
            losses=list(self.meter.weights),
            heads=[h.loss for h in self.meter.heads],
            trainable=sum(p.trainable for p in self.plan.params),
        )
        rundir.check(m, schema, ckpt.path, "meta")
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
            log = self.run_dir / rundir.METRICS
            records = rundir.read_metrics(log)
            if len(records) < self.epoch:
                raise CheckpointError(
                    f"{log} has {len(records)} epoch record(s), but checkpoint {ckpt.path.name} is at "
                    f"the end of epoch {self.epoch} (the log was cut or replaced)"
                )
            self.history = records[: self.epoch]
            with self._writes(log):
                rundir.write_metrics(log, self.history)  # drop records past the checkpoint
            steps_log = self.run_dir / rundir.STEPS
            steps = rundir.read_steps(steps_log)
            if steps and steps[-1]["step"] > self.step:
                with self._writes(steps_log):
                    rundir.write_metrics(steps_log, [r for r in steps if r["step"] <= self.step])

    def _restore_best(self) -> None:
        """The best epoch's weights so far (early stopping), from checkpoints/best.safetensors."""
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
            what = e.filename or path
            cause = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            try:
                kept = resolve_checkpoint(self.run_dir / "checkpoints")  # type: ignore[operator]
                last = f"the previous checkpoint {kept.name} is intact"
            except CheckpointError:
                last = "no checkpoint was written before it (the run restarts from the beginning)"
            how = f"resume with: {self.resume_command}" if self.resume_command else f"resume {self.run_dir}"
            raise TrainError(f"{cause} while writing {what}; {last}; free space and {how}") from None
