"""Throughput benchmark: netc against PyTorch CPU eager, samples/s and GFLOP/s.

    python benchmarks/throughput.py                 # everything, 3 alternating rounds (minutes)
    python benchmarks/throughput.py --quick         # smoke run: few steps, one round
    python benchmarks/throughput.py --only mlp,conv # a subset (nets: mlp lenet5 resnet_mini
                                                    #   transformer_layer; kernels: conv linear)
    python benchmarks/throughput.py --quick --only mlp --batches 64 --out /tmp/t.md   # the test's smoke run

For each net and batch it measures (a) a training step — forward, loss,
backward and an SGD-momentum update (lr 0.01, momentum 0.9) — and (b)
inference, in netc and in a PyTorch twin of the same architecture, then the
forward+backward GFLOP/s of one conv2d and one linear layer as a share of the
float32 GEMM ceiling (np.dot of 2048², measured in the same run).

Every measurement runs in its own worker process with 2 threads, because
OpenBLAS (netc's BLAS, through SciPy) and PyTorch's OpenMP/MKL pools fight for
the two cores when they share a process (DESIGN.md §8); the driver alternates
which framework goes first from round to round and reports medians over rounds.
A worker is ``--worker netc|torch|numpy --net NAME --batch B --mode train|infer|kernel``;
it warms up (compiles or loads kernels, fills caches), times ``--repeats``
runs of ``--steps`` steps and prints one JSON line.

netc's timed step includes copying the batch into its arena (its real per-batch
cost); PyTorch reads the same preallocated tensors. Inference in PyTorch runs
under ``torch.inference_mode()`` in eval mode (the transformer layer takes its
fused fast path there). The markdown table is printed and written to
benchmarks/results/throughput.md (git-ignored). The figures say which
OPENBLAS_CORETYPE was set: it changes the GEMM ceiling about 2x on these machines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREADS = 2
LR, MOMENTUM = 0.01, 0.9


@dataclass(frozen=True)
class Net:
    spec: Path
    batches: tuple[int, ...]
    target: float  # netc/torch samples/s ratio to reach
    samples: int  # samples per timed repeat of a training step (inference: 3x)


NETS = {
    "mlp": Net(HERE / "specs" / "mlp.yaml", (64, 256), 1.5, 24_000),
    "lenet5": Net(ROOT / "examples" / "lenet5.yaml", (64, 256), 1.0, 4_096),
    "resnet_mini": Net(HERE / "specs" / "resnet_mini.yaml", (64,), 1.0, 384),
    "transformer_layer": Net(HERE / "specs" / "transformer_layer.yaml", (32,), 1.0, 640),
}


@dataclass(frozen=True)
class Kernel:
    shape: str  # for the table
    batch: int
    spec: str  # a netc spec whose module `k` is the layer timed
    fwd_flops: int  # per batch; backward is 2x (input and weight gradients)
    steps: int


KERNELS = {
    "conv": Kernel(
        "conv2d N64 C32 32×32 → 32, k3 p1, no bias",
        64,
        """netc: 1
inputs:
  x: {shape: [32, 32, 32]}
  t: {shape: [32, 32, 32]}
modules:
  k: {op: conv2d, in: x, out_channels: 32, kernel: 3, padding: 1, bias: false}
losses:
  l: {op: mse, in: [k, t]}
""",
        2 * 64 * 32 * 32 * 32 * 32 * 9,
        6,
    ),
    "linear": Kernel(
        "linear N256 1024 → 1024, bias",
        256,
        """netc: 1
inputs:
  x: {shape: [1024]}
  t: {shape: [1024]}
modules:
  k: {op: linear, in: x, out_features: 1024}
losses:
  l: {op: mse, in: [k, t]}
""",
        2 * 256 * 1024 * 1024,
        12,
    ),
}
GEMM_N = 2048


# -- workers ---------------------------------------------------------------------------------------
def timed(step: Callable[[], None], steps: int, repeats: int, warmup: int) -> list[float]:
    """Seconds per repeat of `steps` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - t)
    return times


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


