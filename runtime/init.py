"""Parameter initialization, seeded, per the op contracts' ``init`` names.

kaiming_uniform  W ~ sqrt(6/fan_in)·U[-1,1]        (He et al. 2015, uniform form)
kaiming_normal   W ~ N(0, 2/fan_in)
xavier_uniform   W ~ sqrt(6/(fan_in+fan_out))·U[-1,1]
xavier_normal    W ~ N(0, 2/(fan_in+fan_out))
fan_in_uniform   b ~ U[-1,1]/sqrt(fan_in)           (biases next to Kaiming-uniform weights)
normal           N(0, 1)          uniform  U[-1,1]          zeros / ones
constant:V       every entry V    (prelu's slopes, "constant:0.25")
"""

from __future__ import annotations

import numpy as np

from ..compiler.plan import Plan


def init_tensor(
    init: str, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    if init == "kaiming_uniform":
        return np.sqrt(6.0 / fan_in) * rng.uniform(-1.0, 1.0, shape)
    if init == "kaiming_normal":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    if init == "xavier_uniform":
        return np.sqrt(6.0 / (fan_in + fan_out)) * rng.uniform(-1.0, 1.0, shape)
    if init == "xavier_normal":
        return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape)
    if init == "fan_in_uniform":
        return rng.uniform(-1.0, 1.0, shape) / np.sqrt(fan_in)
    if init == "normal":
        return rng.normal(0.0, 1.0, shape)
    if init == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if init == "zeros":
        return np.zeros(shape)
    if init == "ones":
        return np.ones(shape)
    if init.startswith("constant:"):
        return np.full(shape, float(init.split(":", 1)[1]))
    raise ValueError(f"unknown initializer '{init}'")


def initialize(plan: Plan, flat: np.ndarray, seed: int) -> None:
    """Fill the flat parameter buffer. Each parameter draws from its own
    stream (seed, index), so adding a module does not reshuffle the others."""
    for i, p in enumerate(plan.params):
        rng = np.random.default_rng([seed, i])
        value = init_tensor(p.init, tuple(p.shape), p.fan_in, p.fan_out, rng)
        flat[p.offset : p.offset + p.numel] = value.reshape(-1)
