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
from tests.tinyspec import classifier

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def _throughput():
    return _script("throughput")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_prints_and_writes_a_table(tmp_path):
    out = tmp_path / "throughput.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--only", "mlp", "--batches", "64", "--out", str(out)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    # --quick leaves the torch.compile column and the start-up table out (cold compiles take minutes)
    assert "| net | batch | mode | netc samples/s | torch eager samples/s | netc/eager | target |" in p.stdout
    assert "torch.compile" not in p.stdout and "Time to the first step" not in p.stdout
    for mode in ("train", "infer"):
        row = next(line for line in p.stdout.splitlines() if line.startswith(f"| mlp | 64 | {mode} |"))
        netc_rate, torch_rate = row.split("|")[4:6]
        assert float(netc_rate.replace(",", "")) > 0 and float(torch_rate.replace(",", "")) > 0
    assert "OPENBLAS_CORETYPE:" in p.stdout
    assert "2 threads per worker process (reported by the workers: 2; " in p.stdout
    assert "load average (1 min): " in p.stdout and " torch 2." in p.stdout  # torch's version
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

    def spawn(fw, net, batch, mode, steps, repeats, warmup, device, env=None):
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


def test_cpu_rounds_with_torch_compile_share_one_inductor_cache_per_row(monkeypatch, tmp_path):
    tp = _throughput()
    calls = []

    def spawn(fw, net, batch, mode, steps, repeats, warmup, device, env=None):
        calls.append((fw, net, batch, mode, env))
        return {"samples_per_s": 1.0, "first_step_s": 1.0}

    monkeypatch.setattr(tp, "spawn", spawn)
    res = tp.run_rounds(["mlp"], None, 2, True, "cpu", tmp_path)
    assert set(res) == {("mlp", b, m) for b in (64, 256) for m in ("train", "infer")}
    assert all(set(v) == {"netc", "torch", "compile"} for v in res.values())
    # the order alternates: round 1 netc first, round 2 torch.compile first
    row = [c[0] for c in calls if c[1:4] == ("mlp", 64, "train")]
    assert row == ["netc", "torch", "compile", "compile", "torch", "netc"]
    dirs = {c[1:4]: c[4]["TORCHINDUCTOR_CACHE_DIR"] for c in calls if c[0] == "compile"}
    assert len(set(dirs.values())) == 4 and all(d.startswith(str(tmp_path)) for d in dirs.values())
    assert all(c[4] is None for c in calls if c[0] != "compile")  # eager and netc: the default caches


def _row(text, prefix):
    return next(line for line in text.splitlines() if line.startswith(prefix))