def torch_twin(net: str) -> Any:
    """The PyTorch module equivalent to a benchmark net's spec."""
    from torch import nn

    if net == "mlp":
        return nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )
    if net == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
        )  # fmt: skip
    if net == "resnet_mini":

        class Basic(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(32)
                self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(32)

            def forward(self, x: Any) -> Any:
                y = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
                return (y + x).relu()

        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            Basic(), Basic(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )  # fmt: skip
    if net == "transformer_layer":

        class Layer(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.layer = nn.TransformerEncoderLayer(
                    128, 4, 512, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                self.head = nn.Linear(128, 10)

            def forward(self, x: Any) -> Any:
                return self.head(self.layer(x).mean(dim=1))

        return Layer()
    raise ValueError(f"no PyTorch twin for '{net}'")


TORCH_INPUT = {
    "mlp": (784,),
    "lenet5": (1, 28, 28),
    "resnet_mini": (3, 32, 32),
    "transformer_layer": (64, 128),
}


def torch_worker(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "versions": {"torch": torch.__version__}}
    if a.net == "gemm":
        x, y = torch.randn(GEMM_N, GEMM_N), torch.randn(GEMM_N, GEMM_N)
        c = torch.empty(GEMM_N, GEMM_N)
        times = timed(lambda: torch.mm(x, y, out=c), a.steps, a.repeats, a.warmup)
        return {**out, "gflops": 2 * GEMM_N**3 * a.steps / statistics.median(times) / 1e9}
    if a.mode == "kernel":
        k = KERNELS[a.net]
        if a.net == "conv":
            layer = torch.nn.Conv2d(32, 32, 3, padding=1, bias=False)
            x = torch.randn(k.batch, 32, 32, 32, requires_grad=True)
        else:
            layer = torch.nn.Linear(1024, 1024)
            x = torch.randn(k.batch, 1024, requires_grad=True)
        dy = torch.randn_like(layer(x))

        def kstep() -> None:
            layer(x).backward(dy)

        times = timed(kstep, a.steps, a.repeats, a.warmup)
        return {**out, "gflops": 3 * k.fwd_flops * a.steps / statistics.median(times) / 1e9}
    model = torch_twin(a.net)
    x = torch.randn(a.batch, *TORCH_INPUT[a.net])
    label = torch.randint(0, 10, (a.batch,))
    if a.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = torch.nn.functional.cross_entropy

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), label).backward()
            opt.step()

        times = timed(step, a.steps, a.repeats, a.warmup)
    else:
        model.eval()
        with torch.inference_mode():
            times = timed(lambda: model(x), a.steps, a.repeats, a.warmup)
    return {**out, "samples_per_s": a.batch * a.steps / statistics.median(times), "times": times}


def netc_worker(a: argparse.Namespace) -> dict[str, Any]:
    # The executor picks numba's threading layer (workqueue) before numba is
    # imported; importing numba first would leave the OpenMP default, about 3x
    # slower next to OpenBLAS here. So netc's runtime comes first, as in a user's script.
    from netc.runtime.executor import Executor  # isort: skip

    import numba
    import numpy as np

    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.optim import Optimizer, segments

    def feed_of(plan: Any, batch: int) -> dict[str, np.ndarray]:
        return {
            k: v.astype(np.float32) if v.dtype.kind == "f" else v
            for k, v in random_inputs(plan, batch, seed=0).items()
        }

    versions = {"numpy": np.__version__, "numba": numba.__version__}
    out: dict[str, Any] = {"threads": numba.get_num_threads(), "versions": versions}
    if a.mode == "kernel":
        k = KERNELS[a.net]
        with tempfile.TemporaryDirectory() as d:
            spec = Path(d) / f"{a.net}.yaml"
            spec.write_text(k.spec)
            plan = netc.load(spec).compile(k.batch, "sgd", input_grads=True)
        ex = Executor(plan, k.batch, optimizer="sgd")
        ex.forward(feed_of(plan, k.batch))
        ex.backward()  # compiles (or loads) every kernel of the plan
        fwd = ex._forward[[s.module for s in ex.plan.forward_steps].index("k")]
        bwd = ex._backward[[s.module for s in ex.plan.backward_steps].index("k")]

        def kstep() -> None:
            fwd()
            bwd()

        times = timed(kstep, a.steps, a.repeats, a.warmup)
        # after the run: SciPy's OpenBLAS loads when a kernel first calls np.dot
        return {
            **out,
            "openblas": openblas_cores(),
            "threading_layer": threading_layer(),
            "gflops": 3 * k.fwd_flops * a.steps / statistics.median(times) / 1e9,
        }
    plan = netc.load(NETS[a.net].spec).compile(a.batch, "momentum")
    ex = Executor(plan, a.batch, optimizer="momentum")
    feed = feed_of(plan, a.batch)
    if a.mode == "train":
        opt = Optimizer("momentum", ex.params, ex.grads, segments(ex.plan), state=ex.opt_state,
                        lr=LR, momentum=MOMENTUM)  # fmt: skip
        ex.training = True

        def step() -> None:
            ex.forward(feed)
            ex.backward()
            opt.step()

        times = timed(step, a.steps, a.repeats, a.warmup)
    else:
        ex.set_inputs(feed)  # labels once; inference feeds only the data
        data = {k: v for k, v in feed.items() if v.dtype.kind == "f"}
        ex.training = False
        times = timed(lambda: ex.forward(data), a.steps, a.repeats, a.warmup)
    out["openblas"] = openblas_cores()
    out["threading_layer"] = threading_layer()
    return {**out, "samples_per_s": a.batch * a.steps / statistics.median(times), "times": times}


def numpy_worker(a: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    y = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    c = np.empty_like(x)
    times = timed(lambda: np.dot(x, y, out=c), a.steps, a.repeats, a.warmup)
    gflops = 2 * GEMM_N**3 * a.steps / statistics.median(times) / 1e9
    return {"gflops": gflops, "openblas": openblas_cores(), "versions": {"numpy": np.__version__}}


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


def spawn(framework: str, net: str, batch: int, mode: str, steps: int, repeats: int, warmup: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--net", net,
           "--batch", str(batch), "--mode", mode, "--steps", str(steps), "--repeats", str(repeats),
           "--warmup", str(warmup)]  # fmt: skip
    try:
        p = subprocess.run(
            cmd, env=worker_env(framework), cwd=ROOT, capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {p.returncode}: {tail}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


Results = dict[tuple, dict[str, list[dict]]]  # row key -> framework -> one result per round


def median_of(results: list[dict], field: str) -> float | None:
    vals = [r[field] for r in results if field in r]
    return statistics.median(vals) if vals else None


def spread(results: list[dict], field: str) -> str:
    vals = [r[field] for r in results if field in r]
    return f"{max(vals) / min(vals):.2f}" if len(vals) > 1 and min(vals) > 0 else "—"


def fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def csv_ints(text: str) -> set[int]:
    try:
        return {int(t) for t in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def run_rounds(names: list[str], batches: set[int] | None, rounds: int, quick: bool) -> Results:
    """Every measurement once per round, each in its own worker process; the
    framework that goes first alternates from round to round."""
    repeats, warmup, scale = (1, 1, 0.05) if quick else (3, 3, 1.0)
    jobs: list[tuple[tuple, tuple]] = []  # (row key, spawn arguments but the framework)
    for n in (n for n in names if n in NETS):
        net = NETS[n]
        for b in (b for b in net.batches if batches is None or b in batches):
            for mode, samples in (("train", net.samples), ("infer", 3 * net.samples)):
                jobs.append(((n, b, mode), (n, b, mode, max(2, math.ceil(samples * scale / b)))))
    kernels = [n for n in names if n in KERNELS]
    for k in kernels:
        jobs.append(((k,), (k, KERNELS[k].batch, "kernel", 2 if quick else KERNELS[k].steps)))
    res: Results = {key: {"netc": [], "torch": []} for key, _ in jobs}
    if kernels:
        jobs.append((("gemm",), ("gemm", GEMM_N, "kernel", 2 if quick else 10)))
        res[("gemm",)] = {"numpy": [], "torch": []}
    for r in range(rounds):
        for key, job in jobs:
            frameworks = list(res[key])
            for fw in frameworks if r % 2 == 0 else frameworks[::-1]:
                out = spawn(fw, *job, repeats, warmup)
                res[key][fw].append(out)
                shown = out.get("error") or fmt(out.get("samples_per_s", out.get("gflops")), ",.1f")
                print(f"  round {r + 1}/{rounds} {fw:<5} {' '.join(map(str, key))}: {shown}", file=sys.stderr)
    return res


def render(
    res: Results, command: str, rounds: int, quick: bool, load0: float, wall: float
) -> tuple[str, bool]:
    """The markdown report, and whether any worker failed."""
    every = [r for v in res.values() for rs in v.values() for r in rs]
    cores = sorted({f"{lib} {core}" for r in every for lib, core in r.get("openblas", {}).items()})
    versions = sorted({f"{k} {v}" for r in every for k, v in r.get("versions", {}).items()})
    layers = sorted({r["threading_layer"] for r in every if "threading_layer" in r})
    lines = [
        "# netc vs PyTorch CPU eager: throughput",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')} · {platform.node()} · "
        f"{os.cpu_count()} cores · python {platform.python_version()} · {', '.join(versions)}",
        "",
        f"{THREADS} threads per worker process (numba threading layer: {', '.join(layers) or '—'}); "
        f"median of {rounds} alternating round(s), each the median of {1 if quick else 3} timed repeat(s)"
        + (" (--quick: smoke figures)" if quick else ""),
        "",
        f"command: `{command}`",
        "",
        f"OPENBLAS_CORETYPE: {os.environ.get('OPENBLAS_CORETYPE', 'unset')}"
        + (f" (OpenBLAS core in use: {', '.join(cores)})" if cores else ""),
        "",
        f"load average (1 min): {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; above about 0.5 other "
        f"processes share the {os.cpu_count()} cores and the figures are noisy. Wall {wall:.0f} s.",
        "",
    ]
    nets = [k for k in res if len(k) == 3]
    if nets:
        lines += [
            "| net | batch | mode | netc samples/s | torch samples/s | netc/torch | target "
            "| spread netc / torch (max/min over rounds) |",
            "|---|---:|---|---:|---:|---:|---|---|",
        ]
        for key in nets:
            n, b, mode = key
            nr, tr = res[key]["netc"], res[key]["torch"]
            nv, tv = median_of(nr, "samples_per_s"), median_of(tr, "samples_per_s")
            ratio = nv / tv if nv and tv else None
            target = NETS[n].target
            met = "" if ratio is None else " ✓" if ratio >= target else " ✗"
            shown = "—" if ratio is None else f"{ratio:.2f}x"
            lines.append(
                f"| {n} | {b} | {mode} | {fmt(nv, ',.0f')} | {fmt(tv, ',.0f')} | {shown} "
                f"| ≥ {target:.1f}x{met} | {spread(nr, 'samples_per_s')} / {spread(tr, 'samples_per_s')} |"
            )
        lines.append("")
    kernels = [k for k in res if len(k) == 1 and k[0] in KERNELS]
    if kernels:
        ceiling = median_of(res[("gemm",)]["numpy"], "gflops")
        tgemm = median_of(res[("gemm",)]["torch"], "gflops")

        def share(v: float | None) -> str:
            return "—" if v is None or not ceiling else f"{v / ceiling:.0%}"

        lines += [
            f"GEMM ceiling: NumPy float32 np.dot {GEMM_N}² {fmt(ceiling, '.1f')} GFLOP/s; "
            f"torch.mm {GEMM_N}² {fmt(tgemm, '.1f')} GFLOP/s ({share(tgemm)} of NumPy's)",
            "",
            "| layer, forward + backward (dx and dW) | netc GFLOP/s | share of NumPy GEMM "
            "| torch GFLOP/s | share of NumPy GEMM |",
            "|---|---:|---:|---:|---:|",
        ]
        for (k,) in kernels:
            nv, tv = median_of(res[(k,)]["netc"], "gflops"), median_of(res[(k,)]["torch"], "gflops")
            lines.append(
                f"| {KERNELS[k].shape} | {fmt(nv, '.1f')} | {share(nv)} | {fmt(tv, '.1f')} | {share(tv)} |"
            )
        lines.append("")
    failed = sorted(
        {f"{' '.join(map(str, k))} ({fw}): {r['error']}" for k, v in res.items() for fw, rs in v.items()
         for r in rs if "error" in r}
    )  # fmt: skip
    if failed:
        lines += ["Failed workers:", "", *(f"- {f}" for f in failed), ""]
    return "\n".join(lines), bool(failed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: a twentieth of the steps, one round")
    ap.add_argument("--only", help="comma-separated nets and kernels (" + ", ".join([*NETS, *KERNELS]) + ")")
    ap.add_argument("--batches", type=csv_ints, help="comma-separated batch sizes to keep (default: all)")
    ap.add_argument("--rounds", type=int, help="alternating netc/torch rounds (default 3, quick 1)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "throughput.md", help="markdown output")
    ap.add_argument("--worker", choices=["netc", "torch", "numpy"], help=argparse.SUPPRESS)
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
    rounds = a.rounds or (1 if a.quick else 3)
    command = " ".join(["python benchmarks/throughput.py", *(sys.argv[1:] if argv is None else argv)])
    load0, started = os.getloadavg()[0], time.time()
    res = run_rounds(names, a.batches, rounds, a.quick)
    text, failed = render(res, command, rounds, a.quick, load0, time.time() - started)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text + "\n")
    print(f"(written to {a.out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
