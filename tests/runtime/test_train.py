"""The training loop end to end on tiny networks and synthetic data: exact resume after
Ctrl-C, after a SIGKILL between checkpoints and after a SIGKILL inside a checkpoint write;
early stopping's weight restore; divergence; gradient accumulation, clipping and penalties;
metrics against a NumPy recomputation; and the Model API."""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from harness import TINY_MLP
from tinyspec import classifier

import netc
from netc.compiler.plan import optimizer_key
from netc.runtime import run as rr
from netc.runtime import rundir as rd
from netc.runtime import train as tr
from netc.runtime.checkpoint import CheckpointError, load_checkpoint, read_safetensors
from netc.runtime.data import Dataset
from netc.runtime.executor import Executor
from netc.runtime.run import build, datasets, load_weights
from netc.runtime.train import Evaluator, Trainer
from netc.runtime.training import progress

UNTIMED = ("time", "samples_per_s")  # the only fields of a metrics record that may differ


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Callbacks put on every Trainer that runtime.run builds: ``step`` after each optimizer
    step, ``epoch`` after each epoch. Tests add and remove entries between runs."""
    got = SimpleNamespace(step=[], epoch=[])

    class Hooked(tr.Trainer):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.step_callbacks.extend(got.step)
            self.callbacks.extend(got.epoch)

    monkeypatch.setattr(rr, "Trainer", Hooked)
    return got


def _run(spec: Path, out: Path | None = None, **kw: Any) -> tr.Result:
    return rr.run(spec, out=None if out is None else str(out), progress=False, plots=False, **kw)


def _records(d: Path) -> list[dict[str, Any]]:
    lines = (d / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in UNTIMED} for line in lines]


def _assert_same_run(a: Path, b: Path) -> None:
    """Bitwise equal final weights, equal metrics records and an equal last checkpoint
    (parameters, optimizer state and metadata but the epoch's wall time)."""
    assert (a / "weights.safetensors").read_bytes() == (b / "weights.safetensors").read_bytes()
    assert _records(a) == _records(b)
    assert (a / "steps.jsonl").read_bytes() == (b / "steps.jsonl").read_bytes()  # no time in it
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.tag == cb.tag
    assert ca.tensors.keys() == cb.tensors.keys()
    for k, v in ca.tensors.items():
        assert v.dtype == cb.tensors[k].dtype and v.tobytes() == cb.tensors[k].tobytes(), k
    drop = {"epoch_time"}
    assert {k: v for k, v in ca.meta.items() if k not in drop} == {
        k: v for k, v in cb.meta.items() if k not in drop
    }


RESUME = """
netc: 1
name: resume
inputs:
  x: {shape: SHAPE}
  label: {shape: [], dtype: int64}
modules:
  FIRST
  act: {op: relu, in: fc1}
  drop: {op: dropout, in: act, p: 0.3}
  logits: {op: linear, in: drop, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
train:
  optimizer: OPTIMIZER
  schedule: {type: cosine, warmup: 4}
  batch_size: 4
  accumulate: ACCUMULATE
  epochs: 3
  seed: 7EARLY
data: {source: SOURCE, samples: 60, split: {val: 0.2}AUGMENT}
"""


def _resume_spec(write: Callable[..., Path], opt: str, accumulate: int, noise: bool, early: bool) -> Path:
    """Dropout (its mask stream), adam or momentum (optimizer state), cosine with warmup
    (schedule state), gradient accumulation and, for image inputs, noise augmentation."""
    first = "fc1: {op: linear, in: x, out_features: 12}"
    if noise:
        first = "flat: {op: flatten, in: x}\n  fc1: {op: linear, in: flat, out_features: 12}"
    fill = {
        "SHAPE": "[1, 4, 4]" if noise else "[2]",
        "FIRST": first,
        "OPTIMIZER": "{type: adam, lr: 0.02}"
        if opt == "adam"
        else "{type: momentum, lr: 0.05, nesterov: true}",
        "ACCUMULATE": str(accumulate),
        "EARLY": "\n  early_stopping: {monitor: val_loss, patience: 10}" if early else "",
        "SOURCE": "blobs" if noise else "spirals",
        "AUGMENT": ", augment: {noise_std: 0.3}" if noise else "",
    }
    text = RESUME
    for k, v in fill.items():
        text = text.replace(k, v)
    return write(text)


# 48 training samples in batches of 4: 12 minibatches per epoch.
RESUME_CASES = {
    "adam_accumulate2": ("adam", 2, False, False),
    "momentum_noise_early_stopping": ("momentum", 1, True, True),
    "adam_accumulate3_noise": ("adam", 3, True, False),
}


def _mid_epoch_step(seed: int, steps_per_epoch: int, epochs: int, after: int = 0) -> int:
    """A step after ``after`` chosen by a seeded RNG that is not the last of an epoch."""
    choices = [k for k in range(after + 1, steps_per_epoch * epochs) if k % steps_per_epoch]
    return int(np.random.default_rng(seed).choice(choices))


# -- 1. resume is exact --------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_ctrl_c_at_a_random_step_then_resume_is_bitwise_equal(case, tmp_path, spec_file, hooks):
    spec = _resume_spec(spec_file, *RESUME_CASES[case])
    ref = _run(spec, tmp_path / "ref")
    assert ref.status == "finished"
    steps_per_epoch = ref.step // 3
    k = _mid_epoch_step(sorted(RESUME_CASES).index(case), steps_per_epoch, 3)

    def ctrl_c(t: Trainer) -> None:
        if t.step == k:
            os.kill(os.getpid(), signal.SIGINT)

    hooks.step.append(ctrl_c)
    cut = _run(spec, tmp_path / "cut")
    hooks.step.clear()
    assert cut.status == "interrupted" and cut.step == k, cut.message
    assert f"step-{k:08d}" in cut.message
    meta = load_checkpoint(tmp_path / "cut").meta
    assert meta["step"] == k and 0 < meta["cursor"] < 12  # saved mid-epoch, on an optimizer step
    assert not (tmp_path / "cut" / "weights.safetensors").exists()

    done = _run(spec, resume=str(tmp_path / "cut"))
    assert done.status == "finished" and done.step == ref.step
    _assert_same_run(tmp_path / "ref", tmp_path / "cut")


_KILLER = """
import os, signal, sys

import netc.runtime.run as rr
import netc.runtime.store.safetensors as st
from netc.cli import main

kill_step, kill_save = int(sys.argv[1]), sys.argv[2]


class Killed(rr.Trainer):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.step_callbacks.append(lambda t: t.step == kill_step and os.kill(os.getpid(), signal.SIGKILL))


write_stream = st.write_stream


def torn_write(f, tensors, metadata):
    if metadata and metadata.get("tag") == kill_save:  # part of the checkpoint's tensors, then death
        f.write(b"\\0" * 100)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return write_stream(f, tensors, metadata)


rr.Trainer = Killed
st.write_stream = torn_write
sys.exit(main(sys.argv[3:]))
"""


def _killed_run(tmp_path: Path, spec: Path, out: Path, step: int = -1, save: str = "") -> None:
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    args = [sys.executable, str(script), str(step), save, "run", str(spec), "--out", str(out)]
    r = subprocess.run([*args, "--quiet", "--no-plots"], capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr


def test_sigkill_between_checkpoints_then_resume_is_bitwise_equal(tmp_path, spec_file):
    spec = _resume_spec(spec_file, "adam", 2, True, False)
    ref = _run(spec, tmp_path / "ref")
    k = _mid_epoch_step(11, ref.step // 3, 3, after=ref.step // 3)  # in epoch 2 or 3
    _killed_run(tmp_path, spec, tmp_path / "cut", step=k)
    d = tmp_path / "cut"
    assert not (d / "weights.safetensors").exists()
    ckpt = load_checkpoint(d)
    assert ckpt.tag.startswith("epoch-") and ckpt.meta["step"] < k  # the steps since are lost ...
    done = _run(spec, resume=str(d))  # ... and replayed
    assert done.status == "finished"
    _assert_same_run(tmp_path / "ref", d)


def test_sigkill_inside_a_checkpoint_write_resumes_from_the_previous_one(tmp_path, spec_file):
    spec = _resume_spec(spec_file, "momentum", 1, False, True)
    _run(spec, tmp_path / "ref")
    d = tmp_path / "cut"
    _killed_run(tmp_path, spec, d, save="epoch-0002")
    ckdir = d / "checkpoints"
    assert list(ckdir.glob(".epoch-0002.safetensors.*.tmp"))  # the torn write is there ...
    assert load_checkpoint(d).tag == "epoch-0001"  # ... and ignored
    assert len(_records(d)) == 2  # epoch 2's record was appended before the save
    done = _run(spec, resume=str(d))
    assert done.status == "finished"
    _assert_same_run(tmp_path / "ref", d)
    assert not list(ckdir.glob("*.tmp"))  # the dead writer's file is swept


# Every moment a kill can matter, as events in the order a run meets them: before a file write,
# after its bytes are written but before the rename, after the rename, before and after a metrics
# append, after each optimizer step. The killer counts them and SIGKILLs itself at event ``n``
# (-1: never; it prints the event list instead).
_EVENT_KILLER = """
import os, signal, sys

import netc.runtime.rundir as rd
import netc.runtime.run as rr
from netc.runtime.store import atomic
from netc.cli import main

kill_at, events = int(sys.argv[1]), []


def event(name):
    events.append(name)
    if len(events) - 1 == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


write_temp, commit, append = atomic.write_temp, atomic.commit, rd.append_jsonl


def killing_write_temp(final, write):
    event("write " + final.name)

    def written(f):
        out = write(f)
        event("wrote " + final.name)
        return out

    return write_temp(final, written)


def killing_commit(tmp, final):
    commit(tmp, final)
    event("renamed " + final.name)


def killing_append(path, records):
    event("append " + path.name)
    append(path, records)
    event("appended " + path.name)


class Killed(rr.Trainer):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.step_callbacks.append(lambda t: event(f"step {t.step}"))


atomic.write_temp = killing_write_temp
atomic.commit = killing_commit
rd.append_jsonl = killing_append
rr.Trainer = Killed
code = main(sys.argv[2:])
if kill_at < 0:
    print("\\n".join(["EVENTS", *events]), file=sys.stderr)
sys.exit(code)
"""


def _event_run(tmp_path: Path, spec: Path, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    script = tmp_path / "event_killer.py"
    script.write_text(_EVENT_KILLER)
    args = [sys.executable, str(script), str(kill_at), "run", str(spec), "--out", str(out)]
    return subprocess.run([*args, "--quiet", "--no-plots"], capture_output=True, text=True, timeout=120)


def _recover(spec: Path, d: Path) -> tr.Result:
    """What the person does after a kill: --resume; where the run was killed before it saved
    its configuration, the message says to start it again with the same --out."""
    try:
        return _run(spec, resume=str(d))
    except tr.TrainError as e:
        assert "start it again with" in str(e), e
        return _run(spec, d)


def test_ten_random_sigkills_resume_bitwise_equal(tmp_path, spec_file):
    """SIGKILL at 10 seeded random events of an early-stopping run (one before training starts,
    one in training before the first checkpoint, one around the early stop, seven anywhere), then
    resume: the run ends with the same weights, metrics and last checkpoint as an uninterrupted one."""
    spec = spec_file(EARLY.replace("PATIENCE", "1"))
    ref = _run(spec, tmp_path / "ref")
    assert ref.status == "early_stopped" and ref.epoch < 6
    r = _event_run(tmp_path, spec, tmp_path / "count", -1)
    assert r.returncode == 0, r.stderr
    events = r.stderr.split("EVENTS\n")[1].splitlines()
    first_step, first_ckpt = events.index("step 1"), events.index("renamed latest.json")
    stop = max(i for i, e in enumerate(events) if e == "renamed latest.json")  # the early stop's
    rng = np.random.default_rng(2024)
    picks = [int(rng.integers(0, first_step)), int(rng.integers(first_step, first_ckpt))]
    picks += [int(rng.integers(stop - 3, len(events))), *rng.choice(len(events), 7, replace=False)]
    for i, k in enumerate(picks):
        d = tmp_path / f"cut{i}"
        r = _event_run(tmp_path, spec, d, k)
        assert r.returncode == -signal.SIGKILL, (k, events[k], r.stderr)
        done = _recover(spec, d)
        assert done.status in ("early_stopped", "complete"), (k, events[k], done.message)
        _assert_same_run(tmp_path / "ref", d)


# -- 2. early stopping restores the best epoch ----------------------------------------------------
EARLY = classifier(
    "early",
    """
    optimizer: {type: sgd, lr: 0.1}
    schedule: {type: multistep, milestones: [3], gamma: 30}   # lr 0.1, then 3.0 from epoch 4
    batch_size: 8
    epochs: 6
    seed: 0
    early_stopping: {monitor: val_loss, patience: PATIENCE}
    """,
    "{source: blobs, samples: 60, noise: 2.0, split: {val: 0.25}}",
    act="tanh",
)


@pytest.mark.parametrize(("patience", "status"), [(1, "early_stopped"), (10, "finished")])
def test_early_stopping_restores_the_best_epochs_weights(patience, status, tmp_path, spec_file, hooks):
    spec = spec_file(EARLY.replace("PATIENCE", str(patience)))
    seen: dict[int, tuple[float, np.ndarray]] = {}
    hooks.epoch.append(lambda t, rec: seen.__setitem__(rec["epoch"], (rec["val_loss"], t.ex.params.copy())))
    r = _run(spec, tmp_path / "run")
    assert r.status == status, r.message
    last = max(seen)
    assert (last < 6) == (status == "early_stopped")
    best = min(seen, key=lambda e: seen[e][0])
    assert best < last  # the high learning rate of the late epochs made them worse
    assert r.best == {"epoch": best, "val_loss": seen[best][0]}
    assert not np.array_equal(seen[best][1], seen[last][1])
    s = build(spec)
    load_weights(s, tmp_path / "run" / "weights.safetensors")
    np.testing.assert_array_equal(s.ex.params, seen[best][1])
    tensors, _ = read_safetensors(tmp_path / "run" / "checkpoints" / "best.safetensors")
    for p in s.plan.params:
        np.testing.assert_array_equal(tensors[p.name].ravel(), seen[best][1][p.offset : p.offset + p.numel])


def test_resuming_an_early_stopped_run_trains_nothing(tmp_path, spec_file):
    """The stop decision is in the last checkpoint: a resume says the run is complete, and one
    killed before its final weights writes them (the best epoch's) without training on."""
    spec = spec_file(EARLY.replace("PATIENCE", "1"))
    d = tmp_path / "run"
    ref = _run(spec, d)
    assert ref.status == "early_stopped" and load_checkpoint(d).meta["ended"] == "early_stopped"
    files = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    again = _run(spec, resume=str(d))
    assert (
        again.status == "complete" and f"stopped early at epoch {ref.epoch} (early stopping" in again.message
    )
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == files
    (d / "weights.safetensors").unlink()
    done = _run(spec, resume=str(d))
    assert done.status == "early_stopped" and done.epoch == ref.epoch and done.best == ref.best
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == files


def _key_paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    for k, v in obj.items() if isinstance(obj, dict) else enumerate(obj[:1]) if isinstance(obj, list) else ():
        yield (*prefix, k)
        yield from _key_paths(v, (*prefix, k))


def test_any_edit_of_checkpoint_metadata_is_a_checkpoint_error_or_harmless(tmp_path, spec_file):
    """Every key of the trainer's metadata deleted or given a value of another type or range:
    restore raises CheckpointError (naming the record) or accepts it, never anything else."""
    spec = spec_file(EARLY.replace("PATIENCE", "1"))
    _run(spec, tmp_path / "run")
    base = load_checkpoint(tmp_path / "run")
    s = build(spec)
    train, val, _, norm = datasets(s)
    values = ["DELETE", None, "x", -1, 10**30, [], {}, 1.5, True]
    cases = 0
    for path in _key_paths(base.meta):
        for v in values:
            meta = copy.deepcopy(base.meta)
            *parents, last = path
            holder = functools.reduce(lambda o, k: o[k], parents, meta)
            if v == "DELETE":
                if not isinstance(holder, dict):
                    continue
                del holder[last]
            else:
                holder[last] = v
            t = Trainer(s.ex, s.train_cfg, train, val, normalizer=norm, progress=False, plots=False)
            try:
                t.restore(dataclasses.replace(base, meta=meta))
            except CheckpointError as e:
                assert str(base.path) in str(e), (path, v, e)
            cases += 1
    assert cases > 300


# -- 3. divergence ----------------------------------------------------------------------------------
DIVERGE = classifier(
    "diverge",
    """
    optimizer: {type: sgd, lr: 0.05}
    schedule: SCHEDULE
    batch_size: 8
    epochs: 3
    seed: 0
    """,
    "{source: blobs, samples: 40SPLIT}",
    hidden=16,
)
# With a validation split, 32 training samples: 4 steps per epoch. The learning rate jumps
# to 5e28 either for the whole of epoch 2 (the next training loss is NaN) or for the last
# step of epoch 2 alone (every training loss is finite; the weights it leaves give a NaN
# validation loss). Without one, 5 steps per epoch, and the last step of the last epoch
# leaves infinite weights that no loss ever sees.
DIVERGE_SCHEDULES = {
    "mid_epoch": (
        "{type: multistep, milestones: [1], gamma: 1.0e+30}",
        ", split: {val: 0.2}",
        "the loss became nan at epoch 2, step 6",
    ),
    "last_step_of_epoch": (
        "{type: multistep, per: step, milestones: [7], gamma: 1.0e+30}",
        ", split: {val: 0.2}",
        "val_loss became nan at the end of epoch 2",
    ),
    "last_step_of_run_no_val": (
        "{type: multistep, per: step, milestones: [14], gamma: 1.0e+60}",
        "",
        "a weight became -inf at the end of epoch 3",
    ),
}


@pytest.mark.parametrize("case", sorted(DIVERGE_SCHEDULES))
def test_divergence_stops_and_keeps_the_last_good_checkpoint(case, tmp_path, spec_file):
    schedule, split, says = DIVERGE_SCHEDULES[case]
    spec = spec_file(DIVERGE.replace("SCHEDULE", schedule).replace("SPLIT", split))
    d = tmp_path / "run"
    r = _run(spec, d)
    assert r.status == "diverged"
    assert says in r.message and "try a lower learning rate (--lr)" in r.message, r.message
    assert r.message.endswith("The last good checkpoint is kept.")
    assert not (d / "weights.safetensors").exists()
    good = 2 if split == "" else 1
    assert [rec["epoch"] for rec in _records(d)] == list(range(1, good + 1))  # none of a broken epoch
    ckpt = load_checkpoint(d)
    assert ckpt.tag == f"epoch-{good:04d}"
    s = build(spec)
    load_weights(s, ckpt.path)
    assert np.isfinite(s.ex.params).all()
    train, _, _, _ = datasets(s)
    assert np.isfinite(Evaluator(s.ex).evaluate(train, tr.Meter(s.plan), "all")["all_loss"])


# -- 5, 6. accumulation, clipping, penalties (float64, on the Trainer itself) ----------------------
MLP = TINY_MLP


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 3)).astype(np.float32), "label": rng.integers(0, 4, n)}


def _trainer(spec: Path, batch: int, arrays: dict[str, np.ndarray], **cfg: Any) -> Trainer:
    net = netc.load(spec)
    config = {**net.train, "batch_size": batch, **cfg}
    plan = net.compile(batch, optimizer_key(config["optimizer"]))
    ex = Executor(plan, batch, dtype=np.float64, seed=config["seed"], optimizer=plan.optimizer)
    return Trainer(ex, config, Dataset.from_arrays(arrays, net.expanded.inputs), progress=False, plots=False)


@pytest.mark.parametrize(("k", "b"), [(3, 4), (2, 5)])
def test_accumulating_k_batches_of_b_is_one_batch_of_k_times_b(k, b, spec_file):
    spec = spec_file(MLP)
    data = _arrays(k * b)  # one optimizer step in one epoch either way
    big = _trainer(spec, k * b, data)
    small = _trainer(spec, b, data, accumulate=k)
    start = big.ex.params.copy()
    np.testing.assert_array_equal(small.ex.params, start)
    assert big.fit().step == small.fit().step == 1
    assert np.abs(big.ex.params - start).max() > 1e-3  # a real update
    np.testing.assert_allclose(small.ex.params, big.ex.params, rtol=0, atol=1e-6)
    # A wrong normalization (the sum of the k batch gradients) would be far off:
    assert np.abs((small.ex.params - start) * k - (big.ex.params - start)).max() > 1e-3


def _moves(t: Trainer) -> list[np.ndarray]:
    """The parameter change of every optimizer step of ``t.fit()``."""
    before = [t.ex.params.copy()]
    moves: list[np.ndarray] = []

    def record(tt: Trainer) -> None:
        moves.append(tt.ex.params - before[0])
        before[0] = tt.ex.params.copy()

    t.step_callbacks.append(record)
    t.fit()
    return moves


def test_clip_by_value_bounds_every_sgd_step(spec_file):
    lr, v = 0.5, 1e-3
    t = _trainer(spec_file(MLP), 4, _arrays(32), grad_clip={"value": v}, epochs=2)
    moves = _moves(t)
    assert len(moves) == 16
    biggest = max(np.abs(m).max() for m in moves)
    assert biggest <= lr * v * (1 + 1e-12)
    assert biggest == pytest.approx(lr * v, rel=1e-9)  # gradients were larger: the clip acted
    free = _moves(_trainer(spec_file(MLP), 4, _arrays(32), epochs=2))
    assert max(np.abs(m).max() for m in free) > 10 * lr * v


def test_clip_by_norm_bounds_every_sgd_step(spec_file):
    lr, n = 0.5, 1e-2
    moves = _moves(_trainer(spec_file(MLP), 4, _arrays(32), grad_clip={"norm": n}, epochs=2))
    norms = [np.linalg.norm(m) for m in moves]
    assert max(norms) <= lr * n * (1 + 1e-9)
    assert min(norms) >= 0.99 * lr * n  # every gradient was longer than n


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalties_add_their_gradient_to_weights_only(kind, spec_file):
    lr, lam = 0.5, 0.1
    spec = spec_file(MLP)
    data = _arrays(4)
    plain = _trainer(spec, 4, data)
    pen = _trainer(spec, 4, data, **{kind: lam})
    w0 = pen.ex.params.copy()
    plain.fit()
    rec = pen.fit().history[0]
    extra = pen.ex.params - plain.ex.params  # -lr * (penalty gradient)
    weights = 0.0
    for p in pen.plan.params:
        sl = slice(p.offset, p.offset + p.numel)
        if p.name.endswith(".w"):
            grad = np.sign(w0[sl]) * lam if kind == "l1" else w0[sl] * lam
            np.testing.assert_allclose(extra[sl], -lr * grad, rtol=0, atol=1e-12, err_msg=p.name)
            weights += lam * np.abs(w0[sl]).sum() if kind == "l1" else lam / 2 * (w0[sl] ** 2).sum()
        else:
            np.testing.assert_array_equal(extra[sl], 0, err_msg=p.name)  # biases are not penalized
    assert rec["train_penalty"] == pytest.approx(weights, rel=1e-12)


# -- 7. metrics against NumPy -----------------------------------------------------------------------
CLASSIFY = """
netc: 1
name: classify
inputs:
  x: {shape: [2]}
  label: {shape: [], dtype: int64}
modules:
  fc1: {op: linear, in: x, out_features: 8}
  act: {op: relu, in: fc1}
  logits: {op: linear, in: act, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
train: {optimizer: {type: adam, lr: 0.05}, batch_size: 8, epochs: 2, seed: 0}
data: {source: blobs, samples: 50, noise: 4.0, split: {val: 0.26}}
"""


def test_classification_metrics_equal_numpy_on_the_val_split(tmp_path, spec_file):
    spec = spec_file(CLASSIFY)
    _run(spec, tmp_path / "run")
    last = _records(tmp_path / "run")[-1]
    s = build(spec)
    _, val, _, _ = datasets(s)
    assert len(val) == 13  # not a multiple of the batch size 8
    load_weights(s, tmp_path / "run")
    logits = Evaluator(s.ex).predict(val, ["logits"])["logits"].astype(np.float64)
    y = val.arrays["label"]
    z = logits - logits.max(axis=1, keepdims=True)
    nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    assert last["val_accuracy"] == np.mean(logits.argmax(axis=1) == y)
    assert 0 < last["val_accuracy"] < 1
    assert last["val_loss"] == pytest.approx(nll.mean(), rel=1e-6)
    # the mean of the two batch means (a padded or per-batch average) is measurably different
    assert abs((nll[:8].mean() + nll[8:].mean()) / 2 - nll.mean()) > 1e-3


REGRESS = """
netc: 1
name: regress
inputs:
  x: {shape: [3]}
  y: {shape: [2]}
modules:
  fc1: {op: linear, in: x, out_features: 8}
  act: {op: tanh, in: fc1}
  out: {op: linear, in: act, out_features: 2}
losses:
  mse: {op: mse, in: [out, y]}
outputs: [out]
train: {optimizer: {type: adam, lr: 0.01}, batch_size: 4, epochs: 2, seed: 0}
data: {source: npz, path: reg.npz, split: {val: 0.3}}
"""


def test_regression_metrics_equal_numpy_on_the_val_split(tmp_path, spec_file):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 3)).astype(np.float32)
    np.savez(tmp_path / "reg.npz", x=x, y=(x[:, :2] * 2 + 1 + rng.normal(size=(37, 2))).astype(np.float32))
    spec = spec_file(REGRESS)
    _run(spec, tmp_path / "run")
    last = _records(tmp_path / "run")[-1]
    s = build(spec)
    _, val, _, _ = datasets(s)
    assert len(val) == 11
    norm, _ = load_weights(s, tmp_path / "run")
    np.savez(tmp_path / "val.npz", x=val.arrays["x"])
    pred = rr.predict(s, norm, str(tmp_path / "val.npz"))["out"]
    assert pred.shape == (11, 2)
    d = pred.astype(np.float64) - val.arrays["y"]
    assert last["val_mae"] == pytest.approx(np.abs(d).mean(), rel=1e-6)
    assert last["val_rmse"] == pytest.approx(np.sqrt((d * d).mean()), rel=1e-6)
    assert last["val_loss"] == pytest.approx((d * d).mean(), rel=1e-5)


