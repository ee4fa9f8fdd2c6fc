"""Where numba's compiled-kernel cache lives: a per-user directory, never the installed package.

numba's default puts ``__pycache__/*.nbi|*.nbc`` next to each source file. For an installed netc
that is ``site-packages/netc/runtime/...``: a later ``pip install -e .`` removes netc but leaves
those folders, and they shadow the editable install (``import netc`` then finds a namespace package).
So before any kernel module is imported, numba is pointed at a directory of the user's.

Resolution order: ``$NETC_CACHE_DIR``; else ``$NUMBA_CACHE_DIR`` when the user set it for numba as
a whole; else ``$XDG_CACHE_HOME/netc`` (``~/.cache/netc``).

numba keys each entry by its own source file's path and modification time only, but netc's kernels
inline scalar functions from other files (an activation's ``_f`` inside conv2d's fused epilogue,
``fast_exp`` inside every exp-based op): after an edit to tanh.py, conv2d's cached code would still
hold the old tanh — a stale result, silently. So the kernels live in a subdirectory named by a key
of every runtime source file (path, size, modification time): any edit, upgrade or checkout
switch starts a fresh subdirectory, recompiled once (``sources_key``).

Several processes write one directory at once: the kernel compile worker beside the process it
compiles for (``runtime.warmup``), the whole-step compile process, two runs of a user's. numba's
save of a new entry reads the function's index, picks the first free data-file number, writes the
index, then the data; two processes saving two signatures of one function concurrently pick the
same number, and the index can end up naming a file that holds the other signature's code.
``lock_saves`` makes each save one critical section under a lock file of the directory (POSIX
``flock``), writing the data before the index entry that names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_dir(environ: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """The directory netc's kernels are cached in (not created here)."""
    for var in ("NETC_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if environ.get(var):
            return Path(environ[var]).expanduser()
    xdg = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "netc"


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError:
        return False
    return True


def sources_key(root: Path | None = None) -> str:
    """A short key of the runtime's source files (relative path, size, modification time)."""
    root = root or Path(__file__).resolve().parent
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


KEEP = 4  # source versions whose kernels stay cached (several checkouts may share the directory)


def _prune(parent: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used ``src-*`` kernel directories: every edit of
    a runtime file starts a new one. Best effort: another process may be pruning too."""
    dirs = sorted(parent.glob("src-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in dirs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    """An exclusive lock on ``directory``'s lock file while inside (none where flock is not)."""
    try:
        import fcntl
    except ImportError:  # Windows: numba's own unlocked save
        yield
        return
    with open(os.path.join(directory, ".netc-lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _save(self: Any, key: Any, data: Any) -> None:
    """numba's ``IndexDataCacheFile.save`` as one critical section: the data file first, then the
    index entry naming it (a reader never finds an entry whose file is not written yet)."""
    with _locked(self._cache_path):
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            taken = set(overloads.values())
            name = next(n for i in itertools.count(1) if (n := self._data_name(i)) not in taken)
        self._save_data(name, data)
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def lock_saves() -> None:
    """Make numba's cache saves locked critical sections (``runtime.numba_setup`` calls it before
    any kernel compiles; not ``configure``, which must not import numba)."""
    from numba.core.caching import IndexDataCacheFile

    # numba internals: a numba whose cache file class differs keeps its own (unlocked) save
    needed = ("_load_index", "_data_name", "_save_data", "_save_index")
    if all(hasattr(IndexDataCacheFile, n) for n in needed):
        IndexDataCacheFile.save = _save  # type: ignore[method-assign]


def in_disk_cache(dispatcher: Any, signature: tuple) -> bool:
    """Whether numba's disk cache holds ``dispatcher``'s code for these argument types (a probe of
    its index, no load; False when that cannot be told)."""
    try:
        cache = dispatcher._cache
        key = cache._index_key(signature, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:
        return False


def configure() -> Path:
    """Point numba's cache at :func:`cache_dir`; fall back to a per-user temporary directory when
    that cannot be written (a read-only home), rather than failing every kernel import."""
    d = cache_dir()
    if not _writable(d):
        fallback = Path(tempfile.gettempdir()) / f"netc-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
        print(f"netc: warning: cannot write the kernel cache {d}; using {fallback}", file=sys.stderr)
        d = fallback
        d.mkdir(parents=True, exist_ok=True)
    key = f"src-{sources_key()}"
    if d.name != key:  # a child process inherits the parent's NUMBA_CACHE_DIR, key included
        d = d / key
        d.mkdir(exist_ok=True)
        os.utime(d)  # "most recently used" for _prune
        _prune(d.parent, keep=KEEP)
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba was imported before netc.runtime: its config is already read
        config.CACHE_DIR = str(d)  # type: ignore[attr-defined]
    return d
