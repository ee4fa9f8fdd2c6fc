"""`netc gradcheck` and `netc profile` on users' specs."""

from pathlib import Path

import pytest

from netc.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["lenet5", "multitask", "transformer_encoder", "vit_tiny"])
def test_gradcheck_passes_on_examples(name, capsys):
    assert main(["gradcheck", str(ROOT / "examples" / f"{name}.yaml"), "--batch", "2", "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "all within 0.0001" in out and "FAIL" not in out


def test_gradcheck_fails_loudly_when_the_tolerance_cannot_be_met(capsys):
    # A zero tolerance cannot be met by finite differences: exit 1, rows marked.
    assert main(["gradcheck", str(ROOT / "examples" / "xor_mlp.yaml"), "--tol", "0"]) == 1
    assert "FAIL" in capsys.readouterr().out


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