# -- 8. the Model API -----------------------------------------------------------------------------
def test_model_from_spec_fit_evaluate(spec_file):
    spec = spec_file(CLASSIFY)
    model = netc.Model.from_spec(spec)
    r = model.fit(epochs=2, progress=False)
    assert r.status == "finished" and r.epoch == 2 and r.step == 2 * (37 // 8)
    assert [h["epoch"] for h in r.history] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy"} <= r.history[-1].keys()

    x, y = _arrays(21)["x"][:, :2], _arrays(21)["label"] % 3
    got = model.evaluate({"x": x, "label": y})
    assert set(got) == {"loss", "accuracy"}
    logits = model.predict({"x": x})["logits"].astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(21), y]
    assert got["loss"] == pytest.approx(nll.mean(), rel=1e-6)
    assert got["accuracy"] == np.mean(logits.argmax(axis=1) == y)

    before = model.parameters()["fc1.w"].copy()
    r = model.fit({"x": x, "label": y}, val={"x": x, "label": y}, epochs=3, lr=0.05, progress=False)
    assert r.status == "finished" and len(r.history) == 3 and r.step == 3 * (21 // 8)
    assert not np.array_equal(model.parameters()["fc1.w"], before)
    assert r.history[-1]["val_loss"] == pytest.approx(model.evaluate({"x": x, "label": y})["loss"])


def test_model_fit_with_out_keeps_a_run_directory(tmp_path, spec_file):
    model = netc.Model.from_spec(spec_file(CLASSIFY))
    r = model.fit(epochs=1, progress=False, out=tmp_path / "mine")
    assert r.run_dir == tmp_path / "mine"
    assert (tmp_path / "mine" / "weights.safetensors").exists()
    assert [rec["epoch"] for rec in _records(tmp_path / "mine")] == [1]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_eta_counts_only_this_epoch(monkeypatch):
    """Epoch 1 took 100 s for 10 steps; one 1-second step into epoch 2 the ETA is 9 s, not the
    99 s that timing from the start of the run would give."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    stream = _Tty()
    p = tr.Progress(epochs=2, steps=10, stream=stream)
    p.start_epoch(1, 0)
    clock[0] = 100.0
    p.update(1, 10, {})
    p.start_epoch(2, 0)
    clock[0] = 101.0
    p.update(2, 1, {})
    assert stream.getvalue().rsplit("\r", 1)[1].startswith("epoch 2/2 [##--------"), stream.getvalue()
    assert " 1/10 00:01<00:09" in stream.getvalue().rsplit("\r", 1)[1]
    # a resumed epoch: 6 of 10 steps were done before; 2 more in 4 s leave 2 steps, 4 s
    p.start_epoch(2, 6)
    clock[0] = 105.0
    p.update(2, 8, {})
    assert " 8/10 00:04<00:04" in stream.getvalue().rsplit("\r", 1)[1]


@pytest.mark.parametrize(("level", "summaries", "live"), [("live", True, True), ("quiet", True, False),
                                                          ("silent", False, False)])  # fmt: skip
def test_progress_levels(level, summaries, live):
    stream = _Tty()
    p = tr.Progress(epochs=1, steps=4, level=level, stream=stream)
    p.update(1, 4, {"loss": 0.5})
    p.epoch_end(1, {"train_loss": 0.5, "lr": 0.1, "time": 1.0})
    p.message("note: hello")
    text = stream.getvalue()
    assert ("[####" in text) == live
    assert ("epoch 1/1  train_loss 0.5000" in text) == summaries
    assert ("note: hello" in text) == summaries
    with pytest.raises(ValueError, match="expected one of live, quiet, silent"):
        tr.Progress(1, 1, level="loud")


def test_steps_jsonl_has_every_optimizer_step_and_averages_to_the_epoch_loss(tmp_path, spec_file):
    spec = _resume_spec(spec_file, "adam", 1, False, False)
    r = _run(spec, tmp_path / "run")
    steps = rd.read_steps(tmp_path / "run" / "steps.jsonl")
    assert [s["step"] for s in steps] == list(range(1, r.step + 1))
    for rec in _records(tmp_path / "run"):
        mine = [s for s in steps if s["epoch"] == rec["epoch"]]
        assert mine[-1]["step"] == rec["step"]
        assert np.mean([s["loss"] for s in mine]) == pytest.approx(rec["train_loss"], rel=1e-6)
        assert [s["lr"] for s in mine] == rec["lrs"]
        assert np.mean([s["grad_norm"] for s in mine]) == pytest.approx(rec["grad_norm"], rel=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"step": 1, "epoch": 1, "loss": 1.0, "lr": 0.1}\n{"step": 3, "epoch": 1, "loss": 1.0, "lr": 0.1}\n',
         "line 2: step 3 after 1 (out of order)"),
        ('{"step": 1, "epoch": 1, "loss": "x", "lr": 0.1}\n', "line 1"),
        ("not json\n", "line 1: not a JSON record"),
    ],
)  # fmt: skip
def test_a_damaged_step_log_is_named_on_resume(text, message, tmp_path):
    (tmp_path / "steps.jsonl").write_text(text)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        rd.read_steps(tmp_path / "steps.jsonl")


DEEP = MLP.replace(
    "  act: {op: tanh, in: fc1}\n",
    "  bn: {op: batchnorm1d, in: fc1}\n  act: {op: tanh, in: bn}\n  drop: {op: dropout, in: act, p: 0.5}\n"
    "  fc2: {op: linear, in: drop, out_features: 5}\n  act2: {op: relu, in: fc2}\n",
).replace("in: act, out_features: 4", "in: act2, out_features: 4")


def test_histogram_activations_are_each_tensors_own_values_in_network_order(spec_file):
    """The arena gives a tensor's memory to another once its last reader has run: read after the
    pass, an early activation shows a later one's values. The histograms' activations are each
    copied right after its step, in evaluation mode (no running statistic moves)."""
    t = _trainer(spec_file(DEEP), 4, _arrays(12))
    t.fit()
    p = {k: v.astype(np.float64) for k, v in t._named(t.buf.params()).items()}
    before = t.buf.params()
    acts = t._activations()
    np.testing.assert_array_equal(t.buf.params(), before)  # running statistics untouched
    assert list(acts) == ["fc1", "bn", "act", "drop", "fc2", "act2", "logits"]
    x = t.train.arrays["x"][:4].astype(np.float64)
    fc1 = x @ p["fc1.w"].T + p["fc1.b"]
    bn = (fc1 - p["bn.running_mean"]) / np.sqrt(p["bn.running_var"] + 1e-5) * p["bn.w"] + p["bn.b"]
    act2 = np.maximum(np.tanh(bn) @ p["fc2.w"].T + p["fc2.b"], 0)
    want = {"fc1": fc1, "bn": bn, "act": np.tanh(bn), "drop": np.tanh(bn), "act2": act2,
            "logits": act2 @ p["logits.w"].T + p["logits.b"]}  # fmt: skip
    for k, v in want.items():
        np.testing.assert_allclose(acts[k], v, rtol=1e-9, atol=1e-12, err_msg=k)


SEGMENT = """
netc: 1
inputs:
  x: {shape: [3, 2, 2]}
  label: {shape: [2, 2], dtype: int64}
modules:
  logits: {op: conv2d, in: x, out_channels: 4, kernel: 1}
losses:
  ce: {op: cross_entropy, in: [logits, label], axis: 1, ignore_index: 9}
"""


def test_accuracy_reads_the_class_axis_and_skips_ignored_labels(spec_file) -> None:
    from netc.runtime.buffers import buffers
    from netc.runtime.training.metrics import Meter, heads, label_classes

    plan = netc.load(spec_file(SEGMENT)).compile(2)
    (h,) = heads(plan)
    assert (h.axis, h.ignore) == (1, 9) and label_classes(plan) == {"label": 4}
    ex = Executor(plan, 2, dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2, 2))
    ex.forward({"x": x, "label": np.zeros((2, 2, 2), np.int64)})
    pred = buffers(ex).view("logits").argmax(axis=1)
    label = pred.copy()
    label[0, 0, 0] = 9  # ignored: not counted
    label[1, 1, 1] = (pred[1, 1, 1] + 1) % 4  # one wrong of the 7 counted
    ex.forward({"x": x, "label": label})
    meter = Meter(plan)
    meter.add(ex, 2)
    assert meter.metrics("train")["train_accuracy"] == pytest.approx(6 / 7)
