"""Spec text the tests share: the small classifier of the training tests (2 features -> hidden
-> 3 classes; each test gives its own train and data sections), and the activation chain the
fusion tests (compiler and runtime) end their specs with, the tied-weights net of the `share:`
tests (compiler and runtime), and the arithmetic net of the whole-step and CUDA tests."""

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


# A siamese pair of linears (h2 shares h's w and b) and a decoder tied to the embedding (dec.w =
# emb.w, both [V, D] = [11, 6], PyTorch's layout); dec keeps its own bias.
TIED = """
netc: 1
inputs:
  tok: {shape: [5], dtype: int64}
  label: {shape: [5], dtype: int64}
modules:
  emb: {op: embedding, in: tok, num_embeddings: 11, dim: 6}
  h: {op: linear, in: emb, out_features: 6}
  act: {op: tanh, in: h}
  h2: {op: linear, in: act, out_features: 6, share: h}
  dec: {op: linear, in: h2, out_features: 11, share: {w: emb.w}}
losses:
  ce: {op: cross_entropy, in: [dec, label]}
"""


def arith(c: int) -> str:
    """Constants, broadcast mul/sub/div, a 3-input broadcast add then relu, matmul: inputs x and
    y are [c, c + 1, c + 1] per sample."""
    n = c + 1
    scale = [[[2.0]], [[0.5]], [[1.0]]][:c]
    return dedent(f"""
        netc: 1
        inputs:
          x: {{shape: [{c}, {n}, {n}]}}
          y: {{shape: [{c}, {n}, {n}]}}
        modules:
          h: {{op: linear, in: x, out_features: {n}}}
          scale: {{op: constant, value: {scale}}}
          shift: {{op: constant, value: 0.25}}
          z: {{op: zeros, shape: [{n}, {n}]}}
          s: {{op: mul, in: [h, scale]}}
          t: {{op: sub, in: [s, shift]}}
          u: {{op: add, in: [t, z, h]}}
          a: {{op: relu, in: u}}
          q: {{op: matmul, in: [a, h], transpose_b: true}}
          r: {{op: div, in: [q, scale]}}
        losses:
          l: {{op: mse, in: [r, y]}}
        """)