def test_report_with_torch_compile_and_startup_marks_every_target():
    tp = _throughput()

    def r(rate, first=None):
        return {"samples_per_s": rate} | ({} if first is None else {"first_step_s": first})

    res = {
        # MLP train: 1.6x eager (target 1.5 met), 0.8x torch.compile (target 1.0 missed)
        ("mlp", 64, "train"): {"netc": [r(160.0)], "torch": [r(100.0)], "compile": [r(200.0, 30.0)]},
        # inference targets 1.0x eager, not the MLP's training 1.5x; rounds 2-3 give the warm call
        ("mlp", 64, "infer"): {
            "netc": [r(120.0)] * 3,
            "torch": [r(100.0)] * 3,
            "compile": [r(100.0, 20.0), r(100.0, 3.0), r(100.0, 5.0)],
        },
        ("resnet_mini", 64, "train"): {"netc": [r(50.0)], "torch": [r(100.0)], "compile": [r(100.0, 9.0)]},
        ("conv",): {"netc": [{"gflops": 70.0}], "torch": [{"gflops": 50.0}]},
        ("linear",): {"netc": [{"gflops": 80.0}], "torch": [{"gflops": 95.0}]},
        ("gemm",): {"numpy": [{"gflops": 100.0, "gemm_bounds": {"conv": 45.0}}], "torch": [{"gflops": 90.0}]},
    }
    cold = {"first_step_s": 5.0, "since_spawn_s": 7.5}
    startup = {("resnet_mini", 64, "train"): {"netc cold": cold, "netc warm": {"first_step_s": 2.0},
                                              "compile warm": {"error": "exit 1: boom"}}}  # fmt: skip
    text, failed = tp.render(res, "python benchmarks/throughput.py", 1, False, 0.1, 9.0, startup)
    assert failed  # the failed start-up worker fails the run
    assert "start-up resnet_mini 64 train (compile warm): exit 1: boom" in text
    assert "and torch.compile: throughput" in text.splitlines()[0]
    assert "torch.compile samples/s | netc/eager | target | netc/torch.compile | target |" in text
    assert _row(text, "| mlp | 64 | train |").startswith(
        "| mlp | 64 | train | 160 | 100 | 200 | 1.60x | ≥ 1.5x ✓ | 0.80x | ≥ 1.0x ✗ | 30.0 / — |"
    )
    assert _row(text, "| mlp | 64 | infer |").startswith(
        "| mlp | 64 | infer | 120 | 100 | 100 | 1.20x | ≥ 1.0x ✓ | 1.20x | ≥ 1.0x ✓ | 20.0 / 4.0 |"
    )
    # no torch.compile target for ResNet-mini; its eager target is missed
    assert "| resnet_mini | 64 | train | 50 | 100 | 100 | 0.50x | ≥ 1.0x ✗ | 0.50x | — | 9.0 / — |" in text
    # conv: 70% of the 100 GFLOP/s ceiling meets 60%; linear: 80% misses 90%
    # the last column: the layer's products as whole-batch np.dot calls (none measured for linear here)
    assert _row(text, "| conv2d").endswith("| 70.0 | 70% | ≥ 60% ✓ | 50.0 | 50% | 45% |")
    assert _row(text, "| linear").endswith("| 80.0 | 80% | ≥ 90% ✗ | 95.0 | 95% | — |")
    # start-up: cold 5 s meets < 10 s, warm 2 s misses < 1 s; a missing or failed run shows —
    assert (
        "| resnet_mini | 64 | train | 5.00 (7.50) | 2.00 | cold < 10 s ✓, warm < 1 s ✗ | — | — | — |"
        in text.splitlines()
    )


def test_startup_reuses_round_one_and_gives_each_row_its_own_empty_caches(tmp_path):
    tp = _throughput()
    calls = []

    def spawn(fw, net, batch, mode, steps, repeats, warmup, device, env=None):
        calls.append((fw, mode, steps, repeats, warmup, env))
        return {"first_step_s": 1.0}

    # the training row's round 1 ran torch.compile; the inference row's failed there
    res = {
        ("mlp", 64, "train"): {
            "compile": [{"first_step_s": 40.0}, {"first_step_s": 3.0}],
            "torch": [{"first_step_s": 2.0, "since_spawn_s": 4.0}],
        },
        ("mlp", 64, "infer"): {"compile": [{"error": "exit 1"}]},
    }
    out = tp.run_startup([("mlp", 64)], spawn, tmp_path, res, True, lambda m: None)
    assert out[("mlp", 64, "train")]["compile cold"] == {"first_step_s": 40.0}
    assert out[("mlp", 64, "train")]["torch"] == {"first_step_s": 2.0, "since_spawn_s": 4.0}
    assert "torch" not in out[("mlp", 64, "infer")]
    assert [(c[0], c[1]) for c in calls] == [("netc", "train"), ("netc", "train"), ("compile", "train"),
        ("netc", "infer"), ("netc", "infer"), ("compile", "infer"), ("compile", "infer")]  # fmt: skip
    assert all(c[2:5] == (1, 1, 0) for c in calls)  # one step: nothing past the first is timed
    # cold and warm share a directory; each row has its own, under the run's temporary directory
    netc_dirs = [c[5]["NETC_CACHE_DIR"] for c in calls if c[0] == "netc"]
    assert netc_dirs[0] == netc_dirs[1] != netc_dirs[2] == netc_dirs[3]
    assert not any(Path(d).exists() for d in netc_dirs)  # the first (cold) process creates it
    inductor = [c[5]["TORCHINDUCTOR_CACHE_DIR"] for c in calls if c[0] == "compile"]
    assert inductor[0] == tp.inductor_env(tmp_path, ("mlp", 64, "train"))["TORCHINDUCTOR_CACHE_DIR"]
    assert inductor[1] == inductor[2] != inductor[0] and inductor[0].startswith(str(tmp_path))
    # without the torch.compile column nothing compiles
    calls.clear()
    tp.run_startup([("mlp", 64)], spawn, tmp_path, {}, False, lambda m: None)
    assert {c[0] for c in calls} == {"netc"}


