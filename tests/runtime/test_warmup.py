"""Cold start (runtime/warmup.py): a plan's uncached kernels compile on two processes at once, into
numba's disk cache, so that a second process compiles nothing; a failing or stalled worker costs
only its share, with a message, never a hang. The cold runs go in subprocesses with caches of
their own (this session's cache is warm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from netc.runtime import warmup
from tests.tinyspec import classifier

SPEC = classifier("warm", "optimizer: {type: sgd, lr: 0.1}\nbatch_size: 4", "{source: blobs, samples: 50}")

# One step of the classifier from a fresh process; prints what the warm-up did, the numba compiles
# the step made (numba:compile events), and the loss.
RUN = """
import json, sys
from numba.core import event
from netc.runtime.executor import Executor
import numpy as np, netc
from netc.runtime.check import random_inputs
from netc.runtime import warmup
if sys.argv[2] != "-":
    warmup._WORKER = sys.argv[2]
plan = netc.load(sys.argv[1]).compile(4, "sgd")
ex = Executor(plan, 4)
feed = random_inputs(plan, 4, seed=0)
feed = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in feed.items()}
with event.install_recorder("numba:compile") as rec:
    ex.step(feed)
starts = [e for _, e in rec.buffer if e.is_start]
print(json.dumps({"warmed": ex.warmed, "compiles": len(starts), "loss": ex.loss()}))
"""


def run(tmp: Path, cache: Path, worker: str = "-") -> tuple[dict, str]:
    spec = tmp / "warm.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "NETC_CACHE_DIR": str(cache), "NETC_WHOLE_STEP": "0"}
    env.pop("NUMBA_CACHE_DIR", None)
    p = subprocess.run([sys.executable, "-c", RUN, str(spec), worker], env=env, cwd=tmp,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def test_the_worker_fills_the_cache_so_a_second_process_compiles_nothing(tmp_path):
    cold, _ = run(tmp_path, tmp_path / "cache")
    here, theirs, failure = cold["warmed"]
    assert here >= 1 and theirs >= 1 and failure is None  # both processes compiled
    warm, err = run(tmp_path, tmp_path / "cache")
    assert warm["warmed"] is None and warm["compiles"] == 0, err  # everything loaded from the cache
    assert warm["loss"] == cold["loss"]


# A worker that takes the last item and dies: its kernel compiles here, on first call.
FAILING = (
    "import sys, pickle, pathlib; f = pathlib.Path(sys.argv[1]); "
    "n = len(pickle.loads((f / 'items').read_bytes())); (f / f'claim-{n - 1}').touch(); "
    "sys.exit('boom: the worker broke')"
)


def test_a_failing_worker_falls_back_with_a_message(tmp_path):
    out, err = run(tmp_path, tmp_path / "cache", FAILING)
    assert out["warmed"][2] == "boom: the worker broke"
    assert "the kernel compile worker failed (boom: the worker broke); compiling its kernels here" in err
    plain, _ = run(tmp_path, tmp_path / "cache2")
    assert out["loss"] == plain["loss"]


def test_a_stalled_worker_is_stopped_not_waited_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(warmup, "STALL", 0.5)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    t = time.monotonic()
    why = warmup._wait(proc, tmp_path, range(0, 2))
    assert time.monotonic() - t < 10 and proc.wait(5) is not None
    assert why == "no kernel done in 0.5 s"
    assert "kernel compile worker failed (no kernel done in 0.5 s)" in capsys.readouterr().err


def test_the_wait_ends_when_the_workers_items_are_done(tmp_path):
    for i in (3, 4):
        (tmp_path / f"done-{i}").touch()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert warmup._wait(proc, tmp_path, range(3, 5)) is None
        assert proc.poll() is None  # not waited for: it exits by itself
    finally:
        proc.kill()
        proc.wait()


def test_claims_are_exclusive(tmp_path):
    assert warmup._claim(tmp_path, 0) and not warmup._claim(tmp_path, 0) and warmup._claim(tmp_path, 1)


def test_the_worker_can_be_turned_off(monkeypatch):
    def never(thunks):
        raise AssertionError("looked for kernels to compile")

    monkeypatch.setattr(warmup, "pending", never)
    monkeypatch.setenv("NETC_COMPILE_WORKER", "0")
    assert warmup.warm([]) is None
