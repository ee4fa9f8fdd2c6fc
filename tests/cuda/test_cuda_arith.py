"""Broadcasting add/sub/mul/div, matmul, constant and zeros: the CUDA kernels equal the CPU ones
(one case per kernel path; tiny shapes for the simulator)."""

import numpy as np
import pytest
from helpers import Pair, executors_agree
from tinyspec import arith

RNG = np.random.default_rng(5)


@pytest.mark.parametrize(
    ("op", "shapes", "acc"),
    [
        ("add", [(2, 3), (1,), (2, 1)], True),  # three inputs: the later ones add into y
        ("sub", [(3,), (2, 1)], False),  # both inputs broadcast
        ("mul", [(2, 3), (2, 1)], True),
        ("div", [(2, 1, 3), (2, 1)], False),
    ],
)
def test_broadcast(op, shapes, acc):
    xs = [RNG.standard_normal((2, *s)) for s in shapes]
    xs[-1] = np.sign(xs[-1]) * (np.abs(xs[-1]) + 0.5)
    Pair(op, {}, xs, acc=acc).run().compare(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("n", "sa", "sb", "ta", "tb", "acc"),
    [
        (2, (2, 3, 4), (2, 5, 4), False, True, False),  # equal leading axes: one gemm_batched
        (1, (4, 3), (2, 4, 2), True, False, True),  # one matrix of a for the stack: its gradient summed
        (2, (2, 1, 3, 2), (2, 2, 3), False, False, True),  # both broadcast: one gemm per product
    ],
)
def test_matmul(n, sa, sb, ta, tb, acc):
    a, b = RNG.standard_normal((n, *sa)), RNG.standard_normal((n, *sb))
    attrs = {"transpose_a": ta, "transpose_b": tb}
    Pair("matmul", attrs, [a, b], acc=acc).run().compare(rtol=1e-5, atol=1e-6)


def test_constant_and_zeros():
    p = Pair("constant", {"value": [[1.0, -2.0], [3.0, 0.5]]}, [], batch=3)
    p.gpu_binding.y.copy_to_device(np.full((3, 2, 2), 9.0, np.float32))  # rewritten every step
    p.run().compare(rtol=0)
    assert p.gpu_binding.y.copy_to_host()[2, 1, 0] == 3.0
    Pair("zeros", {"shape": [4]}, [], batch=2).run().compare(rtol=0)


def test_a_network_of_them_on_the_cuda_executor(spec_file):
    """Constants, broadcast mul/sub/div, a 3-input broadcast add (its relu applied by the executor)
    and matmul in one plan: the CUDA executor equals the CPU one."""
    spec = spec_file(arith(2))
    executors_agree(spec, 2, ["r"])
