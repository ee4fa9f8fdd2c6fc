"""An optimizer added through the registry (adadelta) trains from a spec with
`netc run`, and a run interrupted mid-epoch resumes from its checkpointed state
to the same bits."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np

from netc.cli import main
from netc.runtime.checkpoint import load_checkpoint

SPEC = """
netc: 1
name: adadelta_net
inputs:
  x: {shape: [2]}
  label: {shape: [], dtype: int64}
modules:
  fc1: {op: linear, in: x, out_features: 16}
  act: {op: tanh, in: fc1}
  logits: {op: linear, in: act, out_features: 2}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
train:
  optimizer: {type: adadelta, weight_decay: 0.001, no_decay: [bias]}
  batch_size: 8
  epochs: 3
  seed: 3
data: {source: spirals, samples: 96, split: {val: 0.25}}
"""
QUIET = ["--quiet", "--no-plots"]


def test_adadelta_trains_and_resumes_bitwise(tmp_path: Path, step_hook: list, capsys) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    ref = tmp_path / "ref"
    assert main(["run", str(spec), "--out", str(ref), *QUIET]) == 0
    config = json.loads((ref / "config.json").read_text())
    assert config["train"]["optimizer"] == {
        "type": "adadelta", "weight_decay": 0.001, "no_decay": ["bias"], "rho": 0.9,
    }  # fmt: skip
    losses = [json.loads(line)["loss"] for line in (ref / "steps.jsonl").read_text().splitlines()]
    assert len(losses) == 27 and np.mean(losses[-9:]) < np.mean(losses[:9])  # it learns
    ckpt = load_checkpoint(ref)
    assert ckpt.meta["optimizer"]["key"] == "adadelta" and ckpt.meta["optimizer"]["t"] == 27
    for k in (0, 1):  # square_avg and acc_delta, saved per trainable parameter
        assert np.abs(ckpt.tensors[f"optim/{k}/fc1.w"]).sum() > 0
    assert "optim/2/fc1.w" not in ckpt.tensors

    step_hook.append(lambda t: t.step == 13 and os.kill(os.getpid(), signal.SIGINT))
    cut = tmp_path / "cut"
    assert main(["run", str(spec), "--out", str(cut), *QUIET]) == 130
    step_hook.clear()
    assert main(["run", str(spec), "--resume", str(cut), *QUIET]) == 0
    assert (cut / "weights.safetensors").read_bytes() == (ref / "weights.safetensors").read_bytes()
    a, b = load_checkpoint(ref), load_checkpoint(cut)
    for name, v in a.tensors.items():
        assert v.tobytes() == b.tensors[name].tobytes(), name
    capsys.readouterr()
