"""Whole example networks on the executor against their PyTorch twins.

For every spec in examples/ the executor initializes the weights; they are copied into the
hand-written twin of tests/compiler/test_examples.py (module by module, by netc name), both
run the same random batch forward and backward, and every loss, the weighted total and every
parameter gradient must agree — in training mode (batchnorm on batch statistics, dropout with
the executor's own mask, which the twin's nn.Dropout is made to apply) and in eval mode
(running statistics, no dropout). After the training forward the batchnorm running statistics
must agree too. The small nets run in float64 (rtol 1e-8), ResNet-18 in float64 at batch 2,
AlexNet and VGG-16 in float32 at batch 1 (rtol 1e-4), against a float64 twin. Tolerances are
relative to each array's largest magnitude: |got - want| <= rtol·(|want| + max(max|want|, 1e-3)).
The twin's max pools take the executor's argmax (``follow_argmax``) once it is checked to be a
maximum within the tolerance: in float32 a window's two largest inputs can differ by less than
the convolutions' rounding, and which one wins is then rounding, not correctness.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# name: (batch, dtype, modes). The small nets are cheap in float64, in both modes. ResNet-18
# covers batchnorm2d on batch statistics (train) and on running statistics (eval). AlexNet and
# VGG-16 run at batch 1 in float32, training mode only (their eval pass would add nothing that
# digits_mlp and lenet5 do not cover); VGG-16 takes about 20 s (mostly building its 138M-parameter
# executor) and runs every time: the published nets are what users copy.
BOTH = ("train", "eval")
CASES: dict[str, tuple[int, Any, tuple[str, ...]]] = {
    "xor_mlp": (4, np.float64, BOTH),
    "iris_mlp": (5, np.float64, BOTH),
    "digits_mlp": (6, np.float64, BOTH),
    "lenet5": (3, np.float64, BOTH),
    "multitask": (6, np.float64, BOTH),
    "siamese": (2, np.float64, BOTH),  # tied weights: each shared gradient is the sum of both halves
    "transformer_encoder": (3, np.float64, BOTH),
    "vit_tiny": (3, np.float64, BOTH),
    "resnet18": (2, np.float64, BOTH),
    "resnet_mini": (2, np.float64, BOTH),
    "unet_mnist": (2, np.float64, BOTH),
    "alexnet": (1, np.float32, ("train",)),
    "vgg16": (1, np.float32, ("train",)),
    "lstm_mnist_rows": (2, np.float64, BOTH),
    "gru_majority": (2, np.float64, BOTH),
    "charcnn": (3, np.float64, BOTH),
    "mobilenet_v2_mini": (2, np.float64, BOTH),
}
RTOL = {np.float64: 1e-8, np.float32: 1e-4}


def _load_twins() -> Any:
    """tests/compiler/test_examples.py as a private module (its twin builders, not its tests)."""
    path = ROOT / "tests" / "compiler" / "test_examples.py"
    spec = importlib.util.spec_from_file_location("_netc_example_twins", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def sinusoids(length: int, d: int) -> torch.Tensor:
        # The shape test's table is float32; netc builds it in float64 and casts.
        pos = torch.arange(length, dtype=torch.float64)[:, None]
        freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        pe = torch.zeros(length, d, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        return pe.to(torch.get_default_dtype())

    mod.sinusoids = sinusoids
    return mod


TX = _load_twins()


class NamedTwin(TX.Twin):
    """A twin that also remembers which torch object owns each netc module's parameters: the
    nn.Module of a layer, or what a layer's lambda closes over (attention, cls token, position
    embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.owners: dict[str, Any] = {}

    def seq(self, *layers: Any) -> Any:
        for name, f in layers:
            if isinstance(f, nn.Module):
                self.owners[name] = f
                continue
            for cell in f.__closure__ or ():
                if isinstance(cell.cell_contents, nn.MultiheadAttention | nn.Parameter | nn.RNNBase):
                    self.owners[name] = cell.cell_contents
        return super().seq(*layers)


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def slot(twin: NamedTwin, pname: str) -> tuple[torch.Tensor, slice]:
    """The torch tensor (parameter or buffer) and the rows of it that hold netc's ``pname``."""
    module, short = pname.rsplit(".", 1)
    owner = twin.owners[module]
    everything = slice(None)
    if isinstance(owner, nn.Parameter):
        assert short == "w"
        return owner, everything
    if isinstance(
        owner, nn.RNNBase
    ):  # w_ih_l0 is torch's weight_ih_l0, b_hh_l1_reverse its bias_hh_l1_reverse
        return getattr(owner, ("weight" if short.startswith("w_") else "bias") + short[1:]), everything
    if isinstance(owner, nn.MultiheadAttention):
        kind, which = short.split("_")  # w_q, b_o, ...
        if which == "o":
            return getattr(owner.out_proj, {"w": "weight", "b": "bias"}[kind]), everything
        d, i = owner.embed_dim, "qkv".index(which)
        return (owner.in_proj_weight if kind == "w" else owner.in_proj_bias), slice(i * d, (i + 1) * d)
    return getattr(owner, {"w": "weight", "b": "bias"}.get(short, short)), everything


