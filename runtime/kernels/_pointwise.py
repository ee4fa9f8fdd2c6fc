"""Pointwise kernels' shared parts, CPU and CUDA: vectorizable exp, float32 primitives, binders.

``fast_exp`` is an exp that vectorizes (libm's exp is a call LLVM cannot vectorize, there being no
SVML here, which made every exp-based activation cost 2-5 ns per element). It works in float64,
which halves the lanes and adds conversions for float32 data, so float32 kernels use ``exp32``
(Cephes' expf: float32 arithmetic, within 1.1 ulp) built on three intrinsics: ``fmuladd`` (a·b + c,
fused on FMA hardware), ``select`` (a branch-free choice: numba lowers ``a if c else b`` to
branches, which LLVM does not always flatten, and a branch keeps a loop scalar) and ``pow2f``
(2^n from exponent bits, all int32: an int64 in the loop would cap the vector width at 8 lanes).
Float32 constants are np.float32 globals; a Python float would promote the arithmetic to float64.
``by_dtype(f32, f64)`` makes one scalar function of the two, chosen by the argument's type when a
kernel compiles (numba compiles per dtype), so one ``_f`` serves both dtypes and fused callers.

``bind_unary`` binds a unary elementwise op's CPU kernels over flat views (its device twin is
``cuda_core.bind_unary``, with ``cuda_core.unary_kernels`` building the device kernels), choosing at
bind time between the serial loop over [lo, hi) and the parallel kernel that splits the array into
``threads(size)`` contiguous chunks (prange; each element is computed by the same code whichever
chunk holds it, so the results are bitwise identical for any thread count). ``device_function(s)``
compile the scalar functions a CPU module defines as CUDA device functions, with ``exp = math.exp``
in place of ``fast_exp``.

Each op keeps its own CPU loops (``forward_cpu``/``backward_cpu`` and their parallel drivers) even
where they differ only in the scalar function they call: numba's disk cache refuses a caller that
takes a dispatcher as an argument, and keys a kernel on its own file only, so a shared loop would
either not cache or miss edits. After editing a jitted function here, delete the callers' caches
(``__pycache__/*.nbi``, ``*.nbc``).
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import cuda, njit
from numba import types as nb_types
from numba.extending import intrinsic, overload

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from ._views import flat

# -- a vectorizable exp ---------------------------------------------------------------------


@intrinsic
def _as_float64(typingctx, bits):
    """Reinterpret int64 bits as a float64 (compiles to a register move, vectorizes)."""
    if bits != nb_types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return nb_types.float64(nb_types.int64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n·_LN2_HI is exact (fdlibm)
_LN2_LO = 1.90821492927058770002e-10


@njit(cache=True, error_model="numpy", inline="always")
def fast_exp(x):
    """e^x in float64 to within 2 ulp for -708 <= x <= 709; 0 below (flushing what would be
    subnormal), inf above, NaN stays NaN. e^x = 2^n · e^r, |r| <= ln2/2, with e^r from its
    Taylor polynomial to r^12 and 2^n built from exponent bits. No call, so loops over it
    vectorize (about 2x libm's speed in float64 here, 8 lanes)."""
    if x < -708.0:
        return 0.0
    if x > 709.0:
        return math.inf
    n = math.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI - n * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _as_float64((np.int64(n) + 1023) << 52)


# -- float32 primitives ----------------------------------------------------------------------


@intrinsic
def fmuladd(typingctx, a, b, c):
    """a·b + c in one float type: llvm.fmuladd, one fused rounding where the CPU has FMA (LLVM
    lowers it the same way in vector and scalar code, so chunking never changes a result)."""
    if not (a == b == c and isinstance(a, nb_types.Float)):
        return None

    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fmuladd", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, a, a), codegen


@intrinsic
def select(typingctx, cond, a, b):
    """a if cond else b as an LLVM select (never a branch)."""
    if not (isinstance(cond, nb_types.Boolean) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(*args)

    return a(cond, a, b), codegen


@intrinsic
def pow2f(typingctx, n):
    """2^n for an integer-valued float32 n in [-126, 127], from exponent bits (int32 only)."""
    if n != nb_types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(k, ir.Constant(i32, 23)), ir.FloatType())

    return nb_types.float32(n), codegen


F32 = np.float32
_ZERO32, _ONE32, _INF32 = F32(0.0), F32(1.0), F32(np.inf)
_LO32, _HI32 = F32(-87.33654), F32(88.72283)  # e^x is subnormal below, overflows above
_LOG2E32, _ROUND32 = F32(_LOG2E), F32(12582912.0)  # 1.5·2^23: adding it rounds to an integer
_C1_32, _C2_32 = F32(0.693359375), F32(-2.12194440e-4)  # ln 2 = C1 + C2, n·C1 exact
_E5, _E4, _E3 = F32(1.9875691500e-4), F32(1.3981999507e-3), F32(8.3334519073e-3)
_E2, _E1, _E0 = F32(4.1665795894e-2), F32(1.6666665459e-1), F32(5.0000001201e-1)


@njit(cache=True, error_model="numpy", inline="always")
def exp32(x):
    """e^x of a float32 in float32 (Cephes' expf, within 1.1 ulp): e^x = 2^n · e^r, |r| <= ln2/2;
    0 below -87.34 (flushing what would be subnormal), inf above 88.72, NaN stays NaN."""
    xc = select(x > _LO32, x, _LO32)
    xc = select(xc < _HI32, xc, _HI32)  # in range for pow2f (NaN: any finite lane, selected away)
    n = (xc * _LOG2E32 + _ROUND32) - _ROUND32
    r = fmuladd(n, -_C1_32, xc)
    r = fmuladd(n, -_C2_32, r)
    p = fmuladd(_E5, r, _E4)
    p = fmuladd(p, r, _E3)
    p = fmuladd(p, r, _E2)
    p = fmuladd(p, r, _E1)
    p = fmuladd(p, r, _E0)
    e = (fmuladd(p, r * r, r) + _ONE32) * pow2f(n)
    e = select(x < _LO32, _ZERO32, e)
    e = select(x > _HI32, _INF32, e)
    return select(x != x, x, e)


def by_dtype(f32: Callable, f64: Callable) -> Callable:
    """A scalar function for jitted code that is ``f32`` where its first argument is a float32 and
    ``f64`` otherwise (both jitted, inline="always", of one to four arguments), resolved when the
    caller compiles. Called from Python it is ``f64``."""
    nargs = len(inspect.signature(f64.py_func).parameters)
    # One fixed arity per stub: numba's inliner takes neither *args nor defaults here.
    if nargs == 1:

        def fn(x):
            return f64(x)

        def typed(x):
            chosen = f32 if x == nb_types.float32 else f64
            return lambda x: chosen(x)

    elif nargs == 2:

        def fn(x, a):
            return f64(x, a)

        def typed(x, a):
            chosen = f32 if x == nb_types.float32 else f64
            return lambda x, a: chosen(x, a)

    elif nargs == 3:

        def fn(x, a, b):
            return f64(x, a, b)

        def typed(x, a, b):
            chosen = f32 if x == nb_types.float32 else f64
            return lambda x, a, b: chosen(x, a, b)

    else:

        def fn(x, a, b, c):
            return f64(x, a, b, c)

        def typed(x, a, b, c):
            chosen = f32 if x == nb_types.float32 else f64
            return lambda x, a, b, c: chosen(x, a, b, c)

    overload(fn, inline="always")(typed)
    return fn


# -- binders --------------------------------------------------------------------------------


#: Elements (for pools: input cells) below which a kernel runs serially. A parallel launch on
#: numba's workqueue threads costs ~30 µs here (measured: 30-40 µs for a 1k-element relu), and the
#: loops run 0.3 (relu, memory-bound) to 0.8 ns/element (float32 tanh) on one core, so a second
#: core pays for itself from ~10^5 elements on compute-bound ops and later on memory-bound ones.
#: On the shared 2-core machine this was tuned on, another process held one core throughout, and
#: the parallel kernels measured 3-10% slower than serial at 1.2M elements; 2^19 keeps that
#: exposure to the large tensors (LeNet-5's first layer at batch 256), where a free second core
#: should about halve compute-bound loops (not measurable here: no core was free).
PARALLEL_MIN = 1 << 19


def threads(size: int) -> int:
    """The number of chunks a kernel over ``size`` elements runs in: 1 (the serial kernel) below
    ``PARALLEL_MIN``, else numba's thread count. Bind-time only: kernels never decide per call."""
    return 1 if size < PARALLEL_MIN else numba.get_num_threads()


#: The activations the CPU kernels apply as a fused epilogue (``_epilogue``): every pointwise one.
#: An activation kernel module lists them too: in an inference chain with no fusable producer, the
#: first activation heads the chain, and the executor binds its forward to ``_epilogue.bind_head``
#: (which imports the activation modules, so they cannot call it).
ACTIVATIONS = frozenset(
    {"relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"}
    | {"relu6", "hardtanh", "hardsigmoid", "hardswish", "silu", "selu", "softplus"}
)


def bind_unary(b: Binding, kernels: tuple, reads_output: bool, *attrs: Any) -> tuple[Thunk, Thunk]:
    """Bind a unary elementwise op over flat views. ``kernels`` = (forward, backward, forward_par,
    backward_par): the serial loops ``forward(x, y, *attrs, lo, hi)`` and ``backward(x or y, dy,
    dx, acc, *attrs, lo, hi)`` over elements [lo, hi), and their parallel drivers, which take the
    chunk count ``nt`` in place of lo, hi (``threads`` picks which pair runs). The loops index with
    uint64: numba wraps a negative int64 index, which turns vector loads into gathers."""
    forward, backward, forward_par, backward_par = kernels
    x, y = flat(b.x[0]), flat(b.y)
    n, nt = y.size, threads(y.size)
    fwd = Launch(forward, x, y, *attrs, 0, n) if nt == 1 else Launch(forward_par, x, y, *attrs, nt)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    src = y if reads_output else x
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), b.acc[0]
    if nt == 1:
        return fwd, Launch(backward, src, dy, dx, acc, *attrs, 0, n)
    return fwd, Launch(backward_par, src, dy, dx, acc, *attrs, nt)


# -- the device copies of scalar functions ----------------------------------------------------


def device_function(fn: Callable, **names: Any) -> Any:
    """``fn`` as a CUDA device function, its global ``names`` rebound (``exp=math.exp``). The copy
    reads a snapshot of fn's module globals, so make it after everything fn uses is defined."""
    g = dict(fn.__globals__)
    g.update(names)
    clone = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__qualname__, clone.__doc__ = fn.__qualname__, fn.__doc__
    return cuda.jit(device=True)(clone)


def device_functions(*fns: Callable) -> list[Any]:
    """The scalar functions of an exp-based activation on the device (exp = math.exp)."""
    return [device_function(f, exp=math.exp) for f in fns]
