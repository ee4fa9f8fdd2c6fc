"""`netc gradcheck` and `netc profile` on users' specs."""

from pathlib import Path

import pytest

from netc.cli import main

ROOT = Path(__file__).resolve().parents[2]


EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# A float64 forward pass of these takes seconds at 224x224: a few tensors, spread
# from the first layer (where relu kinks are most frequent) to the last.
HEAVY = {"alexnet", "vgg16", "resnet18"}


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_gradcheck_passes_on_every_example(spec, capsys):
    heavy = ["--batch", "1", "--samples", "1", "--tensors", "3"]
    args = heavy if spec.stem in HEAVY else ["--batch", "2", "--samples", "3"]
    assert main(["gradcheck", str(spec), *args]) == 0
    out = capsys.readouterr().out
    assert "all within 0.0001" in out and "FAIL" not in out


def test_gradcheck_fails_loudly_when_the_tolerance_cannot_be_met(capsys):
    # A tolerance below float64 rounding cannot be met: exit 1, rows marked
    # (and not excused as kinks: tanh is smooth).
    assert main(["gradcheck", str(ROOT / "examples" / "xor_mlp.yaml"), "--tol", "1e-30"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "kink" not in out


def _wrong_backward(monkeypatch, op: str, factor: float) -> None:
    """Make ``op``'s CPU backward scale its input gradient: a deliberately wrong kernel."""
    from netc.runtime.kernels import kernel_module

    mod = kernel_module(op)
    bind = mod.bind_cpu

    def wrong(b):
        fwd, bwd = bind(b)

        def bad() -> None:
            bwd()
            b.dx[0][...] *= factor

        return fwd, bad

    monkeypatch.setattr(mod, "bind_cpu", wrong)


@pytest.mark.parametrize(("op", "spec"), [("tanh", "xor_mlp"), ("relu", "iris_mlp"), ("maxpool2d", None)])
def test_gradcheck_catches_a_wrong_gradient(monkeypatch, capsys, spec_file, op, spec):
    """A 1% error in one kernel's backward fails, also in relu/maxpool networks
    (whose kinks are skipped, not the whole check)."""
    path = ROOT / "examples" / f"{spec}.yaml" if spec else spec_file(RELU_NET)
    _wrong_backward(monkeypatch, op, 1.01)
    assert main(["gradcheck", str(path), "--batch", "2", "--samples", "3"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "over the tolerance" in out


# A small U-Net-like relu network (relu, leaky_relu, max pooling, a skip
# concat, an l1 loss): before kinks were detected, 2 of its 10 rows failed.
RELU_NET = """\
netc: 1
name: relu_net
inputs:
  image: {shape: [3, 48, 48]}
  mask: {shape: [4, 24, 24]}
modules:
  c1: {op: conv2d, in: image, out_channels: 16, kernel: 3, padding: 1}
  r1: {op: relu, in: c1}
  c2: {op: conv2d, in: r1, out_channels: 16, kernel: 3, padding: 1}
  r2: {op: leaky_relu, in: c2}
  p1: {op: maxpool2d, in: r2, kernel: 2}
  c3: {op: conv2d, in: p1, out_channels: 16, kernel: 3, padding: 1}
  r3: {op: relu, in: c3}
  skip: {op: maxpool2d, in: r1, kernel: 2}
  cat: {op: concat, in: [r3, skip], axis: 0}
  c4: {op: conv2d, in: cat, out_channels: 4, kernel: 1}
losses:
  l1: {op: l1, in: [c4, mask]}
outputs: [c4]
"""


def test_gradcheck_does_not_false_alarm_on_relu_kinks(spec_file, capsys):
    p = spec_file(RELU_NET)
    assert main(["gradcheck", str(p), "--batch", "4", "--samples", "10"]) == 0
    out = capsys.readouterr().out
    assert "all within 0.0001" in out and "FAIL" not in out
    assert "not checked: mask (loss targets" in out


def test_near_kink_tells_a_kink_from_a_wrong_gradient():
    from netc.runtime.check import _near_kink

    eps = 1e-5
    # |x| around x = 2e-6: slope -1 left of the kink, +1 right of it; analytic 1.
    f = abs
    x = 2e-6
    assert _near_kink(1.0, f(x), f(x + eps), f(x - eps), eps)
    # x² at 1 (smooth, slope 2): a wrong analytic gradient is not a kink,
    # and neither is a right one.
    g = lambda v: v * v  # noqa: E731
    assert not _near_kink(2.2, g(1.0), g(1 + eps), g(1 - eps), eps)
    assert not _near_kink(2.0, g(1.0), g(1 + eps), g(1 - eps), eps)


def test_gradcheck_targets_only_when_asked(capsys):
    """The BCE target y is data: skipped by default and named; --inputs all
    checks it (and passes: its gradient lives until the step ends)."""
    xor = str(ROOT / "examples" / "xor_mlp.yaml")
    assert main(["gradcheck", xor]) == 0
    out = capsys.readouterr().out
    assert "\ny " not in out and "not checked: y (loss targets; --inputs all checks them)" in out
    assert main(["gradcheck", xor, "--inputs", "all"]) == 0
    out = capsys.readouterr().out
    assert "\ny " in out and "FAIL" not in out
    assert main(["gradcheck", xor, "--inputs", "none"]) == 0
    out = capsys.readouterr().out
    assert "input" not in out


def test_gradcheck_needs_a_loss(spec_file, capsys):
    p = spec_file(
        "netc: 1\ninputs: {x: {shape: [3]}}\nmodules:\n  fc: {op: linear, in: x, out_features: 2}\n"
    )
    assert main(["gradcheck", str(p)]) == 1
    assert "needs a loss" in capsys.readouterr().err


def test_profile_prints_every_module_and_shares(capsys):
    assert main(["profile", str(ROOT / "examples" / "lenet5.yaml"), "--batch", "8", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    for module in ("c1", "c3", "f5", "ce"):
        assert f"\n{module} " in out
    assert "samples/s" in out
