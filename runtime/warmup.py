"""Cold start: a plan's kernels compiled by two processes at once, before its first step.

numba compiles one function at a time in a process (its compiler lock), so a plan whose kernels
are not in the disk cache yet (an install, an edit of a runtime file: ``runtime.cache``) spends its
first step compiling them one after another on one core. The executor's thunks are data
(``runtime.launch``): before the first per-op step it knows every kernel it will call and the
types of every argument. ``warm`` lists the (kernel, signature) pairs the thunks launch, in order
of first use, and keeps those numba has neither in memory nor in its cache. Where at least two
remain, a worker process compiles from the end of that list while this process compiles from the
front; each takes an item by creating its claim file (``O_EXCL``, so exactly one of them gets
it), and stops at the first item the other one holds. The worker's compiles go into numba's disk
cache (same ``NUMBA_CACHE_DIR``; saves are locked, ``runtime.cache``), and this process, once
the worker has marked each of its items done, loads them from there on the first call.

It is started the way ``runtime.wholestep`` starts its compile process (``python -P`` from the
cache folder, ``spawn``). A worker that fails, or stops making progress for ``STALL`` seconds,
costs nothing but its share: this process says so on stderr, stops it, and its kernels compile
here on first call as they always did. ``NETC_COMPILE_WORKER=0`` turns the worker off.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .binding import Thunk
from .cache import in_disk_cache
from .launch import launches

#: seconds without the worker finishing an item before this process stops waiting for it
STALL = 300.0
POLL = 0.02  # seconds between looks at the worker's done files

_WORKER = "import sys; from netc.runtime.warmup import work; work(sys.argv[1])"


class Warmed(NamedTuple):
    """What ``warm`` did: kernels compiled here, kernels the worker compiled (or was given when it
    failed), and why it failed (None when it did not)."""

    here: int
    worker: int
    failure: str | None = None


def kernel_name(k: Any) -> tuple[str, str]:
    """(module, qualified name) of a module-level numba kernel, by which another process (or
    generated source) finds the same function; ValueError saying why there is none."""
    fn = getattr(k, "py_func", None)
    if fn is None:
        raise ValueError(f"kernel {k!r} is not a numba function")
    mod, name = fn.__module__, fn.__qualname__
    if getattr(sys.modules.get(mod), name, None) is not k:
        raise ValueError(f"kernel {mod}.{name} cannot be named (not a module-level function)")
    return mod, name


def spawn(code: str, args: Sequence[str], cwd: Path, log: Path) -> subprocess.Popen:
    """A ``python -P -c code args`` process that compiles into numba's cache: run from ``cwd``
    (the cache folder) so that the user's working directory, a clone of netc whose netc/ folder is
    not the installed package, cannot shadow the netc this process runs; stderr to ``log``."""
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-P", "-c", code, *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "NETC_WHOLE_STEP": "0"},
        )


def pending(thunks: Sequence[Thunk]) -> list[tuple[Any, tuple]]:
    """The (kernel, argument types) pairs ``thunks`` launch, in order of first use, that numba
    holds neither in memory nor in its disk cache (what a first call would compile)."""
    import numba

    seen, out = set(), []
    for t in thunks:
        for lc in launches(t) or ():
            k = lc.kernel
            if not hasattr(k, "overloads"):
                continue
            sig = tuple(numba.typeof(a) for a in lc.args)
            if (id(k), sig) in seen:
                continue
            seen.add((id(k), sig))
            if sig not in k.overloads and not in_disk_cache(k, sig):
                out.append((k, sig))
    return out


def _claim(folder: Path, i: int) -> bool:
    try:
        os.close(os.open(folder / f"claim-{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def warm(thunks: Sequence[Thunk]) -> Warmed | None:
    """Compile the kernels ``thunks`` will launch that are not compiled or cached, sharing them
    with a worker process (see the module's docstring); returns when each is compiled here or
    cached by the worker (or the worker has failed: then the rest compile on first call). None
    when there was nothing to share (fewer than two, the worker off, a kernel without a name)."""
    if os.environ.get("NETC_COMPILE_WORKER", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    todo = pending(thunks)
    named = []
    for k, sig in todo:
        try:
            named.append((*kernel_name(k), sig))
        except ValueError:
            return None  # a kernel only this process can find: compile as before, on first call
    if len(todo) < 2:
        return None
    import numba

    root = Path(numba.config.CACHE_DIR or tempfile.gettempdir())
    (root / "warmup").mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root / "warmup"))
    try:
        (folder / "items").write_bytes(pickle.dumps(named))
        proc = spawn(_WORKER, [str(folder)], root, folder / "log")
        mine = 0
        while mine < len(todo) and _claim(folder, mine):
            k, sig = todo[mine]
            k.compile(sig)
            mine += 1
        return Warmed(mine, len(todo) - mine, _wait(proc, folder, range(mine, len(todo))))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait(proc: subprocess.Popen, folder: Path, theirs: range) -> str | None:
    """Wait until the worker has done its items (those this process did not claim), it has
    exited without doing them, or it made no progress for STALL seconds (then it is stopped);
    why it failed, or None."""
    if not theirs:
        return None  # the worker finds every item taken and exits by itself
    done, last = 0, time.monotonic()
    while True:
        now = sum((folder / f"done-{i}").exists() for i in theirs)
        if now == len(theirs):
            return None
        if now > done:
            done, last = now, time.monotonic()
        if proc.poll() is not None:
            why = _last_line(folder / "log") if proc.returncode else "exited before its kernels were done"
            break
        if time.monotonic() - last > STALL:
            proc.kill()
            why = f"no kernel done in {STALL:g} s"
            break
        time.sleep(POLL)
    print(f"netc: warning: the kernel compile worker failed ({why}); compiling its kernels here",
          file=sys.stderr)  # fmt: skip
    return why


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return lines[-1] if lines else "no message"


def work(folder: str) -> None:
    """The worker: compile items from the end of the list until one is claimed, marking each
    done once numba has saved it to its cache."""
    import importlib

    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()  # as wholestep's compile process: cached parallel callees link against the pool
    base = Path(folder)
    named = pickle.loads((base / "items").read_bytes())
    for i in range(len(named) - 1, -1, -1):
        if not _claim(base, i):
            return
        mod, name, sig = named[i]
        importlib.import_module(mod)
        getattr(sys.modules[mod], name).compile(sig)
        (base / f"done-{i}").touch()
