"""Direct BLAS ?gemm for kernels (SciPy's BLAS, the one np.dot uses inside @njit).

np.dot in numba copies non-contiguous operands and cannot accumulate (no
beta), so kernels that multiply strided views (attention heads) or add a
product into an existing gradient (fan-out, ``acc``) call ``gemm`` instead:
no temporary, no copy.

It also holds the thread count of that BLAS (``OPENBLAS``): kernels that split their work over
numba's threads run each thread's GEMMs on one BLAS thread (``launch.OneBlasThread``).
"""

from __future__ import annotations

import ctypes
from typing import Any

import llvmlite.binding as llb
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from ..numba_setup import any_layout

# Cached kernels reference BLAS by these symbol names, resolved in every process at import.
for _name in ("sgemm", "dgemm"):
    llb.add_symbol(f"netc_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name))


@intrinsic
def _xgemm(typingctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Fortran ?gemm (column-major) on the data of arrays a, b, c; s or d chosen by a's dtype."""
    if not (isinstance(a, types.Array) and a.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, sig, args):
        dt = sig.args[6].dtype
        vp = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [vp] * 13)
        fn = cgutils.get_or_insert_function(
            builder.module, fnty, "netc_sgemm" if dt == types.float32 else "netc_dgemm"
        )

        def ref(val):  # Fortran takes every argument by reference
            slot = cgutils.alloca_once(builder, val.type)
            builder.store(val, slot)
            return builder.bitcast(slot, vp)

        def integer(i, width):
            return builder.trunc(context.cast(builder, args[i], sig.args[i], types.int64), ir.IntType(width))

        def real(i):
            return context.cast(builder, args[i], sig.args[i], dt)

        def data(i):
            return builder.bitcast(context.make_array(sig.args[i])(context, builder, args[i]).data, vp)

        argv = [
            ref(integer(0, 8)),
            ref(integer(1, 8)),
            ref(integer(2, 32)),
            ref(integer(3, 32)),
            ref(integer(4, 32)),
            ref(real(5)),
            data(6),
            ref(integer(7, 32)),
            data(8),
            ref(integer(9, 32)),
            ref(real(10)),
            data(11),
            ref(integer(12, 32)),
        ]
        builder.call(fn, argv)
        return context.get_dummy_value()

    return sig, codegen


@any_layout  # one specialization for contiguous and strided views: it reads shapes and strides only
@njit(cache=True)
def gemm(a, b, c, ta, tb, alpha, beta):
    """c = alpha·op(a)·op(b) + beta·c for row-major 2-D views with unit column stride (any row
    stride); op(a) = aᵀ when ta. Row-major c is column-major cᵀ = op(b)ᵀ op(a)ᵀ, hence the swap."""
    isz = a.itemsize
    m, n = c.shape
    k = a.shape[0] if ta else a.shape[1]
    if m == 0 or n == 0:
        return
    lda = max(a.strides[0] // isz, a.shape[1], 1)
    ldb = max(b.strides[0] // isz, b.shape[1], 1)
    ldc = max(c.strides[0] // isz, n, 1)
    _xgemm(84 if tb else 78, 84 if ta else 78, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc)


@njit(cache=True)
def project(x, w, b, out):
    """out = x wᵀ + b (linear layer; b may be empty)."""
    beta = 0.0
    if b.size:
        for r in range(out.shape[0]):
            out[r, :] = b
        beta = 1.0
    gemm(x, w, out, False, True, 1.0, beta)


def _openblas_threads() -> tuple[Any, Any] | None:
    """(set, get) of the thread count of the OpenBLAS that numba's np.dot calls, or None.

    numba binds np.dot to scipy.linalg.cython_blas; dlsym on that module's handle searches the
    libraries it links, so this finds the very OpenBLAS it uses (SciPy's wheels prefix the names)."""
    from scipy.linalg import cython_blas

    lib = ctypes.CDLL(cython_blas.__file__)
    for prefix in ("scipy_openblas_", "openblas_"):
        set_n = getattr(lib, prefix + "set_num_threads", None)
        get_n = getattr(lib, prefix + "get_num_threads", None)
        if set_n is not None and get_n is not None:
            set_n.argtypes, set_n.restype, get_n.restype = [ctypes.c_int], None, ctypes.c_int
            return set_n, get_n
    return None


OPENBLAS = _openblas_threads()
