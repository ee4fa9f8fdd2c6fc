"""Throughput benchmark: netc against PyTorch eager and torch.compile on the CPU (or eager on a CUDA
GPU), samples/s, GFLOP/s and the time to the first step.

    python benchmarks/throughput.py                 # everything, 3 alternating rounds (half an hour+:
                                                    #   each torch.compile row compiles cold once)
    python benchmarks/throughput.py --quick         # smoke run: few steps, one round, eager only
    python benchmarks/throughput.py --only mlp,conv # a subset (nets: mlp lenet5 resnet_mini
                                                    #   transformer_layer; kernels: conv linear)
    python benchmarks/throughput.py --quick --only mlp --batches 64 --out /tmp/t.md   # the test's smoke run
    python benchmarks/throughput.py --only lenet5 --rounds 1 --no-torch-compile   # no compile column
    python benchmarks/throughput.py --quick --only mlp --torch-compile --startup       # both, a few minutes

For each net and batch it measures (a) a training step — forward, loss,
backward and an SGD-momentum update (lr 0.01, momentum 0.9) — and (b)
inference, in netc and in a PyTorch twin of the same architecture, eager and
under ``torch.compile(model)`` (inductor, default mode; only the model is
compiled, the optimizer step stays eager), then the forward+backward GFLOP/s of
one conv2d and one linear layer as a share of the float32 GEMM ceiling (np.dot
of 2048², measured in the same run).

Every measurement runs in its own worker process with 2 threads, because
OpenBLAS (netc's BLAS, through SciPy) and PyTorch's OpenMP/MKL pools fight for
the two cores when they share a process (idle OpenMP workers spin instead of sleeping); the driver alternates
which framework goes first from round to round (netc, eager, torch.compile, then the reverse) and
reports medians over rounds.
A worker is ``--worker netc|torch|numpy --net NAME --batch B --mode train|infer|kernel``
(``--compile``: the torch worker runs the compiled model); it runs one first step (timed from
loading the spec or building the model: the start-up time), warms up, times ``--repeats``
runs of ``--steps`` steps and prints one JSON line.

torch.compile's first call traces and compiles. Each net row's torch.compile workers share an
inductor cache (``TORCHINDUCTOR_CACHE_DIR`` in the run's temporary directory) that starts empty, so
the table's "first call" column gives round 1's cold compile / the median of the later rounds'
warm-cache first calls; the timed steps come after it and exclude it.

The start-up table (benchmarks/startup.py) gives, for every net at its first batch size, training
and inference, the time from loading the spec through compiling and binding to the first completed
step, and in brackets the same from the worker's spawn (interpreter and imports included): netc
with a cold kernel cache (a fresh empty ``NETC_CACHE_DIR``, which netc.runtime hands numba as
``NUMBA_CACHE_DIR``; see runtime/cache.py) and warm (a second process on that directory), and
torch.compile cold and warm likewise; PyTorch eager's first step for reference. The throughput
rows' netc workers use the user's own (normally warm) kernel cache.

Targets, each marked met (✓) or missed (✗): netc/eager ≥ 1.0x in every row and ≥ 1.5x for the MLP's
training step; netc/torch.compile ≥ 1.0x for the MLP and LeNet-5, training and inference; conv2d
forward + backward ≥ 60% of the GEMM ceiling, linear ≥ 90%; ResNet-mini's first training step
< 10 s cold and < 1 s warm (load to first step).

``--quick`` leaves out the torch.compile column and the start-up table (a cold inductor compile
takes 30-60 s per row here); ``--torch-compile`` and ``--startup`` put them back, and
``--no-torch-compile`` / ``--no-startup`` drop them from a full run. Without the compile column
the start-up table has no torch.compile figures.

netc's timed step includes copying the batch into its arena (its real per-batch
cost); PyTorch reads the same preallocated tensors. netc's inference runs the net's inference
plan (``compile(..., mode="inference")``: forward only, dropout removed, batchnorm folded), as
``netc eval``/``predict`` do; it still computes the loss, which PyTorch's does not. Inference in PyTorch runs
under ``torch.inference_mode()`` in eval mode (the transformer layer takes its
fused fast path there). The markdown report is printed and written to
benchmarks/results/throughput.md (git-ignored). Its header gives the date, the load average at
start and end, the threads per worker, the versions (torch's included) and which
OPENBLAS_CORETYPE was set (and the core OpenBLAS reports): it changes the GEMM ceiling about 2x
on these machines.

Longer than 520 lines: the driver respawns this one script as every worker (netc, PyTorch and
NumPy, CPU and GPU), so the workers and the driver live together. Beside it: nets.py (the nets,
kernels, targets and PyTorch twins), report.py (the markdown tables) and startup.py (the start-up
runs and their table).

On a GPU (``--device cuda``; needs a CUDA GPU, numba-cuda and a CUDA build of PyTorch):

    python benchmarks/throughput.py --device cuda --quick --only mlp --batches 64   # smoke run
    python benchmarks/throughput.py --device cuda                                   # full (minutes)
    python benchmarks/throughput.py --device cuda --only conv --out /tmp/gpu_kernels.md

The same nets, batches and steps run on ``CudaExecutor`` (``make_executor(plan, batch, "cuda")``)
with the SGD-momentum update on the device (``Optimizer`` over the executor's device buffers), and
on the PyTorch twin moved to the GPU, eager. Every timed repeat is bracketed by a synchronize
(``ex.synchronize()``, ``torch.cuda.synchronize()``), so the clock reads finished work. netc's
step still includes the batch upload (``set_inputs``: host to device); PyTorch's inputs already
sit on the GPU. PyTorch runs with TF32 off (``fp32_precision = "ieee"`` for matmul and cuDNN
conv) because netc's kernels compute in IEEE float32, and with cuDNN autotuning off (its default).
Targets are for the training step only (the issue's GPU targets: netc/torch ≥ 1.0x on the MLP
and LeNet-5, ≥ 0.5x on ResNet-mini and the transformer layer). The kernel rows give netc's tiled
GEMM (``runtime/kernels/cuda_core.gemm``, float32, N = 512, 1024, 2048) as a share of cuBLAS
(``torch.mm`` on the GPU), and the conv2d and linear layers' forward + backward against
PyTorch. The table header names the GPU as numba and PyTorch see it. Without a usable GPU (or
with only numba's CUDA simulator, which times Python) the driver says why and exits 1 before
starting any worker.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # a test loads this file by its path: its modules sit next to it
    sys.path.insert(0, str(HERE))
from nets import (  # noqa: E402
    GEMM_N,
    GPU_GEMM_SIZES,
    GPU_MIN_STEPS,
    KERNELS,
    LR,
    MOMENTUM,
    NETS,
    THREADS,
    TORCH_INPUT,
    gpu_gemm_steps,
    torch_twin,
)
from report import Results, fmt, render, render_gpu  # noqa: E402
from startup import Startup, inductor_env, run_startup  # noqa: E402


# -- workers ---------------------------------------------------------------------------------------
def timed(
    step: Callable[[], None], steps: int, repeats: int, warmup: int, sync: Callable[[], None] | None = None
) -> list[float]:
    """Seconds per repeat of `steps` calls, after `warmup` untimed calls. On a GPU `sync` waits for
    the queued kernels: calls return once launched, so the clock must not start while warmup work
    is still running nor stop before the repeat's last kernel has finished."""
    for _ in range(warmup):
        step()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return times


