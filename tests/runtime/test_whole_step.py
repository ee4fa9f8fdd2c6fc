"""Whole-step native code (runtime/wholestep.py): one generated numba function runs a plan's step
bit for bit like the per-op replay, allocates nothing, lives in the kernel cache, loads warm
without compiling, and plans it cannot run stay per op with the reason.

One compile per example (NETC_WHOLE_STEP=sync; the suite's default is off, tests/conftest.py)."""

import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from harness import REPO as ROOT
from harness import SMALL_EXAMPLES as SMALL
from harness import TINY_MLP
from numba.core.runtime import _nrt_python, rtsys
from tinyspec import arith

import netc
from netc.compiler.plan import optimizer_key
from netc.runtime import wholestep
from netc.runtime.binding import nothing
from netc.runtime.check import random_inputs
from netc.runtime.data import Dataset
from netc.runtime.executor import Executor
from netc.runtime.kernels import relu
from netc.runtime.launch import Seq
from netc.runtime.optim import Optimizer, segments
from netc.runtime.train import Trainer

BATCH = 4


def _pair(monkeypatch, plan, batch=BATCH):
    """(per-op executor, whole-step executor) on one plan, same seed."""
    monkeypatch.setenv("NETC_WHOLE_STEP", "0")
    a = Executor(plan, batch, seed=3)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    b = Executor(plan, batch, seed=3)
    return a, b


def _same(a, b):
    assert a.losses() == b.losses()
    assert np.array_equal(a.grads, b.grads)
    for k, v in a.outputs().items():
        assert np.array_equal(b.outputs()[k], v), k


@pytest.mark.parametrize("name", SMALL)
def test_training_step_equals_per_op_bitwise(monkeypatch, name):
    plan = netc.load(ROOT / "examples" / f"{name}.yaml").compile(BATCH)
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason  # every CPU binder returns Launch thunks
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.set_inputs(inputs)
        ex.state.seed[0] = 11
        ex.step()
    _same(a, b)
    # forward and backward apart (two native calls) compute the same, and again: deterministic
    b.grads[:] = np.nan
    b.forward()
    b.backward()
    _same(a, b)
    assert b.allocated_bytes == plan.memory["ledger"]["training_peak_bytes"]


def test_the_new_losses_run_whole_step(monkeypatch, spec_file):
    # smooth_l1 (β passed to the pointwise loops), nll_loss and cross_entropy over axis 1 with
    # class weights and ignore_index (float64 weights, int and bool arguments in the Launch)
    text = """
    netc: 1
    inputs:
      x: {shape: [3, 2, 2]}
      label: {shape: [2, 2], dtype: int64}
      t: {shape: [4, 2, 2]}
    modules:
      logits: {op: conv2d, in: x, out_channels: 4, kernel: 1}
      logp: {op: log_softmax, in: logits, axis: 0}
    losses:
      ce: {op: cross_entropy, in: [logits, label], axis: 1, ignore_index: 3, class_weights: [1, 2, 0.5, 1],
           label_smoothing: 0.1}
      nll: {op: nll_loss, in: [logp, label], axis: 1, reduction: sum}
      h: {op: smooth_l1, in: [logits, t], beta: 0.5}
    """
    plan = netc.load(spec_file(text)).compile(BATCH)
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason
    inputs = random_inputs(plan, BATCH, seed=5)
    inputs["label"][0, 0, 0] = 3
    for ex in (a, b):
        ex.set_inputs(inputs)
        ex.step()
    _same(a, b)


ARITH = arith(3)


def test_the_arithmetic_ops_run_whole_step(monkeypatch, spec_file):
    # constants, broadcast mul/sub/div, a 3-input broadcast add with relu fused, matmul
    plan = netc.load(spec_file(ARITH)).compile(BATCH)
    assert any(f["kind"] == "epilogue" for f in plan.fusion), plan.fusion
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.set_inputs(inputs)
        ex.step()
    _same(a, b)


