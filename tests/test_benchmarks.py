"""benchmarks/throughput.py: the driver runs end to end and its PyTorch twins
match the benchmark specs. No timing is asserted: on a shared
machine timings vary too much to pass or fail a test.

``--device cuda`` cannot run here end to end (no GPU, CPU-only PyTorch): its refusal without a GPU,
its job list and report (with the workers stubbed) and netc's GEMM worker under numba's CUDA
simulator are tested. The netc training-step worker under the simulator takes about 3 minutes for
the benchmark MLP, too slow for the suite."""

from __future__ import annotations

import importlib.util
import json
import os
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


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        # hidden GPUs: deterministic on a machine that has one, for numba and PyTorch alike
        ({"CUDA_VISIBLE_DEVICES": ""}, ""),
        ({"NUMBA_ENABLE_CUDASIM": "1"}, "simulator"),
    ],
)
def test_cuda_without_a_gpu_is_one_clear_error_before_any_worker(tmp_path, env, reason):
    out = tmp_path / "gpu.md"
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    cmd = [sys.executable, str(SCRIPT), "--device", "cuda", "--quick", "--only", "mlp", "--out", str(out)]
    p = subprocess.run(cmd, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    [line] = p.stderr.strip().splitlines()  # one message: no traceback, no worker's "round" line
    assert line.startswith("throughput.py: no usable CUDA GPU: ")
    assert line.endswith("; the GPU benchmark needs one (and a CUDA build of PyTorch)")
    assert reason in line and p.stdout == "" and not out.exists()


def test_netc_gemm_worker_runs_under_the_cuda_simulator():
    # 20 is not a multiple of the GEMM tile: the edge tiles are checked against NumPy too
    worker = ["--worker", "netc", "--device", "cuda", "--net", "gemm", "--batch", "20", "--mode", "kernel"]
    cmd = [sys.executable, str(SCRIPT), *worker, "--steps", "1", "--repeats", "1", "--warmup", "0"]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["gpu_numba"] == "numba CUDA simulator" and "numba-cuda" in r["versions"]
    assert r["gflops"] > 0 and r["rel_err"] < 1e-4


def _fake_spawn(calls):
    """A stand-in for spawn: records each worker asked for and answers with fixed figures."""
    rates = {("netc", "train"): 200.0, ("torch", "train"): 100.0, ("netc", "infer"): 50.0,
             ("torch", "infer"): 100.0}  # fmt: skip
    gflops = {"gemm": {"netc": 10.0, "torch": 40.0}, "conv": {"netc": 5.0, "torch": 20.0}}

    def spawn(fw, net, batch, mode, steps, repeats, warmup, device):
        calls.append((fw, net, batch, mode, steps, device))
        gpu = {"gpu_numba": "Fake H100"} if fw == "netc" else {"gpu": "Fake H100"}
        if mode == "kernel":
            return {**gpu, "gflops": gflops[net][fw]}
        return {**gpu, "samples_per_s": rates[(fw, mode)]}

    return spawn


def test_cuda_rounds_and_report(monkeypatch):
    tp = _throughput()
    calls = []
    monkeypatch.setattr(tp, "spawn", _fake_spawn(calls))
    res = tp.run_rounds(["mlp", "conv"], {64}, 1, False, "cuda")
    assert {c[-1] for c in calls} == {"cuda"} and {c[0] for c in calls} == {"netc", "torch"}
    gemms = sorted({(c[2], c[4]) for c in calls if c[1] == "gemm"})
    assert [n for n, _ in gemms] == [512, 1024, 2048] and all(s >= 3 for _, s in gemms)
    assert all(c[4] >= tp.GPU_MIN_STEPS for c in calls if c[3] in ("train", "infer"))
    text, failed = tp.render_gpu(res, "python benchmarks/throughput.py --device cuda", 1, False, 0.0, 1.0)
    assert not failed
    assert "GPU: Fake H100 (numba), Fake H100 (torch) · " in text
    lines = text.splitlines()
    # the GPU target (mlp: 1.0x) applies to the training step only
    assert "| mlp | 64 | train | 200 | 100 | 2.00x | ≥ 1.0x ✓ |" in text
    assert any(line.startswith("| mlp | 64 | infer | 50 | 100 | 0.50x | — |") for line in lines)
    assert "| N = 1024 | 10.0 | 40.0 | 25% |" in lines
    # conv: 5 against torch's 20, and 5 against cuBLAS's 40 at 2048²
    assert f"| {tp.KERNELS['conv'].shape} | 5.0 | 20.0 | 0.25x | 12% |" in lines


def test_cpu_rounds_keep_the_numpy_ceiling(monkeypatch):
    tp = _throughput()
    calls = []
    monkeypatch.setattr(tp, "spawn", lambda *job: calls.append(job) or {"gflops": 1.0, "samples_per_s": 1.0})
    tp.run_rounds(["mlp", "conv"], {64}, 1, True)
    assert {c[-1] for c in calls} == {"cpu"}
    assert sorted(c[0] for c in calls if c[1] == "gemm") == ["numpy", "torch"]
    assert {c[2] for c in calls if c[1] == "gemm"} == {tp.GEMM_N}
