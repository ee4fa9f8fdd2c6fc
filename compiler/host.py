"""The memory this machine has free: the figure `netc compile` warns against and the
CPU executor refuses to exceed before it allocates. Plain Python, so the compiler can use it
(the compiler never imports numba)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_memory", "short_of_memory"]


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup's "max" means no limit


def available_memory() -> int | None:
    """Bytes a new allocation can take now: /proc/meminfo's MemAvailable on Linux (free pages
    plus reclaimable cache), else the free physical pages os.sysconf reports; lowered to what a
    cgroup v2 memory limit (a container's) leaves. None where nothing can be read."""
    have = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                have = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        have = None
    if have is None:
        try:
            have = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        have = min(have, max(limit - used, 0))
    return have


def short_of_memory(need: int) -> int | None:
    """The bytes available when ``need`` exceeds them, else None (also where nothing is known)."""
    have = available_memory()
    return have if have is not None and need > have else None