@pytest.mark.parametrize("name", SMALL)
def test_inference_plan_equals_per_op_bitwise(monkeypatch, name):
    plan = netc.load(ROOT / "examples" / f"{name}.yaml").compile(BATCH, mode="inference")
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason  # every CPU binder returns Launch thunks
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.forward(inputs)
    for k, v in a.outputs().items():
        assert np.array_equal(b.outputs()[k], v), k


def test_an_inference_chain_runs_whole_step(monkeypatch, spec_file):
    # chains (compiler.fusion): one headed by linear, one by their first activation
    text = """
    netc: 1
    inputs:
      x: {shape: [12]}
    modules:
      s: {op: sigmoid, in: x}
      r: {op: relu, in: s}
      fc: {op: linear, in: r, out_features: 8}
      t: {op: tanh, in: fc}
      g: {op: gelu, in: t}
      e: {op: elu, in: g, alpha: 0.5}
    outputs: [e]
    """
    plan = netc.load(spec_file(text)).compile(BATCH, mode="inference")
    assert [d["kind"] for d in plan.fusion] == ["epilogue", "chain"]
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.forward(inputs)
    assert np.array_equal(b.outputs()["e"], a.outputs()["e"])


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_the_newer_activations_run_whole_step(monkeypatch, spec_file, mode):
    # relu6/hardtanh fused in training, the rest in inference (three of them chained), prelu's slope
    text = """
    netc: 1
    inputs:
      x: {shape: [3, 5]}
      y: {shape: [], dtype: int64}
    modules:
      pr: {op: prelu, in: x, num_parameters: 3}
      fc: {op: linear, in: pr, out_features: 8}
      r6: {op: relu6, in: fc}
      fc2: {op: linear, in: r6, out_features: 8}
      hs: {op: hardswish, in: fc2}
      si: {op: silu, in: hs}
      sp: {op: softplus, in: si, beta: 2.0}
      flat: {op: flatten, in: sp}
      fc3: {op: linear, in: flat, out_features: 6}
      ht: {op: hardtanh, in: fc3, min_val: -0.5}
      se: {op: selu, in: ht}
      hsig: {op: hardsigmoid, in: se}
      logits: {op: linear, in: hsig, out_features: 3}
    losses:
      ce: {op: cross_entropy, in: [logits, y]}
    outputs: [logits]
    """
    plan = netc.load(spec_file(text)).compile(BATCH, mode=mode)
    assert plan.fusion
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.forward(inputs)
        if mode == "training":
            ex.backward()
    assert np.array_equal(b.outputs()["logits"], a.outputs()["logits"])
    if mode == "training":
        _same(a, b)


def test_the_step_allocates_nothing_and_lives_in_the_cache(monkeypatch):
    plan = netc.load(ROOT / "examples" / "lenet5.yaml").compile(BATCH)
    _, ex = _pair(monkeypatch, plan)
    ex.set_inputs(random_inputs(plan, BATCH, seed=1))
    ex.step()
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        ex.step()
        after = rtsys.get_allocation_stats()
    finally:
        _nrt_python.memsys_disable_stats()
    # numba wraps each array argument in a meminfo when it unboxes it (the per-op path does so for
    # every kernel call): that is all. A buffer allocated inside would count one more.
    arrays = len(wholestep.BASES) + 2 + sum(isinstance(e, np.ndarray) for e in ex._whole.gen.extras)
    assert after.alloc - before.alloc == after.mi_alloc - before.mi_alloc == arrays
    path = ex._whole.path
    assert Path(numba.config.CACHE_DIR) in path.parents
    assert ROOT not in path.parents
    assert path.name.startswith("step_") and "k0_" in path.read_text()


