"""Shared test helpers."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same fuzz cases every run (a red CI always means a change broke
# something); a developer's run explores new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Whole-step native code (runtime/wholestep.py) off by default: otherwise every executor that runs
# two steps on a cold cache starts a compile process. tests/runtime/test_whole_step.py turns it on.
os.environ.setdefault("NETC_WHOLE_STEP", "0")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _cuda_runnable() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    from netc.runtime.device import cuda_usable

    return cuda_usable()[0]


# tests/cuda runs kernels on a GPU or under numba's CUDA simulator, which must be switched on before
# numba is first imported; without either, test_cuda_simulator.py runs that folder in a subprocess
# with the simulator on, so a plain `pytest` covers it all the same.
collect_ignore_glob = [] if _cuda_runnable() else ["cuda/*"]


@pytest.fixture
def spec_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a dedented YAML spec into tmp_path and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text).lstrip("\n"))
        return p

    return write


@pytest.fixture
def step_hook(monkeypatch: pytest.MonkeyPatch) -> list:
    """Callbacks run after each optimizer step of every Trainer that runtime.run builds."""
    from netc.runtime import run as rr
    from netc.runtime import train as tr

    hooks: list = []

    class Hooked(tr.Trainer):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, **k)
            self.step_callbacks.extend(hooks)

    monkeypatch.setattr(rr, "Trainer", Hooked)
    return hooks
