"""The CUDA kernel tests (tests/cuda) pass under numba's CUDA simulator.

The simulator must be on before numba is first imported, so they run in a subprocess; this keeps
them in every plain `pytest` run, GPU or not (a machine with a GPU also runs them on it directly).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_tests_pass_under_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    start = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/cuda",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-q",
            "-x",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"tests/cuda failed under the simulator:\n{out[-6000:]}"
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, out[-2000:]
    print(f"tests/cuda under the simulator: {time.perf_counter() - start:.1f} s")
