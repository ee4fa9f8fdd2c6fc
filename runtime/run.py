"""The work behind `netc run`, `netc eval`, `netc predict` and `netc lr-find`:
spec + flags -> resolved configuration -> data, executor and trainer -> run directory.

Everything a person can get wrong here (the data, a checkpoint, a flag that
contradicts a run being resumed) raises one of :data:`USER_ERRORS`, which the
command line prints as one message with exit code 1.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import Network, load
from ..compiler.plan import Plan, optimizer_key
from ..compiler.report.expanded import expanded_yaml
from .buffers import buffers
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    check_compatible,
    load_checkpoint,
    read_safetensors,
    spec_hash,
)
from .data import DataError, Dataset, Normalizer, load_dataset, read_inputs, split_dataset
from .device import DeviceError, make_executor
from .train import Evaluator, Meter, Result, Trainer, TrainError, heads, label_classes, lr_find

USER_ERRORS = (DataError, CheckpointError, TrainError, DeviceError)


# -- configuration ------------------------------------------------------------------
def with_overrides(train: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of a train section with overrides applied: ``lr`` sets the optimizer's, None
    leaves a key as it is, anything else replaces the key."""
    train = copy.deepcopy(train)
    train.setdefault("optimizer", {"type": "sgd"})
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k == "lr":
            train["optimizer"]["lr"] = v
        else:
            train[k] = v
    return train