def close(got: np.ndarray, want: np.ndarray, rtol: float, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    # The floor covers gradients that are zero in exact arithmetic (attention's b_k: softmax
    # ignores a shift shared by all keys), which both sides round differently.
    scale = max(float(np.abs(want).max()), 1e-3)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def follow_argmax(
    pool: nn.MaxPool2d, x: torch.Tensor, idx: torch.Tensor, rtol: float, what: str
) -> torch.Tensor:
    """The twin's max pool of x with the executor's winners idx (its saved argmax: flat indices
    into each input plane, as torch's return_indices), after checking each is a maximum within
    the tolerance and that in an exact tie it is PyTorch's own (the first). Why: AlexNet's pool2
    (float32, batch 1) has a window whose two largest inputs differ by 1.3e-6 in float64, while
    conv2's float32 outputs are ~6e-6 off; the winner takes the window's whole gradient, so a
    flip moves a gradient entry of conv2.w by up to 0.09 (and conv1's through dx) although every
    kernel is right. The wide and by-rows conv2 forwards round differently and flip it differently."""
    out, own = F.max_pool2d(
        x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode, return_indices=True
    )
    picked = x.flatten(2).gather(2, idx.flatten(2)).reshape(out.shape)
    close(picked.detach().numpy(), out.detach().numpy(), rtol, f"{what}: its argmax is not a maximum")
    ties = (idx != own) & (picked == out)
    assert not bool(ties.any()), f"{what}: an exact tie is not broken as PyTorch's (first maximum)"
    return picked


def torch_loss(step: Any, value: Any) -> torch.Tensor:
    """One netc loss step, recomputed with torch.nn.functional from the twin's tensors."""
    x, target = (value(n) for n in step.inputs)
    a = step.attrs
    if step.op == "cross_entropy":
        return F.cross_entropy(x, target, reduction=a["reduction"], label_smoothing=a["label_smoothing"])
    if step.op == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(x, target, reduction=a["reduction"])
    if step.op == "mse":
        return F.mse_loss(x, target, reduction=a["reduction"])
    raise AssertionError(f"no torch loss for op '{step.op}'")


class Pair:
    """The executor and its twin, holding the same weights and the same batch."""

    def __init__(self, name: str, batch: int, dtype: Any) -> None:
        self.plan = netc.load(EXAMPLES / f"{name}.yaml").compile(batch)
        self.ex = Executor(self.plan, batch, dtype=dtype, seed=1)
        # The twin always computes in float64, from the executor's own (float32 or float64) weights
        # and batch: the exact answer for those numbers. A float32 twin is no oracle for float32
        # VGG-16: on an AVX2-only CPU PyTorch's float32 convolutions there are 0.3% off float64 in
        # the first layers' gradients, while netc's float32 ones are within 1e-6.
        self.tdtype = torch.float64
        with default_dtype(self.tdtype):
            torch.manual_seed(0)
            self.twin = NamedTwin()
            self.run_twin = TX.TWINS[name](self.twin)
        self.feed = random_inputs(self.plan, batch, seed=2)
        if name == "xor_mlp":
            self.feed["y"] = (self.feed["y"] > 0).astype(np.float64)  # targets in {0, 1}
        self.slots = {p.name: slot(self.twin, p.name) for p in self.plan.params}
        mapped = {id(t) for t, _ in self.slots.values()}
        assert all(id(p) in mapped for p in self.twin.parameters()), "a twin parameter has no netc twin"
        self.masks: dict[str, torch.Tensor] = {}
        self.argmax: dict[str, torch.Tensor] = {}
        for s in self.plan.forward_steps:
            if s.op == "dropout":
                self.twin.owners[s.module].register_forward_hook(self._mask_hook(s.module))
            if s.op == "maxpool2d":
                self.twin.owners[s.module].register_forward_hook(self._argmax_hook(s.module))

    def _mask_hook(self, module: str) -> Any:
        # nn.Dropout draws its own mask: in training, apply the executor's (m / (1 - p)) instead.
        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
            return inputs[0] * self.masks[module] if mod.training else out

        return hook

    def _argmax_hook(self, module: str) -> Any:
        rtol = RTOL[self.ex.dtype.type]

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
            return follow_argmax(mod, inputs[0], self.argmax[module], rtol, module)

        return hook

    def sync_weights(self) -> None:
        with torch.no_grad():
            for pname, (t, rows) in self.slots.items():
                t[rows] = torch.from_numpy(np.array(self.ex.param(pname))).reshape(t[rows].shape)

    def step(self, training: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Forward and backward on both; returns the twin's losses and weighted total."""
        self.ex.training = training
        self.twin.train(training)
        self.ex.forward(self.feed)
        for s in self.plan.forward_steps:  # before backward, which may reuse the mask's bytes
            if s.op == "dropout":
                self.masks[s.module] = torch.from_numpy(np.array(self.ex.view(f"{s.module}:mask")))
            if s.op == "maxpool2d":
                self.argmax[s.module] = torch.from_numpy(np.array(self.ex.view(f"{s.module}:argmax")))
        self.ex.backward()
        self.twin.zero_grad(set_to_none=True)
        self.twin.out.clear()
        feed = {
            k: torch.from_numpy(v).to(self.tdtype if v.dtype.kind == "f" else torch.int64)
            for k, v in self.feed.items()
        }
        self.run_twin(feed)
        steps = {s.output: s for s in self.plan.forward_steps}

        def value(n: str) -> torch.Tensor:
            return feed[n] if n in feed else self.twin.out[n]

        losses = {n: torch_loss(steps[n], value) for n in self.plan.losses}
        total = sum(w * losses[n] for n, w in self.plan.losses.items())
        total.backward()
        return losses, total

    def compare(self, training: bool) -> None:
        rtol = RTOL[self.ex.dtype.type]
        losses, total = self.step(training)
        mode = "train" if training else "eval"
        got = self.ex.losses()
        assert set(got) == set(losses)
        for n, v in losses.items():
            close(got[n], v.item(), rtol, f"{mode}: loss {n}")
        close(self.ex.loss(), total.item(), rtol, f"{mode}: total loss")
        for p in self.plan.params:
            t, rows = self.slots[p.name]
            if not p.trainable:
                continue
            assert t.grad is not None, p.name
            close(self.ex.grad(p.name), t.grad[rows].reshape(p.shape).numpy(), rtol, f"{mode}: grad {p.name}")


@pytest.mark.parametrize("name", list(CASES))
def test_example_matches_its_twin_forward_and_backward(name: str) -> None:
    batch, dtype, modes = CASES[name]
    pair = Pair(name, batch, dtype)
    rtol = RTOL[np.dtype(dtype).type]

    pair.sync_weights()
    pair.compare(training=True)
    for s in pair.plan.forward_steps:
        if s.op == "dropout":  # the mask the twin applied is a real inverted-dropout mask
            m = pair.masks[s.module].numpy()
            keep = 1 / (1 - s.attrs["p"])
            assert np.all((m == 0) | np.isclose(m, keep, rtol=1e-6))
            if m.size >= 500:
                assert abs((m == 0).mean() - s.attrs["p"]) < 0.06
    stats = [p.name for p in pair.plan.params if p.role == "stat"]
    assert bool(stats) == (name in ("multitask", "resnet18", "resnet_mini", "mobilenet_v2_mini"))
    for pname in stats:  # running statistics after one training forward, as torch's
        t, rows = pair.slots[pname]
        close(pair.ex.param(pname), t[rows].detach().numpy(), rtol, f"train: {pname}")

    if "eval" in modes:
        pair.sync_weights()  # the running statistics, now moved, are the eval-mode constants
        pair.compare(training=False)


def test_twin_pools_follow_the_executors_argmax_only_within_the_tolerance() -> None:
    pool, rtol = nn.MaxPool2d(2), 1e-4
    x = torch.tensor([[[[1.0, 1.0 + 1e-9], [0.5, -1.0]]]], requires_grad=True)  # a near tie: 0 and 1

    def follow(i: int) -> torch.Tensor:
        return follow_argmax(pool, x, torch.tensor([[[[i]]]]), rtol, "pool")

    follow(0).sum().backward()  # the runner-up by rounding: the twin routes the gradient there
    assert x.grad is not None and x.grad.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(AssertionError, match="not a maximum"):
        follow(2)
    tie = torch.tensor([[[[2.0, 0.0], [0.0, 2.0]]]])
    with pytest.raises(AssertionError, match="exact tie"):
        follow_argmax(pool, tie, torch.tensor([[[[3]]]]), rtol, "pool")
