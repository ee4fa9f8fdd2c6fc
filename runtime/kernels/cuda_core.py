"""CUDA building blocks that every op's ``bind_cuda`` uses: launch shapes, a tiled GEMM, deterministic
reductions, and bind-time helpers for device-array views.

The contract (docs/cuda.md shows it in use):

Launch shapes
    ``grid_1d(n) -> (blocks, threads)`` for a flat loop over ``n`` elements: up to ``THREADS`` (256)
    threads a block, never more threads than elements rounded up to a warp, at most ``MAX_BLOCKS``
    blocks. Kernels walk their elements with the grid-stride loop
    ``for i in range(cuda.grid(1), n, cuda.gridsize(1))``, so any grid covers any ``n``.
    ``reduce_threads(n)``: the power-of-two block size (32..256) for one block reducing ``n`` values.
    Launch as ``kernel[blocks, threads](...)`` inside the thunk, never configure once and keep the
    configured object (the simulator's configured kernel is the kernel itself: see docs/cuda.md).

GEMM
    ``gemm(ta, tb, alpha, a, b, beta, c)``: ``c = alpha·op(a)·op(b) + beta·c`` for 2-d device arrays of
    one float dtype, any strides (views of the arena, column slices for attention heads), op(a) = aᵀ
    when ``ta``. ``beta == 0`` never reads ``c`` (it may hold garbage); ``beta == 1`` accumulates.
    ``gemm_batched(...)``: the same over 3-d arrays with a leading batch axis; an ``a`` or ``b`` of
    batch 1 is broadcast, and a ``c`` of batch 1 receives the sum over the batch of the products
    (dW of a per-sample product, computed in-kernel without atomics). Sizes need not be multiples of
    ``TILE``. One thread block computes a TILE x TILE tile of c with TILE x TILE/ROWS_PER_THREAD
    threads, each accumulating ROWS_PER_THREAD outputs in registers (in the arrays' dtype) over
    TILE-wide slabs of k staged in shared memory, loaded so that neighbouring threads read
    neighbouring addresses whatever the transposes.

Block reductions (device functions, for softmax/norm/loss kernels)
    ``block_sum(buf, v)`` / ``block_max(buf, v)``: every thread of a 1-d block passes its value and
    gets the block's total (float64). ``buf`` is a shared ``float64[THREADS]`` array the kernel
    declares; ``cuda.blockDim.x`` must be a power of two (``reduce_threads``). Every thread of the
    block must call it (it synchronizes). The tree order is fixed, so results are bit-reproducible.
    ``row_sum(a, out, acc)`` (host): ``out[j] (+)= Σ_i a[i, j]``, a column reduction without atomics
    (bias gradients, batch statistics).

Global reductions
    ``device_sum(x, out, partials, square=False, scale=1.0)`` (host): ``out[0] = scale·Σ x`` (or
    Σ x²) over a flat device array in two passes: per-block float64 partials into the preallocated
    ``partials`` (``new_partials()``, REDUCE_BLOCKS float64), then one block. The split depends on
    ``x.size`` only, so the result is deterministic. ``Reducer`` bundles the partials with a device
    result and ``value()`` to fetch it.

Bind-time helpers
    ``flat(a)``: a 1-d view of a C-contiguous device array. ``bind_unary(b, forward, backward,
    reads_output)``: the thunks of an elementwise op whose kernels are ``forward(x, y)`` and
    ``backward(x or y, dy, dx, acc)``. ``zero`` (a memset), ``fill`` and ``copy`` for flat arrays.

Every function that touches ``cuda.*`` is a ``@cuda.jit`` function: the simulator swaps the ``cuda``
global of a kernel's module only while a kernel or device function of that module runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda
from numba.cuda.cudadrv import driver  # the simulator's stand-in under NUMBA_ENABLE_CUDASIM

from ..binding import Binding, Thunk, nothing

THREADS = 256  # threads per block of 1-d launches and the largest reduction block
WARP = 32
MAX_BLOCKS = 8192  # grid-stride loops cover the rest; ~7 waves of 256-thread blocks on an H100
REDUCE_BLOCKS = 256  # per-block partials of a global reduction: the second pass is one block
TILE = 16  # GEMM tile edge
ROWS_PER_THREAD = 4  # GEMM outputs per thread: a block is TILE x (TILE / ROWS_PER_THREAD) threads
TILE_Y = TILE // ROWS_PER_THREAD
TILE_PAD = TILE + 1  # shared tile row length: the transposed loads hit distinct banks
SUM_LANES = 8  # row_sum: threads that split the rows of one column
GRID_YZ = 65535  # CUDA's limit on gridDim.y and gridDim.z (gridDim.x goes to 2³¹ - 1)


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def grid_1d(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` elements."""
    threads = min(THREADS, max(WARP, -(-n // WARP) * WARP))
    return max(1, min(-(-n // threads), MAX_BLOCKS)), threads


def reduce_threads(n: int) -> int:
    """Power-of-two block size for one block reducing ``n`` values (``block_sum``/``block_max``)."""
    return min(THREADS, max(WARP, _pow2(n)))


# -- views ----------------------------------------------------------------------------------------


def is_device_array(a: Any) -> bool:
    """True for numba device arrays (real or simulated), False for NumPy arrays."""
    return bool(getattr(a, "__cuda_ndarray__", False))


def flat(a: Any) -> Any:
    """A 1-d view of a C-contiguous device array (never a copy: kernels write through it)."""
    if not a.is_c_contiguous():
        raise ValueError(f"kernel needs a C-contiguous array, got strides {a.strides} for shape {a.shape}")
    return a.reshape(a.size)


def rows(a: Any, cols: int) -> Any:
    """A 2-d [rows, cols] view of a C-contiguous device array."""
    return flat(a).reshape(a.size // cols, cols)


def empty(dtype: Any, ndim: int = 1) -> Any:
    """A size-0 device array standing in for a tensor nobody needs (kernels test ``.size``)."""
    return cuda.device_array((0,) * ndim, dtype)


# -- flat kernels ---------------------------------------------------------------------------------


def zero(a: Any) -> None:
    """Set every byte of a C-contiguous device array to 0 (a driver memset, no kernel)."""
    if a.size:
        if not a.is_c_contiguous():
            raise ValueError("zero needs a C-contiguous array")
        driver.device_memset(a, 0, a.nbytes)


@cuda.jit
def fill_kernel(a, value):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = value


def fill(a: Any, value: float) -> None:
    """Set every element of a flat device array (bind time, or a state reset)."""
    if a.size:
        blocks, threads = grid_1d(a.size)
        fill_kernel[blocks, threads](a, a.dtype.type(value))


@cuda.jit
def copy_kernel(src, dst, acc):
    # dst = src, or dst += src (a gradient feeding several modules); both flat
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        if acc:
            dst[i] += src[i]
        else:
            dst[i] = src[i]


def copy(src: Any, dst: Any, acc: bool = False) -> None:
    """dst = src (or += src) for flat device arrays of one size."""
    blocks, threads = grid_1d(dst.size)
    copy_kernel[blocks, threads](src, dst, acc)


@cuda.jit
def scale_kernel(src, dst, factor):
    f = dst.dtype.type(factor)
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[i] = src[i] * f


def scale(src: Any, dst: Any, factor: float) -> None:
    """dst = factor·src for flat device arrays of one size (averaging accumulated gradients)."""
    blocks, threads = grid_1d(dst.size)
    scale_kernel[blocks, threads](src, dst, float(factor))


# -- block reductions -----------------------------------------------------------------------------


@cuda.jit(device=True)
def block_sum(buf, v):
    """The sum of ``v`` over the 1-d block, in every thread (float64, fixed tree order)."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    w = cuda.blockDim.x // 2
    while w > 0:
        if t < w:
            buf[t] += buf[t + w]
        cuda.syncthreads()
        w //= 2
    total = buf[0]
    cuda.syncthreads()  # everyone has read buf[0] before the caller reuses buf
    return total


@cuda.jit(device=True)
def block_max(buf, v):
    """The maximum of ``v`` over the 1-d block, in every thread (float64). NaN wins, as in torch."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    w = cuda.blockDim.x // 2
    while w > 0:
        if t < w:
            o = buf[t + w]
            if o > buf[t] or o != o:
                buf[t] = o
        cuda.syncthreads()
        w //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


# -- global sums ----------------------------------------------------------------------------------


@cuda.jit
def reduce_kernel(x, square, out, scale):
    # Block b sums its grid-stride share of x (float64) and writes scale·total to out[b].
    buf = cuda.shared.array(THREADS, np.float64)
    s = 0.0
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = np.float64(x[i])
        s += v * v if square else v
    total = block_sum(buf, s)
    if cuda.threadIdx.x == 0:
        out[cuda.blockIdx.x] = scale * total


def new_partials() -> Any:
    """The partials buffer of ``device_sum`` (allocate once, at bind time)."""
    return cuda.device_array(REDUCE_BLOCKS, np.float64)


def device_sum(x: Any, out: Any, partials: Any, square: bool = False, scale: float = 1.0) -> None:
    """out[0] = scale·Σ x (Σ x² when ``square``) for a flat device array, deterministically."""
    threads = THREADS if x.size > THREADS else reduce_threads(x.size)
    blocks = max(1, min(-(-x.size // threads), REDUCE_BLOCKS))
    if blocks == 1:
        reduce_kernel[1, threads](x, square, out, scale)
        return
    reduce_kernel[blocks, threads](x, square, partials, 1.0)
    reduce_kernel[1, reduce_threads(blocks)](partials[:blocks], False, out, scale)


class Reducer:
    """Preallocated scratch for global sums: ``sum(x)`` leaves Σ x on the device, ``value()`` fetches it."""

    def __init__(self) -> None:
        self.partials = new_partials()
        self.result = cuda.device_array(1, np.float64)
        self._host = np.zeros(1, np.float64)

    def sum(self, x: Any, square: bool = False, scale: float = 1.0) -> None:
        device_sum(x, self.result, self.partials, square, scale)

    def value(self) -> float:
        self.result.copy_to_host(self._host)
        return float(self._host[0])


# -- column sums ----------------------------------------------------------------------------------


@cuda.jit(device=True)
def fold_lanes(buf, tx, ty):
    # buf[0, tx] = the sum of buf[:, tx] (SUM_LANES rows, a power of two) by a fixed halving tree:
    # the same order on every run. Every thread of the block calls it (it synchronizes).
    cuda.syncthreads()
    w = SUM_LANES // 2
    while w > 0:
        if ty < w:
            buf[ty, tx] += buf[ty + w, tx]
        cuda.syncthreads()
        w //= 2


@cuda.jit
def row_sum_kernel(a, out, acc):
    # Column j = blockIdx.x·blockDim.x + threadIdx.x; SUM_LANES threads (threadIdx.y) take every
    # SUM_LANES-th row, then a fixed tree adds the lanes: deterministic, and reads stay coalesced.
    buf = cuda.shared.array((SUM_LANES, WARP), np.float64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * cuda.blockDim.x + tx
    s = 0.0
    if j < a.shape[1]:
        for i in range(ty, a.shape[0], SUM_LANES):
            s += a[i, j]
    buf[ty, tx] = s
    fold_lanes(buf, tx, ty)
    if ty == 0 and j < a.shape[1]:
        if acc:
            out[j] += buf[0, tx]
        else:
            out[j] = buf[0, tx]


def row_sum(a: Any, out: Any, acc: bool = False) -> None:
    """out[j] = Σ_i a[i, j] (+= when ``acc``) for a 2-d device array of any strides."""
    cols = a.shape[1]
    if cols == 0:
        return
    tx = min(WARP, _pow2(cols))
    row_sum_kernel[-(-cols // tx), (tx, SUM_LANES)](a, out, acc)


# -- GEMM -----------------------------------------------------------------------------------------


@cuda.jit(device=True)
def _tile_product(ta, tb, a, b, row0, col0, sa, sb, acc):
    """acc[r] += Σ_k op(a)[row0 + ty + TILE_Y·r, k] · op(b)[k, col0 + tx] over all k.

    Every thread of the block calls this (it synchronizes). Each TILE-wide slab of k is staged in
    shared memory, out-of-range entries as zeros; the thread that loads an element is chosen so that
    neighbouring threads (tx) read neighbouring addresses of row-major a and b."""
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    m = a.shape[1] if ta else a.shape[0]
    k_total = a.shape[0] if ta else a.shape[1]
    n = b.shape[0] if tb else b.shape[1]
    for k0 in range(0, k_total, TILE):
        for r in range(ROWS_PER_THREAD):
            u = ty + TILE_Y * r
            if ta:  # op(a)[i, k] = a[k, i]: contiguous along i
                gi, gk = row0 + tx, k0 + u
                if gi < m and gk < k_total:
                    sa[tx, u] = a[gk, gi]
                else:
                    sa[tx, u] = 0
            else:  # contiguous along k
                gi, gk = row0 + u, k0 + tx
                if gi < m and gk < k_total:
                    sa[u, tx] = a[gi, gk]
                else:
                    sa[u, tx] = 0
            if tb:  # op(b)[k, j] = b[j, k]: contiguous along k
                gk, gj = k0 + tx, col0 + u
                if gk < k_total and gj < n:
                    sb[tx, u] = b[gj, gk]
                else:
                    sb[tx, u] = 0
            else:  # contiguous along j
                gk, gj = k0 + u, col0 + tx
                if gk < k_total and gj < n:
                    sb[u, tx] = b[gk, gj]
                else:
                    sb[u, tx] = 0
        cuda.syncthreads()
        for kk in range(TILE):
            bv = sb[kk, tx]
            for r in range(ROWS_PER_THREAD):
                acc[r] += sa[ty + TILE_Y * r, kk] * bv
        cuda.syncthreads()


@cuda.jit(device=True)
def _store_tile(alpha, beta, c, row0, col0, acc):
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = col0 + tx
    if j >= c.shape[1]:
        return
    for r in range(ROWS_PER_THREAD):
        i = row0 + ty + TILE_Y * r
        if i < c.shape[0]:
            if beta == 0:  # c is not read: it may hold anything, NaN included
                c[i, j] = alpha * acc[r]
            else:
                c[i, j] = alpha * acc[r] + beta * c[i, j]


@cuda.jit
def gemm_kernel(ta, tb, alpha, a, b, beta, c):
    sa = cuda.shared.array((TILE, TILE_PAD), a.dtype)  # shapes must be literal ints: module globals
    sb = cuda.shared.array((TILE, TILE_PAD), a.dtype)
    acc = cuda.local.array(ROWS_PER_THREAD, c.dtype)
    for r in range(ROWS_PER_THREAD):
        acc[r] = 0
    row0, col0 = cuda.blockIdx.x * TILE, cuda.blockIdx.y * TILE
    _tile_product(ta, tb, a, b, row0, col0, sa, sb, acc)
    _store_tile(alpha, beta, c, row0, col0, acc)


@cuda.jit
def gemm_batched_kernel(ta, tb, alpha, a, b, beta, c):
    sa = cuda.shared.array((TILE, TILE_PAD), a.dtype)
    sb = cuda.shared.array((TILE, TILE_PAD), a.dtype)
    acc = cuda.local.array(ROWS_PER_THREAD, c.dtype)
    for r in range(ROWS_PER_THREAD):
        acc[r] = 0
    row0, col0 = cuda.blockIdx.x * TILE, cuda.blockIdx.y * TILE
    z = cuda.blockIdx.z
    if c.shape[0] == 1:  # c receives the sum over the batch: this block walks it, in order
        nb = max(a.shape[0], b.shape[0])
        for s in range(nb):
            _tile_product(ta, tb, a[s if a.shape[0] > 1 else 0], b[s if b.shape[0] > 1 else 0],
                          row0, col0, sa, sb, acc)  # fmt: skip
    else:
        _tile_product(ta, tb, a[z if a.shape[0] > 1 else 0], b[z if b.shape[0] > 1 else 0],
                      row0, col0, sa, sb, acc)  # fmt: skip
    _store_tile(alpha, beta, c[z], row0, col0, acc)


def _gemm_shapes(ta: bool, tb: bool, ashape: tuple, bshape: tuple, cshape: tuple) -> None:
    m, k = (ashape[1], ashape[0]) if ta else ashape
    kb, n = (bshape[1], bshape[0]) if tb else bshape
    if k != kb or (m, n) != tuple(cshape):
        raise ValueError(
            f"gemm: op(a) {m}x{k} times op(b) {kb}x{n} does not give c {cshape[0]}x{cshape[1]} "
            f"(ta={ta}, tb={tb})"
        )
    if -(-n // TILE) > GRID_YZ:  # column tiles run along gridDim.y
        raise NotImplementedError(f"gemm: {n} columns exceed {GRID_YZ * TILE}; split the product")


def gemm(ta: bool, tb: bool, alpha: float, a: Any, b: Any, beta: float, c: Any) -> None:
    """c = alpha·op(a)·op(b) + beta·c for 2-d device arrays (any strides); op(x) = xᵀ when transposed."""
    _gemm_shapes(ta, tb, a.shape, b.shape, c.shape)
    if not a.dtype == b.dtype == c.dtype:
        raise TypeError(f"gemm: dtypes differ ({a.dtype}, {b.dtype}, {c.dtype})")
    m, n = c.shape
    if m == 0 or n == 0:
        return
    t = c.dtype.type  # scalars in the arrays' dtype keep float32 products float32
    grid = (-(-m // TILE), -(-n // TILE))
    gemm_kernel[grid, (TILE, TILE_Y)](bool(ta), bool(tb), t(alpha), a, b, t(beta), c)


def gemm_batched(ta: bool, tb: bool, alpha: float, a: Any, b: Any, beta: float, c: Any) -> None:
    """``gemm`` over a leading batch axis of 3-d device arrays. An ``a`` or ``b`` of batch 1 is
    broadcast; a ``c`` of batch 1 gets alpha·Σ_s op(a_s)·op(b_s) + beta·c."""
    _gemm_shapes(ta, tb, a.shape[1:], b.shape[1:], c.shape[1:])
    if not a.dtype == b.dtype == c.dtype:
        raise TypeError(f"gemm_batched: dtypes differ ({a.dtype}, {b.dtype}, {c.dtype})")
    nb = max(a.shape[0], b.shape[0])
    for name, s in (("a", a.shape[0]), ("b", b.shape[0]), ("c", c.shape[0])):
        if s not in (1, nb):
            raise ValueError(f"gemm_batched: {name} has batch {s}, expected 1 or {nb}")
    if c.shape[0] > GRID_YZ:  # the batch runs along gridDim.z
        raise NotImplementedError(f"gemm_batched: batch {c.shape[0]} exceeds {GRID_YZ}; split it")
    _, m, n = c.shape
    if m == 0 or n == 0 or c.shape[0] == 0:
        return
    t = c.dtype.type
    grid = (-(-m // TILE), -(-n // TILE), c.shape[0])
    gemm_batched_kernel[grid, (TILE, TILE_Y)](bool(ta), bool(tb), t(alpha), a, b, t(beta), c)


# -- binding helpers ------------------------------------------------------------------------------


def unary_kernels(f: Any, g: Any, module: str, attr: int = 0) -> tuple[Any, Any]:
    """``forward_cuda(x, y[, a[, c]])`` and ``backward_cuda(x or y, dy, dx, acc[, a[, c]])`` of an
    elementwise op from its device scalar functions ``f(x[, a[, c]])`` and ``g(x or y, dy[, a[, c]])``,
    ``attr`` (0, 1 or 2; True is 1) attributes: one pair of grid-stride loops for every activation.
    The kernels are named as the op module's own (``module``), so tools that look kernels up by
    module and name find them."""
    if attr == 2:

        def forward_cuda(x, y, a, c):
            for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
                y[i] = f(x[i], a, c)

        def backward_cuda(src, dy, dx, acc, a, c):
            for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
                v = g(src[i], dy[i], a, c)
                dx[i] = dx[i] + v if acc else v

    elif attr:

        def forward_cuda(x, y, a):
            for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
                y[i] = f(x[i], a)

        def backward_cuda(src, dy, dx, acc, a):
            for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
                if acc:
                    dx[i] += g(src[i], dy[i], a)
                else:
                    dx[i] = g(src[i], dy[i], a)

    else:

        def forward_cuda(x, y):  # type: ignore[misc]
            for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
                y[i] = f(x[i])

        def backward_cuda(src, dy, dx, acc):  # type: ignore[misc]
            for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
                if acc:
                    dx[i] += g(src[i], dy[i])
                else:
                    dx[i] = g(src[i], dy[i])

    for fn in (forward_cuda, backward_cuda):
        fn.__module__, fn.__qualname__ = module, fn.__name__
    return cuda.jit(forward_cuda), cuda.jit(backward_cuda)


def bind_unary(
    b: Binding, forward: Any, backward: Any, reads_output: bool, *attrs: Any
) -> tuple[Thunk, Thunk]:
    """Bind an elementwise op over flat device views: ``forward(x, y, *attrs)`` and
    ``backward(x or y, dy, dx, acc, *attrs)``, both grid-stride kernels."""
    x, y = flat(b.x[0]), flat(b.y)
    blocks, threads = grid_1d(x.size)

    def fwd() -> None:
        forward[blocks, threads](x, y, *attrs)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    src = y if reads_output else x
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), bool(b.acc[0])

    def bwd() -> None:
        backward[blocks, threads](src, dy, dx, acc, *attrs)

    return fwd, bwd
