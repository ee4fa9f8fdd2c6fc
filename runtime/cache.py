"""Where numba's compiled-kernel cache lives: a per-user directory, never the installed package.

numba's default puts ``__pycache__/*.nbi|*.nbc`` next to each source file. For an installed netc
that is ``site-packages/netc/runtime/...``: a later ``pip install -e .`` removes netc but leaves
those folders, and they shadow the editable install (``import netc`` then finds a namespace package).
So before any kernel module is imported, numba is pointed at a directory of the user's.

Resolution order: ``$NETC_CACHE_DIR``; else ``$NUMBA_CACHE_DIR`` when the user set it for numba as
a whole; else ``$XDG_CACHE_HOME/netc`` (``~/.cache/netc``). numba keys each entry by the source file's
path and modification time, so several installs or checkouts can share one directory safely.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


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


def configure() -> Path:
    """Point numba's cache at :func:`cache_dir`; fall back to a per-user temporary directory when
    that cannot be written (a read-only home), rather than failing every kernel import."""
    d = cache_dir()
    if not _writable(d):
        fallback = Path(tempfile.gettempdir()) / f"netc-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
        print(f"netc: warning: cannot write the kernel cache {d}; using {fallback}", file=sys.stderr)
        d = fallback
        d.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba was imported before netc.runtime: its config is already read
        config.CACHE_DIR = str(d)  # type: ignore[attr-defined]
    return d
