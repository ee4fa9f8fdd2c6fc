"""What the network predicts and how well: its heads (one per loss term: classification, binary
or regression), the :class:`Meter` that sums an epoch's losses and metrics, and the
:class:`Evaluator` that runs exact dataset means and predictions in evaluation mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...compiler.ops import OPS
from ...compiler.plan import Plan
from ..backends import Executor
from ..buffers import buffers
from ..data import Dataset

# Kept for callers that read it: the op contracts' own loss_kind is what decides.
CLASSIFICATION_LOSSES = tuple(n for n, op in OPS.items() if op.loss_kind == "classification")


@dataclass(frozen=True)
class Head:
    """One loss term: what it compares, and which metrics that gives."""

    loss: str
    kind: str  # classification | binary | regression
    pred: str
    target: str
    suffix: str = ""  # "_<loss>" when several heads of one kind share a metric name
    axis: int = -1  # the class axis of pred's runtime array: -1 (last) or 1 ([N, C, ...])
    ignore: int | None = None  # a label value that is no sample (a loss's ignore_index)

    def predicted(self, pred: np.ndarray) -> np.ndarray:
        """The predicted class of each label position."""
        return pred.argmax(axis=self.axis)

    def kept(self, target: np.ndarray) -> np.ndarray:
        """Which label positions count (all but those equal to ignore_index)."""
        return np.ones(target.shape, bool) if self.ignore is None else target != self.ignore


def heads(plan: Plan) -> list[Head]:
    found = []
    for s in plan.forward_steps:
        if s.output not in plan.losses:
            continue
        kind = OPS[s.op].loss_kind  # classification, binary or regression: the op says
        # a class loss's class axis and ignored label value (cross_entropy, nll_loss; hinge has neither)
        axis, ignore = (
            (s.attrs.get("axis", -1), s.attrs.get("ignore_index")) if kind == "classification" else (-1, None)
        )
        found.append(Head(s.output, kind, s.inputs[0], s.inputs[1], "", axis, ignore))
    out = []
    for h in found:
        group = "regression" if h.kind == "regression" else "labels"
        same = [g for g in found if ("regression" if g.kind == "regression" else "labels") == group]
        out.append(replace(h, suffix=f"_{h.loss}" if len(same) > 1 else ""))
    return out


def head_classes(plan: Plan, h: Head) -> int:
    """The number of classes a classification head predicts: its class axis's size."""
    return int(plan.tensors[h.pred].shape[-1 if h.axis == -1 else 0])  # per-sample: axis 1 is 0


def label_classes(plan: Plan) -> dict[str, int]:
    """Label input -> number of classes the network predicts (for the data range check)."""
    return {
        h.target: head_classes(plan, h)
        for h in heads(plan)
        if h.kind == "classification" and h.target in plan.inputs
    }


def ignored_labels(plan: Plan) -> dict[str, int]:
    """Label input -> its loss's ignore_index (a value the data range check lets pass)."""
    return {h.target: h.ignore for h in heads(plan) if h.ignore is not None and h.target in plan.inputs}


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

    def add(self, ex: Executor, take: int, losses: dict[str, float] | None = None) -> None:
        """Add the last forward pass's first ``take`` samples (losses are batch means)."""
        losses = ex.losses() if losses is None else losses
        for k, v in losses.items():
            self.loss[k] += v * take
        view = buffers(ex).view
        for h in self.heads:
            pred, target = view(h.pred)[:take], view(h.target)[:take]
            if h.kind == "classification":
                kept = h.kept(target)
                self.correct[h.loss] += int(np.count_nonzero((h.predicted(pred) == target) & kept))
                self.count[h.loss] += int(np.count_nonzero(kept))
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


class Evaluator:
    """Exact dataset means in evaluation mode: full batches on the training
    executor, the remainder on a second executor of exactly that size (zero
    padding would bias every batch-mean loss)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.buf = buffers(ex)
        self._rest: dict[int, Any] = {}

    def _executor(self, size: int) -> Executor:
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
