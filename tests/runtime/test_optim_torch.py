"""Every optimizer, clipping and the L1/L2 penalty equal their PyTorch
counterparts on the flat buffers; the ledger counts exactly the state each
optimizer configuration keeps."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

import netc
from netc.compiler.plan import OPTIMIZER_SLOTS, optimizer_key
from netc.runtime.executor import Executor
from netc.runtime.optim import (
    Optimizer,
    clip_by_norm,
    clip_by_value,
    global_norm,
    penalty,
    segments,
    weight_segments,
)

ROOT = Path(__file__).resolve().parents[2]
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())

# The parameter buffer: (name, numel, trainable, lr_mult, decays). The frozen
# one makes parameter and gradient offsets differ; "b" is exempt from decay.
PARAMS = [("w1", 12, True, 1.0, True), ("frozen", 5, False, 1.0, True), ("b", 4, True, 1.0, False),
          ("w2", 9, True, 0.25, True), ("w3", 6, True, 1.0, True)]  # fmt: skip
STEPS = 50


def _layout() -> tuple[np.ndarray, int, int]:
    rows, po, go = [], 0, 0
    for _, n, trainable, mult, decays in PARAMS:
        if trainable:
            rows.append((po, go, n, round(mult * 1e6), int(decays)))
            go += n
        po += n
    return np.array(rows, np.int64), po, go


def _torch_groups(tensors: dict[str, torch.Tensor], hyper: dict) -> list[dict]:
    lr = hyper["lr"]
    wd = hyper.get("weight_decay")
    groups = []
    for name, _, trainable, mult, decays in PARAMS:
        if not trainable:
            continue
        g = {"params": [tensors[name]], "lr": lr * mult}
        if not decays:
            g["weight_decay"] = 0.0
        elif wd is not None:
            g["weight_decay"] = wd
        groups.append(g)
    return groups


TORCH = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
}

CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.05}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05}),
    ("momentum", {"lr": 0.05}),  # torch.optim.SGD with momentum 0.9
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "weight_decay": 0.1, "betas": [0.8, 0.99], "eps": 1e-6}),
    ("adamw", {"lr": 0.01}),  # torch's default weight_decay 1e-2
    ("adamw", {"lr": 0.01, "weight_decay": 0.2}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.9}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "alpha": 0.9}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.1}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("adagrad", {"lr": 0.1, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5}),
    ("adadelta", {"lr": 1.0}),
    ("adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4}),
    ("adadelta", {"lr": 1.0, "weight_decay": 0.1}),  # "b" is in no_decay: its group has none
]


SPEC = """
netc: 1
name: t
inputs: {{x: {{shape: [3]}}}}
modules: {{fc: {{op: linear, in: x, out_features: 3}}}}
losses: {{l: {{op: mse, in: [fc, x]}}}}
train:
  optimizer: {}
