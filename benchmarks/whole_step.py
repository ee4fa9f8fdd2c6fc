"""Per-op replay against whole-step native code, with the optimizer update apart or inside.

    python benchmarks/whole_step.py SPEC OPTIMIZER     # e.g. examples/iris_mlp.yaml adam

Times three ways of running a training step at batch 64 in one process, alternated (7 rounds of 200
steps after 20 warm-up steps, medians): per op (``NETC_WHOLE_STEP=0``) then ``opt.step()``; the
whole-step function then ``opt.step()``; and ``ex.step(update=opt)``, the update inside the native
call. The whole-step functions compile (or load) before timing (``NETC_WHOLE_STEP=sync``). Run it
with ``OPENBLAS_NUM_THREADS=1`` on a shared machine: OpenBLAS's spinning threads make the rounds
swing far more than the difference measured.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from netc.runtime.executor import Executor  # isort: skip  (picks numba's threading layer first)

import netc
from netc.compiler.plan import optimizer_key
from netc.runtime.check import random_inputs
from netc.runtime.optim import Optimizer, segments

BATCH, ROUNDS, STEPS, WARMUP = 64, 7, 200, 20


def main(spec: str, kind: str) -> None:
    cfg = {"type": kind}
    plan = netc.load(spec).compile(BATCH, optimizer_key(cfg))
    pairs = {}
    for mode in ("0", "sync"):
        os.environ["NETC_WHOLE_STEP"] = mode
        ex = Executor(plan, BATCH, seed=1, optimizer=plan.optimizer)
        ex.set_inputs(random_inputs(plan, BATCH, seed=2))
        pairs[mode] = (
            ex,
            Optimizer.from_config(cfg, ex.params, ex.grads, segments(plan), state=ex.opt_state),
        )
    per_op, whole = pairs["0"], pairs["sync"]
    runs = {
        "per op": lambda: (per_op[0].step(), per_op[1].step()),
        "whole + opt.step": lambda: (whole[0].step(), whole[1].step()),
        "update inside": lambda: whole[0].step(update=whole[1]),
    }
    for f in runs.values():
        for _ in range(WARMUP):
            f()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(ROUNDS):
        for k, f in runs.items():
            t = time.perf_counter()
            for _ in range(STEPS):
                f()
            times[k].append((time.perf_counter() - t) / STEPS * 1e6)
    print(f"{spec} {kind} batch {BATCH}: median µs per step over {ROUNDS} alternated rounds of {STEPS}")
    for k, v in times.items():
        print(f"  {k:18s} {statistics.median(v):9.1f}   (min {min(v):.1f}, max {max(v):.1f})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/whole_step.py SPEC OPTIMIZER")
    main(sys.argv[1], sys.argv[2])
