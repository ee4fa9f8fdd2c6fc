"""The markdown reports of benchmarks/throughput.py: the CPU report (netc against PyTorch eager and
torch.compile, the layers against the GEMM ceiling, the start-up table) and the GPU report.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from collections.abc import Callable

from nets import EAGER_TARGET, GEMM_N, GPU_GEMM_SIZES, KERNELS, NETS, THREADS
from startup import Startup, median_or_none, render_startup
from startup import failures as startup_failures

Results = dict[tuple, dict[str, list[dict]]]  # row key -> framework -> one result per round


def median_of(results: list[dict], field: str) -> float | None:
    vals = [r[field] for r in results if field in r]
    return statistics.median(vals) if vals else None


def spread(results: list[dict], field: str) -> str:
    vals = [r[field] for r in results if field in r]
    return f"{max(vals) / min(vals):.2f}" if len(vals) > 1 and min(vals) > 0 else "—"


def fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def render(
    res: Results,
    command: str,
    rounds: int,
    quick: bool,
    load0: float,
    wall: float,
    startup: Startup | None = None,
) -> tuple[str, bool]:
    """The markdown report, and whether any worker failed."""
    startup = startup or {}
    every = [r for v in res.values() for rs in v.values() for r in rs]
    every += [r for got in startup.values() for r in got.values()]
    cores = sorted({f"{lib} {core}" for r in every for lib, core in r.get("openblas", {}).items()})
    versions = sorted({f"{k} {v}" for r in every for k, v in r.get("versions", {}).items()})
    layers = sorted({r["threading_layer"] for r in every if "threading_layer" in r})
    # what the workers' pools actually run with (numba.get_num_threads, torch.get_num_threads)
    threads = sorted({str(r["threads"]) for r in every if "threads" in r})
    compiled = any("compile" in v for v in res.values())
    lines = [
        "# netc vs PyTorch CPU eager" + (" and torch.compile" if compiled else "") + ": throughput",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')} · {platform.node()} · "
        f"{os.cpu_count()} cores · python {platform.python_version()} · {', '.join(versions)}",
        "",
        f"{THREADS} threads per worker process (reported by the workers: {', '.join(threads) or '—'}; numba "
        f"threading layer: {', '.join(layers) or '—'}); "
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
    if compiled:
        lines += [
            "torch.compile: `torch.compile(model)` (inductor, default mode) on the same twin; its first call "
            "traces and compiles. Each row's inductor cache (TORCHINDUCTOR_CACHE_DIR) starts empty: the "
            "first-call column gives round 1 (cold) / the median of later rounds (warm cache).",
            "",
        ]
    lines += net_table(
        res,
        lambda n, mode: NETS[n].target if mode == "train" else EAGER_TARGET,
        "target",
        lambda n, mode: NETS[n].compile_target,
    )
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
            "| layer, forward + backward (dx and dW) | netc GFLOP/s | share of NumPy GEMM | target "
            "| torch GFLOP/s | share of NumPy GEMM | its GEMMs as whole-batch np.dot |",
            "|---|---:|---:|---|---:|---:|---:|",
        ]
        for (k,) in kernels:
            nv, tv = median_of(res[(k,)]["netc"], "gflops"), median_of(res[(k,)]["torch"], "gflops")
            bound = median_of([r.get("gemm_bounds", {}) for r in res[("gemm",)]["numpy"]], k)
            t = KERNELS[k].target
            mark = "" if nv is None or not ceiling else " ✓" if nv / ceiling >= t else " ✗"
            lines.append(
                f"| {KERNELS[k].shape} | {fmt(nv, '.1f')} | {share(nv)} | ≥ {t:.0%}{mark} "
                f"| {fmt(tv, '.1f')} | {share(tv)} | {share(bound)} |"
            )
        lines += [
            "",
            "The last column times the products netc's kernels compute for the layer (im2col's "
            "for the convolution), each as one np.dot over the whole batch on the worker's BLAS "
            "threads, with nothing else: what OpenBLAS itself reaches at these shapes. netc's "
            "kernels split them into per-thread chunks on one BLAS thread each, which can beat it.",
        ]
        lines.append("")
    lines += render_startup(startup, NETS)
    failed = failures(res) + startup_failures(startup)
    if failed:
        lines += ["Failed workers:", "", *(f"- {f}" for f in failed), ""]
    return "\n".join(lines), bool(failed)


def failures(res: Results) -> list[str]:
    return sorted(
        {f"{' '.join(map(str, k))} ({fw}): {r['error']}" for k, v in res.items() for fw, rs in v.items()
         for r in rs if "error" in r}
    )  # fmt: skip


def net_table(
    res: Results,
    target_of: Callable[[str, str], float | None],
    heading: str,
    compile_target_of: Callable[[str, str], float | None] = lambda n, mode: None,
) -> list[str]:
    """The samples/s table of the nets, netc against torch eager (and torch.compile, when its
    workers ran), with each row's targets (None: "—")."""
    nets = [k for k in res if len(k) == 3]
    if not nets:
        return []
    compiled = any("compile" in res[k] for k in nets)
    fws = ["netc", "torch", *(["compile"] if compiled else [])]
    extra = ("torch.compile samples/s | ", "netc/torch.compile | target | torch.compile first call, s "
             "(cold / warm) | ", " / torch.compile", "---:|", "---:|---|---:|")  # fmt: skip
    head, ratios, spreads, col, cols = extra if compiled else ("", "", "", "", "")
    lines = [
        f"| net | batch | mode | netc samples/s | torch eager samples/s | {head}netc/eager | {heading} "
        f"| {ratios}spread netc / eager{spreads} (max/min over rounds) |",
        f"|---|---:|---|---:|---:|{col}---:|---|{cols}---|",
    ]
    for n, b, mode in nets:
        rs = res[(n, b, mode)]
        vals = [median_of(rs[fw], "samples_per_s") for fw in fws]
        ratio, shown = ratio_cell(vals[0], vals[1])
        cells = [n, b, mode, *(fmt(v, ",.0f") for v in vals), shown, target_mark(ratio, target_of(n, mode))]
        if compiled:
            cratio, cshown = ratio_cell(vals[0], vals[2])
            cells += [cshown, target_mark(cratio, compile_target_of(n, mode)), first_calls(rs["compile"])]
        cells.append(" / ".join(spread(rs[fw], "samples_per_s") for fw in fws))
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return [*lines, ""]


