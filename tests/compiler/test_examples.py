"""Every spec in examples/ validates, compiles, and agrees with a PyTorch twin.

Each twin below is written by hand from the spec, module by module, with torch.nn
modules (or a few lines of tensor code where torch has no single module: cls_token,
parameter, positional_encoding, select). Running it on a zero batch records every
intermediate under its netc module name; the plan must agree with it on every
module's per-sample output shape and on the trainable parameter count. The three
classic ImageNet nets are also held to the counts their papers (and torchvision) give.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from jsonschema import Draft202012Validator
from torch import nn

import netc
from netc.spec.schema import include_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA_FILE = (Path(__file__).resolve().parents[2] / "schemas" / "network.schema.json").resolve()
PUBLISHED_PARAMS = {"alexnet": 62_378_344, "vgg16": 138_357_544, "resnet18": 11_689_512}

Fn = Callable[[torch.Tensor], torch.Tensor]
Layer = tuple[str, Fn]


class Twin(nn.Module):
    """The torch side of one example: the modules it owns (for the parameter count) and the
    intermediates of the last run, by netc module name."""

    def __init__(self) -> None:
        super().__init__()
        self.mods = nn.ModuleList()
        self.tensors = nn.ParameterList()
        self.out: dict[str, torch.Tensor] = {}

    def rec(self, name: str, x: torch.Tensor) -> torch.Tensor:
        assert name not in self.out, f"twin records '{name}' twice"
        self.out[name] = x
        return x

    def param(self, *shape: int) -> nn.Parameter:
        p = nn.Parameter(torch.zeros(*shape))
        self.tensors.append(p)
        return p

    def seq(self, *layers: Layer) -> Fn:
        """A chain of named layers, recording each output."""
        self.mods.extend(f for _, f in layers if isinstance(f, nn.Module))

        def run(x: torch.Tensor) -> torch.Tensor:
            for name, f in layers:
                x = self.rec(name, f(x))
            return x

        return run


Forward = Callable[[dict[str, torch.Tensor]], None]


def classifier(
    t: Twin, x: str, *stages: Fn, loss: str = "ce", target: str = "label", fn=F.cross_entropy
) -> Forward:
    """Forward of a one-input chain ending in one loss against ``target``."""

    def forward(inputs: dict[str, torch.Tensor]) -> None:
        h = inputs[x]
        for stage in stages:
            h = stage(h)
        t.rec(loss, fn(h, inputs[target]))

    return forward


# -- building blocks of several twins --------------------------------------------------------


def fc_head(n_in: int) -> list[Layer]:
    """AlexNet's and VGG's classifier: two 4096-wide ReLU layers with dropout, 1000 logits."""
    return [
        ("flat", nn.Flatten()),
        ("fc6", nn.Linear(n_in, 4096)),
        ("relu6", nn.ReLU()),
        ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)),
        ("relu7", nn.ReLU()),
        ("drop7", nn.Dropout(0.5)),
        ("logits", nn.Linear(4096, 1000)),
    ]


def encoder_layer(t: Twin, p: str, d: int, heads: int, mlp: int) -> Fn:
    """Block `encoder` of examples/blocks/transformer.yaml (pre-norm)."""
    attn = nn.MultiheadAttention(d, heads, batch_first=True)
    attend = t.seq(
        (f"{p}.ln1", nn.LayerNorm(d)), (f"{p}.attn", lambda h: attn(h, h, h, need_weights=False)[0])
    )
    t.mods.append(attn)
    ffn = t.seq(
        (f"{p}.ln2", nn.LayerNorm(d)),
        (f"{p}.fc1", nn.Linear(d, mlp)),
        (f"{p}.act", nn.GELU()),
        (f"{p}.fc2", nn.Linear(mlp, d)),
    )

    def run(x: torch.Tensor) -> torch.Tensor:
        r = t.rec(f"{p}.res1", x + attend(x))
        return t.rec(f"{p}.res2", r + ffn(r))

    return run


def sinusoids(length: int, d: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    pe = torch.zeros(length, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


# -- the twins, one per example --------------------------------------------------------------


def xor_mlp(t: Twin) -> Forward:
    net = t.seq(("hidden", nn.Linear(2, 8)), ("act", nn.Tanh()), ("logit", nn.Linear(8, 1)))
    return classifier(t, "x", net, loss="bce", target="y", fn=F.binary_cross_entropy_with_logits)


def iris_mlp(t: Twin) -> Forward:
    net = t.seq(
        ("linear1", nn.Linear(4, 16)),
        ("relu1", nn.ReLU()),
        ("linear2", nn.Linear(16, 16)),
        ("relu2", nn.ReLU()),
        ("logits", nn.Linear(16, 3)),
    )
    return classifier(t, "x", net)


def digits_mlp(t: Twin) -> Forward:
    net = t.seq(
        ("fc1", nn.Linear(64, 128)),
        ("act1", nn.ReLU()),
        ("drop1", nn.Dropout(0.2)),
        ("fc2", nn.Linear(128, 64)),
        ("act2", nn.ReLU()),
        ("logits", nn.Linear(64, 10)),
    )
    return classifier(t, "x", net)


def lenet5(t: Twin) -> Forward:
    net = t.seq(
        ("c1", nn.Conv2d(1, 6, 5, padding=2)),
        ("a1", nn.Tanh()),
        ("s2", nn.AvgPool2d(2)),
        ("c3", nn.Conv2d(6, 16, 5)),
        ("a3", nn.Tanh()),
        ("s4", nn.AvgPool2d(2)),
        ("flat", nn.Flatten()),
        ("f5", nn.Linear(400, 120)),
        ("a5", nn.Tanh()),
        ("f6", nn.Linear(120, 84)),
        ("a6", nn.Tanh()),
        ("logits", nn.Linear(84, 10)),
    )
    return classifier(t, "image", net)


def alexnet(t: Twin) -> Forward:
    net = t.seq(
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)),
        ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1)),
        ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1)),
        ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),
        *fc_head(256 * 6 * 6),
    )
    return classifier(t, "image", net)


def vgg16(t: Twin) -> Forward:
    layers: list[Layer] = []
    cin = 3
    for s, (c, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, n + 1):
            layers += [
                (f"stage{s}.{i}.conv", nn.Conv2d(cin, c, 3, padding=1)),
                (f"stage{s}.{i}.relu", nn.ReLU()),
            ]
            cin = c
        layers.append((f"pool{s}", nn.MaxPool2d(2)))
    return classifier(t, "image", t.seq(*layers, *fc_head(512 * 7 * 7)))


def basic_block(t: Twin, p: str, cin: int, c: int, stride: int) -> Fn:
    """Blocks `basic` (stride 1) and `down` (stride 2, projected shortcut) of resnet18.yaml
    and resnet_mini.yaml."""
    main = t.seq(
        (f"{p}.conv1", nn.Conv2d(cin, c, 3, stride, 1, bias=False)),
        (f"{p}.bn1", nn.BatchNorm2d(c)),
        (f"{p}.relu1", nn.ReLU()),
        (f"{p}.conv2", nn.Conv2d(c, c, 3, 1, 1, bias=False)),
        (f"{p}.bn2", nn.BatchNorm2d(c)),
    )
    shortcut: Fn = lambda x: x  # noqa: E731
    if stride > 1:
        shortcut = t.seq(
            (f"{p}.proj", nn.Conv2d(cin, c, 1, stride, bias=False)), (f"{p}.proj_bn", nn.BatchNorm2d(c))
        )
    return lambda x: t.rec(f"{p}.relu2", F.relu(t.rec(f"{p}.sum", main(x) + shortcut(x))))


def resnet18(t: Twin) -> Forward:
    stem = t.seq(
        ("conv1", nn.Conv2d(3, 64, 7, 2, 3, bias=False)),
        ("bn1", nn.BatchNorm2d(64)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2, 1)),
    )
    blocks = [basic_block(t, "stage1.1", 64, 64, 1), basic_block(t, "stage1.2", 64, 64, 1)]
    for s, c in [(2, 128), (3, 256), (4, 512)]:
        blocks += [basic_block(t, f"stage{s}.b1", c // 2, c, 2), basic_block(t, f"stage{s}.b2", c, c, 1)]
    head = t.seq(
        ("gap", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())), ("logits", nn.Linear(512, 1000))
    )
    return classifier(t, "image", stem, *blocks, head)


def resnet_mini(t: Twin) -> Forward:
    stem = t.seq(
        ("conv1", nn.Conv2d(1, 16, 3, 1, 1, bias=False)),
        ("bn1", nn.BatchNorm2d(16)),
        ("relu1", nn.ReLU()),
    )
    blocks = [
        basic_block(t, "stage1", 16, 16, 1),
        basic_block(t, "stage2", 16, 32, 2),
        basic_block(t, "stage3", 32, 64, 2),
    ]
    head = t.seq(("gap", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())), ("logits", nn.Linear(64, 10)))
    return classifier(t, "image", stem, *blocks, head)


def vit_tiny(t: Twin) -> Forward:
    d, tokens = 64, 16
    cls, pos = t.param(1, 1, d), t.param(1, tokens + 1, d)
    embed = t.seq(
        ("patches", nn.Conv2d(1, d, 7, stride=7)),
        ("grid", lambda x: x.reshape(len(x), d, tokens)),
        ("tokens", lambda x: x.transpose(1, 2)),
        ("cls", lambda x: torch.cat([cls.expand(len(x), -1, -1), x], dim=1)),
        ("pos", lambda x: x + pos),
    )
    blocks = [encoder_layer(t, f"encoder.{i}", d, 4, 128) for i in range(1, 5)]
    head = t.seq(("cls_out", lambda x: x[:, 0]), ("norm", nn.LayerNorm(d)), ("logits", nn.Linear(d, 10)))
    return classifier(t, "image", embed, *blocks, head)


def transformer_encoder(t: Twin) -> Forward:
    d, length = 64, 64
    pe = sinusoids(length, d)
    embed = t.seq(("embed", nn.Embedding(20, d)), ("pos", lambda x: x + pe))
    blocks = [encoder_layer(t, f"encoder.{i}", d, 4, 128) for i in range(1, 3)]
    head = t.seq(("norm", nn.LayerNorm(d)), ("pooled", lambda x: x.mean(dim=1)), ("logits", nn.Linear(d, 10)))
    return classifier(t, "tokens", embed, *blocks, head)


def multitask(t: Twin) -> Forward:
    trunk = t.seq(
        ("fc1", nn.Linear(64, 128)),
        ("bn1", nn.BatchNorm1d(128)),
        ("act1", nn.ReLU()),
        ("fc2", nn.Linear(128, 64)),
        ("act2", nn.ReLU()),
    )
    classify = t.seq(("cls_hidden", nn.Linear(64, 32)), ("cls_act", nn.ReLU()), ("logits", nn.Linear(32, 10)))
    regress = t.seq(("rec_hidden", nn.Linear(64, 64)), ("rec_act", nn.ELU()), ("recon", nn.Linear(64, 64)))

    def forward(inputs: dict[str, torch.Tensor]) -> None:
        h = trunk(inputs["x"])
        t.rec("ce", F.cross_entropy(classify(h), inputs["label"]))
        t.rec("mse", F.mse_loss(regress(h), inputs["x"]))

    return forward


def siamese(t: Twin) -> Forward:
    # One trunk's layers called on both halves: the conv and linear modules are shared objects
    # (tied weights), the parameter-free ones each branch's own.
    conv1, conv2, fc = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1), nn.Linear(336, 64)

    def trunk(p: str) -> Fn:
        return t.seq(
            (f"{p}.conv1", conv1),
            (f"{p}.act1", nn.ReLU()),
            (f"{p}.pool1", nn.MaxPool2d(2)),
            (f"{p}.conv2", conv2),
            (f"{p}.act2", nn.ReLU()),
            (f"{p}.pool2", nn.MaxPool2d(2)),
            (f"{p}.flat", nn.Flatten()),
            (f"{p}.fc", fc),
            (f"{p}.out", nn.ReLU()),
        )

    left, right = trunk("left"), trunk("right")
    head = t.seq(("logits", nn.Linear(128, 10)))

    def forward(inputs: dict[str, torch.Tensor]) -> None:
        rows = t.rec("rows", inputs["image"].reshape(-1, 28, 2, 14))
        halves = []
        for side, branch in (("left", left), ("right", right)):
            half = t.rec(f"{side}_rows", rows[:, :, 1 if side == "right" else 0])
            halves.append(branch(t.rec(f"{side}_px", half.reshape(-1, 1, 28, 14))))
        both = t.rec("both", torch.cat(halves, dim=1))
        t.rec("ce", F.cross_entropy(head(both), inputs["label"]))

    return forward


def last_state(net: nn.Module) -> Fn:
    """A torch recurrent layer (batch_first) as netc's ``output: last``: h_n of the top layer."""

    def run(x: torch.Tensor) -> torch.Tensor:
        hn = net(x)[1]
        return (hn[0] if isinstance(hn, tuple) else hn)[-1]

    return run


