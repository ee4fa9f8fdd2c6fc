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


MAX_SHOWN = 50  # errors the CLI prints before "… and N more"


@dataclass
class SpecError(Exception):
    """One or more errors in a spec; ``str()`` lists them all."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)

    def report(self, limit: int = MAX_SHOWN) -> str:
        """What the CLI prints: the first ``limit`` diagnostics, how many were left out, and a
        count line. A spec that repeats a broken block 99,999 times makes 200,000 errors;
        nobody reads past the first few dozen."""
        n = len(self.diagnostics)
        lines = [str(d) for d in self.diagnostics[:limit]]
        if n > limit:
            lines.append(f"… and {n - limit:,} more")
        errors = sum(d.severity == "error" for d in self.diagnostics)
        count = f"{errors:,} error{'s' if errors != 1 else ''}"
        if errors < n:  # warnings that explain an error travel with it
            count += f", {n - errors:,} warning{'s' if n - errors != 1 else ''}"
        lines.append(count)
        return "\n".join(lines)

    @classmethod
    def one(
        cls, message: str, location: Location | None = None, pointer: str = "", hint: str = ""
    ) -> SpecError:
        return cls([Diagnostic(message, location, pointer, hint)])


# How alike two names must be (difflib's ratio) for a did-you-mean. difflib's own 0.6 suggests
# 'transpose' for 'conv_transpose2d' (0.72) and 'int64' for 'int8' (0.67): a wrong op or dtype
# is worse than none, since every caller falls back to listing the choices.
CLOSE = 0.75


def close_matches(word: str, choices: Iterable[str]) -> list[str]:
    """Names in ``choices`` close enough to ``word`` to be what a person meant, best first."""
    return difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=CLOSE)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A 'did you mean ...?' hint, or '' when nothing is close."""
    close = close_matches(word, choices)
    return f"did you mean '{close[0]}'?" if close else ""


def pointer(*parts: object) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