def resolve(net: Network, overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec's train and data sections with command-line overrides applied."""
    train = with_overrides(net.train, overrides)
    if net.data is None:
        raise TrainError(
            f"{net.expanded.doc.file}: the spec has no data section; add e.g. `data: {{source: mnist}}` "
            "(see docs/data.md)"
        )
    return train, copy.deepcopy(net.data)


@dataclass
class Setup:
    net: Network
    spec: Path
    train_cfg: dict[str, Any]
    data_cfg: dict[str, Any]
    plan: Plan
    ex: Any  # Executor or CudaExecutor
    spec_hash: str
    resolved: str  # the expanded spec as YAML


def build(
    spec: Path,
    train_cfg: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Setup:
    """Load the spec and bind an executor at the training batch size on ``device``
    (cpu, cuda, or auto: cuda when a GPU is usable and has kernels for every op)."""
    net = load(spec)
    cfg, data_cfg = resolve(net, overrides)
    if train_cfg is not None:  # a resumed run uses the configuration it was started with
        cfg = train_cfg
    plan = net.compile(int(cfg["batch_size"]), optimizer_key(cfg["optimizer"]))
    ex = make_executor(
        plan, int(cfg["batch_size"]), device, seed=int(cfg.get("seed", 0)), optimizer=plan.optimizer
    )
    text = expanded_yaml(net.expanded)
    return Setup(net, Path(spec), cfg, data_cfg, ex.plan, ex, spec_hash(text), text)


def datasets(
    s: Setup, data_cfg: dict[str, Any] | None = None
) -> tuple[Dataset, Dataset | None, Dataset | None, Normalizer]:
    """Train, validation and test splits, normalized with statistics of the training split."""
    cfg = data_cfg or s.data_cfg
    ds = load_dataset(cfg, s.net.expanded.inputs, s.spec.parent, label_classes(s.plan))
    split = cfg.get("split") or {}
    seed = int(s.train_cfg.get("seed", 0))
    train, val, test = split_dataset(ds, float(split.get("val", 0.0) or 0.0), split.get("test"), seed)
    norm = Normalizer.fit(train, cfg.get("normalize", "none"))
    return norm.apply(train), val and norm.apply(val), test and norm.apply(test), norm


# -- run directories -------------------------------------------------------------------
def new_run_dir(name: str, out: str | None) -> Path:
    """A fresh run directory: ``out`` if given (refused when it already holds a
    run, so nothing is overwritten), else runs/<name>, runs/<name>-2, ..."""
    if out is not None:
        d = Path(out)
        if (d / "metrics.jsonl").exists() or (d / "checkpoints").exists():
            raise TrainError(f"{d} already holds a run; continue it with --resume {d}, or pick another --out")
    else:
        base = Path("runs") / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        d, i = base, 1
        while d.exists():
            i += 1
            d = base.with_name(f"{base.name}-{i}")
    try:
        (d / "checkpoints").mkdir(parents=True, exist_ok=True)
        (d / "plots").mkdir(exist_ok=True)
    except OSError as e:
        raise TrainError(f"cannot create the run directory {d}: {e.strerror}") from None
    return d


def _write_run_files(d: Path, s: Setup) -> None:
    (d / "config.json").write_text(
        json.dumps({"spec": str(s.spec), "train": s.train_cfg, "data": s.data_cfg}, indent=1) + "\n"
    )
    (d / "spec.yaml").write_text(s.resolved)
    (d / "plan.json").write_text(s.plan.to_json() + "\n")


def _saved_config(d: Path) -> dict[str, Any]:
    f = d / "config.json"
    if not d.is_dir():
        raise TrainError(f"--resume {d}: no such run directory")
    try:
        return json.loads(f.read_text())
    except OSError as e:
        raise TrainError(f"--resume {d}: no {f.name} ({e.strerror}); is this a netc run directory?") from None
    except json.JSONDecodeError as e:
        raise TrainError(
            f"--resume {d}: {f.name} is not valid JSON ({e}); is this a netc run directory?"
        ) from None


def _run_config(d: Path) -> dict[str, Any] | None:
    """A run directory's config.json, or None where there is none (a bare weights file)."""
    try:
        return json.loads((d / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _check_overrides(saved: dict[str, Any], overrides: dict[str, Any], d: Path) -> None:
    from .optim import OPTIMIZER_DEFAULTS

    opt = saved["optimizer"]
    lr = opt.get("lr", OPTIMIZER_DEFAULTS[opt["type"]].get("lr"))
    now = {
        "epochs": saved["epochs"],
        "batch_size": saved["batch_size"],
        "seed": saved.get("seed", 0),
        "lr": lr,
    }
    for k, v in overrides.items():
        if v is not None and now.get(k) != v:
            flag = "--" + k.replace("_", "-")
            raise TrainError(
                f"{flag} {v}: the run in {d} was started with {k} {now.get(k)}; a resumed run keeps its "
                f"configuration (drop {flag}, or start a new run)"
            )


# -- netc run ----------------------------------------------------------------------------
def run(
    spec: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    out: str | None = None,
    resume: str | None = None,
    overfit_batch: bool = False,
    progress: bool = True,
    plots: bool = True,
    device: str = "cpu",
) -> Result:
    overrides = overrides or {}
    spec = Path(spec)
    if resume is not None:
        d = Path(resume)
        saved = _saved_config(d)
        _check_overrides(saved["train"], overrides, d)
        s = build(spec, saved["train"], device=device)
        s.data_cfg = saved["data"]
        ckpt = load_checkpoint(d)
        check_compatible(ckpt, s.plan, None)
    else:
        s = build(spec, overrides=overrides, device=device)
    train, val, _, norm = datasets(s)
    aug = s.data_cfg.get("augment")
    if overfit_batch:
        # One batch, no validation, a constant learning rate: the schedule and early stopping
        # are about whole runs.
        cfg = {k: v for k, v in s.train_cfg.items() if k not in ("early_stopping", "schedule")}
        t = Trainer(s.ex, cfg, train, None, normalizer=norm, augment=None, progress=progress, plots=False)
        return t.overfit_batch()
    if resume is None:
        d = new_run_dir(s.net.name, out)
        _write_run_files(d, s)
    t = Trainer(s.ex, s.train_cfg, train, val, run_dir=d, normalizer=norm, augment=aug, spec_hash=s.spec_hash,
                progress=progress, plots=plots)  # fmt: skip
    if resume is not None:
        t.restore(ckpt)
        if ckpt.meta.get("spec_hash") not in (None, "", s.spec_hash):
            t.progress.message(f"note: {spec} has changed since this run started; its parameters still match")
        t.progress.message(f"resuming {d} at epoch {t.epoch + 1}, step {t.step}")
    else:
        t.progress.message(
            f"training {s.net.name}: {len(train)} train / {len(val) if val else 0} val samples, "
            f"{t.epochs} epochs of {t.batches_per_epoch} batches of {t.batch} -> {d}"
        )
    return t.fit()


# -- checkpoints for eval and predict ------------------------------------------------------------
def load_weights(s: Setup, path: str | Path) -> tuple[Normalizer | None, Path]:
    """Put a checkpoint's (or a weights file's) parameters into the executor;
    returns the normalizer saved with it and the run directory it belongs to."""
    p = Path(path)
    if (p / "weights.safetensors").exists():  # a finished run: its final (best) weights
        p = p / "weights.safetensors"
    if p.suffix == ".safetensors" and p.parent.name != "checkpoints":
        tensors, meta = read_safetensors(p)
        ckpt = Checkpoint(tensors, dict(meta), p)
    else:
        ckpt = load_checkpoint(p)
    check_compatible(ckpt, s.plan, None)
    buf = buffers(s.ex)
    flat = buf.params()
    for p in s.plan.params:
        flat[p.offset : p.offset + p.numel] = ckpt.tensors[p.name].ravel()
    buf.set_params(flat)
    run_dir = ckpt.path.parent.parent if ckpt.path.parent.name == "checkpoints" else ckpt.path.parent
    saved = _run_config(run_dir)
    if saved is not None:  # the run's own data and seed, so "val" and "test" are the run's splits
        s.data_cfg = saved["data"]
        s.train_cfg = {**s.train_cfg, "seed": saved["train"].get("seed", 0)}
    mode = ckpt.meta.get("normalize")
    if mode is None:
        mode = saved["data"].get("normalize", "none") if saved else "none"
    stats = {k[5:]: v for k, v in ckpt.tensors.items() if k.startswith("data/")}
    norm = Normalizer.from_state(mode, stats) if stats or mode == "none" else None
    return norm, run_dir


@dataclass
class Evaluation:
    metrics: dict[str, float]
    confusion: np.ndarray | None
    samples: int
    split: str


def evaluate(s: Setup, ds: Dataset, split: str) -> Evaluation:
    ev = Evaluator(s.ex)
    meter = Meter(s.plan)
    metrics = ev.evaluate(ds, meter, split)
    cm = None
    cls = [h for h in heads(s.plan) if h.kind == "classification" and h.target in ds.arrays]
    if cls:
        from .plots import confusion_matrix

        h = cls[0]
        pred = ev.predict(ds, [h.pred])[h.pred].argmax(axis=-1)
        cm = confusion_matrix(ds.arrays[h.target], pred, int(s.plan.tensors[h.pred].shape[-1]))
    return Evaluation(metrics, cm, len(ds), split)


def eval_split(
    s: Setup, norm: Normalizer | None, split: str | None, data_file: str | None
) -> tuple[Dataset, str]:
    """The data `netc eval` measures: a file, or one split of the spec's data
    (default: test if the spec has one, else validation, else all)."""
    if data_file is not None:
        arrays = read_inputs(Path(data_file), s.net.expanded.inputs, s.data_cfg.get("columns"))
        missing = [k for k in s.plan.inputs if k not in arrays]
        if missing:
            raise DataError(f"{data_file}: no array for input(s) {', '.join(missing)} (needed to evaluate)")
        ds = Dataset.from_arrays(arrays, s.net.expanded.inputs)
        return (norm.apply(ds) if norm else ds), Path(data_file).name
    full = load_dataset(s.data_cfg, s.net.expanded.inputs, s.spec.parent, label_classes(s.plan))
    sp = s.data_cfg.get("split") or {}
    seed = int(s.train_cfg.get("seed", 0))
    train, val, test = split_dataset(full, float(sp.get("val", 0.0) or 0.0), sp.get("test"), seed)
    parts = {"train": train, "val": val, "test": test, "all": full}
    name = split or ("test" if test is not None else "val" if val is not None else "all")
    if parts[name] is None:
        raise TrainError(f"--split {name}: the spec's data.split defines no {name} split")
    ds = parts[name]
    return (norm.apply(ds) if norm else ds), name


def predict(s: Setup, norm: Normalizer | None, input_file: str) -> dict[str, np.ndarray]:
    arrays = read_inputs(Path(input_file), s.net.expanded.inputs, s.data_cfg.get("columns"))
    if norm is not None:
        arrays = norm.apply_arrays(arrays)
    n = len(next(iter(arrays.values())))
    full = dict(arrays)
    for k, spec in s.net.expanded.inputs.items():  # labels are not needed to predict
        if k not in full:
            dt = np.int64 if spec.get("dtype") == "int64" else s.ex.dtype
            full[k] = np.zeros((n, *spec["shape"]), dt)
    ds = Dataset.from_arrays(full, s.net.expanded.inputs)
    out = Evaluator(s.ex).predict(ds, list(s.plan.outputs))
    for h in heads(s.plan):
        if h.kind == "classification" and h.pred in out:
            out[f"{h.pred}_class"] = out[h.pred].argmax(axis=-1)
    return out


def find_lr(s: Setup, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    train, _, _, norm = datasets(s)
    cfg = {k: v for k, v in s.train_cfg.items() if k not in ("early_stopping", "schedule")}
    t = Trainer(s.ex, cfg, train, None, normalizer=norm, progress=False, plots=False)
    return lr_find(t, steps=steps)
