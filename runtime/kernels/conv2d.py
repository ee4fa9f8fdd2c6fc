"""conv2d kernels, chosen per shape at bind time: on the CPU, direct kernels (_conv_direct) for
few-channel layers, else im2col / col2im + GEMM through BLAS (_conv_gemm); on the GPU, im2col +
batched GEMM.

Choice (``bind_cpu``): the direct kernels take a stride-1, dilation-1, one-group, non-1x1 layer
with C·kh·kw <= DIRECT_MAX_TAPS (25, by measurement: LeNet-5's 1->6 5x5 first layer, where the
GEMM's column matrix costs more than it saves) when one thread's scratch fits the workspace the
contract declares; everything else, LeNet-5's 6->16 included, takes im2col + GEMM. Both thread
over samples the same way and are deterministic for a given thread count. Both apply a fused
activation (``Binding.epilogue``, EPILOGUES_CPU) as they write y.

im2col + GEMM (_conv_gemm's docstring has the products): each thread convolves its block of
samples in chunks of S samples, one GEMM per chunk and group over a column matrix
[C·kh·kw, S·width]; S and the column layout come from the contract (``CONV.chunk``,
``CONV.columns``), so the kernels stay inside the workspace it declares. A stride-1 layer takes
the "wide" layout, where each column-matrix row is one contiguous run of the zero-bordered
input plane (im2col is C·kh·kw long copies instead of C·kh·kw·Ho short ones; LeNet-5's 6->16
forward ~1.7x faster, for ~36% more GEMM columns there).

By kernel rows (``rows_chunk``, ``ROWS_MIN_CHANNELS``): the forward of a stride-1, one-group
layer with C >= 16 and kh >= 2 keeps only kw shifted copies of each input plane and runs kh GEMMs
Wr[u] [O, C·kw] @ rows (K = C·kw) shifted by d_h·u·Wp columns, instead of one over the wide
column matrix (K = C·kh·kw); _conv_gemm's docstring has the products. The backward keeps the wide
path. Measured on the benchmark row and ResNet-mini's block convolutions (32->32 3x3 p1, 32x32,
float32, batch 64; a shared 2-core machine, load 4-5, so minima of 25 interleaved rounds):

    one thread, the products alone     wide (K 288)  16.3 ms + im2col 2.3 ms   rows (K 96)  13.1 ms
                                       taps (9 GEMMs, K 32, no copy at all)    15.1 ms
    backward products, one thread      dW wide 11.7 + im2col 2.3    dW rows 14.6 (taps 17.0)
                                       dcols wide 10.9 + col2im     rows 10.8 + fold, taps 14.2
    forward_cpu vs forward_rows_cpu    2 threads, alternated: median 47.4 -> 40.6 ms, min 44.1 ->
                                       36.3 ms (load 4.5); 27.5 -> 23.9 ms, min 23.0 -> 18.1 ms
                                       (load 2.3; forward + backward 48.4 -> 50.4 GFLOP/s)
    again (2026-12-07), 2 threads, per-op executor, wide and by rows bound side by side in one
    process and alternated, medians of 21 rounds (load 3.6-4.9):
                                       32->32 @ 32x32 forward 47.0 -> 39.7 ms, + backward 109.3 ->
                                       102.7 ms; 16->16 @ 28x28 forward 11.9 -> 10.1 ms;
                                       benchmark ResNet-mini step 536 -> 503 ms (its four
                                       convolutions by rows: forward 183 -> 151 ms); examples/
                                       resnet_mini step 178 -> 170 ms (a second run, 31 rounds,
                                       load 4.3-6.9: the same ratios within 5%)

so only the forward switched: the backward's dW by rows loses what the smaller copy saves, and its
dx gains too little to pay for a second code path. NHWC (channels-last) columns, [S·P, K] @ [K, O],
are the same GEMM for BLAS (row-major [O, K] @ [K, S·P] is column-major [S·P, K] @ [K, O]) with
an im2col of C-long runs instead of Wp-long ones: not tried further. Layers with few channels
(ResNet-mini's 3-channel stem, LeNet-5's) keep the wide path: K = C·kw would be 9 to 30.
It was off by default for a while because AlexNet's float32 training gradients then differed from
PyTorch's (tests/runtime/test_networks.py, conv2.w by 0.09): every layer was right given its
inputs; a pool2 window's two largest inputs differ by 1.3e-6, less than conv2's float32 rounding
(~6e-6 either way), and rounding differently from the wide path flipped its argmax, which takes
the window's whole gradient. The network test's twin now follows the executor's argmax once it is
checked to be a maximum within the tolerance.

Threads: the batch is split into T contiguous blocks of samples, one per numba thread (prange),
each with its own column matrix and dW partial, while BLAS is set to one thread for the call
(OpenBLAS's thread count is restored after it). Per-sample GEMMs are small ([32 x 288] @ [288 x
1024] for a 32-channel 3x3 layer on 32x32): splitting each over two BLAS threads scaled poorly
and collapsed when the cores were shared (seconds per step), while one sample per core keeps
every stage (im2col, GEMMs, col2im) parallel. Results are deterministic for a given T (dW sums
the T partials in order). When OpenBLAS's thread count cannot be set (another BLAS), T = 1 and
BLAS keeps its threads.

On the GPU (``bind_cuda``) the same scheme runs on chunks of S samples: S column matrices
[C·kh·kw, Ho·Wo], as many as fit in the workspace the contract declares (sized for the CPU's
threads, so S >= min(N, THREADS); a larger batch takes N/S rounds of launches). An im2col kernel
(one thread per column entry) fills them, and per group one ``cuda_core.gemm_batched`` launch over the
chunk does each product:

    forward   y[s, g]  = W_g @ cols[s, g]              (W_g broadcast; y preset to the bias, beta 1)
    backward  dW_g    (+)= Σ_s dy[s, g] @ cols[s, g]ᵀ  (a batch-1 output sums the chunk in-kernel;
                                                      beta 1 from the second chunk on: no atomics)
              dcols[s, g] = W_gᵀ @ dy[s, g]            (into the column matrices)
              dx[s]   (+)= col2im(dcols)               (a gather: one thread per input cell sums its
                                                      taps in the CPU's (u, v) order)
    db = Σ_{s, p} dy[s, o, p]                          (one block reduction per channel)

The 1x1 direct case multiplies x (and dx) in place, with no column matrices.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import cuda

from ...compiler.ops.base import TensorType, pair
from ...compiler.ops.conv2d import OP as CONV
from ...compiler.ops.conv2d import pads4
from ..binding import Binding, Thunk, nothing
from ..launch import Launch, OneBlasThread
from . import _conv_direct as direct
from . import _conv_gemm as gemm_kernels
from . import _epilogue as epilogue
from . import cuda_core
from ._blas import OPENBLAS
from ._conv_gemm import is_direct
from ._views import view
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module

#: Runs numba-parallel loops over samples or planes: BLAS stays on one thread in its plans
#: (``Binding.blas_threads``).
PARALLEL_CPU = True


def geometry(b: Binding) -> tuple[int, ...]:
    """(C, H, W, kh, kw, sh, sw, dh, dw, pad_top, pad_left, Ho, Wo, groups) of a binding."""
    a = b.attrs
    _, c, h, w = b.x[0].shape
    k, d = pair(a["kernel"]), pair(a["dilation"])
    s = pair(a["stride"])
    pt, _, pl, _ = pads4(a, k, d)
    ho, wo = b.y.shape[2], b.y.shape[3]
    return (c, h, w, k[0], k[1], s[0], s[1], d[0], d[1], pt, pl, ho, wo, int(a["groups"]))


# The direct kernels' limit on C·kh·kw (taps per output), by measurement (float32, batch 64, one
# thread): a single-channel 5x5 layer (LeNet's 1->6) runs forward ~1.1x and backward (dW, db)
# ~1.3x faster direct (in LeNet-5 on 2 threads, a shared machine: forward 1.1-1.2x, backward
# 0.9-1.4x); with 2 channels (2->8 5x5) direct is already ~0.85x, and LeNet's 6->16 (150 taps)
# ~0.5-0.6x, where the GEMM's [O, K] @ [K, Ho·Wo] reuses each input load O times.
DIRECT_MAX_TAPS = 25


def direct_threads(b: Binding, geo: tuple[int, ...]) -> int | None:
    """How many threads the direct kernels run on, or None when they do not take this convolution
    (its shape, or a workspace too small for one thread's scratch)."""
    if not direct.direct_fits(geo, DIRECT_MAX_TAPS):
        return None
    per = sum(direct.scratch_sizes(geo, b.p["w"].shape[0]))
    fits = b.ws.nbytes // (per * b.p["w"].dtype.itemsize)
    if fits < 1:
        return None
    return max(1, min(b.x[0].shape[0], numba.get_num_threads(), fits))


#: The activations bind_cpu's forward kernels apply to y themselves (``Binding.epilogue``).
EPILOGUES_CPU: frozenset[str] = epilogue.EPILOGUES_CPU


def gemm_layout(b: Binding, geo: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(threads T, samples per GEMM S, columns per sample, plane size) of the im2col + GEMM kernels
    (``CONV.columns``): T as many as numba has, one per sample at most; S as the contract chooses
    it; then T and S no more than the workspace holds private scratch for (per thread: the column
    matrix and the stage, S·(C·kh·kw + O)·width, two planes and a dWᵀ partial [K, O])."""
    c, _, _, kh, kw, *_ = geo
    n, (o, k) = b.x[0].shape[0], (b.p["w"].shape[0], b.p["w"][0].size)
    ins = [TensorType((c, *b.x[0].shape[2:]))]
    width, plane = CONV.columns(b.attrs, ins)
    per_sample, fixed = (c * kh * kw + o) * width, 2 * plane + k * o
    have = b.ws.nbytes // b.p["w"].dtype.itemsize
    nt = max(1, min(n, numba.get_num_threads())) if OPENBLAS is not None else 1
    while nt > 1 and have // nt < per_sample + fixed:
        nt -= 1
    chunk = CONV.chunk(b.attrs, ins, n, nt)
    return nt, max(1, min(chunk, (have // nt - fixed) // per_sample)), width, plane


# The forward by kernel rows (_conv_gemm.forward_rows_cpu) takes stride-1, one-group layers with at
# least this many input channels, by measurement (see the module docstring); fewer channels make
# its kh GEMMs' K = C·kw too short (ResNet-mini's 3-channel stem, LeNet-5's layers keep the wide path).
ROWS_MIN_CHANNELS = 16


def rows_chunk(b: Binding, geo: tuple[int, ...], nt: int, chunk: int, width: int) -> int:
    """Samples per chunk of the forward by kernel rows, or 0 where it does not take the layer: its
    shifted rows and stage [C·kw + O, S·Hp·Wp] must fit in the space of one thread's column matrix
    and stage of the wide path, [C·kh·kw + O, chunk·width]."""
    c, _, _, kh, kw, sh, sw, *_, groups = geo
    if sh != 1 or sw != 1 or groups != 1 or kh < 2 or c < ROWS_MIN_CHANNELS:
        return 0
    hp, wp, _ = gemm_kernels.wide_dims(geo)
    o = b.p["w"].shape[0]
    share = -(-b.x[0].shape[0] // nt)
    return min(share, (c * kh * kw + o) * chunk * width // ((c * kw + o) * hp * wp))


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    geo = geometry(b)
    nt = direct_threads(b, geo)
    if nt is not None:
        return direct.bind(b, geo, nt)
    c, _, _, kh, kw, *_, ho, wo, _ = geo
    n = b.x[0].shape[0]
    wt = b.p["w"]
    dt = wt.dtype
    o = wt.shape[0]
    w2 = view(wt, o, -1)
    x = view(b.x[0], n, -1)
    y = view(b.y, n, o, ho * wo)
    bias = b.p.get("b", np.zeros(0, dt))
    k = w2.shape[1]
    nt, chunk, width, plane = gemm_layout(b, geo)
    parts = (c * kh * kw * chunk * width, o * chunk * width, plane, plane, k * o)
    scratch = b.workspace(dt, nt * sum(parts))
    views, at = [], 0
    for size in parts:
        views.append(view(scratch[at : at + nt * size], nt, size))
        at += nt * size
    cols, stages, planes, dplanes, dwt = views
    cols = view(cols, nt, c * kh * kw, chunk * width)
    stages = view(stages, nt, o, chunk * width)
    dwt = view(dwt, nt, k, o)  # per-thread dWᵀ partials
    launch = OneBlasThread if nt > 1 and OPENBLAS is not None else Launch
    act = epilogue.code(b)
    fwd = launch(gemm_kernels.forward_cpu, x, w2, bias, y, cols, stages, planes, chunk, act, geo)
    s_rows = rows_chunk(b, geo, nt, chunk, width)
    if s_rows:  # the same scratch as the wide path's column matrices and stages (forward only)
        hp, wp, _ = gemm_kernels.wide_dims(geo)
        sizes = (c * kw * s_rows * hp * wp, o * s_rows * hp * wp)
        rows = view(scratch[: nt * sizes[0]], nt, c * kw, s_rows * hp * wp)
        stages_r = view(scratch[nt * sizes[0] : nt * sum(sizes)], nt, o, s_rows * hp * wp)
        wr = view(dwt, nt, kh, o, c * kw)  # the weights by kernel row, in the dWᵀ partials' space
        fwd = launch(gemm_kernels.forward_rows_cpu, x, w2, bias, y, rows, stages_r, planes, wr, act, geo)
    if b.dy is None:
        return fwd, nothing
    dy, dx, dw2, db = direct.grad_views(b, x, y, w2)
    if not dw2.size:
        dwt = dwt[:, :, :0]  # frozen weights: no partials to compute
    acc = b.acc[0]
    scr = (cols, stages, planes, dplanes, dwt)
    return fwd, launch(gemm_kernels.backward_cpu, x, w2, dy, dx, dw2, db, scr, chunk, acc, geo)


# -- CUDA -------------------------------------------------------------------------------------------


@cuda.jit
def im2col_cuda(x, cols, kh, kw, sh, sw, dh, dw, pt, pl, wo):
    # x [S, C, H, W] -> cols [S, C·kh·kw, Ho·Wo]: cols[s, (c, u, v), (i, j)] = xpad[s, c, sh·i + dh·u,
    # sw·j + dw·v]; one thread per entry, so neighbouring threads write neighbouring addresses
    h, w = x.shape[2], x.shape[3]
    rows, howo = cols.shape[1], cols.shape[2]
    for e in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        p = e % howo
        r = (e // howo) % rows
        s = e // (howo * rows)
        v = r % kw
        u = (r // kw) % kh
        c = r // (kw * kh)
        hi = sh * (p // wo) + dh * u - pt
        wi = sw * (p % wo) + dw * v - pl
        if hi >= 0 and hi < h and wi >= 0 and wi < w:
            cols[s, r, p] = x[s, c, hi, wi]
        else:
            cols[s, r, p] = 0


@cuda.jit
def col2im_cuda(cols, dx, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, acc):
    # dx [S, C, H, W] (+)= cols [S, C·kh·kw, Ho·Wo] folded back. A gather: the thread of input cell
    # (c, hi, wi) sums the taps (u, v) whose output (i, j) reads it, in the CPU's (u, v) order.
    nc, h, w = dx.shape[1], dx.shape[2], dx.shape[3]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        wi = e % w
        hi = (e // w) % h
        c = (e // (w * h)) % nc
        s = e // (w * h * nc)
        t = dx[s, c, hi, wi] if acc else dx.dtype.type(0)
        for u in range(kh):
            a = hi + pt - dh * u  # = sh·i for the output row i that reads this cell through tap u
            if a < 0:
                break  # a falls as u grows
            if a % sh != 0 or a // sh >= ho:
                continue
            for v in range(kw):
                bb = wi + pl - dw * v
                if bb < 0:
                    break
                if bb % sw != 0 or bb // sw >= wo:
                    continue
                t += cols[s, (c * kh + u) * kw + v, (a // sh) * wo + bb // sw]
        dx[s, c, hi, wi] = t


@cuda.jit
def bias_fill_cuda(bias, y):
    # y[n, o, :] = bias[o], before the forward GEMMs add into y (beta 1)
    o, p = y.shape[1], y.shape[2]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[e // (o * p), (e // p) % o, e % p] = bias[(e // p) % o]


# the bias gradient: Σ over samples and positions per channel, one block per channel, no atomics


@cuda.jit(device=True)
def block_channel_sum(buf, a, ch):
    """Σ_{n, l} a[n, ch, l] (float64) over a 3-d [N, C, L] array, computed by the whole 1-d block."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    ln = a.shape[2]
    s = 0.0
    for e in range(t, a.shape[0] * ln, nt):
        s += a[e // ln, ch, e % ln]
    return cuda_core.block_sum(buf, s)


@cuda.jit
def channel_sum_kernel(a, out):
    # block c: out[c] = Σ a[:, c, :] (a bias gradient over samples and positions), no atomics
    buf = cuda.shared.array(THREADS, np.float64)
    ch = cuda.blockIdx.x
    total = block_channel_sum(buf, a, ch)
    if cuda.threadIdx.x == 0:
        out[ch] = total


def channel_sum(a: Any, out: Any) -> None:
    """out[c] = Σ_{n, l} a[n, c, l] for a 3-d device array (one block per channel)."""
    if a.shape[1]:
        channel_sum_kernel[a.shape[1], cuda_core.reduce_threads(a.shape[0] * a.shape[2])](a, out)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    geo = geometry(b)
    c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, groups = geo
    n = b.x[0].shape[0]
    wt = b.p["w"]
    dt, o = wt.dtype, wt.shape[0]
    og, k = o // groups, wt.size // o  # k = C/groups·kh·kw: one group's rows of the column matrix
    w3 = wt.reshape(groups, og, k)  # w3[g:g+1]: group g's [og, K] as a batch of 1 (broadcast)
    x4, p_out = b.x[0], ho * wo
    y3 = b.y.reshape(n, o, p_out)
    bias = b.p.get("b")
    direct = is_direct(geo)
    if direct:  # x[s] already is its column matrix [C, H·W]
        chunk, cols = n, x4.reshape(n, c, h * w)
    else:
        # As many samples per launch as the declared workspace holds: the contract sizes it for the
        # CPU's threads (one column matrix and one dWᵀ partial each), so S >= min(N, THREADS).
        size = c * kh * kw * p_out
        declared = CONV.workspace(b.attrs, [TensorType((c, h, w))], TensorType((o, ho, wo)), n) // 4
        avail = min(declared, b.ws.nbytes // np.dtype(dt).itemsize)
        if avail < size:
            raise ValueError(f"{b.module}: workspace holds {avail} values, im2col needs {size}")
        chunk = min(n, avail // size)
        cols = b.workspace(dt, chunk * size).reshape(chunk, c * kh * kw, p_out)
    starts = range(0, n, chunk)
    # Per chunk (samples [s0, s1)): its column matrices, the input, and per group the views of the
    # three products; all built here so the thunks only launch.
    col_v = [cols[s0 : s0 + chunk] if direct else cols[: min(chunk, n - s0)] for s0 in starts]
    x_v = [x4[s0 : s0 + chunk] for s0 in starts]
    cols_g = [[cv[:, g * k : (g + 1) * k, :] for g in range(groups)] for cv in col_v]
    y_g = [[y3[s0 : s0 + chunk, g * og : (g + 1) * og, :] for g in range(groups)] for s0 in starts]
    w_g = [w3[g : g + 1] for g in range(groups)]
    geo_cuda = (kh, kw, sh, sw, dh, dw, pt, pl)
    im_launch = [cuda_core.grid_1d(cv.size) for cv in col_v]
    bias_launch = cuda_core.grid_1d(y3.size)
    beta_y = 0.0 if bias is None else 1.0

    def fwd() -> None:
        if bias is not None:
            bias_fill_cuda[bias_launch](bias, y3)
        for q in range(len(col_v)):
            if not direct:
                im2col_cuda[im_launch[q]](x_v[q], col_v[q], *geo_cuda, wo)
            for g in range(groups):
                cuda_core.gemm_batched(False, False, 1.0, w_g[g], cols_g[q][g], beta_y, y_g[q][g])

    if b.dy is None:
        return fwd, nothing
    dy3 = b.dy.reshape(n, o, p_out)
    dy_g = [[dy3[s0 : s0 + chunk, g * og : (g + 1) * og, :] for g in range(groups)] for s0 in starts]
    gw, db = b.dp.get("w"), b.dp.get("b")
    dw_g = None if gw is None else [gw.reshape(groups, og, k)[g : g + 1] for g in range(groups)]
    dx4 = b.dx[0]
    acc = bool(b.acc[0])
    if dx4 is not None and direct:  # dcols is dx itself: the GEMM adds into it when acc
        dx3 = dx4.reshape(n, c, h * w)
        dcol_g = [[dx3[s0 : s0 + chunk, g * k : (g + 1) * k, :] for g in range(groups)] for s0 in starts]
    else:
        dcol_g = cols_g
    dx_v = None if dx4 is None else [dx4[s0 : s0 + chunk] for s0 in starts]
    dx_launch = [cuda_core.grid_1d(xv.size) for xv in x_v]
    beta_dx = 1.0 if direct and acc else 0.0

    def bwd() -> None:
        if db is not None:
            channel_sum(dy3, db)
        for q in range(len(col_v)):
            if dw_g is not None:
                if not direct:
                    im2col_cuda[im_launch[q]](x_v[q], col_v[q], *geo_cuda, wo)
                beta = 0.0 if q == 0 else 1.0  # later chunks add to the sum over samples
                for g in range(groups):
                    cuda_core.gemm_batched(False, True, 1.0, dy_g[q][g], cols_g[q][g], beta, dw_g[g])
            if dx_v is not None:
                for g in range(groups):
                    cuda_core.gemm_batched(True, False, 1.0, w_g[g], dy_g[q][g], beta_dx, dcol_g[q][g])
                if not direct:
                    col2im_cuda[dx_launch[q]](col_v[q], dx_v[q], *geo_cuda, ho, wo, acc)

    return fwd, bwd