def test_netc_worker_with_an_empty_cache_directory_fills_it(tmp_path):
    """The start-up table's cold run: NETC_CACHE_DIR sends numba's cache to a fresh directory,
    which the run fills (so a second process can start warm), and the worker reports its
    first step from load and from the spawn."""
    tp = _throughput()
    cache = tmp_path / "cache"
    r = tp.spawn("netc", "mlp", 8, "infer", 1, 1, 0, "cpu", env={"NETC_CACHE_DIR": str(cache)})
    assert "error" not in r, r
    assert Path(r["kernel_cache"]).parent == cache  # the source-keyed subdirectory (runtime/cache.py)
    assert any(cache.rglob("*.nbi")) and any(cache.rglob("*.nbc"))
    assert 0 < r["first_step_s"] < r["since_spawn_s"]


def test_spawn_runs_the_torch_worker_compiled_with_its_cache(monkeypatch):
    tp = _throughput()
    seen = {}

    def run(cmd, env, **kw):
        seen.update(cmd=cmd, env=env)
        return subprocess.CompletedProcess(cmd, 0, '{"samples_per_s": 1.0}\n', "")

    monkeypatch.setattr(tp.subprocess, "run", run)
    assert tp.spawn("compile", "mlp", 64, "train", 2, 1, 1, "cpu", env={"TORCHINDUCTOR_CACHE_DIR": "/x"}) == {
        "samples_per_s": 1.0
    }
    cmd = seen["cmd"]
    assert cmd[cmd.index("--worker") + 1] == "torch" and "--compile" in cmd
    assert float(cmd[cmd.index("--spawned") + 1]) > 0
    assert seen["env"]["TORCHINDUCTOR_CACHE_DIR"] == "/x" and seen["env"]["OMP_NUM_THREADS"] == "2"
    tp.spawn("torch", "mlp", 64, "train", 2, 1, 1, "cpu")
    # The eager worker gets no inductor cache of its own (an earlier in-process torch.compile may
    # have set one in this process's environment: it is passed on unchanged).
    inherited = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    assert "--compile" not in seen["cmd"] and seen["env"].get("TORCHINDUCTOR_CACHE_DIR") == inherited


def test_cuda_refuses_the_cpu_only_tables():
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda", "--startup"], capture_output=True, text=True
    )
    assert p.returncode == 1 and "CPU-only" in p.stderr and "Traceback" not in p.stderr


def test_numpy_worker_times_each_layers_gemms_alone():
    # the GEMMs of Kernel.gemms must chain into valid products (np.dot raises on a bad shape) and
    # give one figure per benchmark layer beside the ceiling
    cmd = [sys.executable, str(SCRIPT), "--worker", "numpy", "--net", "gemm", "--batch", "2048",
           "--mode", "kernel", "--steps", "1", "--repeats", "1", "--warmup", "0"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["gflops"] > 0
    assert set(out["gemm_bounds"]) == {"conv", "linear"} and min(out["gemm_bounds"].values()) > 0


def test_cold_start_splits_the_compiles_and_profiles_them(tmp_path):
    cold_start = _script("cold_start")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(classifier("tiny", "optimizer: {type: sgd, lr: 0.1}", "{source: blobs, samples: 50}"))
    r = cold_start.cold(spec, 4, 3, worker=True)
    assert r["first_step_s"] > 0 and r["cpu_s"] > 0 and r["worker_cpu_s"] > 0  # the worker took a share
    assert len(r["top"]) == 3 and all(own >= 0 and sigs for _, (own, sigs) in r["top"])
    assert r["compiles"] >= 3


def test_first_step_reads_the_spawn_clock_when_the_step_ends():
    # the bracketed start-up figure must not include the timed steps (or the wait for a
    # whole-step compile) that follow the first step in the worker
    import argparse
    import time

    tp = _throughput()
    a = argparse.Namespace(spawned=time.time() - 100.0)
    first, spawned = tp.first_step(lambda: time.sleep(0.01), time.perf_counter(), a)
    time.sleep(0.05)
    assert 0.01 <= first < 1.0 and 100.0 <= spawned < 100.05 + first
