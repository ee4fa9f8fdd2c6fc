"""The backends registry: every device is one module with every part of the contract, found by
name; an executor knows its backend, and the trainer's buffer operations and optimizer come
from it (no dispatch on array types)."""

from __future__ import annotations

import numpy as np
import pytest

from netc.runtime import backends
from netc.runtime.backends.base import Backend, DeviceError
from netc.runtime.buffers import HostBuffers, buffers
from netc.runtime.device import DEVICES
from netc.runtime.executor import Executor
from netc.runtime.optim import Optimizer


@pytest.mark.parametrize("name", backends.NAMES)
def test_every_backend_is_complete(name):
    b = backends.get(name)
    assert b.name == name
    assert backends.missing_parts(b) == []


def test_an_incomplete_backend_is_named_part_by_part():
    class Half(Backend):
        name = "half"
        bind_attr = "bind_half"

        def usable(self) -> tuple[bool, str]:
            return True, "here"

    assert backends.missing_parts(Half()) == [
        "class attribute epilogues_attr", "class attribute doc",
        "method executor", "method buffers", "method optimizer_class", "method owns",
    ]  # fmt: skip


def test_devices_come_from_the_registry():
    assert (*backends.NAMES, "auto") == DEVICES
    with pytest.raises(DeviceError, match="unknown device 'tpu'; expected one of: cpu, cuda"):
        backends.get("tpu")


def test_an_executor_knows_its_backend_and_the_backend_makes_its_parts(tiny_plan):
    ex = Executor(tiny_plan, 2)
    assert ex.backend is backends.get("cpu")
    assert isinstance(buffers(ex), HostBuffers) and buffers(ex) is buffers(ex)  # made once
    assert ex.backend.optimizer_class() is Optimizer
    assert backends.owning(ex.params) is ex.backend
    assert type(Optimizer("sgd", ex.params, ex.grads, np.zeros((0, 3), np.int64))) is Optimizer
    assert ex.backend.missing_kernels(tiny_plan) == []


@pytest.fixture
def tiny_plan(spec_file):
    import netc

    return netc.load(
        spec_file("""
        netc: 1
        inputs: {x: {shape: [3]}}
        modules:
          fc: {op: linear, in: x, out_features: 2}
        """)
    ).compile(2)
