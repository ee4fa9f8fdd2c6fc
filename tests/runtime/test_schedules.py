"""Every LR schedule's sequence equals torch.optim.lr_scheduler's, called at the
same granularity; warmup multiplies on top; state_dict resumes exactly; a
config missing a required field fails naming the field."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.optim import lr_scheduler as S

import netc
from netc.runtime.schedules import Schedule, make_schedule
from netc.spec.errors import SpecError

BASE = 0.1
SPE, EPOCHS = 5, 8  # optimizer steps per epoch, epochs
# A validation loss with plateaus, a tiny (sub-threshold) gain and recoveries.
VAL = [1.0, 0.9, 0.9, 0.9, 0.95, 0.85, 0.85, 0.85, 0.849999, 0.849999, 0.7, 0.7, 0.7, 0.7, 0.6]


def _ours(cfg, epochs=EPOCHS, spe=SPE, metrics=None) -> list[float]:
    s = make_schedule(cfg, BASE, spe, epochs)
    out = []
    for e in range(epochs):
        for _ in range(spe):
            out.append(s.lr)
            s.after_step()
        s.after_epoch(metrics[e] if metrics else {"val_loss": 0.0})
    return out


def _torch(make, per: str, epochs=EPOCHS, spe=SPE, metric=None) -> list[float]:
    """LRs torch gives, its scheduler stepped after each optimizer step or at each epoch end."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)
    sched = make(opt)
    out = []
    for e in range(epochs):
        for _ in range(spe):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if per == "step":
                sched.step()
        if per == "epoch":
            sched.step(metric[e]) if metric else sched.step()
    return out


CASES = [
    ({"type": "constant"}, "epoch", lambda o: S.ConstantLR(o, factor=1.0)),
    ({"type": "step", "step_size": 2, "gamma": 0.5}, "epoch", lambda o: S.StepLR(o, 2, gamma=0.5)),
    ({"type": "step", "step_size": 3}, "epoch", lambda o: S.StepLR(o, 3)),
    ({"type": "step", "step_size": 7, "per": "step"}, "step", lambda o: S.StepLR(o, 7)),
    (
        {"type": "multistep", "milestones": [5, 2], "gamma": 0.3},
        "epoch",
        lambda o: S.MultiStepLR(o, [2, 5], 0.3),
    ),
    ({"type": "exponential", "gamma": 0.8}, "epoch", lambda o: S.ExponentialLR(o, 0.8)),
    ({"type": "exponential", "gamma": 0.97, "per": "step"}, "step", lambda o: S.ExponentialLR(o, 0.97)),
    ({"type": "inverse_sqrt"}, "step", lambda o: S.LambdaLR(o, lambda t: 1 / math.sqrt(t + 1))),
    ({"type": "cosine"}, "step", lambda o: S.CosineAnnealingLR(o, SPE * EPOCHS)),
    ({"type": "cosine", "T_max": 12, "eta_min": 0.01}, "step", lambda o: S.CosineAnnealingLR(o, 12, 0.01)),
    (
        {"type": "cosine", "per": "epoch", "eta_min": 0.001},
        "epoch",
        lambda o: S.CosineAnnealingLR(o, EPOCHS, 0.001),
    ),
    ({"type": "cosine_restarts", "T_0": 6}, "step", lambda o: S.CosineAnnealingWarmRestarts(o, 6)),
    (
        {"type": "cosine_restarts", "T_0": 3, "T_mult": 2, "eta_min": 0.002},
        "step",
        lambda o: S.CosineAnnealingWarmRestarts(o, 3, 2, 0.002),
    ),
    (
        {"type": "cosine_restarts", "T_0": 2, "T_mult": 2, "per": "epoch"},
        "epoch",
        lambda o: S.CosineAnnealingWarmRestarts(o, 2, 2),
    ),
    (
        {"type": "cyclic", "base_lr": 0.01, "max_lr": 0.2, "step_size_up": 4},
        "step",
        lambda o: S.CyclicLR(o, 0.01, 0.2, step_size_up=4, cycle_momentum=False),
    ),
    (
        {"type": "cyclic", "max_lr": 0.3, "step_size_up": 3, "step_size_down": 5, "mode": "triangular2"},
        "step",
        lambda o: S.CyclicLR(o, BASE, 0.3, 3, 5, mode="triangular2", cycle_momentum=False),
    ),
    (
        {
            "type": "cyclic",
            "base_lr": 0.01,
            "max_lr": 0.2,
            "step_size_up": 3,
            "mode": "exp_range",
            "gamma": 0.95,
        },
        "step",
        lambda o: S.CyclicLR(o, 0.01, 0.2, 3, mode="exp_range", gamma=0.95, cycle_momentum=False),
    ),
    (
        {"type": "one_cycle", "max_lr": 0.5},
        "step",
        lambda o: S.OneCycleLR(o, 0.5, total_steps=SPE * EPOCHS, cycle_momentum=False),
    ),
    (
        {
            "type": "one_cycle",
            "pct_start": 0.25,
            "anneal_strategy": "linear",
            "div_factor": 10,
            "final_div_factor": 100,
        },
        "step",
        lambda o: S.OneCycleLR(
            o,
            BASE,
            epochs=EPOCHS,
            steps_per_epoch=SPE,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10,
            final_div_factor=100,
            cycle_momentum=False,
        ),
    ),
    (
        {"type": "one_cycle", "max_lr": 0.4, "per": "epoch"},
        "epoch",
        lambda o: S.OneCycleLR(o, 0.4, total_steps=EPOCHS, cycle_momentum=False),
    ),
]


