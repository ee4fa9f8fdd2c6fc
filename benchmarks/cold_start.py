"""Cold start in detail: the first training step with an empty kernel cache, and where it goes.

    python benchmarks/cold_start.py [SPEC] [--batch 64] [--rounds 1] [--profile 15]

Each round runs one fresh process against an empty ``NETC_CACHE_DIR`` that loads SPEC (default
ResNet-mini), builds the training executor (momentum) and runs one step and ``opt.step()``, as the
start-up table of benchmarks/throughput.py does, and prints the seconds from loading the spec to
that first completed step, the CPU seconds of the process and those of its kernel compile worker
(``runtime/warmup.py``; on an idle machine the step takes about the larger of the two). With
``--profile N`` one more round runs in one process (``NETC_COMPILE_WORKER=0``) with numba's
``numba:compile`` events recorded and prints the N functions with the most own compile time (each
compile's CPU time less its callees'), and how often each compiled. Both
processes' CPU times are load-proof where wall times are not: record ``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import collections, json, os, resource, sys, time
from netc.runtime.executor import Executor  # numba's threading layer first, as a user's script
import numpy as np
import netc
from netc.runtime.check import random_inputs
from netc.runtime.optim import Optimizer, segments

spec, batch, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
records, stack = [], []
if top:
    from numba.core import event

    class Own(event.Listener):  # each compile's CPU time, its nested compiles' subtracted
        def on_start(self, e):
            stack.append([e.data["dispatcher"], e.data["args"], time.process_time(), 0.0])

        def on_end(self, e):
            d, args, t, inner = stack.pop()
            dt = time.process_time() - t
            if stack:
                stack[-1][3] += dt
            fn = getattr(d, "py_func", None)
            name = f"{fn.__module__}.{fn.__qualname__}" if fn else str(d)
            records.append((name.removeprefix("netc.runtime."), str(args), dt - inner))

    event.register("numba:compile", Own())
t0, c0 = time.perf_counter(), time.process_time()
plan = netc.load(spec).compile(batch, "momentum")
ex = Executor(plan, batch, optimizer="momentum")
feed = {k: v.astype(np.float32) if v.dtype.kind == "f" else v
        for k, v in random_inputs(plan, batch, seed=0).items()}
opt = Optimizer("momentum", ex.params, ex.grads, segments(ex.plan), state=ex.opt_state, lr=0.01)
ex.step(feed)
opt.step()
first, cpu = time.perf_counter() - t0, time.process_time() - c0
try:  # reap the compile worker, whose CPU time then counts among this process's children
    while True:
        os.waitpid(-1, 0)
except ChildProcessError:
    pass
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
own = collections.defaultdict(lambda: [0.0, []])
for name, args, dt in records:
    own[name][0] += dt
    own[name][1].append(args)
ranked = sorted(own.items(), key=lambda kv: -kv[1][0])[:top]
print(json.dumps({"first_step_s": first, "cpu_s": cpu, "worker_cpu_s": ch.ru_utime + ch.ru_stime,
                  "compiles": len(records), "top": ranked}))
"""


def cold(spec: Path, batch: int, top: int, worker: bool) -> dict:
    """One fresh process on an empty kernel cache of its own."""
    with tempfile.TemporaryDirectory(prefix="netc-cold-") as d:
        env = {**os.environ, "NETC_CACHE_DIR": d, "NETC_COMPILE_WORKER": "1" if worker else "0"}
        env.pop("NUMBA_CACHE_DIR", None)
        out = subprocess.run([sys.executable, "-c", CHILD, str(spec), str(batch), str(top)], env=env,
                             cwd=d, capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", default=str(HERE / "specs" / "resnet_mini.yaml"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="the N costliest functions")
    a = ap.parse_args(argv)
    spec = Path(a.spec).resolve()
    print(f"{spec.name}, batch {a.batch}, load {os.getloadavg()[0]:.2f}")
    for i in range(a.rounds):
        r = cold(spec, a.batch, 0, True)
        print(f"round {i + 1}: first step {r['first_step_s']:.2f} s; CPU {r['cpu_s']:.2f} s here, "
              f"{r['worker_cpu_s']:.2f} s in the compile worker")  # fmt: skip
    if a.profile:
        r = cold(spec, a.batch, a.profile, False)
        print(f"one process: first step {r['first_step_s']:.2f} s, CPU {r['cpu_s']:.2f} s, "
              f"{r['compiles']} compiles; own compile CPU time (callees subtracted):")  # fmt: skip
        for name, (own, sigs) in r["top"]:
            print(f"  {own:6.2f} s  x{len(sigs)}  {name}")
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