def test_an_unconverted_module_keeps_the_plan_per_op(monkeypatch):
    def closures(b):  # a binder that still returns Python closures
        fwd, bwd = relu.bind_unary(b, relu.KERNELS_CPU, True)
        return (lambda: fwd()), (lambda: bwd())

    monkeypatch.setattr(relu, "bind_cpu", closures)
    plan = netc.load(ROOT / "examples" / "iris_mlp.yaml").compile(BATCH)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    ex = Executor(plan, BATCH)
    assert ex._whole is None
    relus = [s.module for s in plan.forward_steps if s.op == "relu"]
    # (fused into the linear before it, a relu's forward is `nothing`: its backward is named)
    assert any(f"'{m}'" in ex.whole_step_reason for m in relus) and "closure" in ex.whole_step_reason
    ex.set_inputs(random_inputs(plan, BATCH, seed=1))
    ex.step()  # per op
    monkeypatch.setenv("NETC_WHOLE_STEP", "0")
    assert Executor(plan, BATCH).whole_step_reason.startswith("disabled")


def test_a_bad_label_raises_after_the_native_step(monkeypatch):
    plan = netc.load(ROOT / "examples" / "iris_mlp.yaml").compile(BATCH)
    _, ex = _pair(monkeypatch, plan)
    inputs = random_inputs(plan, BATCH, seed=1)
    label = next(n for n in plan.inputs if plan.tensors[n].dtype == "int64")
    inputs[label] = np.full_like(inputs[label], 7)
    with pytest.raises(ValueError, match="label 7 out of range"):
        ex.step(inputs)


WARM = """
import sys, numpy as np, netc
from netc.runtime.check import random_inputs
from netc.runtime import wholestep
from netc.runtime.executor import Executor
plan = netc.load(sys.argv[1]).compile(4)
ex = Executor(plan, 4, seed=3)
ex.set_inputs(random_inputs(plan, 4, seed=5))
ex.state.seed[0] = 11
ex.step()
d = ex._whole.dispatcher
print(sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()), repr(ex.loss()))
"""


def test_a_warm_cache_loads_before_the_first_step(monkeypatch):
    path = ROOT / "examples" / "xor_mlp.yaml"
    plan = netc.load(path).compile(4)
    a, _ = _pair(monkeypatch, plan)  # compiles (or loads) into this session's cache
    monkeypatch.setenv("NETC_WHOLE_STEP", "1")
    out = subprocess.run([sys.executable, "-c", WARM, str(path)], capture_output=True, text=True, check=True)
    hits, misses, loss = out.stdout.split()
    assert (int(hits), int(misses)) == (1, 0)
    a.set_inputs(random_inputs(plan, 4, seed=5))
    a.state.seed[0] = 11
    a.step()
    assert float(loss) == a.loss()


def test_a_cold_plan_runs_per_op_until_its_compile_is_done(monkeypatch):
    # a batch no other test compiles: cold in a fresh cache, warm on a rerun (then ready at once)
    plan = netc.load(ROOT / "examples" / "xor_mlp.yaml").compile(7)
    monkeypatch.setenv("NETC_WHOLE_STEP", "0")
    a = Executor(plan, 7, seed=3)
    monkeypatch.setenv("NETC_WHOLE_STEP", "1")
    b = Executor(plan, 7, seed=3)
    inputs = random_inputs(plan, 7, seed=2)
    for ex in (a, b):
        ex.set_inputs(inputs)
        ex.step()
        ex.step()
    assert b.wait_whole_step(timeout=300), b.whole_step_reason
    for ex in (a, b):
        ex.step()
    _same(a, b)


def test_the_compile_process_imports_the_installed_netc(monkeypatch, tmp_path):
    # A user in a clone of netc runs from a folder whose netc/ is not the installed package (it
    # once shadowed it in the compile process, which then never compiled): a decoy here.
    (tmp_path / "netc").mkdir()
    (tmp_path / "netc" / "__init__.py").write_text("raise ImportError('the decoy netc')\n")
    plan = netc.load(ROOT / "examples" / "xor_mlp.yaml").compile(BATCH)
    _, b = _pair(monkeypatch, plan)
    monkeypatch.chdir(tmp_path)
    child = b._whole.compile_elsewhere()
    assert child.wait(timeout=300) == 0, b._whole.failure()


