"""benchmarks/throughput.py: the driver runs end to end and its PyTorch twins
match the benchmark specs. No timing is asserted (DESIGN.md §7)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import netc

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def _throughput():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("throughput", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_prints_and_writes_a_table(tmp_path):
    out = tmp_path / "throughput.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--only", "mlp", "--batches", "64", "--out", str(out)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "| net | batch | mode | netc samples/s | torch samples/s | netc/torch | target |" in p.stdout
    for mode in ("train", "infer"):
        row = next(line for line in p.stdout.splitlines() if line.startswith(f"| mlp | 64 | {mode} |"))
        netc_rate, torch_rate = row.split("|")[4:6]
        assert float(netc_rate.replace(",", "")) > 0 and float(torch_rate.replace(",", "")) > 0
    assert "OPENBLAS_CORETYPE:" in p.stdout
    assert "command: `python benchmarks/throughput.py --quick" in p.stdout
    assert out.read_text().strip() == p.stdout.strip()


def test_unknown_name_is_one_clear_error():
    p = subprocess.run([sys.executable, str(SCRIPT), "--only", "nope"], capture_output=True, text=True)
    assert p.returncode == 1 and "unknown --only" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("name", ["mlp", "lenet5", "resnet_mini", "transformer_layer"])
def test_torch_twin_has_the_specs_parameter_count(name):
    tp = _throughput()
    plan = netc.load(tp.NETS[name].spec).compile(2, "momentum")
    twin = tp.torch_twin(name)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel for p in plan.params if p.trainable)
    assert tp.NETS[name].spec.exists()
