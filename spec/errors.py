"""Errors a person can cause, each pinned to a place in a spec file.

A :class:`Diagnostic` is one finding (error or warning) with file, line,
column, JSON pointer, message and an optional hint. :class:`SpecError` carries
all the errors found by one pass, so a user fixes them in one round.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    location: Location | None = None
    pointer: str = ""
    hint: str = ""
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        ptr = f" (at {self.pointer})" if self.pointer else ""
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{where}{self.severity}: {self.message}{ptr}{hint}"


@dataclass
class SpecError(Exception):
    """One or more errors in a spec; ``str()`` lists them all."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)

    @classmethod
    def one(
        cls, message: str, location: Location | None = None, pointer: str = "", hint: str = ""
    ) -> SpecError:
        return cls([Diagnostic(message, location, pointer, hint)])


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A 'did you mean ...?' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def pointer(*parts: object) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
