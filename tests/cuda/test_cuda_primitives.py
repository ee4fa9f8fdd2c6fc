"""runtime/kernels/cuda_core.py: launch shapes, the tiled GEMM, block and global reductions."""

import math

import numpy as np
import pytest
from helpers import dev
from numba import cuda

from netc.runtime.kernels import cuda_core
from netc.runtime.kernels.cuda_core import THREADS, block_max, block_sum

RNG = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def test_grid_1d_covers_any_size_within_the_limits():
    assert cuda_core.grid_1d(1) == (1, 32)
    assert cuda_core.grid_1d(33) == (1, 64)
    assert cuda_core.grid_1d(256) == (1, 256)
    assert cuda_core.grid_1d(257) == (2, 256)
    assert cuda_core.grid_1d(10**9) == (cuda_core.MAX_BLOCKS, 256)
    assert [cuda_core.reduce_threads(n) for n in (1, 32, 33, 200, 5000)] == [32, 32, 64, 256, 256]


@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (17, 5, 33), (3, 16, 16)])
@pytest.mark.parametrize(("ta", "tb"), [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_matches_numpy(m, k, n, ta, tb):
    a = randn(*((k, m) if ta else (m, k)))
    b = randn(*((n, k) if tb else (k, n)))
    c0 = randn(m, n)
    want = (a.T if ta else a) @ (b.T if tb else b)
    # beta = 0 never reads c: NaN there must not leak into the product
    c = dev(np.full((m, n), np.nan, np.float32))
    cuda_core.gemm(ta, tb, 1.0, dev(a), dev(b), 0.0, c)
    np.testing.assert_allclose(c.copy_to_host(), want, rtol=1e-5, atol=1e-6)
    # beta = 1 accumulates; alpha scales the product only
    c = dev(c0)
    cuda_core.gemm(ta, tb, -0.5, dev(a), dev(b), 1.0, c)
    np.testing.assert_allclose(c.copy_to_host(), c0 - 0.5 * want, rtol=1e-5, atol=1e-6)


def test_gemm_on_strided_views_float64():
    # a: every other column of a wider matrix; b: every other row, a column window, transposed;
    # c: a window inside a larger array whose surroundings stay untouched (attention heads
    # multiply such views).
    big_a, big_b, big_c = (randn(*s, dtype=np.float64) for s in ((19, 14), (12, 21), (20, 25)))
    a, b = big_a[:, ::2], big_b[::2, 3:10]  # 19x7 and 6x7
    want = big_c.copy()
    want[1:20, 2:8] = 2.0 * a @ b.T + 3.0 * big_c[1:20, 2:8]
    dc = dev(big_c)
    cuda_core.gemm(False, True, 2.0, dev(big_a)[:, ::2], dev(big_b)[::2, 3:10], 3.0, dc[1:20, 2:8])
    np.testing.assert_allclose(dc.copy_to_host(), want, rtol=1e-12)


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"op\(a\) 2x3 times op\(b\) 4x5"):
        cuda_core.gemm(False, False, 1.0, dev(randn(2, 3)), dev(randn(4, 5)), 0.0, dev(randn(2, 5)))


def test_batched_gemm_broadcasts_and_sums_over_the_batch():
    a, b, c0 = randn(3, 5, 18), randn(1, 7, 18), randn(3, 5, 7)  # b shared by every sample
    want = np.einsum("sik,jk->sij", a, b[0])
    c = dev(c0)
    cuda_core.gemm_batched(False, True, 1.0, dev(a), dev(b), 1.0, c)
    np.testing.assert_allclose(c.copy_to_host(), c0 + want, rtol=1e-5, atol=1e-6)
    # a c of batch 1 receives the sum over the samples (a weight gradient): dW = Σ_s dy_sᵀ x_s
    dy, x = randn(3, 17, 4), randn(3, 17, 2)
    dw = dev(np.full((1, 4, 2), np.nan, np.float32))
    cuda_core.gemm_batched(True, False, 1.0, dev(dy), dev(x), 0.0, dw)
    np.testing.assert_allclose(dw.copy_to_host()[0], np.einsum("sri,srj->ij", dy, x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="b has batch 2, expected 1 or 3"):
        a, b, c = dev(randn(3, 2, 2)), dev(randn(2, 2, 2)), dev(randn(3, 2, 2))
        cuda_core.gemm_batched(False, False, 1.0, a, b, 0.0, c)


@cuda.jit
def _row_stats(x, out):
    # block r: out[r] = (Σ x_r, max x_r) through the block helpers
    buf = cuda.shared.array(THREADS, np.float64)
    r = cuda.blockIdx.x
    s, m = 0.0, -math.inf
    for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
        s += x[r, j]
        m = max(m, x[r, j])
    s = block_sum(buf, s)
    m = block_max(buf, m)
    if cuda.threadIdx.x == 0:
        out[r, 0] = s
        out[r, 1] = m


@pytest.mark.parametrize("cols", [1, 45])
def test_block_reductions(cols):
    x = randn(3, cols, dtype=np.float64)
    x[1, cols // 2] = 9.0
    out = cuda.device_array((3, 2), np.float64)
    _row_stats[3, cuda_core.reduce_threads(cols)](dev(x), out)
    got = out.copy_to_host()
    np.testing.assert_allclose(got[:, 0], x.sum(1), rtol=1e-13)
    np.testing.assert_array_equal(got[:, 1], x.max(1))


@pytest.mark.parametrize("n", [1, 37, 300])
def test_device_sum_matches_numpy(n):
    x = randn(n)
    out, partials = cuda.device_array(1, np.float32), cuda_core.new_partials()
    cuda_core.device_sum(dev(x), out, partials, scale=0.5)
    np.testing.assert_allclose(out.copy_to_host()[0], 0.5 * x.astype(np.float64).sum(), rtol=1e-6)
    r = cuda_core.Reducer()
    r.sum(dev(x), square=True)
    np.testing.assert_allclose(r.value(), (x.astype(np.float64) ** 2).sum(), rtol=1e-13)


def test_device_sum_with_capped_blocks_is_deterministic(monkeypatch):
    # Fewer partials than blocks' worth of data: every thread strides over several elements.
    monkeypatch.setattr(cuda_core, "REDUCE_BLOCKS", 2)
    x = dev(randn(1111))
    r = cuda_core.Reducer()
    r.sum(x)
    first = r.value()
    np.testing.assert_allclose(first, x.copy_to_host().astype(np.float64).sum(), rtol=1e-12)
    r.sum(x)
    assert r.value() == first


def test_row_sum_columns_of_strided_views():
    a = randn(37, 10)
    out = dev(np.full(5, np.nan, np.float32))
    cuda_core.row_sum(dev(a)[:, 1::2], out)
    np.testing.assert_allclose(out.copy_to_host(), a[:, 1::2].sum(0), rtol=1e-5)
    # acc adds into a window of a larger buffer and leaves the rest alone
    base = randn(40)
    out = dev(base)
    cuda_core.row_sum(dev(a[:3]), out[5:15], acc=True)
    want = base.copy()
    want[5:15] += a[:3].sum(0)
    np.testing.assert_allclose(out.copy_to_host(), want, rtol=1e-5)


def test_zero_fill_copy():
    a = dev(randn(70))
    cuda_core.zero(a)
    assert not a.copy_to_host().any()
    cuda_core.fill(a, 2.5)
    assert (a.copy_to_host() == 2.5).all()
    src = randn(70)
    cuda_core.copy(dev(src), a, acc=True)
    np.testing.assert_allclose(a.copy_to_host(), src + 2.5)
    cuda_core.copy(dev(src), a)
    np.testing.assert_array_equal(a.copy_to_host(), src)