"""


def _spec_config(kind: str, hyper: dict, spec_file) -> dict:
    """train.optimizer as netc.load fills it in (schema defaults included)."""
    text = SPEC.format(json.dumps({"type": kind, **hyper, "no_decay": ["bias"]}))
    return netc.load(spec_file(text)).train["optimizer"]


def _run_both(kind: str, hyper: dict, cfg: dict, dtype, steps: int = STEPS):
    segs, n_params, n_grads = _layout()
    rng = np.random.default_rng(7)
    p = rng.standard_normal(n_params).astype(dtype)
    g = np.zeros(n_grads, dtype)
    key = optimizer_key(cfg)
    state = np.zeros((OPTIMIZER_SLOTS[key], n_grads), dtype)
    opt = Optimizer.from_config(cfg, p, g, segs, state)
    tensors, off = {}, 0
    for name, n, *_ in PARAMS:
        tensors[name] = torch.tensor(p[off : off + n].copy(), requires_grad=True)
        off += n
    thyper = {k: v for k, v in hyper.items() if k != "lr"}
    if kind == "momentum":
        thyper.setdefault("momentum", 0.9)
    ref = TORCH[kind](_torch_groups(tensors, hyper), lr=hyper["lr"], **thyper)
    trainable = [n for n, _, t, *_ in PARAMS if t]
    for _ in range(steps):
        g[:] = rng.standard_normal(n_grads).astype(dtype)
        go = 0
        for name in trainable:
            n = tensors[name].numel()
            tensors[name].grad = torch.tensor(g[go : go + n].copy())
            go += n
        opt.step()
        ref.step()
    return opt, p, tensors, ref


@pytest.mark.parametrize(("kind", "hyper"), CASES, ids=[f"{k}-{'-'.join(h) or 'plain'}" for k, h in CASES])
def test_optimizer_equals_torch_over_50_steps(kind, hyper, spec_file):
    cfg = _spec_config(kind, hyper, spec_file)
    opt, p, tensors, ref = _run_both(kind, hyper, cfg, np.float64)
    off = 0
    for name, n, *_ in PARAMS:
        got, want = p[off : off + n], tensors[name].detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)
        off += n
    # The frozen parameter never moved: its value is still the initial one.
    rng = np.random.default_rng(7)
    np.testing.assert_array_equal(p[12:17], rng.standard_normal(36)[12:17])
    # Each state row holds torch's state of the same name (what a checkpoint saves).
    go = 0
    for name, n, trainable, *_ in PARAMS:
        if not trainable:
            continue
        tstate = ref.state[tensors[name]]
        for row, slot in enumerate(opt.slot_names):
            got, want = opt.state[row, go : go + n], tstate[slot].numpy()
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"{name}.{slot}")
        go += n
    assert opt.t == STEPS


@pytest.mark.parametrize(
    ("kind", "hyper"),
    [
        ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("adamw", {"lr": 0.01}),
        ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
        ("adagrad", {"lr": 0.1, "lr_decay": 0.01}),
        ("adadelta", {"lr": 1.0, "weight_decay": 0.05}),
    ],
)
def test_optimizer_float32_equals_torch(kind, hyper):
    opt, p, tensors, _ = _run_both(kind, hyper, {"type": kind, **hyper}, np.float32)
    assert p.dtype == np.float32 and opt.state.dtype == np.float32
    off = 0
    for name, n, *_ in PARAMS:
        got, want = p[off : off + n], tensors[name].detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
        off += n


def test_defaults_are_torchs(spec_file):
    segs, n_params, n_grads = _layout()
    p, g = np.zeros(n_params), np.zeros(n_grads)
    torch_defaults = {
        "sgd": torch.optim.SGD([torch.zeros(1)]).defaults,
        "adam": torch.optim.Adam([torch.zeros(1)]).defaults,
        "adamw": torch.optim.AdamW([torch.zeros(1)]).defaults,
        "rmsprop": torch.optim.RMSprop([torch.zeros(1)]).defaults,
        "adagrad": torch.optim.Adagrad([torch.zeros(1)]).defaults,
        "adadelta": torch.optim.Adadelta([torch.zeros(1)]).defaults,
    }
    for kind, ref in torch_defaults.items():
        # As the spec gives it: the schema's filled-in defaults must not override torch's.
        cfg = netc.load(spec_file(SPEC.format(f"{{type: {kind}}}"))).train["optimizer"]
        opt = Optimizer.from_config(cfg, p, g, segs)
        assert opt.hp, kind
        for k, v in opt.hp.items():
            assert ref[k] == (tuple(v) if k == "betas" else v), (kind, k)
    assert Optimizer.from_config({"type": "momentum"}, p, g, segs).hp["momentum"] == 0.9


def test_resume_from_state_dict_continues_exactly():
    segs, n_params, n_grads = _layout()
    for cfg in ({"type": "sgd", "lr": 0.1, "momentum": 0.9}, {"type": "adam", "lr": 0.01},
                {"type": "adagrad", "lr": 0.1, "initial_accumulator_value": 0.3},
                {"type": "adadelta", "rho": 0.8, "weight_decay": 0.01},
                {"type": "rmsprop", "centered": True, "momentum": 0.9}):  # fmt: skip
        rng = np.random.default_rng(1)
        grads = rng.standard_normal((30, n_grads))
        p0 = rng.standard_normal(n_params)
        whole = Optimizer.from_config(cfg, p0.copy(), np.zeros(n_grads), segs)
        for gi in grads:
            whole.g[:] = gi
            whole.step()
        first = Optimizer.from_config(cfg, p0.copy(), np.zeros(n_grads), segs)
        for gi in grads[:12]:
            first.g[:] = gi
            first.step()
        saved = json.loads(json.dumps(first.state_dict()))
        # A fresh optimizer on the restored buffers (state restored before construction).
        again = Optimizer.from_config(cfg, first.p.copy(), np.zeros(n_grads), segs, first.state.copy())
        again.load_state_dict(saved)
        for gi in grads[12:]:
            again.g[:] = gi
            again.step()
        np.testing.assert_array_equal(again.p, whole.p, err_msg=str(cfg))
        np.testing.assert_array_equal(again.state, whole.state, err_msg=str(cfg))
    with pytest.raises(ValueError, match="'rmsprop_centered_momentum'"):
        Optimizer.from_config({"type": "sgd"}, p0, np.zeros(n_grads), segs).load_state_dict(saved)


def test_lr_property_drives_the_update():
    segs, n_params, n_grads = _layout()
    p, g = np.ones(n_params), np.ones(n_grads)
    opt = Optimizer.from_config({"type": "sgd", "lr": 0.5}, p, g, segs)
    assert opt.lr == 0.5
    opt.lr = 0.25
    opt.step()
    assert p[0] == 0.75 and p[-1] == 0.75  # w1 and w3 moved by lr
    assert p[12] == 1.0  # the frozen parameter did not move
    assert p[21] == 1.0 - 0.25 * 0.25  # w2 has lr_mult 0.25


def test_old_constructor_and_bad_hyperparameters():
    segs, n_params, n_grads = _layout()
    p, g = np.zeros(n_params), np.zeros(n_grads)
    opt = Optimizer("momentum", p, g, segs, state=np.zeros((1, n_grads)), lr=0.05, momentum=0.9)
    assert opt.key == "momentum" and opt.slot_names == ["momentum_buffer"]
    assert Optimizer("rmsprop_centered", p, g, segs).slot_names == ["square_avg", "grad_avg"]
    # Model falls back to {"type": plan.optimizer}: a ledger key keeps what it implies.
    assert Optimizer.from_config({"type": "rmsprop_centered"}, p, g, segs).key == "rmsprop_centered"
    with pytest.raises(TypeError, match="betas"):
        Optimizer("sgd", p, g, segs, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match=r"needs state \(2, 31\)"):
        Optimizer("adam", p, g, segs, state=np.zeros((1, n_grads)))
    with pytest.raises(ValueError, match=r"train\.optimizer\.nesterov"):
        Optimizer.from_config({"type": "sgd", "nesterov": True}, p, g, segs)
    with pytest.raises(ValueError, match=r"train\.optimizer\.type"):
        Optimizer.from_config({"type": "lion"}, p, g, segs)


# -- the ledger ----------------------------------------------------------------


def test_optimizer_key_counts_the_state_each_configuration_keeps():
    cases = {
        "sgd": [{}, {"type": "sgd"}, {"type": "sgd", "momentum": 0}, {"type": "momentum", "momentum": 0}],
        "momentum": [{"type": "sgd", "momentum": 0.9}, {"type": "momentum"}],
        "adam": [{"type": "adam", "betas": [0.9, 0.99]}],
        "adamw": [{"type": "adamw"}],
        "rmsprop": [{"type": "rmsprop"}, {"type": "rmsprop", "momentum": 0.0, "centered": False}],
        "rmsprop_momentum": [{"type": "rmsprop", "momentum": 0.9}],
        "rmsprop_centered": [{"type": "rmsprop", "centered": True}],
        "rmsprop_centered_momentum": [{"type": "rmsprop", "centered": True, "momentum": 0.1}],
        "adagrad": [{"type": "adagrad", "lr_decay": 0.1}],
        "adadelta": [{"type": "adadelta"}, {"type": "adadelta", "rho": 0.5}],
    }
    segs, n_params, n_grads = _layout()
    for key, cfgs in cases.items():
        for cfg in cfgs:
            assert optimizer_key(cfg) == key, cfg
            opt = Optimizer.from_config(cfg, np.zeros(n_params), np.zeros(n_grads), segs)
            assert opt.key == key and opt.state.shape == (OPTIMIZER_SLOTS[key], n_grads)
            assert len(opt.slot_names) == OPTIMIZER_SLOTS[key]
    with pytest.raises(ValueError, match="lion"):
        optimizer_key({"type": "lion"})
    assert PLAN_SCHEMA["properties"]["optimizer"]["enum"] == list(OPTIMIZER_SLOTS)


NET = """
netc: 1
name: opt_net
inputs:
  x: {shape: [6]}
  y: {shape: [], dtype: int64}
