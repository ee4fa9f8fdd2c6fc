"""What netc sets in numba before any of its kernels compiles (``install``, called by the kernel
and optimizer registries): locked cache saves (``runtime.cache.lock_saves``), and one compiled
specialization per argument type, without literal-typed duplicates.

A numba function called from another one with a constant argument (``apply_rows(y, 0, ...)``,
``plane_copy(..., True, False)``) is typed with that constant's literal type, ``Literal[int](0)``
or ``Literal[bool](True)``, and numba compiles a specialization of the callee for it, next to the
one for ``int64`` or ``bool`` that another call site needs. netc's kernels never dispatch on a
literal value (none calls ``numba.literally``), so each such duplicate is a whole compile wasted:
typing, lowering, LLVM's passes and machine code. Measured on ResNet-mini's cold first training
step (numba's compile events, README "Runtime performance"): the epilogue's ``_apply``,
``copy_act``, ``act_inplace``, ``act_rest`` and ``apply_rows`` and conv2d's ``plane_copy`` each
compiled twice, ``_blas.gemm`` seven times (literal transpose flags and 'C'/'A' layouts).

``install()`` makes numba's dispatcher type a call from jitted code to one of netc's functions
(module ``netc`` or below) with its arguments unliteral'd: the literal converts to its plain type
at the call, the callee compiles once. A function marked with :func:`any_layout` (``gemm``, which
only reads its arrays' shapes and strides) also receives every array argument as layout 'A', so a
C-contiguous view and a strided one share its one specialization. Calls from Python are untouched
(numba never types those as literals), and functions outside netc are left as numba types them.
"""

from __future__ import annotations

from typing import Any

from numba.core import dispatcher, types

_PACKAGE = __name__.split(".")[0]  # "netc" when installed


def _ours(d: Any) -> bool:
    mod = getattr(getattr(d, "py_func", None), "__module__", None) or ""
    return mod == _PACKAGE or mod.startswith(_PACKAGE + ".")


def _plain(t: Any, any_layout: bool) -> Any:
    t = types.unliteral(t)
    if any_layout and isinstance(t, types.Array) and t.layout != "A":
        return t.copy(layout="A")
    return t


def any_layout(d: Any) -> Any:
    """Mark a jitted function whose array arguments compile as layout 'A' when another jitted
    function calls it (one specialization for contiguous and strided views); returns it."""
    d._netc_any_layout = True
    return d


def install() -> None:
    """Lock the cache's saves; unliteral the argument types of calls from jitted code to netc's
    functions (once)."""
    from .cache import lock_saves

    lock_saves()
    cls = dispatcher.Dispatcher
    # a numba internal: without it (another numba), the duplicates only cost compile time
    if not hasattr(cls, "get_call_template") or getattr(cls.get_call_template, "_netc", False):
        return
    original = cls.get_call_template

    def get_call_template(self: Any, args: Any, kws: Any) -> Any:
        if _ours(self):
            lay = getattr(self, "_netc_any_layout", False)
            args = tuple(_plain(a, lay) for a in args)
            kws = {k: _plain(v, lay) for k, v in kws.items()}
        return original(self, args, kws)

    get_call_template._netc = True  # type: ignore[attr-defined]
    cls.get_call_template = get_call_template  # type: ignore[method-assign]