def lstm_mnist_rows(t: Twin) -> Forward:
    lstm = nn.LSTM(28, 64, batch_first=True)
    t.mods.append(lstm)
    return classifier(t, "image", t.seq(("lstm", last_state(lstm)), ("logits", nn.Linear(64, 10))))


def gru_majority(t: Twin) -> Forward:
    gru = nn.GRU(16, 64, batch_first=True)
    t.mods.append(gru)
    net = t.seq(("embed", nn.Embedding(20, 16)), ("gru", last_state(gru)), ("logits", nn.Linear(64, 10)))
    return classifier(t, "tokens", net)


def unet_mnist(t: Twin) -> Forward:
    e1 = t.seq(("e1", nn.Conv2d(1, 8, 3, padding=1)), ("e1r", nn.ReLU()))
    e2 = t.seq(("p1", nn.MaxPool2d(2)), ("e2", nn.Conv2d(8, 16, 3, padding=1)), ("e2r", nn.ReLU()))
    mid = t.seq(
        ("p2", nn.MaxPool2d(2)),
        ("mid", nn.Conv2d(16, 32, 3, padding=1)),
        ("midr", nn.ReLU()),
        ("up2", nn.ConvTranspose2d(32, 16, 2, stride=2)),
    )
    d2 = t.seq(
        ("d2", nn.Conv2d(32, 16, 3, padding=1)), ("d2r", nn.ReLU()), ("up1", nn.Upsample(scale_factor=2))
    )
    d1 = t.seq(("d1", nn.Conv2d(24, 8, 3, padding=1)), ("d1r", nn.ReLU()), ("denoised", nn.Conv2d(8, 1, 1)))

    def forward(inputs: dict[str, torch.Tensor]) -> None:
        h1 = e1(inputs["noisy"])
        h2 = e2(h1)
        u1 = d2(t.rec("cat2", torch.cat([mid(h2), h2], dim=1)))
        out = d1(t.rec("cat1", torch.cat([u1, h1], dim=1)))
        t.rec("mse", F.mse_loss(out, inputs["clean"]))

    return forward


