"""The small classifier the training tests share: 2 features -> hidden -> 3 classes. The
network stays the same; each test gives its own train and data sections."""

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
