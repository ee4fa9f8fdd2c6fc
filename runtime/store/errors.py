"""The error every stored file raises when it cannot be used, and the warning line."""

from __future__ import annotations

import sys


class CheckpointError(Exception):
    """A checkpoint or safetensors file that cannot be used; the message names the file."""


def warn(message: str) -> None:
    """A warning for the person running netc: one line on stderr."""
    print(f"netc: warning: {message}", file=sys.stderr)
