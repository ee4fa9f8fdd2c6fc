"""The atomic-commit protocol: every file netc writes goes to a temporary name in the same
directory, is flushed and fsynced, renamed over its final name with ``os.replace``, and the
directory is fsynced, so a SIGKILL or power cut leaves the old file or the new one, never half.
Also what names such temporaries, and the sweep of those a killed writer left behind.

Writers call these through the module (``atomic.write_temp(...)``): a test replaces them here to
kill or fail every write of a run at one place.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

TMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_temp(final: Path, write: Any) -> tuple[Path, Any]:
    """Run ``write(f)`` into a durable temporary file beside ``final``; returns (temp, result)."""
    tmp = temp_path(final)
    try:
        with open(tmp, "xb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # a full disk, above all: name the file being written, not its temporary
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(final)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, result


def commit(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
    fsync_dir(final.parent)


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary file of netc's atomic writes."""
    return bool(TMP_RE.match(Path(path).name))


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process: not ours to judge
    return True


def sweep_temps(directory: Path) -> None:
    # Temporary files of a writer that was killed; a live writer's are left alone.
    for p in directory.iterdir():
        m = TMP_RE.match(p.name)
        if m and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            p.unlink(missing_ok=True)