@pytest.mark.parametrize(("cfg", "per", "make"), CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_schedule_equals_torch(cfg, per, make):
    ours = _ours(cfg)
    ref = _torch(make, per)
    assert len(ours) == SPE * EPOCHS
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-14)
    assert Schedule(cfg, BASE, SPE, EPOCHS).per == per or cfg["type"] == "constant"


@pytest.mark.parametrize(
    ("cfg", "make"),
    [
        (
            {"type": "reduce_on_plateau", "factor": 0.5, "patience": 1},
            lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=1),
        ),
        (
            {"type": "reduce_on_plateau", "factor": 0.3, "patience": 0, "cooldown": 2, "min_lr": 0.005},
            lambda o: S.ReduceLROnPlateau(o, factor=0.3, patience=0, cooldown=2, min_lr=0.005),
        ),
        (
            {"type": "reduce_on_plateau", "patience": 2, "threshold": 0.05},
            lambda o: S.ReduceLROnPlateau(o, patience=2, threshold=0.05),
        ),
    ],
)
def test_reduce_on_plateau_equals_torch(cfg, make):
    epochs = len(VAL)
    ours = _ours(cfg, epochs=epochs, spe=2, metrics=[{"val_loss": v, "loss": 9.0} for v in VAL])
    ref = _torch(make, "epoch", epochs=epochs, spe=2, metric=VAL)
    assert ours == pytest.approx(ref, rel=1e-12)
    assert min(ours) < BASE  # the sequence did reduce


def test_reduce_on_plateau_max_mode_on_another_metric():
    acc = [0.5, 0.6, 0.6, 0.6, 0.61, 0.61, 0.61, 0.7, 0.7, 0.7]
    cfg = {"type": "reduce_on_plateau", "mode": "max", "monitor": "val_acc", "patience": 1, "factor": 0.5}
    ours = _ours(cfg, epochs=len(acc), spe=1, metrics=[{"val_acc": a} for a in acc])
    ref = _torch(lambda o: S.ReduceLROnPlateau(o, "max", 0.5, 1), "epoch", epochs=len(acc), spe=1, metric=acc)
    assert ours == pytest.approx(ref, rel=1e-12) and min(ours) < BASE


def test_reduce_on_plateau_without_its_metric_says_which():
    s = make_schedule({"type": "reduce_on_plateau"}, BASE, 1, 3)
    with pytest.raises(ValueError, match=r"train\.schedule\.monitor.*'val_loss'.*loss, val_acc"):
        s.after_epoch({"loss": 1.0, "val_acc": 0.5})


def test_warmup_is_torchs_linear_lr():
    ours = _ours({"type": "constant", "warmup": 7})
    ref = _torch(lambda o: S.LinearLR(o, start_factor=1 / 8, total_iters=7), "step")
    assert ours == pytest.approx(ref, rel=1e-12)
    assert ours[0] == pytest.approx(BASE / 8) and ours[7] == BASE and ours[6] < BASE


