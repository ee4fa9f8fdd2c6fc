"""`netc.Model`: a compiled plan bound to the runtime, with weights.

model = netc.Model(netc.load("examples/lenet5.yaml").compile(batch=64))
out = model.predict({"image": images})      # any number of samples
model.forward(batch); model.backward()      # one step, gradients in model.gradients()
model.save_weights("w.npz"); model.load_weights("w.npz")

model = netc.Model.from_spec("examples/digits_mlp.yaml")    # the spec's train and data sections
result = model.fit(epochs=5)                 # or model.fit({"x": X, "label": y}, val=..., lr=0.1)
model.evaluate({"x": X_test, "label": y_test})   # {"loss": ..., "accuracy": ...}
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .compiler.plan import Plan


class WeightsError(Exception):
    """A weights file that cannot be used with this model."""


class Model:
    def __init__(self, plan: Plan, device: str = "cpu", *, seed: int = 0, dtype: Any = np.float32) -> None:
        from .runtime.device import make_executor

        batch = plan.memory["ledger"]["batch"] if plan.memory else 32
        self.plan = plan
        self.device = device
        self.executor = make_executor(plan, batch, device, dtype=dtype, seed=seed)
        self.batch = batch
        self._optimizer: Any = None
        self.setup: Any = None  # the spec behind the model, when built with from_spec

    @classmethod
    def from_spec(
        cls, path: str | Path, *, batch: int | None = None, seed: int | None = None, device: str = "cpu"
    ) -> Model:
        """A model of a spec file, sized and seeded by its train section (or the arguments),
        that ``fit`` trains on the spec's data by default."""
        from .runtime.run import build

        s = build(Path(path), overrides={"batch_size": batch, "seed": seed}, device=device)
        m = cls.__new__(cls)
        m.plan, m.device, m.executor, m.batch, m._optimizer, m.setup = (
            s.plan,
            device,
            s.ex,
            s.ex.batch,
            None,
            s,
        )
        return m

    # -- training ------------------------------------------------------------------
    def fit(
        self,
        data: Mapping[str, np.ndarray] | None = None,
        val: Mapping[str, np.ndarray] | None = None,
        *,
        out: str | Path | None = None,
        init_from: str | Path | None = None,
        progress: bool | str = True,
        **train: Any,
    ) -> Any:
        """Train with the spec's train section; keywords override it (``epochs``,
        ``lr``, ``seed``, ``optimizer={...}``, ``schedule={...}``, ...). ``data``
        and ``val`` are arrays by input name; without ``data`` the spec's data
        section is loaded, split and normalized as declared. ``out`` keeps a run
        directory (metrics, plots, checkpoints). ``init_from`` starts from saved weights (a run
        directory, a weights or checkpoint file), matched by parameter name and shape, as
        ``netc run --init-from``. ``progress`` is True (``"live"``), ``"quiet"`` (epoch summaries
        only) or False (``"silent"``). Returns the run's Result."""
        from .runtime.data import Dataset
        from .runtime.run import datasets, with_overrides
        from .runtime.rundir import new_run_dir
        from .runtime.training.errors import TrainError
        from .runtime.training.trainer import Trainer

        base = self.setup.train_cfg if self.setup else {"optimizer": {"type": self.plan.optimizer}}
        cfg = with_overrides(base, train)
        if cfg.setdefault("batch_size", self.batch) != self.batch:
            raise TrainError(f"batch_size {cfg['batch_size']}: this model runs batches of {self.batch}")
        norm = None
        inputs = self.setup.net.expanded.inputs if self.setup else None
        if data is None:
            if self.setup is None:
                raise TrainError(
                    "fit() needs data: this model was not built from a spec (use Model.from_spec)"
                )
            tr, va, _, norm = datasets(self.setup)
            va = va if val is None else Dataset.from_arrays(dict(val), inputs)
        else:
            tr = Dataset.from_arrays(dict(data), inputs)
            va = None if val is None else Dataset.from_arrays(dict(val), inputs)
        if init_from is not None:
            from .runtime.run import init_from as load_matching

            report = load_matching(self.executor, self.plan, init_from)
            if progress not in (False, "silent"):
                print(report, file=sys.stderr)
        run_dir = new_run_dir(self.plan.name, str(out)) if out is not None else None
        aug = self.setup.data_cfg.get("augment") if self.setup and data is None else None
        t = Trainer(
            self.executor, cfg, tr, va, run_dir=run_dir, normalizer=norm, augment=aug, progress=progress
        )
        return t.fit()

    def evaluate(self, data: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Loss terms and metrics (accuracy, MAE, RMSE) over any number of samples, in evaluation mode."""
        from .runtime.data import Dataset
        from .runtime.training.metrics import Evaluator, Meter

        inputs = self.setup.net.expanded.inputs if self.setup else None
        m = Evaluator(self.executor).evaluate(Dataset.from_arrays(dict(data), inputs), Meter(self.plan), "x")
        return {k[2:]: v for k, v in m.items()}

    # -- one step ------------------------------------------------------------
    def forward(self, inputs: Mapping[str, np.ndarray], training: bool = True) -> dict[str, np.ndarray]:
        """Run the forward pass on exactly one batch; returns outputs and losses."""
        ex = self.executor
        ex.training = training
        ex.forward(inputs)
        return {**ex.outputs(), **ex.losses()}

    def backward(self) -> None:
        """Gradients of the weighted loss total of the last forward pass."""
        self.executor.backward()

    def loss(self) -> float:
        return self.executor.loss()

    def train_step(self, inputs: Mapping[str, np.ndarray], **hyper: Any) -> float:
        """Forward, backward and one optimizer update (the plan's optimizer:
        sgd, momentum or adam; ``hyper`` sets lr, momentum, betas, ...).
        Returns the weighted total loss."""
        if self._optimizer is None:
            from .runtime.optim import Optimizer, segments

            ex = self.executor
            self._optimizer = Optimizer(self.plan.optimizer, ex.params, ex.grads, segments(self.plan),
                                        state=ex.opt_state, **hyper)  # fmt: skip
        ex = self.executor
        ex.training = True
        # forward, backward and the update in one call (runtime.wholestep); no update on a
        # non-finite loss (the returned loss shows it)
        ex.step(inputs, update=self._optimizer)
        return self.loss()

    # -- inference -------------------------------------------------------------
    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for any number of samples, in evaluation mode, batch by batch
        (the last batch is zero-padded; evaluation mode keeps samples independent)."""
        from .runtime.buffers import buffers

        ex = self.executor
        ex.training = False
        feed = {k: np.asarray(v) for k, v in inputs.items() if k in self.plan.inputs}
        n = len(next(iter(feed.values())))
        chunks: dict[str, list[np.ndarray]] = {o: [] for o in self.plan.outputs}
        for start in range(0, n, self.batch):
            part = {}
            for k, v in feed.items():
                chunk = v[start : start + self.batch]
                if len(chunk) < self.batch:
                    pad = np.zeros((self.batch - len(chunk), *chunk.shape[1:]), chunk.dtype)
                    chunk = np.concatenate([chunk, pad])
                part[k] = chunk
            ex.forward(part)
            take = min(self.batch, n - start)
            for o in self.plan.outputs:
                chunks[o].append(np.array(buffers(ex).view(o)[:take]))
        return {o: np.concatenate(c) for o, c in chunks.items()}

    # -- weights ---------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """Parameter name ("conv1.w") -> array: on the CPU a view (writing into it changes
        the model), on a GPU a host copy (use ``load_weights`` to change the model)."""
        return self.executor.parameters()

    def gradients(self) -> dict[str, np.ndarray]:
        ex = self.executor
        return {p.name: ex.grad(p.name) for p in self.plan.params if p.trainable}

    def save_weights(self, path: str | Path) -> None:
        """All parameters (running statistics included) as a .npz, no pickle."""
        np.savez(path, **{k: np.array(v) for k, v in self.parameters().items()})

    def load_weights(self, path: str | Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise WeightsError(f"cannot read weights from {path}: {e}") from None
        params = self.parameters()
        missing = sorted(set(params) - set(data))
        extra = sorted(set(data) - set(params))
        if missing or extra:
            raise WeightsError(
                f"{path} does not match this network: "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        for k, v in params.items():
            if data[k].shape != v.shape:
                raise WeightsError(
                    f"{path}: '{k}' has shape {list(data[k].shape)}, the network wants {list(v.shape)}"
                )
        from .runtime.buffers import buffers

        buf = buffers(self.executor)
        flat = buf.params()
        for p in self.plan.params:
            flat[p.offset : p.offset + p.numel] = data[p.name].ravel()
        buf.set_params(flat)