modules:
  fc1: {op: linear, in: x, out_features: 8, lr_mult: 0.5}
  bn: {op: batchnorm1d, in: fc1}
  act: {op: relu, in: bn}
  frozen: {op: linear, in: act, out_features: 8, trainable: false}
  fc2: {op: linear, in: frozen, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [fc2, y]}
"""


# One train.optimizer per ledger key.
KEY_CONFIGS = {
    "sgd": {"type": "sgd"},
    "momentum": {"type": "momentum"},
    "adam": {"type": "adam"},
    "adamw": {"type": "adamw"},
    "rmsprop": {"type": "rmsprop"},
    "rmsprop_momentum": {"type": "rmsprop", "momentum": 0.9},
    "rmsprop_centered": {"type": "rmsprop", "centered": True},
    "rmsprop_centered_momentum": {"type": "rmsprop", "centered": True, "momentum": 0.9},
    "adagrad": {"type": "adagrad"},
    "adadelta": {"type": "adadelta"},
}


@pytest.mark.parametrize("key", list(OPTIMIZER_SLOTS))
def test_ledger_and_executor_hold_exactly_the_state(key, spec_file):
    plan = netc.load(spec_file(NET)).compile(4, optimizer=key)
    led = plan.memory["ledger"]
    assert led["optimizer_bytes"] == OPTIMIZER_SLOTS[key] * led["grads_bytes"] > 0 or key == "sgd"
    jsonschema.validate(json.loads(plan.to_json()), PLAN_SCHEMA)
    ex = Executor(plan, 4, optimizer=key)
    opt = Optimizer.from_config(KEY_CONFIGS[key], ex.params, ex.grads, segments(plan), ex.opt_state)
    assert opt.key == key
    assert opt.state is ex.opt_state and opt.slots == ex.opt_state.shape[0] == OPTIMIZER_SLOTS[key]
    ex.grads[:] = 1.0
    before = ex.params.copy()
    opt.step()
    assert not np.array_equal(ex.params, before)


def test_segments_roles_lr_mult_and_no_decay(spec_file):
    plan = netc.load(spec_file(NET)).compile(4)
    info = {p.name: p for p in plan.params}
    rows = {tuple(r[:3]): r for r in segments(plan, no_decay=("bias", "norm"))}
    for p in plan.params:
        if not p.trainable:
            assert all(r[0] != p.offset for r in rows.values())
            continue
        r = rows[(p.offset, p.grad_offset, p.numel)]
        assert r[3] == (500000 if p.module == "fc1" else 1000000)
        assert r[4] == (1 if p.role == "weight" else 0)
    w = weight_segments(plan)
    assert sorted(int(r[0]) for r in w) == sorted(info[n].offset for n in ("fc1.w", "fc2.w"))
    assert all(r[4] == 1 for r in w)
    assert len(segments(plan, roles=("norm",))) == 2


# -- clipping and penalties ---------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_by_norm_equals_torch(max_norm):
    rng = np.random.default_rng(3)
    sizes = [7, 20, 3]
    g = rng.standard_normal(sum(sizes))
    g0 = g.copy()
    tensors = [torch.zeros(n, requires_grad=True, dtype=torch.float64) for n in sizes]
    for t, part in zip(tensors, np.split(g, np.cumsum(sizes)[:-1]), strict=True):
        t.grad = torch.tensor(part.copy())
    ref = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    norm = clip_by_norm(g, max_norm)
    assert norm == pytest.approx(ref.item(), rel=1e-12)
    assert norm == pytest.approx(np.linalg.norm(g0), rel=1e-12)
    np.testing.assert_allclose(g, torch.cat([t.grad for t in tensors]).numpy(), rtol=1e-12)
    if max_norm < norm:
        assert np.linalg.norm(g) == pytest.approx(max_norm, rel=1e-5)
    else:
        np.testing.assert_array_equal(g, g0)


def test_clip_by_value_and_global_norm():
    rng = np.random.default_rng(4)
    g = rng.standard_normal(50).astype(np.float32) * 3
    t = torch.tensor(g.copy())
    t.grad = t.clone()
    torch.nn.utils.clip_grad_value_([t], 1.5)
    clip_by_value(g, 1.5)
    np.testing.assert_array_equal(g, t.grad.numpy())
    assert g.max() == np.float32(1.5) and g.min() == np.float32(-1.5)
    # float64 accumulation: 1e6 float32 ones sum exactly.
    ones = np.ones(1_000_000, np.float32) * np.float32(0.1)
    assert global_norm(ones) == pytest.approx(np.sqrt(1e6) * float(np.float32(0.1)), rel=1e-12)


def test_penalty_gradient_equals_autograd():
    segs, n_params, n_grads = _layout()
    rng = np.random.default_rng(5)
    p = rng.standard_normal(n_params)
    p[0] = 0.0  # |w| at 0: autograd's subgradient is 0
    g = rng.standard_normal(n_grads)
    g0 = g.copy()
    chosen = segs[[0, 2]]  # w1 and w2 only
    l1, l2 = 0.03, 0.2
    value = penalty(p, g, chosen, l1, l2)
    w = [torch.tensor(p[r[0] : r[0] + r[2]].copy(), requires_grad=True) for r in chosen]
    ref = sum(l1 * t.abs().sum() + l2 / 2 * (t * t).sum() for t in w)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    expect = g0.copy()
    for r, t in zip(chosen, w, strict=True):
        expect[r[1] : r[1] + r[2]] += t.grad.numpy()
    np.testing.assert_allclose(g, expect, rtol=1e-12)
    assert g[12:16].tolist() == g0[12:16].tolist()  # "b" untouched