def test_a_seq_of_launches_runs_as_its_launches(monkeypatch):
    def as_seq(b):
        fwd, bwd = relu.bind_unary(b, relu.KERNELS_CPU, True)
        return Seq(fwd), Seq(bwd, nothing) if bwd is not nothing else nothing

    plan = netc.load(ROOT / "examples" / "iris_mlp.yaml").compile(BATCH)
    a, plain = _pair(monkeypatch, plan)
    monkeypatch.setattr(relu, "bind_cpu", as_seq)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    b = Executor(plan, BATCH, seed=3)
    assert b._whole is not None and b._whole.path == plain._whole.path  # the same source
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.step(inputs)
    _same(a, b)


# -- the optimizer update inside the step (Executor.step(update=opt)) -----------------------------

UPDATES = [
    {"type": "sgd", "weight_decay": 0.01},
    {"type": "momentum", "dampening": 0.1},
    {"type": "momentum", "nesterov": True},
    {"type": "adam", "weight_decay": 0.01},
    {"type": "adamw"},
    {"type": "rmsprop", "momentum": 0.9, "centered": True},
    {"type": "adagrad", "lr_decay": 0.01},
    {"type": "adadelta", "weight_decay": 0.001},
]


def _optimizer(ex, cfg):
    return Optimizer.from_config(cfg, ex.params, ex.grads, segments(ex.plan, ("bias",)), state=ex.opt_state)


@pytest.mark.parametrize("cfg", UPDATES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_the_step_with_the_update_equals_per_op_bitwise(monkeypatch, cfg):
    plan = netc.load(ROOT / "examples" / "iris_mlp.yaml").compile(BATCH)
    key = optimizer_key(cfg)
    monkeypatch.setenv("NETC_WHOLE_STEP", "0")
    a = Executor(plan, BATCH, seed=3, optimizer=key)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    b = Executor(plan, BATCH, seed=3, optimizer=key)
    oa, ob = _optimizer(a, cfg), _optimizer(b, cfg)
    for i, lr in enumerate((0.05, 0.02, 0.01, 0.03)):  # a schedule: lr changes between steps
        oa.lr = ob.lr = lr
        inputs = random_inputs(plan, BATCH, seed=10 + i)
        a.step(inputs)
        oa.step()
        assert b.step(inputs, update=ob)
        assert b._upd[1].ready is not None, b._upd[1].reason  # it ran in the native call
        _same(a, b)
        assert np.array_equal(a.params, b.params) and np.array_equal(a.opt_state, b.opt_state)
        assert oa.t == ob.t == i + 1
    # lr, t and the bias corrections are data, not literals: one function per optimizer family
    assert "0.03" not in b._upd[1].ws.gen.source


def test_the_update_is_skipped_on_a_non_finite_loss(monkeypatch):
    plan = netc.load(ROOT / "examples" / "iris_mlp.yaml").compile(BATCH)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    ex = Executor(plan, BATCH, seed=3, optimizer="adam")
    opt = _optimizer(ex, {"type": "adam"})
    inputs = random_inputs(plan, BATCH, seed=1)
    assert ex.step(inputs, update=opt) and opt.t == 1
    params, state = ex.params.copy(), ex.opt_state.copy()
    bad = {k: v.copy() for k, v in inputs.items()}
    bad["x"][0, 0] = np.nan
    assert not ex.step(bad, update=opt)
    assert not np.isfinite(ex.loss()) and opt.t == 1
    assert np.array_equal(ex.params, params) and np.array_equal(ex.opt_state, state)
    assert ex.step(inputs, update=opt) and opt.t == 2  # and the next finite step updates


def test_the_step_with_the_update_allocates_nothing(monkeypatch):
    plan = netc.load(ROOT / "examples" / "lenet5.yaml").compile(BATCH)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    ex = Executor(plan, BATCH, seed=3, optimizer="momentum")
    opt = _optimizer(ex, {"type": "momentum"})
    ex.set_inputs(random_inputs(plan, BATCH, seed=1))
    ex.step(update=opt)
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        ex.step(update=opt)
        after = rtsys.get_allocation_stats()
    finally:
        _nrt_python.memsys_disable_stats()
    gen = ex._upd[1].ws.gen
    arrays = len(wholestep.BASES) + 2 + sum(isinstance(e, np.ndarray) for e in gen.extras)
    assert after.alloc - before.alloc == after.mi_alloc - before.mi_alloc == arrays


MLP = TINY_MLP.replace("epochs: 1", "epochs: 3")


def _fit(monkeypatch, tmp_path, mode, nan=False, **cfg):
    """A Trainer's run on 32 samples (one NaN input with ``nan``) under NETC_WHOLE_STEP=mode:
    (result, params, executor)."""
    spec = tmp_path / "mlp.yaml"
    spec.write_text(MLP)
    net = netc.load(spec)
    config = {**net.train, **cfg}
    plan = net.compile(4, optimizer_key(config["optimizer"]))
    monkeypatch.setenv("NETC_WHOLE_STEP", mode)
    ex = Executor(plan, 4, seed=3, optimizer=plan.optimizer)
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(32, 3)).astype(np.float32), "label": rng.integers(0, 4, 32)}
    if nan:
        arrays["x"][20, 1] = np.nan
    data = Dataset.from_arrays(arrays, net.expanded.inputs)
    r = Trainer(ex, config, data, progress=False, plots=False).fit()
    return r, ex.params.copy(), ex


