"""`netc compile --expand`: the flattened spec, blocks inlined and repeats
unrolled, as YAML a person can read (and netc can load again)."""

from __future__ import annotations

from typing import Any

import yaml

from ...spec.expand import Network


def expanded_dict(net: Network) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    losses: dict[str, Any] = {}
    for m in net.modules:
        body: dict[str, Any] = {"op": m.op, "in": m.inputs[0] if len(m.inputs) == 1 else list(m.inputs)}
        body.update(m.attrs)
        if m.is_loss:
            body["weight"] = m.weight
            losses[m.name] = body
        else:
            if not m.trainable:
                body["trainable"] = False
            if m.lr_mult != 1.0:
                body["lr_mult"] = m.lr_mult
            if m.share is not None:  # a block instance's share is spelt out per module
                body["share"] = m.share
            modules[m.name] = body
    out: dict[str, Any] = {"netc": 1, "name": net.name, "inputs": net.inputs, "modules": modules}
    if losses:
        out["losses"] = losses
    if net.outputs:
        out["outputs"] = net.outputs
    return out


def expanded_yaml(net: Network) -> str:
    # Flow style for leaf lists keeps shapes and kernel pairs on one line.
    return yaml.safe_dump(expanded_dict(net), sort_keys=False, default_flow_style=None, width=110)
