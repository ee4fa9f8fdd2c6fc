"""Whole-step native code: one numba function per plan that runs a step's kernels in order.

The executor's bound thunks are data (``runtime.launch``): a kernel and its arguments. From them
``generate`` writes the Python source of one ``@njit(cache=True)`` function,

    step(arena, params, grads, opt_state, workspace, folded, training, seed, extras, fwd, bwd)

that calls the forward launches (the refold of an inference plan first) when ``fwd`` and the
backward ones when ``bwd`` — and, generated with an ``Update``, the optimizer's update after both
when the losses are finite: a training step is one call from Python, with no per-op dispatch. The
base buffers come in as uint8 arrays; each kernel argument that is a view of one is rebuilt inside
from (buffer, byte offset, dtype, shape, strides) — ``buf[o:o + n].view(dtype).reshape(shape)``
when C-contiguous (the layout NumPy gives the per-op call, so the kernels compile to the same
specializations), ``as_strided`` otherwise — which allocates nothing. The training flag and the
seed are the ``State`` arrays; scalars become literals of their type; every other array bound at
bind time (flags, empty placeholders, tables) travels in the ``extras`` tuple. Kernels are
imported by module and name: a thunk that is not data, or a kernel that cannot be named, makes
``generate`` refuse with the reason (``Refused``), and the plan runs per op.

Files: the source goes to ``whole/step_<hash of the source>.py`` under numba's cache directory,
which ``runtime.cache`` keys by the runtime's sources (an edit of any kernel starts a fresh one),
never into the installed package. It is written only when absent: numba keys its cache index by
the file's modification time. Importing it compiles nothing; ``WholeStep.compile`` loads the
compiled function from numba's disk cache when it is there, or else compiles it. The executor has a
cold one compiled by a separate process (``compile_elsewhere``) while the steps run
per op, and loads it from the cache when that is done (README "Whole-step native code").
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .binding import Thunk
from .cache import in_disk_cache
from .launch import Checked, Launch, OneBlasThread, launches, one_blas_thread
from .warmup import kernel_name, spawn

#: The buffers the step takes as uint8 arrays, in argument order (executor attributes).
BASES = ("arena", "params", "grads", "opt_state", "workspace", "folded")


class Refused(Exception):
    """A plan the whole-step code cannot run; the message says why."""


def _dtype_expr(dt: np.dtype) -> str:
    return "np.bool_" if dt == np.bool_ else f"np.{dt.name}"


def _scalar(v: Any) -> str | None:
    """A literal of ``v`` whose numba type is that of ``v`` passed from Python; None if none."""
    if isinstance(v, bool | np.bool_):
        return "True" if v else "False"
    if isinstance(v, int):
        return f"np.int64({v})"
    if isinstance(v, np.integer):
        return f"np.{v.dtype.name}({int(v)})"
    if isinstance(v, float | np.floating):
        f = float(v)  # exact: float32 -> float64 -> float32 round-trips, and repr is exact
        text = (
            repr(f) if np.isfinite(f) else ("np.nan" if np.isnan(f) else ("np.inf" if f > 0 else "-np.inf"))
        )
        return text if isinstance(v, float) else f"np.{v.dtype.name}({text})"
    return None


class _Writer:
    """Turns launches into lines of source, collecting the names, views and extras they use."""

    def __init__(self, bases: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> None:
        self.bases = [(n, b.__array_interface__["data"][0], b.nbytes) for n, b in bases.items()]
        self.state = {id(a): n for n, a in state.items()}
        self.imports: dict[tuple[str, str], str] = {}
        self.views: dict[tuple, str] = {}  # the current phase's views (built inside its branch)
        self.view_lines: list[str] = []
        self.n_views = 0
        self.extras: list[Any] = []
        self.extra_ids: dict[int, int] = {}

    def kernel(self, k: Any) -> str:
        try:
            mod, name = kernel_name(k)
        except ValueError as e:
            raise Refused(str(e)) from None
        key = (mod, name)
        if key not in self.imports:
            self.imports[key] = f"k{len(self.imports)}_{name}"
        return self.imports[key]

    def extra(self, a: Any) -> str:
        if id(a) not in self.extra_ids:
            self.extra_ids[id(a)] = len(self.extras)
            self.extras.append(a)
        return f"extras[{self.extra_ids[id(a)]}]"

    def array(self, a: np.ndarray) -> str:
        if id(a) in self.state:
            return self.state[id(a)]
        ptr = a.__array_interface__["data"][0]
        if a.size == 0 or a.ndim == 0 or any(s < 0 for s in a.strides):
            return self.extra(a)
        end = ptr + sum((n - 1) * s for n, s in zip(a.shape, a.strides, strict=True)) + a.itemsize
        found = next(((n, ptr - lo) for n, lo, size in self.bases if lo <= ptr and end <= lo + size), None)
        if found is None:
            return self.extra(a)
        name, off = found
        contiguous = numba.typeof(a).layout == "C"
        key = (name, off, a.dtype.str, a.shape, a.strides if not contiguous else None)
        if key not in self.views:
            var = f"v{self.n_views}"
            self.n_views += 1
            self.views[key] = var
            dt = _dtype_expr(a.dtype)
            if contiguous:
                expr = f"{name}[{off}:{off + a.nbytes}].view({dt}).reshape({a.shape!r})"
            else:
                span = -(-(end - ptr) // a.itemsize) * a.itemsize
                expr = f"as_strided({name}[{off}:{off + span}].view({dt}), {a.shape!r}, {a.strides!r})"
            self.view_lines.append(f"        {var} = {expr}")
        return self.views[key]

    def arg(self, v: Any) -> str:
        if isinstance(v, np.ndarray):
            return self.array(v)
        if isinstance(v, tuple):
            return "(" + "".join(self.arg(e) + ", " for e in v) + ")"
        lit = _scalar(v)
        if lit is None:
            raise Refused(f"argument of type {type(v).__name__} has no literal")
        return lit

    def call(self, launch: Launch) -> str:
        return f"{self.kernel(launch.kernel)}({', '.join(self.arg(v) for v in launch.args)})"

    def phase(self, launches: list[Launch]) -> list[str]:
        """The body of one branch: its views, then its calls. Each branch builds only the views
        it uses (about 0.1 µs each, a cost a forward-only call should not pay for backward's)."""
        self.views, self.view_lines = {}, []
        calls = [f"        {self.call(lc)}" for lc in launches]
        return [*self.view_lines, *calls] or ["        pass"]

    def update(self, up: Update, checks: list[Checked]) -> list[str]:
        """The update branch: the loss total and the input checks, then the guarded update."""
        self.views, self.view_lines = {}, []
        total = [f"        total += {self.arg(w)} * np.float64({self.arg(v)}[0])" for v, w in up.losses]
        flags = dict.fromkeys(f"{self.extra(c.flag)}[0] == 0" for c in checks)  # shared flags once
        ok = " and ".join(["np.isfinite(total)", *flags])
        flag, call = self.extra(up.applied), self.call(up.launch)  # the call's views before the lines
        return [
            *self.view_lines,
            "        total = 0.0",
            *total,
            f"        if {ok}:",
            f"            {call}",
            f"            {flag}[0] = 1",
            "        else:",
            f"            {flag}[0] = 0",
        ]  # fmt: skip


class Update:
    """An optimizer update for the step function to run after backward (``Optimizer.cpu_launch``),
    but only when the weighted total of ``losses`` ((loss array, weight) pairs, summed in float64
    in order, as the trainer sums them) is finite and no ``Checked`` launch flagged a bad input:
    ``applied[0]`` (int64) says whether it ran. The launch's changing scalars live in its float64
    array (``Optimizer.hyper``), never in the source, so a schedule's lr needs no new function."""

    def __init__(self, launch: Launch, losses: Sequence[tuple[np.ndarray, Any]], applied: np.ndarray) -> None:
        self.launch, self.losses, self.applied = launch, list(losses), applied


class Generated:
    """The source of a plan's step function and what calling it needs."""

    def __init__(self, source: str, extras: tuple, one_blas: bool, checks: tuple[list, list]) -> None:
        self.source, self.extras, self.one_blas, self.checks = source, extras, one_blas, checks
        self.key = hashlib.sha1(source.encode()).hexdigest()[:20]


def _flat(thunks: Sequence[Thunk], where: str, names: Sequence[str]) -> list[Launch]:
    out = []
    for t, name in zip(thunks, names, strict=True):
        ls = launches(t)
        if ls is None:
            raise Refused(
                f"the {where} of '{name}' is a Python closure, not a Launch (kernel module not converted)"
            )
        out.extend(ls)
    return out


def generate(
    forward: Sequence[Thunk],
    backward: Sequence[Thunk],
    names: tuple[Sequence[str], Sequence[str]],
    bases: dict[str, np.ndarray],
    state: dict[str, np.ndarray],
    update: Update | None = None,
) -> Generated:
    """The step function of a plan's thunks (``names``: the modules of the forward and backward
    thunks, for the refusal's reason), with ``update`` after backward when both passes run.
    Raises ``Refused`` where it cannot be generated."""
    fwd, bwd = _flat(forward, "forward", names[0]), _flat(backward, "backward", names[1])
    w = _Writer(bases, state)
    fwd_lines, bwd_lines = w.phase(fwd), w.phase(bwd)
    checks = ([lc for lc in fwd if isinstance(lc, Checked)], [lc for lc in bwd if isinstance(lc, Checked)])
    upd_lines = []
    if update is not None:
        upd_lines = ["    if run_forward and run_backward:", *w.update(update, [*checks[0], *checks[1]])]
    imports = [f"from {m} import {n} as {alias}" for (m, n), alias in w.imports.items()]
    args = ", ".join((*BASES, *state, "extras", "run_forward", "run_backward"))
    source = "\n".join([
        '"""A plan\'s whole step, generated by netc.runtime.wholestep: do not edit."""',
        "import numpy as np",
        "from numba import njit",
        "from numpy.lib.stride_tricks import as_strided",
        *imports,
        "",
        "",
        "@njit(cache=True)",
        f"def step({args}):",
        "    if run_forward:",
        *fwd_lines,
        "    if run_backward:",
        *bwd_lines,
        *upd_lines,
        "",
    ])  # fmt: skip
    one_blas = any(isinstance(lc, OneBlasThread) for lc in (*fwd, *bwd))
    return Generated(source, tuple(w.extras), one_blas, checks)


def source_path(gen: Generated, root: Path | None = None) -> Path:
    """Where the step's source lives: ``whole/`` under numba's (source-keyed) cache directory."""
    root = Path(root or numba.config.CACHE_DIR or os.environ.get("NUMBA_CACHE_DIR") or tempfile.gettempdir())
    return root / "whole" / f"step_{gen.key}.py"


def _module(path: Path) -> Any:
    """Import the generated file (once per process)."""
    name = f"netc_whole_{path.stem}"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return mod


class WholeStep:
    """A plan's step function: its dispatcher, the signature of its arguments, and the call."""

    def __init__(self, gen: Generated, bases: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> None:
        self.gen = gen
        self.path = source_path(gen)
        if not self.path.exists():  # write once: numba's index is keyed by the file's mtime
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(gen.source)
            os.replace(tmp, self.path)
        self.dispatcher = _module(self.path).step
        self.args = (*bases.values(), *state.values(), gen.extras)
        self.signature = tuple(numba.typeof(a) for a in (*self.args, True, True))

    def cached(self) -> bool:
        """Whether numba's disk cache holds the function for these argument types (a probe of its
        index; False when that cannot be told)."""
        sig = tuple(self.signature)
        return sig in self.dispatcher.overloads or in_disk_cache(self.dispatcher, sig)

    def compile(self) -> None:
        """Load the function from numba's disk cache, or compile (and cache) it."""
        from numba.np.ufunc.parallel import _launch_threads

        # Code loaded from the cache that calls a parallel kernel links against numba's thread
        # pool (allocate_sched, ...), which only exists once it is started: start it first.
        _launch_threads()
        self.dispatcher.compile(self.signature)
        # Its compiled entry point, called without the dispatcher's type resolution (5-6 µs a step
        # for LeNet-5's 8 arrays and extras tuple): the arguments are the same objects every step.
        self._entry = self.dispatcher.overloads[self.signature].entry_point

    def compile_elsewhere(self) -> subprocess.Popen:
        """Start a process that compiles the function into numba's disk cache (``load`` then
        takes it from there). A process rather than a thread: numba's typing holds the GIL,
        which would slow the steps running meanwhile, and a process left running when this one
        exits just finishes filling the cache (a thread inside LLVM at exit could crash it)."""
        sig = self.path.with_suffix(f".{os.getpid()}.sig")
        sig.write_bytes(pickle.dumps(self.signature))
        return spawn(_CHILD, [str(self.path), str(sig)], self.path.parent, self.path.with_suffix(".log"))

    def failure(self) -> str:
        """The last line of a failed compile's log."""
        lines = self.path.with_suffix(".log").read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def __call__(self, run_forward: bool, run_backward: bool) -> None:
        if self.gen.one_blas:  # the plan's OneBlasThread launches: one BLAS thread around the step
            with one_blas_thread():
                self._entry(*self.args, run_forward, run_backward)
        else:
            self._entry(*self.args, run_forward, run_backward)
        for c in (
            *(self.gen.checks[0] if run_forward else ()),
            *(self.gen.checks[1] if run_backward else ()),
        ):
            c.check()


class Loader:
    """A step function on its way to ready: loaded at once when numba's cache holds it (or
    ``sync``); otherwise a process compiles it, started at the second ``poll`` (once the per-op
    path has compiled or loaded every kernel), and it is loaded when that is done. ``ready`` is
    the function once loaded, ``reason`` why not ("compiling", "compile failed: ...")."""

    def __init__(self, ws: WholeStep, sync: bool) -> None:
        self.ws, self.proc, self.polls = ws, None, 0
        self.ready: WholeStep | None = None
        self.reason: str | None = "compiling"
        if sync or ws.cached():
            ws.compile()
            self.ready, self.reason = ws, None

    def poll(self) -> WholeStep | None:
        """The function once ready; starts its compile at the second poll, loads it once done."""
        if self.reason == "compiling":
            if self.proc is None:
                self.polls += 1
                if self.polls >= 2:
                    self.proc = self.ws.compile_elsewhere()
            elif self.proc.poll() is not None:
                self._loaded()
        return self.ready

    def _loaded(self) -> None:
        if self.proc.returncode == 0 and self.ws.cached():
            self.ws.compile()  # from the disk cache
            self.ready, self.reason = self.ws, None
        else:
            self.reason = f"compile failed: {self.ws.failure()}"

    def wait(self, timeout: float | None = None) -> bool:
        """Start the compile if it has not started, wait for it and load it; whether it is ready."""
        if self.reason == "compiling":
            if self.proc is None:
                self.proc = self.ws.compile_elsewhere()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            self._loaded()
        return self.ready is not None


_CHILD = "import sys; from netc.runtime.wholestep import compile_file; compile_file(sys.argv[1], sys.argv[2])"


def compile_file(path: str, signature: str) -> None:
    """The compile process (``WholeStep.compile_elsewhere``): compile the step function of the
    generated file ``path`` for the pickled signature, which numba caches on disk."""
    sig = Path(signature)
    types = pickle.loads(sig.read_bytes())
    sig.unlink(missing_ok=True)
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()  # as WholeStep.compile: kernels loaded from the cache link against the pool
    _module(Path(path)).step.compile(types)