def charcnn(t: Twin) -> Forward:
    body = t.seq(
        ("embed", nn.Embedding(20, 32)),
        ("chans", lambda x: x.transpose(1, 2)),
        ("conv1", nn.Conv1d(32, 64, 5, padding=2)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool1d(3, 2, ceil_mode=True)),
        ("conv2", nn.Conv1d(64, 128, 5, padding=4, dilation=2)),
        ("relu2", nn.ReLU()),
        ("pool", nn.Sequential(nn.AdaptiveMaxPool1d(1), nn.Flatten())),
        ("drop", nn.Dropout(0.3)),
        ("logits", nn.Linear(128, 10)),
    )
    return classifier(t, "tokens", body)


def inverted_residual(t: Twin, p: str, cin: int, cout: int, stride: int = 1, expand: int = 4) -> Fn:
    """Blocks `inverted` (stride 1, cin == cout: the residual add) and `down` of
    mobilenet_v2_mini.yaml, with their shared `expand_dw` as ``p``.wide."""
    wide = cin * expand
    main = t.seq(
        (f"{p}.wide.expand", nn.Conv2d(cin, wide, 1, bias=False)),
        (f"{p}.wide.bn1", nn.BatchNorm2d(wide)),
        (f"{p}.wide.act1", nn.ReLU6()),
        (f"{p}.wide.dw", nn.Conv2d(wide, wide, 3, stride, 1, groups=wide, bias=False)),
        (f"{p}.wide.bn2", nn.BatchNorm2d(wide)),
        (f"{p}.wide.act2", nn.ReLU6()),
        (f"{p}.project", nn.Conv2d(wide, cout, 1, bias=False)),
        (f"{p}.bn3", nn.BatchNorm2d(cout)),
    )
    if stride == 1 and cin == cout:
        return lambda x: t.rec(f"{p}.sum", main(x) + x)
    return main