@pytest.mark.parametrize(
    ("cfg", "per", "make"),
    [
        ({"type": "cosine", "warmup": 6}, "step", lambda o: S.CosineAnnealingLR(o, SPE * EPOCHS)),
        ({"type": "step", "step_size": 1, "gamma": 0.5, "warmup": 8}, "epoch", lambda o: S.StepLR(o, 1, 0.5)),
    ],
)
def test_warmup_multiplies_the_schedule(cfg, per, make):
    w = cfg["warmup"]
    warm = _torch(lambda o: S.LinearLR(o, start_factor=1 / (w + 1), total_iters=w), "step")
    sched = _torch(make, per)
    assert _ours(cfg) == pytest.approx([a * b / BASE for a, b in zip(warm, sched, strict=True)], rel=1e-9)


@pytest.mark.parametrize(
    "cfg",
    [
        {"type": "cosine", "warmup": 10},
        {"type": "multistep", "milestones": [1, 3], "warmup": 4},
        {"type": "cyclic", "max_lr": 0.3, "step_size_up": 3, "mode": "triangular2"},
        {"type": "one_cycle"},
        {"type": "cosine_restarts", "T_0": 3, "T_mult": 2},
        {"type": "reduce_on_plateau", "patience": 0, "cooldown": 1},
    ],
)
def test_resume_from_state_dict_reproduces_the_sequence(cfg):
    metrics = [{"val_loss": v} for v in VAL[:EPOCHS]]
    whole = _ours(cfg, metrics=metrics)
    s = make_schedule(cfg, BASE, SPE, EPOCHS)
    seq = []
    for e in range(EPOCHS):
        if e == 4:  # stop after 4 epochs and 2 steps, resume from JSON in a fresh schedule
            saved = json.loads(json.dumps(s.state_dict(), allow_nan=False))
            s = make_schedule(cfg, BASE, SPE, EPOCHS)
            s.load_state_dict(saved)
        for i in range(SPE):
            if e == 3 and i == 2:
                saved = json.loads(json.dumps(s.state_dict(), allow_nan=False))
                s = make_schedule(cfg, BASE, SPE, EPOCHS)
                s.load_state_dict(saved)
            seq.append(s.lr)
            s.after_step()
        s.after_epoch(metrics[e])
    assert seq == whole
    assert len(set(whole)) > 1


def test_no_schedule_is_constant():
    s = make_schedule(None, 0.3, 10, 2)
    for _ in range(25):
        assert s.lr == 0.3
        s.after_step()
    s.after_epoch({})


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        ({"type": "step"}, "step_size"),
        ({"type": "multistep", "gamma": 0.5}, "milestones"),
        ({"type": "exponential"}, "gamma"),
        ({"type": "cosine_restarts"}, "T_0"),
        ({"type": "cyclic", "base_lr": 0.01}, "max_lr"),
        ({"type": "step", "step_size": 2, "milestones": [3]}, "milestones"),
        ({"type": "step", "step_size": 0}, "step_size"),
        ({"type": "cyclic", "max_lr": 1.0, "mode": "min"}, "mode"),
        ({"type": "reduce_on_plateau", "per": "step"}, "per"),
        ({"type": "warm"}, "type"),
    ],
)
def test_bad_config_names_the_field(cfg, field):
    with pytest.raises(ValueError, match=rf"train\.schedule\.{field}\b"):
        make_schedule(cfg, BASE, SPE, EPOCHS)


def test_validate_catches_a_missing_schedule_field(spec_file):
    text = """
    netc: 1
    name: t
    inputs: {x: {shape: [3]}}
    modules: {fc: {op: linear, in: x, out_features: 3}}
    losses: {l: {op: mse, in: [fc, x]}}
    train:
      schedule: {type: cyclic, base_lr: 0.01}
    """
    with pytest.raises(SpecError) as err:
        netc.load(spec_file(text))
    assert "section 'train.schedule' is missing required key 'max_lr'" in str(err.value)
    ok = netc.load(spec_file(text.replace("base_lr: 0.01", "max_lr: 0.1"))).train
    # The schema fills only type and warmup; each schedule applies its own defaults.
    assert ok["schedule"] == {"type": "cyclic", "max_lr": 0.1, "warmup": 0}