@pytest.mark.parametrize(
    "cfg",
    [
        {"optimizer": {"type": "adam", "lr": 0.01},
         "schedule": {"type": "multistep", "per": "step", "milestones": [3, 9], "gamma": 0.5}},
        {"optimizer": {"type": "momentum", "lr": 0.1}, "nan": True},  # a NaN input: the run diverges
    ],
    ids=["adam-schedule", "nan-input"],
)  # fmt: skip
def test_the_trainer_runs_the_update_in_the_step_bitwise(monkeypatch, tmp_path, cfg):
    r0, p0, _ = _fit(monkeypatch, tmp_path, "0", **cfg)
    r1, p1, ex = _fit(monkeypatch, tmp_path, "sync", **cfg)
    assert ex._upd is not None and ex._upd[1].ready is not None, ex.whole_step_reason
    assert (r1.status, r1.message, r1.step) == (r0.status, r0.message, r0.step)
    assert np.array_equal(p0, p1, equal_nan=True)
    if cfg.get("nan"):  # the batch with the NaN sample updated nothing: the weights stay finite
        assert r0.status == "diverged" and "the loss became nan" in r0.message, r0.message
        assert np.isfinite(p1).all()


def test_the_recurrent_layers_run_whole_step(monkeypatch, spec_file):
    # rnn, lstm and gru: tuples of per-layer weights in the Launch, optional state inputs, dropout
    # between layers drawn from the step's seed; the ledger counts what BPTT saves
    text = """
    netc: 1
    inputs:
      x: {shape: [4, 3]}
      h0: {shape: [4, 2]}
      label: {shape: [], dtype: int64}
    modules:
      lstm: {op: lstm, in: [x, h0, h0], hidden_size: 2, num_layers: 2, bidirectional: true, dropout: 0.3}
      gru: {op: gru, in: lstm, hidden_size: 3, output: last}
      rnn: {op: rnn, in: lstm, hidden_size: 3, nonlinearity: relu, output: last}
      both: {op: concat, in: [gru, rnn], axis: 0}
    losses:
      ce: {op: cross_entropy, in: [both, label]}
    """
    plan = netc.load(spec_file(text)).compile(BATCH)
    a, b = _pair(monkeypatch, plan)
    assert b._whole is not None, b.whole_step_reason
    inputs = random_inputs(plan, BATCH, seed=5)
    for ex in (a, b):
        ex.set_inputs(inputs)
        ex.state.seed[0] = 7
        ex.step()
    _same(a, b)
    assert b.allocated_bytes == plan.memory["ledger"]["training_peak_bytes"]
