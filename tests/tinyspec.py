"""Spec text the tests share: the small classifier of the training tests (2 features -> hidden
-> 3 classes; each test gives its own train and data sections), and the activation chain the
fusion tests (compiler and runtime) end their specs with."""

from __future__ import annotations

from textwrap import dedent, indent


def classifier(name: str, train: str, data: str, act: str = "relu", hidden: int = 8) -> str:
    """The spec's YAML text; ``train`` is the body of the train section, ``data`` a flow mapping."""
    return (
        dedent(f"""
        netc: 1
        name: {name}
        inputs:
          x: {{shape: [2]}}
          label: {{shape: [], dtype: int64}}
        modules:
          fc1: {{op: linear, in: x, out_features: {hidden}}}
          act: {{op: {act}, in: fc1}}
          logits: {{op: linear, in: act, out_features: 3}}
        losses:
          ce: {{op: cross_entropy, in: [logits, label]}}
        outputs: [logits]
        train:
        """)
        + indent(dedent(train).strip("\n"), "  ")
        + f"\ndata: {data}\n"
    )


def chain_tail(after: str, width: int, last: str) -> str:
    """Module lines (at column 2, to follow a ``modules:`` line) and the loss and outputs of the
    fusion tests' chain: a linear layer of ``width`` after module ``after`` and five pointwise
    activations (tanh, relu, gelu, elu, leaky_relu, so a chain of three and one of two), then the
    logits linear, which feeds the loss, and sigmoid -> relu (``last``) after it."""
    return f"""\
  fc: {{op: linear, in: {after}, out_features: {width}}}
  t: {{op: tanh, in: fc}}
  r: {{op: relu, in: t}}
  g: {{op: gelu, in: r}}
  e: {{op: elu, in: g, alpha: 0.5}}
  l: {{op: leaky_relu, in: e, negative_slope: 0.1}}
  logits: {{op: linear, in: l, out_features: 3}}
  s: {{op: sigmoid, in: logits}}
  {last}: {{op: relu, in: s}}
losses:
  ce: {{op: cross_entropy, in: [logits, y]}}
outputs: [{last}]
"""


#: groupnorm and instancenorm (affine, running statistics) in a small convolutional classifier,
#: each followed by a relu that a fused plan applies in the norm's kernel (the norm tests).
NORM_NET = """\
netc: 1
inputs:
  image: {shape: [2, 6, 5]}
  label: {shape: [], dtype: int64}
modules:
  c1: {op: conv2d, in: image, out_channels: 4, kernel: 3, padding: 1}
  gn: {op: groupnorm, in: c1, num_groups: 2}
  r1: {op: relu, in: gn}
  inorm: {op: instancenorm, in: r1, affine: true, track_running_stats: true, momentum: 0.2}
  r2: {op: relu, in: inorm}
  gap: {op: global_avgpool, in: r2}
  logits: {op: linear, in: gap, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
outputs: [logits]
"""
