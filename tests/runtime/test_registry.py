"""Every op contract states its facts and has a kernel module with CPU and CUDA bindings, and the
kernel tests cover every op (the coverage check itself runs in conftest.py). The check is
``missing_parts``; a deliberately incomplete op shows that it names what is missing."""

import inspect
import types

import pytest

from netc.compiler.ops import OPS
from netc.compiler.ops.base import FAMILIES, LOSS_KINDS, Loss, Op, TensorType
from netc.runtime.kernels import KERNELS, kernel_module, missing_parts


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_cpu_kernels(op):
    assert op in KERNELS
    mod = kernel_module(op)
    assert callable(mod.bind_cpu)
    assert mod.__doc__, f"runtime/kernels/{op}.py needs a docstring"
    assert list(inspect.signature(mod.bind_cpu).parameters) == ["b"]


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_cuda_kernels(op):
    mod = kernel_module(op)
    assert callable(mod.bind_cuda), f"runtime/kernels/{op}.py has no bind_cuda (docs/cuda.md)"
    assert list(inspect.signature(mod.bind_cuda).parameters) == ["b"]


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_is_complete(op):
    assert missing_parts(OPS[op]) == []


def test_op_facts():
    assert {n for n, op in OPS.items() if op.loss_kind == "classification"} == {
        "cross_entropy",
        "hinge",
        "nll_loss",
    }
    assert OPS["binary_cross_entropy"].loss_kind == "binary"
    assert {OPS[n].loss_kind for n in ("mse", "l1", "smooth_l1")} == {"regression"}
    assert all((op.loss_kind in LOSS_KINDS) == op.is_loss for op in OPS.values())
    assert all(op.family in FAMILIES for op in OPS.values())
    logits, labels, ids = TensorType((7,)), TensorType((), "int64"), TensorType((5,), "int64")
    assert OPS["cross_entropy"].int_input_range({}, [logits, labels]) == {1: 7}
    assert OPS["hinge"].int_input_range({}, [logits, labels]) == {1: 7}
    assert OPS["nll_loss"].int_input_range({"axis": 1}, [TensorType((7, 3)), TensorType((3,), "int64")]) == {
        1: 7
    }
    assert OPS["embedding"].int_input_range({"num_embeddings": 30, "dim": 4}, [ids]) == {0: 30}
    assert OPS["batchnorm1d"].param_role("running_mean", False) == "stat"
    assert OPS["layernorm"].param_role("b", True) == "norm"
    assert OPS["groupnorm"].param_role("w", True) == "norm" and OPS["groupnorm"].family == "norm"
    assert OPS["instancenorm"].param_role("running_var", False) == "stat"
    assert OPS["linear"].param_role("b", True) == "bias"
    assert OPS["multi_head_attention"].param_role("b_q", True) == "bias"
    assert OPS["conv2d"].param_role("w", False) == "weight"


# -- a deliberately incomplete op ---------------------------------------------------------------------

FakeLoss = type("FakeLoss", (Loss,), {"name": "fake_loss", "int_inputs": (1,), "__module__": __name__})
FAKE = FakeLoss()


def test_an_incomplete_op_is_named_part_by_part(monkeypatch):
    monkeypatch.setitem(OPS, "fake_loss", FAKE)
    problems = missing_parts(FAKE)
    text = "\n".join(problems)
    # its module (this file) has no "fake_loss:" docstring and no OP, it is a loss with no
    # loss_kind, its int64 input 1 has no range, and no runtime/kernels/fake_loss.py exists
    for part in ("docs:", "OP:", "loss_kind:", "int_input_range:", "kernels: no module"):
        assert part in text, (part, problems)
    assert "family" not in text  # a Loss's family comes with its base
    assert len(problems) == 5


def test_a_kernel_module_without_cuda_is_named(monkeypatch):
    class Fake(Op):
        family = "nonsense"

    Fake.name = "relu"  # the real relu's contract is registered under that name, not this one
    fake = Fake()
    kernels = types.ModuleType("fake", "kernels of a fake op")
    kernels.bind_cpu = lambda b: (None, None)
    kernels.bind_cuda = lambda b, extra: (None, None)
    problems = missing_parts(fake, kernels)
    assert any(p.startswith("family: 'nonsense'") for p in problems), problems
    assert any(p.startswith("example:") for p in problems), problems
    assert any(p.startswith("registry:") for p in problems), problems
    assert any("bind_cuda" in p and "one argument" in p for p in problems), problems
    del kernels.bind_cuda
    assert any("has no bind_cuda" in p for p in missing_parts(fake, kernels))


def test_random_inputs_draw_ids_in_the_range_the_ops_declare():
    from pathlib import Path

    import netc
    from netc.runtime.check import int_input_high, random_inputs

    plan = netc.compile_file(Path(__file__).parents[2] / "examples" / "transformer_encoder.yaml", batch=2)
    tokens = next(s for s in plan.forward_steps if s.op == "embedding").attrs["num_embeddings"]
    assert int_input_high(plan, "tokens") == tokens  # embedding: its table size
    assert int_input_high(plan, "label") == 10  # cross_entropy: the logits' class axis
    feed = random_inputs(plan, 64, seed=1)
    assert feed["tokens"].min() >= 0 and feed["tokens"].max() < tokens