def first_step(
    step: Callable[[], None], since: float, a: argparse.Namespace, sync: Callable[[], None] | None = None
) -> tuple[float, float | None]:
    """Run one step; return the seconds from ``since`` until it finished — the start-up time
    (loading, compiling and binding, then the first step's own kernel compiles or cache loads) —
    and ``since_spawn`` at that moment (taken here, not after the timed steps that follow)."""
    step()
    if sync:
        sync()
    return time.perf_counter() - since, since_spawn(a)


def since_spawn(a: argparse.Namespace) -> float | None:
    """Wall seconds since the driver started this worker process (``--spawned``, a time.time()),
    interpreter start-up and imports included; None when no driver started it."""
    return None if a.spawned is None else time.time() - a.spawned


def openblas_cores() -> dict[str, str]:
    """The core type each OpenBLAS loaded so far actually uses, read from the library."""
    import ctypes

    found: dict[str, str] = {}
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return found
    for p in sorted({line.split()[-1] for line in maps if "openblas" in line.lower()}):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for fn in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            f = getattr(lib, fn, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                # numpy.libs holds numpy's OpenBLAS, scipy.libs the one numba's np.dot calls
                found[Path(p).parent.name.removesuffix(".libs")] = f().decode()
                break
    return found


def threading_layer() -> str:
    """numba's threading layer, once a parallel kernel has run ("none" if none has)."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return "none"


def torch_worker(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "versions": {"torch": torch.__version__}}
    dev = torch.device(a.device)
    sync = None
    if a.device == "cuda":
        # netc computes in IEEE float32; PyTorch's default TF32 for cuDNN convolutions would compare
        # a 10-bit-mantissa product with it. (Only the new fp32_precision API: mixing it with the
        # legacy allow_tf32 flags makes PyTorch raise.)
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        sync = torch.cuda.synchronize
        out["gpu"] = torch.cuda.get_device_name()
        out["versions"]["torch CUDA"] = torch.version.cuda
    if a.net == "gemm":
        n = a.batch if a.device == "cuda" else GEMM_N  # the GPU rows time several sizes
        x, y = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        times = timed(lambda: torch.mm(x, y, out=c), a.steps, a.repeats, a.warmup, sync)
        return {**out, "gflops": 2 * n**3 * a.steps / statistics.median(times) / 1e9}
    if a.mode == "kernel":
        k = KERNELS[a.net]
        if a.net == "conv":
            layer = torch.nn.Conv2d(32, 32, 3, padding=1, bias=False).to(dev)
            x = torch.randn(k.batch, 32, 32, 32, device=dev, requires_grad=True)
        else:
            layer = torch.nn.Linear(1024, 1024).to(dev)
            x = torch.randn(k.batch, 1024, device=dev, requires_grad=True)
        dy = torch.randn_like(layer(x))

        def kstep() -> None:
            layer(x).backward(dy)

        times = timed(kstep, a.steps, a.repeats, a.warmup, sync)
        return {**out, "gflops": 3 * k.fwd_flops * a.steps / statistics.median(times) / 1e9}
    t0 = time.perf_counter()  # the start-up time runs from here: build, compile, first step
    model = torch_twin(a.net).to(dev)
    x = torch.randn(a.batch, *TORCH_INPUT[a.net], device=dev)
    label = torch.randint(0, 10, (a.batch,), device=dev)
    # inductor, default mode; compiling is lazy: the first call traces and compiles (both
    # directions when training), so the first step's time is the compile time
    run = torch.compile(model) if a.compile else model
    if a.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = torch.nn.functional.cross_entropy

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(run(x), label).backward()
            opt.step()

        first, spawned = first_step(step, t0, a, sync)
        times = timed(step, a.steps, a.repeats, a.warmup, sync)
    else:
        model.eval()
        with torch.inference_mode():
            first, spawned = first_step(lambda: run(x), t0, a, sync)
            times = timed(lambda: run(x), a.steps, a.repeats, a.warmup, sync)
    return {**out, "samples_per_s": a.batch * a.steps / statistics.median(times), "times": times,
            "first_step_s": first, "since_spawn_s": spawned}  # fmt: skip


def note_numba_gpu(out: dict[str, Any]) -> None:
    """Note the GPU numba runs on, and numba-cuda's version, in a worker's result."""
    import contextlib
    import importlib.metadata

    from numba import cuda

    from netc.runtime.device import simulator_enabled

    name = "numba CUDA simulator" if simulator_enabled() else cuda.get_current_device().name
    out["gpu_numba"] = name.decode() if isinstance(name, bytes) else str(name)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # numba's bundled CUDA target
        out["versions"]["numba-cuda"] = importlib.metadata.version("numba-cuda")


def netc_worker(a: argparse.Namespace) -> dict[str, Any]:
    # The executor picks numba's threading layer (workqueue) before numba is
    # imported; importing numba first would leave the OpenMP default, about 3x
    # slower next to OpenBLAS here. So netc's runtime comes first, as in a user's script.
    from netc.runtime.executor import Executor  # isort: skip

    import numba
    import numpy as np

    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.device import make_executor
    from netc.runtime.optim import Optimizer, segments

    def feed_of(plan: Any, batch: int) -> dict[str, np.ndarray]:
        return {
            k: v.astype(np.float32) if v.dtype.kind == "f" else v
            for k, v in random_inputs(plan, batch, seed=0).items()
        }

    def executor(plan: Any, batch: int, optimizer: str) -> Any:
        # the CPU path builds Executor itself, as it always has; "cuda" gives a CudaExecutor
        if a.device == "cpu":
            return Executor(plan, batch, optimizer=optimizer)
        return make_executor(plan, batch, a.device, optimizer=optimizer)

    versions = {"numpy": np.__version__, "numba": numba.__version__}
    out: dict[str, Any] = {"threads": numba.get_num_threads(), "versions": versions}
    if a.device == "cuda":
        note_numba_gpu(out)
    if a.net == "gemm":  # GPU only: the CPU's GEMM ceiling is NumPy's (numpy_worker)
        from numba import cuda

        from netc.runtime.kernels.cuda_core import gemm

        n = a.batch
        rng = np.random.default_rng(0)
        hx, hy = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        x, y = cuda.to_device(hx), cuda.to_device(hy)
        c = cuda.device_array((n, n), np.float32)
        times = timed(lambda: gemm(False, False, 1.0, x, y, 0.0, c), a.steps, a.repeats, a.warmup,
                      cuda.synchronize)  # fmt: skip
        # a fast GEMM that computes the wrong product must fail the row, not top the table
        want = hx.astype(np.float64) @ hy
        err = float(np.abs(c.copy_to_host() - want).max() / np.abs(want).max())
        if not err < 1e-4:
            raise RuntimeError(f"netc gemm {n}²: relative error {err:.1e} against NumPy")
        return {**out, "gflops": 2 * n**3 * a.steps / statistics.median(times) / 1e9, "rel_err": err}
    if a.mode == "kernel":
        k = KERNELS[a.net]
        with tempfile.TemporaryDirectory() as d:
            spec = Path(d) / f"{a.net}.yaml"
            spec.write_text(k.spec)
            plan = netc.load(spec).compile(k.batch, "sgd", input_grads=True)
        ex = executor(plan, k.batch, "sgd")
        ex.forward(feed_of(plan, k.batch))
        ex.backward()  # compiles (or loads) every kernel of the plan
        sync = ex.synchronize if a.device == "cuda" else None
        fwd = ex._forward[[s.module for s in ex.plan.forward_steps].index("k")]
        bwd = ex._backward[[s.module for s in ex.plan.backward_steps].index("k")]

        def kstep() -> None:
            fwd()
            bwd()

        times = timed(kstep, a.steps, a.repeats, a.warmup, sync)
        # after the run: SciPy's OpenBLAS loads when a kernel first calls np.dot
        return {
            **out,
            "openblas": openblas_cores(),
            "threading_layer": threading_layer(),
            "gflops": 3 * k.fwd_flops * a.steps / statistics.median(times) / 1e9,
        }
    t0 = time.perf_counter()  # the start-up time runs from here: load, compile, bind, first step
    # Inference runs the inference plan (compiler.fusion: forward only, dropout removed, batchnorm
    # folded), as `netc eval` and `netc predict` do.
    mode = "inference" if a.mode == "infer" else "training"
    plan = netc.load(NETS[a.net].spec).compile(a.batch, "momentum", mode=mode)
    ex = executor(plan, a.batch, "momentum")
    sync = ex.synchronize if a.device == "cuda" else None
    feed = feed_of(plan, a.batch)
    if a.mode == "train":
        # ex.params/grads/opt_state are device arrays under CUDA: Optimizer is then a CudaOptimizer
        opt = Optimizer("momentum", ex.params, ex.grads, segments(ex.plan), state=ex.opt_state,
                        lr=LR, momentum=MOMENTUM)  # fmt: skip
        ex.training = True

        def step() -> None:
            ex.step(feed)  # on a GPU this uploads the host batch: part of netc's step cost
            opt.step()

        first, spawned = first_step(step, t0, a, sync)
        whole_step_ready(ex)
        times = timed(step, a.steps, a.repeats, a.warmup, sync)
    else:
        ex.set_inputs(feed)  # labels once; inference feeds only the data
        data = {k: v for k, v in feed.items() if v.dtype.kind == "f"}
        ex.training = False
        first, spawned = first_step(lambda: ex.forward(data), t0, a, sync)
        whole_step_ready(ex)
        times = timed(lambda: ex.forward(data), a.steps, a.repeats, a.warmup, sync)
    out["openblas"] = openblas_cores()
    out["threading_layer"] = threading_layer()
    out["kernel_cache"] = os.environ.get("NUMBA_CACHE_DIR", "")  # where netc.runtime pointed numba
    return {**out, "samples_per_s": a.batch * a.steps / statistics.median(times), "times": times,
            "first_step_s": first, "since_spawn_s": spawned}  # fmt: skip


def whole_step_ready(ex: Any) -> None:
    """Time the steady state: a CPU executor whose whole-step function was not cached compiles it
    in a separate process from its second step on (README "Whole-step native code"); wait for it
    rather than time steps beside that compile. The first step above is timed as a user sees it."""
    wait = getattr(ex, "wait_whole_step", None)
    if wait is not None:
        wait()


def numpy_worker(a: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    y = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    c = np.empty_like(x)
    times = timed(lambda: np.dot(x, y, out=c), a.steps, a.repeats, a.warmup)
    gflops = 2 * GEMM_N**3 * a.steps / statistics.median(times) / 1e9
    bounds = {k: gemms_gflops(kern.gemms, a, rng) for k, kern in KERNELS.items() if kern.gemms}
    return {"gflops": gflops, "gemm_bounds": bounds, "openblas": openblas_cores(),
            "versions": {"numpy": np.__version__}}  # fmt: skip


def gemms_gflops(gemms: tuple, a: argparse.Namespace, rng: Any) -> float:
    """GFLOP/s of a layer's forward and backward products alone (``Kernel.gemms``), one np.dot
    each over the whole batch on the worker's BLAS threads: no im2col, no epilogue."""
    import numpy as np

    def operand(rows: int, cols: int, transposed: bool) -> Any:
        m = rng.standard_normal((cols, rows) if transposed else (rows, cols), dtype=np.float32)
        return m.T if transposed else m  # a transposed view: BLAS reads it in place, as netc's do

    ops = [(operand(m, k, ta), operand(k, n, tb), np.empty((m, n), np.float32)) for m, k, n, ta, tb in gemms]

    def run() -> None:
        for x, y, c in ops:
            np.dot(x, y, out=c)

    times = timed(run, a.steps, a.repeats, a.warmup)
    return sum(2 * m * k * n for m, k, n, _, _ in gemms) * a.steps / statistics.median(times) / 1e9


def run_worker(a: argparse.Namespace) -> int:
    fn = {"netc": netc_worker, "torch": torch_worker, "numpy": numpy_worker}[a.worker]
    print(json.dumps(fn(a)))
    return 0


# -- driver ----------------------------------------------------------------------------------------
def worker_env(framework: str) -> dict[str, str]:
    env = dict(os.environ)
    t = str(THREADS)
    if framework == "torch":
        env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t)
    else:
        env.update(NUMBA_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t)
    return env


