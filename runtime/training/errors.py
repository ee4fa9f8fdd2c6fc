"""The error of a run that cannot start or go on for a reason the person can fix."""

from __future__ import annotations


class TrainError(Exception):
    """A run that cannot start or go on for a reason the person can fix."""
