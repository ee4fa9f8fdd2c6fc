"""Compile-time benchmark: whole-process wall time of `netc compile --json`.

    python benchmarks/compile_time.py            # ResNet-50 + chains of 625..5000 modules

Prints the median of 5 runs per spec, seconds per 1,000 modules (flat when
compile time grows linearly), and whether numba was imported (it must not be:
validate/compile/draw never load the runtime).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = 5


def chain_spec(n: int) -> str:
    """A residual MLP of n modules: blocks of linear → relu → linear → add."""
    reps = n // 4
    return f"""netc: 1
name: chain{n}
inputs:
  x: {{shape: [64]}}
  y: {{shape: [], dtype: int64}}
blocks:
  res:
    input: x
    modules:
      fc1: {{op: linear, in: x, out_features: 64}}
      act: {{op: relu, in: fc1}}
      fc2: {{op: linear, in: act, out_features: 64}}
      sum: {{op: add, in: [fc2, x]}}
modules:
  body: {{block: res, in: x, repeat: {reps}}}
losses:
  ce: {{op: cross_entropy, in: [body, y]}}
"""


def wall(spec: Path) -> float:
    times = []
    cmd = [sys.executable, "-m", "netc.cli", "compile", str(spec), "--json"]
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def numba_imported(spec: Path) -> bool:
    code = (
        "import sys, contextlib, io\n"
        "from netc.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main(['compile', {str(spec)!r}, '--json'])\n"
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return out.strip() == "True"


def main() -> None:
    r50 = HERE / "specs" / "resnet50.yaml"
    print(f"python {sys.version.split()[0]}, median of {RUNS} runs, whole process")
    print(f"resnet50 (175 modules): {wall(r50):.3f} s   numba imported: {numba_imported(r50)}")
    base = wall_empty()
    print(f"interpreter + imports only (`netc --help`): {base:.3f} s")
    print(f"{'modules':>8} {'seconds':>8} {'s per 1k modules (minus startup)':>34}")
    with tempfile.TemporaryDirectory() as d:
        for n in (625, 1250, 2500, 5000):
            p = Path(d) / f"chain{n}.yaml"
            p.write_text(chain_spec(n))
            t = wall(p)
            print(f"{n + 1:>8} {t:>8.3f} {(t - base) / (n + 1) * 1000:>34.3f}")


def wall_empty() -> float:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import netc.cli"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


if __name__ == "__main__":
    main()
