"""runtime/device.py: choosing the executor for --device cpu|cuda|auto (in the main process, where
the CUDA simulator is off: on a machine without a GPU this is the CPU fallback path)."""

import pytest

import netc
from netc.runtime.device import DeviceError, cuda_usable, make_executor
from netc.runtime.executor import Executor

NET = """
netc: 1
inputs:
  x: {shape: [3]}
modules:
  l: {op: linear, in: x, out_features: 2}
outputs: [l]
"""


@pytest.fixture
def plan(spec_file):
    return netc.load(spec_file(NET)).compile(4)


def test_cuda_usable_says_why(plan):
    ok, why = cuda_usable()
    assert isinstance(ok, bool) and why and "\n" not in why


def test_cpu_and_auto(plan):
    assert type(make_executor(plan, 4, "cpu", seed=3)) is Executor
    ex = make_executor(plan, 4, "auto")
    if cuda_usable()[0]:
        from netc.runtime.executor_cuda import CudaExecutor

        assert type(ex) is CudaExecutor
    else:
        assert type(ex) is Executor  # auto falls back to the CPU


def test_cuda_without_a_gpu_is_a_clear_error(plan):
    ok, why = cuda_usable()
    if ok:
        from netc.runtime.executor_cuda import CudaExecutor

        assert type(make_executor(plan, 4, "cuda")) is CudaExecutor
    else:
        with pytest.raises(DeviceError) as e:
            make_executor(plan, 4, "cuda")
        assert str(e.value) == f"--device cuda: no usable CUDA GPU ({why.rstrip('.')}); use --device cpu"


def test_unknown_device(plan):
    with pytest.raises(DeviceError, match="unknown device 'tpu'; expected one of: cpu, cuda, auto"):
        make_executor(plan, 4, "tpu")
