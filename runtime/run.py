"""The work behind `netc run`, `netc eval`, `netc predict` and `netc lr-find`:
spec + flags -> resolved configuration -> data, executor and trainer -> run directory.

Everything a person can get wrong here (the data, a checkpoint, a flag that
contradicts a run being resumed) raises one of :data:`USER_ERRORS`, which the
command line prints as one message with exit code 1.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler.pipeline import Network, load
from ..compiler.plan import Plan, optimizer_key
from ..compiler.report.expanded import expanded_yaml
from .backends import Executor
from .buffers import buffers
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    check_compatible,
    has_checkpoint,
    is_checkpoint_file,
    load_checkpoint,
    read_safetensors,
    spec_hash,
)
from .data import (
    DataError,
    Dataset,
    Normalizer,
    augment_config,
    load_dataset,
    normalized_splits,
    read_inputs,
    split_dataset,
)
from .device import DeviceError, check_host_memory, make_executor
from .rundir import (
    CONFIG,
    clear_progress,
    new_run_dir,
    read_marker,
    run_config,
    saved_config,
    write_json,
    write_marker,
)
from .training.batches import check_batch_fits
from .training.errors import TrainError
from .training.lr_range import lr_find
from .training.metrics import Evaluator, Meter, head_classes, heads, ignored_labels, label_classes
from .training.trainer import Result, Trainer

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
    ex: Executor | None  # bound once the data is read (bind_executor)
    spec_hash: str
    resolved: str  # the expanded spec as YAML
    device: str = "cpu"


def build(
    spec: Path,
    train_cfg: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
    bind: bool = True,
    mode: str = "training",
) -> Setup:
    """Load the spec and (with ``bind``) an executor at the training batch size on ``device``
    (cpu, cuda, or auto: cuda when a GPU is usable and has kernels for every op). ``mode``
    "inference" compiles the forward-only plan (``netc eval``/``predict``: a smaller arena,
    no gradient or optimizer buffers)."""
    net = load(spec)
    cfg, data_cfg = resolve(net, overrides)
    if train_cfg is not None:  # a resumed run uses the configuration it was started with
        cfg = train_cfg
    plan = net.compile(int(cfg["batch_size"]), optimizer_key(cfg["optimizer"]), mode=mode)
    text = expanded_yaml(net.expanded)
    s = Setup(net, Path(spec), cfg, data_cfg, plan, None, spec_hash(text), text, device)
    if device == "cpu":
        # The ledger is known now: refuse a network that cannot fit before the data is read, since
        # reading (or generating) it can take as long, and as much memory, as the network would.
        check_host_memory(plan, int(cfg["batch_size"]), plan.optimizer)
    if bind:
        bind_executor(s)
    return s


def bind_executor(s: Setup, train: Dataset | None = None) -> None:
    """Allocate the executor at the training batch size (the CPU executor refuses a memory
    ledger beyond this machine's memory first). Given the training split, the batch size is
    checked against it before anything is allocated: a batch larger than the data would
    otherwise allocate for a batch that never fills."""
    batch = int(s.train_cfg["batch_size"])
    if train is not None:
        check_batch_fits(batch, len(train), s.plan)
    ex = make_executor(
        s.plan, batch, s.device, seed=int(s.train_cfg.get("seed", 0)), optimizer=s.plan.optimizer
    )
    s.ex, s.plan = ex, ex.plan


def datasets(
    s: Setup, data_cfg: dict[str, Any] | None = None
) -> tuple[Dataset, Dataset | None, Dataset | None, Normalizer]:
    """Train, validation and test splits, normalized with statistics of the training split."""
    cfg = data_cfg or s.data_cfg
    ds = load_dataset(
        cfg, s.net.expanded.inputs, s.spec.parent, label_classes(s.plan), ignored_labels(s.plan)
    )
    split = cfg.get("split") or {}
    seed = int(s.train_cfg.get("seed", 0))
    train, val, test = split_dataset(ds, float(split.get("val", 0.0) or 0.0), split.get("test"), seed)
    return normalized_splits(cfg, (train, val, test), seed)


# -- run directories -------------------------------------------------------------------
def _write_run_files(d: Path, s: Setup, init_from: str | None = None) -> None:
    config: dict[str, Any] = {"spec": str(s.spec), "train": s.train_cfg, "data": s.data_cfg}
    if init_from is not None:
        config["init_from"] = init_from
    try:
        write_json(d / CONFIG, config)
        (d / "spec.yaml").write_text(s.resolved)
        (d / "plan.json").write_text(s.plan.to_json() + "\n")
    except OSError as e:
        raise TrainError(f"cannot write the run files of {d}: {e.strerror}") from None


def _check_overrides(saved: dict[str, Any], overrides: dict[str, Any], d: Path) -> int | None:
    """Refuse a flag that contradicts the run being resumed; returns the new epoch count when
    ``--epochs`` extends it (the one change a resume accepts)."""
    from .optim import OPTIMIZER_DEFAULTS

    opt = saved["optimizer"]
    lr = opt.get("lr", OPTIMIZER_DEFAULTS[opt["type"]].get("lr"))
    now = {
        "epochs": saved["epochs"],
        "batch_size": saved["batch_size"],
        "seed": saved.get("seed", 0),
        "lr": lr,
    }
    extend = None
    for k, v in overrides.items():
        if v is None or now.get(k) == v:
            continue
        if k == "epochs" and v > now["epochs"]:
            extend = v
            continue
        flag = "--" + k.replace("_", "-")
        more = "; --epochs may only grow, to extend the run" if k == "epochs" else ""
        raise TrainError(
            f"{flag} {v}: the run in {d} was started with {k} {now.get(k)}; a resumed run keeps its "
            f"configuration (drop {flag}, or start a new run{more})"
        )
    return extend


def read_weights(path: str | Path) -> Checkpoint:
    """The tensors of a weights file, a checkpoint (record, tensors file, latest.json) or a run
    directory (its final weights, else its latest checkpoint); checksums verified."""
    p = Path(path)
    if p.is_dir() and (p / "weights.safetensors").exists():  # a finished run: its final (best) weights
        p = p / "weights.safetensors"
    if p.suffix == ".safetensors" and not is_checkpoint_file(p):  # weights.safetensors, best.safetensors
        tensors, meta = read_safetensors(p, unverified="warn")
        return Checkpoint(tensors, dict(meta), p)
    return load_checkpoint(p)


def init_from(ex: Executor, plan: Plan, path: str | Path) -> str:
    """Start from saved weights: each parameter of the plan takes the tensor of the same name
    when its shape matches. Returns the report (loaded, absent, refused, unused)."""
    src = read_weights(path)
    have = {n: a for n, a in src.tensors.items() if "/" not in n}
    buf = buffers(ex)
    flat = buf.params()
    loaded, absent, refused = [], [], []
    for p in plan.params:
        a = have.get(p.name)
        if a is None:
            absent.append(p.name)
        elif list(a.shape) != list(p.shape):
            refused.append(f"{p.name} {list(a.shape)} in the file, {list(p.shape)} in the spec")
        else:
            flat[p.offset : p.offset + p.numel] = a.ravel()
            loaded.append(p.name)
    names = {p.name for p in plan.params}
    unused = sorted(n for n in have if n not in names)
    if not loaded:
        raise CheckpointError(
            f"--init-from {src.path}: none of its {len(have)} parameters fits this spec "
            f"(by name and shape): nothing to start from"
        )
    buf.set_params(flat)
    lines = [f"init from {src.path}: loaded {len(loaded)} of {len(names)} parameters ({', '.join(loaded)})"]
    if absent:
        lines.append(f"  skipped, not in the file (initialized as the spec says): {', '.join(absent)}")
    if refused:
        lines.append(f"  refused, shape mismatch (initialized as the spec says): {'; '.join(refused)}")
    if unused:
        lines.append(f"  unused, not in this spec: {', '.join(unused)}")
    return "\n".join(lines)


def _last_checkpoint(d: Path, s: Setup) -> Checkpoint | None:
    """The run's latest checkpoint, checked against the spec; None where it never saved one."""
    if not has_checkpoint(d / "checkpoints"):
        return None
    ckpt = load_checkpoint(d)
    check_compatible(ckpt, s.plan, None)
    return ckpt


# -- netc run ----------------------------------------------------------------------------
def run(
    spec: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    out: str | None = None,
    resume: str | None = None,
    init: str | None = None,
    overfit_batch: bool = False,
    progress: bool | str = True,
    plots: bool = True,
    device: str = "cpu",
) -> Result:
    """Train a new run (into ``out``, optionally starting from the weights in ``init``), or
    continue the run in ``resume``: from its latest checkpoint, from the beginning where it
    saved none, or for more epochs (``overrides["epochs"]`` above the run's)."""
    import shlex

    overrides = overrides or {}
    spec = Path(spec)
    ckpt, extend, notes = None, None, []
    if resume is not None:
        if init is not None:
            raise TrainError("--init-from starts a new run; a resumed run continues from its own checkpoint")
        d = Path(resume)
        saved = saved_config(d)
        extend = _check_overrides(saved["train"], overrides, d)
        cfg = saved["train"] if extend is None else {**saved["train"], "epochs": extend}
        s = build(spec, cfg, device=device, bind=False)
        s.data_cfg = saved["data"]
        ckpt = _last_checkpoint(d, s)
        init = saved.get("init_from")  # a restart from the beginning starts from the same weights
        diverged = (read_marker(d) or {}).get("diverged")
        if diverged:
            notes.append(
                f"note: this run diverged ({diverged.get('message', '')}); with the same configuration it "
                f"will again: start a new run with a lower --lr (--init-from {d} starts from its last "
                "good weights)"
            )
    else:
        s = build(spec, overrides=overrides, device=device, bind=False)
    train, val, _, norm = datasets(s)
    bind_executor(s, train)
    if ckpt is None and init is not None:  # before the run directory: a refusal leaves none behind
        notes.append(init_from(s.ex, s.plan, init))
    aug = augment_config(s.data_cfg)
    if overfit_batch:
        # One batch, no validation, a constant learning rate: the schedule and early stopping
        # are about whole runs.
        cfg = {k: v for k, v in s.train_cfg.items() if k not in ("early_stopping", "schedule")}
        t = Trainer(s.ex, cfg, train, None, normalizer=norm, augment=None, progress=progress, plots=False)
        return t.overfit_batch()
    if resume is None:
        d = new_run_dir(s.net.name, out)
        _write_run_files(d, s, init)
    elif ckpt is None or extend is not None:
        if ckpt is None:
            clear_progress(d)
        _write_run_files(d, s, init)  # the new length, for a later resume
        write_marker(d)  # the divergence is history now
    t = Trainer(s.ex, s.train_cfg, train, val, run_dir=d, normalizer=norm, augment=aug, spec_hash=s.spec_hash,
                progress=progress, plots=plots)  # fmt: skip
    t.resume_command = f"netc run {shlex.quote(str(spec))} --resume {shlex.quote(str(d))}"
    for n in notes:
        t.progress.message(n)
    if ckpt is not None:
        t.restore(ckpt)
        if ckpt.meta.get("spec_hash") not in (None, "", s.spec_hash):
            t.progress.message(f"note: {spec} has changed since this run started; its parameters still match")
        if t.ended and (d / "weights.safetensors").exists():
            return _complete(t, spec, d)
        if t.ended:  # killed after its last checkpoint, before its final weights
            t.progress.message(f"{d} ended at epoch {t.epoch}; writing its final weights")
        else:
            t.progress.message(f"resuming {d} at epoch {t.epoch + 1}, step {t.step}")
    else:
        what = "restarting" if resume is not None else "training"
        why = " from the beginning (it saved no checkpoint)" if resume is not None else ""
        t.progress.message(
            f"{what} {s.net.name}{why}: {len(train)} train / {len(val) if val else 0} val samples, "
            f"{t.epochs} epochs of {t.batches_per_epoch} batches of {t.batch} -> {d}"
        )
    r = t.fit()
    if r.status == "diverged":
        write_marker(d, diverged={"epoch": r.epoch + 1, "step": r.step, "message": r.message.split(";")[0]})
    return r


def _complete(t: Trainer, spec: Path, d: Path) -> Result:
    how = (
        f"stopped early at epoch {t.epoch} ({t._ended_message()})"
        if t.ended == "early_stopped"
        else f"finished its {t.epoch} epochs"
    )
    msg = (
        f"the run in {d} is complete: it {how}; nothing to resume. To train it longer: "
        f"netc run {spec} --resume {d} --epochs N (N > {t.epochs}); to fine-tune its weights in a new run: "
        f"netc run SPEC --init-from {d}"
    )
    return Result("complete", t.epoch, t.step, t.history, {}, d, msg)


# -- checkpoints for eval and predict ------------------------------------------------------------
def load_weights(s: Setup, path: str | Path) -> tuple[Normalizer | None, Path]:
    """Put a checkpoint's (or a weights file's) parameters into the executor;
    returns the normalizer saved with it and the run directory it belongs to."""
    ckpt = read_weights(path)
    check_compatible(ckpt, s.plan, None)
    buf = buffers(s.ex)
    flat = buf.params()
    for p in s.plan.params:
        flat[p.offset : p.offset + p.numel] = ckpt.tensors[p.name].ravel()
    buf.set_params(flat)
    run_dir = ckpt.path.parent.parent if ckpt.path.parent.name == "checkpoints" else ckpt.path.parent
    saved = run_config(run_dir)
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
    per_class: np.ndarray | None = None  # [k, 4]: precision, recall, F1, support (per_class_scores)


def per_class_scores(cm: np.ndarray) -> np.ndarray:
    """[k, 4]: precision, recall, F1 and support of each class from a confusion matrix
    ``cm[true, predicted]``, as scikit-learn's classification_report (0 where undefined:
    no sample predicted as, or labelled with, the class)."""
    cm = np.asarray(cm, np.float64)
    tp, predicted, support = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return np.stack([precision, recall, f1, support], axis=1)


def evaluate(s: Setup, ds: Dataset, split: str) -> Evaluation:
    ev = Evaluator(s.ex)
    meter = Meter(s.plan)
    metrics = ev.evaluate(ds, meter, split)
    cm = None
    cls = [h for h in heads(s.plan) if h.kind == "classification" and h.target in ds.arrays]
    if cls:
        from .plots import confusion_matrix

        h = cls[0]
        pred, target = h.predicted(ev.predict(ds, [h.pred])[h.pred]), ds.arrays[h.target]
        kept = h.kept(target)
        cm = confusion_matrix(target[kept], pred[kept], head_classes(s.plan, h))
    return Evaluation(metrics, cm, len(ds), split, None if cm is None else per_class_scores(cm))


def eval_split(
    s: Setup, norm: Normalizer | None, split: str | None, data_file: str | None
) -> tuple[Dataset, str]:
    """The data `netc eval` measures: a file, or one split of the spec's data
    (default: test if the spec has one, else validation, else all)."""
    if data_file is not None:
        arrays = read_inputs(
            Path(data_file),
            s.net.expanded.inputs,
            s.data_cfg.get("columns"),
            need=s.plan.inputs,
            classes=label_classes(s.plan),
            flag="--data",
            ignore=ignored_labels(s.plan),
        )
        ds = _with_unused_inputs(s, arrays)
        return (norm.apply(ds) if norm else ds), Path(data_file).name
    full = load_dataset(
        s.data_cfg, s.net.expanded.inputs, s.spec.parent, label_classes(s.plan), ignored_labels(s.plan)
    )
    sp = s.data_cfg.get("split") or {}
    seed = int(s.train_cfg.get("seed", 0))
    train, val, test = split_dataset(full, float(sp.get("val", 0.0) or 0.0), sp.get("test"), seed)
    parts = {"train": train, "val": val, "test": test, "all": full}
    name = split or ("test" if test is not None else "val" if val is not None else "all")
    if parts[name] is None:
        raise TrainError(f"--split {name}: the spec's data.split defines no {name} split")
    ds = parts[name]
    return (norm.apply(ds) if norm else ds), name


def _with_unused_inputs(s: Setup, arrays: dict[str, np.ndarray]) -> Dataset:
    """A Dataset of ``arrays`` plus zeros for the spec inputs they lack: inputs the requested
    results do not depend on (labels, to predict), which the forward pass still binds. Zero is
    a valid label and token id, so no loss kernel sees a value out of its range."""
    n = len(next(iter(arrays.values())))
    full = dict(arrays)
    for k, spec in s.net.expanded.inputs.items():
        if k not in full:
            full[k] = np.zeros((n, *spec["shape"]), np.int64 if spec.get("dtype") == "int64" else np.float32)
    return Dataset.from_arrays(full, s.net.expanded.inputs)


def inputs_needed(plan: Plan, tensors: list[str]) -> list[str]:
    """The plan inputs that ``tensors`` depend on through the forward steps, in plan order."""
    made = {st.output: st for st in plan.forward_steps}
    seen: set[str] = set()
    todo = list(tensors)
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in made:
            todo.extend(made[t].inputs)
    return [k for k in plan.inputs if k in seen]


def predict(
    s: Setup, norm: Normalizer | None, input_file: str, probabilities: bool = False
) -> dict[str, np.ndarray]:
    """The outputs on an input file, with ``{output}_class`` for each classification head and,
    with ``probabilities``, ``{output}_prob``: the softmax of a cross-entropy head's logits,
    the sigmoid of a binary cross-entropy head's (hinge scores are not probabilities). Only
    the inputs the outputs depend on are read (no labels)."""
    need = inputs_needed(s.plan, list(s.plan.outputs)) or s.plan.inputs[:1]  # the first sets the count
    arrays = read_inputs(Path(input_file), s.net.expanded.inputs, s.data_cfg.get("columns"), need=need)
    if norm is not None:
        arrays = norm.apply_arrays(arrays)
    out = Evaluator(s.ex).predict(_with_unused_inputs(s, arrays), list(s.plan.outputs))
    loss_op = {st.output: st.op for st in s.plan.forward_steps}
    for h in heads(s.plan):
        if h.pred not in out:
            continue
        if h.kind == "classification":
            out[f"{h.pred}_class"] = h.predicted(out[h.pred])
        z = out[h.pred].astype(np.float64)
        if probabilities and loss_op[h.loss] == "cross_entropy":
            e = np.exp(z - z.max(axis=h.axis, keepdims=True))
            out[f"{h.pred}_prob"] = (e / e.sum(axis=h.axis, keepdims=True)).astype(np.float32)
        elif probabilities and h.kind == "binary":
            out[f"{h.pred}_prob"] = (0.5 + 0.5 * np.tanh(0.5 * z)).astype(np.float32)  # sigmoid, no overflow
    return out


def find_lr(s: Setup, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    train, _, _, norm = datasets(s)
    if s.ex is None:
        bind_executor(s, train)
    cfg = {k: v for k, v in s.train_cfg.items() if k not in ("early_stopping", "schedule")}
    t = Trainer(s.ex, cfg, train, None, normalizer=norm, progress=False, plots=False)
    return lr_find(t, steps=steps)
