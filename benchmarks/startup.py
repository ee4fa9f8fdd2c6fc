"""Start-up part of benchmarks/throughput.py: the time to the first step, cold and warm.

For every benchmark net (at its first batch size), training and inference, the driver starts
netc's worker twice against one kernel cache directory that begins empty (``NETC_CACHE_DIR``, which
netc.runtime hands numba as ``NUMBA_CACHE_DIR``): the first process compiles every kernel (cold),
the second loads them from the cache (warm). torch.compile (inductor, default mode) gets the same
pair against one inductor cache (``TORCHINDUCTOR_CACHE_DIR``); when the throughput rounds already
ran the row's torch.compile worker, that worker's first step is the cold figure (the row's
inductor cache started empty) and only the warm process is added. PyTorch eager's first step
comes from the throughput rounds' eager workers (median), for reference.

Each worker reports two figures: the measured part, from loading the spec (netc) or building the
model (PyTorch) to the first completed step, and the same from the driver's spawn (interpreter
start-up and imports included). The targets (ResNet-mini: training, cold < 10 s, warm < 1 s)
apply to the measured part.

Kept apart from throughput.py (which passes its ``spawn`` in) so the table can be tested on
canned results.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

# spawn(framework, net, batch, mode, steps, repeats, warmup, device, env=...) -> a worker's result
Spawn = Callable[..., dict[str, Any]]
Startup = dict[tuple, dict[str, dict[str, Any]]]  # (net, batch, mode) -> which run -> its result


def inductor_dir(tmp: Path, key: tuple) -> Path:
    """The inductor cache of one row (net, batch, mode): shared by its torch.compile workers in
    the throughput rounds and the start-up runs, empty when the run starts."""
    return tmp / "inductor" / "-".join(map(str, key))


def inductor_env(tmp: Path, key: tuple) -> dict[str, str]:
    return {"TORCHINDUCTOR_CACHE_DIR": str(inductor_dir(tmp, key))}


def run_startup(
    rows: list[tuple[str, int]],
    spawn: Spawn,
    tmp: Path,
    res: dict,
    with_compile: bool,
    log: Callable[[str], None],
) -> Startup:
    """The start-up runs of every (net, batch), training and inference. ``res`` holds the
    throughput rounds' results (row key -> framework -> one result per round), reused where
    they already measured a figure: torch.compile's cold first step and PyTorch eager's."""
    out: Startup = {}
    for net, batch in rows:
        for mode in ("train", "infer"):
            key = (net, batch, mode)
            got: dict[str, dict[str, Any]] = {}
            # an empty directory of its own: nothing of the driver's or an earlier run's cache
            cache = {"NETC_CACHE_DIR": str(tmp / "netc-cache" / "-".join(map(str, key)))}
            for run in ("netc cold", "netc warm"):
                got[run] = spawn("netc", net, batch, mode, 1, 1, 0, "cpu", env=cache)
            rounds = res.get(key, {})
            if with_compile:
                earlier = rounds.get("compile", [])
                if earlier and "error" not in earlier[0]:
                    got["compile cold"] = earlier[0]  # round 1: the row's inductor cache was empty
                else:
                    got["compile cold"] = spawn("compile", net, batch, mode, 1, 1, 0, "cpu",
                                                env=inductor_env(tmp, key))  # fmt: skip
                got["compile warm"] = spawn(
                    "compile", net, batch, mode, 1, 1, 0, "cpu", env=inductor_env(tmp, key)
                )
            eager = [r for r in rounds.get("torch", []) if "first_step_s" in r]
            if eager:
                got["torch"] = {
                    "first_step_s": statistics.median(r["first_step_s"] for r in eager),
                    "since_spawn_s": median_or_none([r.get("since_spawn_s") for r in eager]),
                }
            for run, r in got.items():
                log(f"  start-up {run:<12} {net} {batch} {mode}: {r.get('error') or cell(r)}")
            out[key] = got
    return out


def median_or_none(vals: list[float | None]) -> float | None:
    kept = [v for v in vals if v is not None]
    return statistics.median(kept) if kept else None


def cell(r: dict[str, Any] | None) -> str:
    """'measured part (since spawn)' in seconds, or — for a run that is missing or failed."""
    if not r or "first_step_s" not in r:
        return "—"
    total = r.get("since_spawn_s")
    return f"{r['first_step_s']:.2f}" + ("" if total is None else f" ({total:.2f})")


def target_cell(net: Any, mode: str, got: dict[str, dict[str, Any]]) -> str:
    """Cold and warm targets of a training row, each marked met (✓) or missed (✗)."""
    if mode != "train" or (net.cold_start is None and net.warm_start is None):
        return "—"
    parts = []
    for run, limit in (("netc cold", net.cold_start), ("netc warm", net.warm_start)):
        if limit is None:
            continue
        v = got.get(run, {}).get("first_step_s")
        mark = "" if v is None else " ✓" if v < limit else " ✗"
        parts.append(f"{run.split()[1]} < {limit:g} s{mark}")
    return ", ".join(parts)


def render_startup(startup: Startup, nets: dict[str, Any]) -> list[str]:
    """The markdown start-up table (no lines when nothing was measured)."""
    if not startup:
        return []
    lines = [
        "Time to the first step, seconds: from loading the spec (netc) or building the model "
        "(PyTorch) to the first completed step; in brackets from the worker's spawn, interpreter "
        "start-up and imports included. Cold: an empty kernel cache (netc: a fresh NETC_CACHE_DIR; "
        "torch.compile: a fresh TORCHINDUCTOR_CACHE_DIR); warm: a second process on the same cache. "
        "Targets apply to the first figure.",
        "",
        "| net | batch | mode | netc cold | netc warm | target | torch.compile cold | torch.compile warm "
        "| torch eager |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for (n, b, mode), got in startup.items():
        lines.append(
            f"| {n} | {b} | {mode} | {cell(got.get('netc cold'))} | {cell(got.get('netc warm'))} "
            f"| {target_cell(nets[n], mode, got)} | {cell(got.get('compile cold'))} "
            f"| {cell(got.get('compile warm'))} | {cell(got.get('torch'))} |"
        )
    return [*lines, ""]


def failures(startup: Startup) -> list[str]:
    return [f"start-up {' '.join(map(str, k))} ({run}): {r['error']}"
            for k, got in startup.items() for run, r in got.items() if "error" in r]  # fmt: skip