def mobilenet_v2_mini(t: Twin) -> Forward:
    stem = t.seq(
        ("stem", nn.Conv2d(1, 16, 3, 2, 1, bias=False)),
        ("stem_bn", nn.BatchNorm2d(16)),
        ("stem_act", nn.ReLU6()),
    )
    blocks = [
        inverted_residual(t, "stage1", 16, 24, stride=2),
        inverted_residual(t, "stage2.1", 24, 24),
        inverted_residual(t, "stage2.2", 24, 24),
        inverted_residual(t, "stage3", 24, 32),
        inverted_residual(t, "stage4", 32, 32),
    ]
    head = t.seq(
        ("head", nn.Conv2d(32, 128, 1, bias=False)),
        ("head_bn", nn.BatchNorm2d(128)),
        ("head_act", nn.ReLU6()),
        ("gap", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
        ("logits", nn.Linear(128, 10)),
    )
    return classifier(t, "image", stem, *blocks, head)


TWINS: dict[str, Callable[[Twin], Forward]] = {
    f.__name__: f
    for f in [
        xor_mlp,
        iris_mlp,
        digits_mlp,
        lenet5,
        alexnet,
        vgg16,
        resnet18,
        resnet_mini,
        vit_tiny,
        transformer_encoder,
        multitask,
        siamese,
        lstm_mnist_rows,
        gru_majority,
        unet_mnist,
        charcnn,
        mobilenet_v2_mini,
    ]
}


# -- the tests -------------------------------------------------------------------------------


def test_every_example_has_a_twin() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted(TWINS)


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_header(path: Path) -> None:
    """Line 1 points editors at the schema (relative to the file), line 2 says what it is."""
    first, second = path.read_text().splitlines()[:2]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    assert (path.parent / first.removeprefix(prefix)).resolve() == SCHEMA_FILE
    assert second.startswith("# ") and len(second) > 10
    doc = yaml.safe_load(path.read_text())
    assert doc["netc"] == 1
    if path.parent.name == "blocks":
        assert not list(Draft202012Validator(include_schema()).iter_errors(doc))
        assert set(doc) == {"netc", "blocks"}
    else:
        assert {"train", "data"} <= set(doc), "examples carry their training recipe and data"


def test_blocks_file_is_shared() -> None:
    users = [p.stem for p in EXAMPLES.glob("*.yaml") if "blocks/transformer.yaml" in p.read_text()]
    assert sorted(users) == ["transformer_encoder", "vit_tiny"]


@pytest.mark.parametrize("name", list(TWINS))
def test_example_matches_torch_twin(name: str) -> None:
    net = netc.load(EXAMPLES / f"{name}.yaml")
    assert not net.warnings, [str(w) for w in net.warnings]
    plan = net.compile(batch=2)
    assert plan.memory is not None

    torch.manual_seed(0)
    twin = Twin()
    forward = TWINS[name](twin)
    twin.eval()
    inputs = {
        k: torch.zeros(2, *v["shape"], dtype=getattr(torch, v["dtype"]))
        for k, v in net.expanded.inputs.items()
    }
    with torch.no_grad():
        forward(inputs)

    n_twin = sum(p.numel() for p in twin.parameters())
    n_stats = sum(b.numel() for k, b in twin.named_buffers() if k.endswith(("running_mean", "running_var")))
    # Headline counts follow torch: parameters() vs the running-statistics buffers.
    assert plan.trainable_params == plan.total_params == n_twin
    assert plan.buffers == n_stats and plan.stored_elements == n_twin + n_stats
    if name in PUBLISHED_PARAMS:
        assert plan.trainable_params == PUBLISHED_PARAMS[name]

    # Module by module: same names, and every per-sample output shape as torch's.
    want = {n: list(x.shape[1:]) if x.dim() else [] for n, x in twin.out.items()}
    got = {r.name: r.output_shape for r in plan.modules}
    assert got == want
    assert all(r.batched != r.is_loss for r in plan.modules)
    assert math.prod(want[plan.outputs[0]]) > 0