def spawn(
    framework: str,
    net: str,
    batch: int,
    mode: str,
    steps: int,
    repeats: int,
    warmup: int,
    device: str,
    env: dict[str, str] | None = None,
) -> dict:
    """One worker's result; ``framework`` "compile" is the torch worker under torch.compile, and
    ``env`` adds to the worker's environment (a cache directory)."""
    worker = "torch" if framework == "compile" else framework
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--net", net,
           "--batch", str(batch), "--mode", mode, "--steps", str(steps), "--repeats", str(repeats),
           "--warmup", str(warmup)]  # fmt: skip
    if framework == "compile":
        cmd.append("--compile")
    if device != "cpu":
        cmd += ["--device", device]
    try:
        p = subprocess.run(
            [*cmd, "--spawned", repr(time.time())],  # the clock of since_spawn starts here
            env={**worker_env(worker), **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {p.returncode}: {tail}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def csv_ints(text: str) -> set[int]:
    try:
        return {int(t) for t in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def run_rounds(
    names: list[str],
    batches: set[int] | None,
    rounds: int,
    quick: bool,
    device: str = "cpu",
    tmp: Path | None = None,
) -> Results:
    """Every measurement once per round, each in its own worker process; the framework that goes
    first alternates from round to round. With ``tmp`` (a directory of the run's) the nets also
    run under torch.compile, each row's workers sharing an inductor cache there that starts empty
    (round 1 compiles cold, later rounds load from it)."""
    repeats, warmup, scale = (1, 1, 0.05) if quick else (3, 3, 1.0)
    gpu = device == "cuda"
    jobs: list[tuple[tuple, tuple]] = []  # (row key, spawn arguments but the framework)
    for n in (n for n in names if n in NETS):
        net = NETS[n]
        for b in (b for b in net.batches if batches is None or b in batches):
            for mode, samples in (("train", net.samples), ("infer", 3 * net.samples)):
                steps = max(2, math.ceil(samples * scale / b))
                if gpu and not quick:
                    steps = max(GPU_MIN_STEPS, steps)
                jobs.append(((n, b, mode), (n, b, mode, steps)))
    kernels = [n for n in names if n in KERNELS]
    for k in kernels:
        steps = 2 if quick else (KERNELS[k].gpu_steps if gpu else KERNELS[k].steps)
        jobs.append(((k,), (k, KERNELS[k].batch, "kernel", steps)))
    res: Results = {key: {"netc": [], "torch": []} for key, _ in jobs}
    if tmp is not None:
        for key, _ in jobs:
            if len(key) == 3:
                res[key]["compile"] = []
    if kernels and gpu:  # netc's own GEMM against cuBLAS, one row a size
        for n in GPU_GEMM_SIZES:
            jobs.append((("gemm", n), ("gemm", n, "kernel", 2 if quick else gpu_gemm_steps(n))))
            res[("gemm", n)] = {"netc": [], "torch": []}
    elif kernels:
        jobs.append((("gemm",), ("gemm", GEMM_N, "kernel", 2 if quick else 10)))
        res[("gemm",)] = {"numpy": [], "torch": []}
    for r in range(rounds):
        for key, job in jobs:
            frameworks = list(res[key])
            for fw in frameworks if r % 2 == 0 else frameworks[::-1]:
                env = {"env": inductor_env(tmp, key)} if fw == "compile" and tmp else {}
                out = spawn(fw, *job, repeats, warmup, device, **env)
                res[key][fw].append(out)
                shown = out.get("error") or fmt(out.get("samples_per_s", out.get("gflops")), ",.1f")
                print(f"  round {r + 1}/{rounds} {fw:<7} {' '.join(map(str, key))}: {shown}", file=sys.stderr)
    return res


def gpu_missing() -> str | None:
    """Why ``--device cuda`` cannot run here (None when it can): numba and PyTorch must both see a
    GPU. Asked in the driver, so a machine without one gets one line instead of a failed worker
    per measurement."""
    from netc.runtime.device import cuda_usable, simulator_enabled

    ok, why = cuda_usable()
    if not ok:
        return why.rstrip(".")
    if simulator_enabled():
        return "only numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which times Python, not a GPU"
    from numba import cuda

    # cuda_usable opened a context on the GPU: give its memory back before the workers start
    cuda.close()
    try:
        import torch
    except ImportError as e:
        return f"PyTorch cannot be imported ({e})"
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        return f"PyTorch {torch.__version__} ({build}) sees no GPU"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: a twentieth of the steps, one round")
    ap.add_argument("--only", help="comma-separated nets and kernels (" + ", ".join([*NETS, *KERNELS]) + ")")
    ap.add_argument("--batches", type=csv_ints, help="comma-separated batch sizes to keep (default: all)")
    ap.add_argument("--rounds", type=int, help="alternating netc/torch rounds (default 3, quick 1)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "throughput.md", help="markdown output")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cpu (default) or cuda: netc's CudaExecutor against PyTorch on the GPU")  # fmt: skip
    default = "default: on, off with --quick; CPU only"
    ap.add_argument("--torch-compile", action=argparse.BooleanOptionalAction,
                    help=f"the torch.compile column ({default})")  # fmt: skip
    ap.add_argument("--startup", action=argparse.BooleanOptionalAction,
                    help=f"the time-to-first-step table, cold and warm kernel cache ({default})")  # fmt: skip
    ap.add_argument("--worker", choices=["netc", "torch", "numpy"], help=argparse.SUPPRESS)
    ap.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)  # the torch worker compiles
    ap.add_argument("--spawned", type=float, help=argparse.SUPPRESS)  # the driver's time.time() at spawn
    ap.add_argument("--net", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["train", "infer", "kernel"], default="train", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return run_worker(a)
    names = [n.strip() for n in a.only.split(",")] if a.only else [*NETS, *KERNELS]
    unknown = [n for n in names if n not in NETS and n not in KERNELS]
    if unknown:
        print(f"throughput.py: unknown --only {unknown}; choose from {[*NETS, *KERNELS]}", file=sys.stderr)
        return 1
    with_compile = not a.quick if a.torch_compile is None else a.torch_compile
    with_startup = not a.quick if a.startup is None else a.startup
    if a.device == "cuda" and (a.torch_compile or a.startup):
        print("throughput.py: --torch-compile and --startup are CPU-only", file=sys.stderr)
        return 1
    if a.device == "cuda":
        with_compile = with_startup = False
        why = gpu_missing()
        if why:
            print(
                f"throughput.py: no usable CUDA GPU: {why}; the GPU benchmark needs one "
                "(and a CUDA build of PyTorch)",
                file=sys.stderr,
            )
            return 1
    rounds = a.rounds or (1 if a.quick else 3)
    command = " ".join(["python benchmarks/throughput.py", *(sys.argv[1:] if argv is None else argv)])
    load0, started = os.getloadavg()[0], time.time()
    with tempfile.TemporaryDirectory(prefix="netc-bench-") as d:  # the run's empty caches
        tmp = Path(d)
        res = run_rounds(names, a.batches, rounds, a.quick, a.device, tmp if with_compile else None)
        startup: Startup = {}
        if with_startup:
            kept = {n: [b for b in NETS[n].batches if a.batches is None or b in a.batches] for n in NETS}
            rows = [(n, kept[n][0]) for n in names if n in NETS and kept[n]]  # each net's first batch
            startup = run_startup(rows, spawn, tmp, res, with_compile, lambda m: print(m, file=sys.stderr))
    if a.device == "cuda":
        text, failed = render_gpu(res, command, rounds, a.quick, load0, time.time() - started)
    else:
        text, failed = render(res, command, rounds, a.quick, load0, time.time() - started, startup)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text + "\n")
    print(f"(written to {a.out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