def target_mark(ratio: float | None, t: float | None) -> str:
    """'≥ t' and whether the ratio meets it (✓) or not (✗); — without a target."""
    return "—" if t is None else f"≥ {t:.1f}x" + ("" if ratio is None else " ✓" if ratio >= t else " ✗")


def first_calls(results: list[dict]) -> str:
    """torch.compile's first call, seconds: round 1 (the row's inductor cache empty) / the median
    of the later rounds (cache warm)."""
    firsts = [r.get("first_step_s") for r in results]
    cold = firsts[0] if firsts else None
    return f"{fmt(cold, '.1f')} / {fmt(median_or_none(firsts[1:]), '.1f')}"


def ratio_cell(nv: float | None, tv: float | None) -> tuple[float | None, str]:
    ratio = nv / tv if nv and tv else None
    return ratio, "—" if ratio is None else f"{ratio:.2f}x"


def render_gpu(
    res: Results, command: str, rounds: int, quick: bool, load0: float, wall: float
) -> tuple[str, bool]:
    """The markdown report of a ``--device cuda`` run, and whether any worker failed."""
    every = [r for v in res.values() for rs in v.values() for r in rs]
    versions = sorted({f"{k} {v}" for r in every for k, v in r.get("versions", {}).items()})
    gpus = sorted(
        {f"{r['gpu_numba']} (numba)" for r in every if "gpu_numba" in r}
        | {f"{r['gpu']} (torch)" for r in every if "gpu" in r}
    )
    lines = [
        "# netc vs PyTorch CUDA eager: throughput",
        "",
        f"{datetime.datetime.now().isoformat(timespec='seconds')} · {platform.node()} · "
        f"GPU: {', '.join(gpus) or '—'} · python {platform.python_version()} · {', '.join(versions)}",
        "",
        f"one worker process per measurement, every timed repeat ends with a synchronize; median of {rounds} "
        f"alternating round(s), each the median of {1 if quick else 3} timed repeat(s)"
        + (" (--quick: smoke figures)" if quick else ""),
        "",
        "netc's step includes the batch upload (set_inputs, host to device); PyTorch's inputs are already "
        'on the GPU. PyTorch: eager, IEEE float32 (TF32 off: fp32_precision "ieee" for matmul and cuDNN '
        "conv), cuDNN autotuning off.",
        "",
        f"command: `{command}`",
        "",
        # small nets are launch-bound: the host thread that queues the kernels shares the CPU
        f"load average (1 min): {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; the host queues "
        f"every launch, so a busy CPU slows the small nets. Wall {wall:.0f} s.",
        "",
    ]
    lines += net_table(
        res, lambda n, mode: NETS[n].gpu_target if mode == "train" else None, "target (training step)"
    )
    gemms = [k for k in res if len(k) == 2 and k[0] == "gemm"]
    if gemms:
        lines += [
            "| GEMM float32, N×N times N×N | netc `cuda_core.gemm` GFLOP/s | cuBLAS (torch.mm) GFLOP/s "
            "| netc share of cuBLAS |",
            "|---|---:|---:|---:|",
        ]
        for key in gemms:
            nv, tv = median_of(res[key]["netc"], "gflops"), median_of(res[key]["torch"], "gflops")
            share = "—" if not nv or not tv else f"{nv / tv:.0%}"
            lines.append(f"| N = {key[1]} | {fmt(nv, '.1f')} | {fmt(tv, '.1f')} | {share} |")
        lines.append("")
    kernels = [k for k in res if len(k) == 1 and k[0] in KERNELS]
    if kernels:
        top = max(GPU_GEMM_SIZES)
        ceiling = median_of(res.get(("gemm", top), {}).get("torch", []), "gflops")
        lines += [
            f"| layer, forward + backward (dx and dW) | netc GFLOP/s | torch GFLOP/s | netc/torch "
            f"| netc share of cuBLAS {top}² |",
            "|---|---:|---:|---:|---:|",
        ]
        for (k,) in kernels:
            nv, tv = median_of(res[(k,)]["netc"], "gflops"), median_of(res[(k,)]["torch"], "gflops")
            share = "—" if not nv or not ceiling else f"{nv / ceiling:.0%}"
            lines.append(
                f"| {KERNELS[k].shape} | {fmt(nv, '.1f')} | {fmt(tv, '.1f')} | {ratio_cell(nv, tv)[1]} "
                f"| {share} |"
            )
        lines.append("")
    failed = failures(res)
    if failed:
        lines += ["Failed workers:", "", *(f"- {f}" for f in failed), ""]
    return "\n".join(lines), bool(failed)
