"""After a run of every kernel test file, fail if some op was never run in
float32 against PyTorch or never gradient-checked (see harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

HERE = Path(__file__).parent


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import harness

    from netc.compiler.ops import OPS

    files = {p.name for p in HERE.glob("test_kernels_*.py")}
    ran = {Path(str(item.fspath)).name for item in session.items}
    if not files <= ran or session.testsfailed:
        return  # a partial run (-k, one file) proves nothing either way
    missing = {
        "parity (float32 run)": sorted(set(OPS) - harness.RAN_FLOAT32),
        "gradcheck": sorted(set(OPS) - harness.GRADCHECKED),
    }
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        print(f"\nkernel coverage: ops lacking tests: {missing}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
