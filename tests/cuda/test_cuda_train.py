"""The training loop on the GPU: the same losses as on the CPU, checkpoints from and to the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tinyspec import classifier

from netc.runtime.checkpoint import read_safetensors
from netc.runtime.run import build, datasets, run
from netc.runtime.train import Trainer

SPEC = classifier(
    "tiny",
    """
    optimizer: {type: adam, lr: 0.05}
    schedule: {type: cosine, warmup: 2}
    batch_size: 8
    epochs: 2
    accumulate: 2
    grad_clip: {norm: 1.0}
    early_stopping: {monitor: val_accuracy, mode: max, patience: 5}
    """,
    "{source: blobs, samples: 60, split: {val: 0.2}}",
)


def _losses(spec: Path, device: str, steps: int) -> list[float]:
    s = build(spec, device=device)
    train, val, _, _ = datasets(s)
    t = Trainer(s.ex, s.train_cfg, train, val, progress=False, plots=False)
    got: list[float] = []
    t.step_callbacks.append(lambda tr: got.append(tr.ex.loss()))
    t.fit()
    return got[:steps]


@pytest.mark.parametrize("extra", ["", "  l1: 0.05\n  l2: 1.0\n"], ids=["plain", "penalties"])
def test_five_training_steps_match_the_cpu(spec_file, extra) -> None:
    spec = spec_file(SPEC.replace("data:", extra + "data:"))
    cpu, gpu = _losses(spec, "cpu", 5), _losses(spec, "cuda", 5)
    assert len(gpu) == 5
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-4)


def test_a_gpu_run_writes_the_cpu_runs_weights_and_evaluates(spec_file, tmp_path) -> None:
    spec = spec_file(SPEC)
    a = run(spec, out=str(tmp_path / "cpu"), progress=False, plots=False)
    b = run(spec, out=str(tmp_path / "gpu"), progress=False, plots=False, device="cuda")
    assert a.status == b.status == "finished"
    wa, _ = read_safetensors(tmp_path / "cpu" / "weights.safetensors")
    wb, _ = read_safetensors(tmp_path / "gpu" / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=1e-4, atol=1e-5, err_msg=k)
    for ra, rb in zip(a.history, b.history, strict=True):
        assert abs(ra["val_loss"] - rb["val_loss"]) < 1e-4
        assert ra["val_accuracy"] == rb["val_accuracy"]


def test_a_gpu_run_interrupted_and_resumed_ends_bitwise_equal(spec_file, tmp_path, monkeypatch) -> None:
    # Checkpoints are written from the device and restored into it: parameters, Adam's state,
    # the schedule, the position.
    import os
    import signal

    import netc.runtime.run as rr
    import netc.runtime.train as tr

    spec = spec_file(SPEC)
    whole = run(spec, out=str(tmp_path / "whole"), progress=False, plots=False, device="cuda")

    class Interrupting(tr.Trainer):
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            self.step_callbacks.append(lambda t: t.step == 4 and os.kill(os.getpid(), signal.SIGINT))

    monkeypatch.setattr(rr, "Trainer", Interrupting)
    cut = run(spec, out=str(tmp_path / "cut"), progress=False, plots=False, device="cuda")
    assert cut.status == "interrupted" and cut.step == 4
    monkeypatch.setattr(rr, "Trainer", tr.Trainer)
    resumed = run(spec, resume=str(tmp_path / "cut"), progress=False, plots=False, device="cuda")
    assert resumed.status == whole.status == "finished"
    a = (tmp_path / "whole" / "weights.safetensors").read_bytes()
    assert (tmp_path / "cut" / "weights.safetensors").read_bytes() == a
