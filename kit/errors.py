"""The kit's own exceptions: errors a user can cause, said in one line with where and what was expected."""
from __future__ import annotations

from pathlib import Path


class KitError(Exception):
    """A problem the user can fix (a bad file, a bad parameter, a missing artifact)."""


class DataError(KitError):
    """A record in a data file does not follow its contract."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, expected: str, got=None):
        self.path, self.line, self.field, self.expected, self.got = str(path), line, field, expected, got
        where = self.path + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        tail = "" if got is None else f", got {_short(got)}"
        super().__init__(f"{where}: {what}expected {expected}{tail}")


class ParameterError(KitError):
    """A notebook or command-line parameter is out of its allowed range."""

    def __init__(self, name: str, expected: str, got=None):
        tail = "" if got is None else f", got {_short(got)}"
        super().__init__(f"parameter '{name}': expected {expected}{tail}")


class said(str):
    """A `got` that describes what was found ("a folder", "an empty file") rather than quoting a value: shown
    without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
