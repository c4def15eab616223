"""User-facing errors: one clear message naming the file, the place and what was expected."""

from __future__ import annotations


class CapevalError(Exception):
    """Base class for errors caused by user input or environment; the CLI prints them without a traceback."""


class InputError(CapevalError):
    """Bad input data. `where` names the file, the line or JSON path; the message says what was expected."""

    def __init__(self, message: str, *, path: str | None = None, where: str | None = None) -> None:
        self.path = path
        self.where = where
        self.detail = message
        loc = ""
        if path:
            loc = str(path)
            if where:
                loc += f", {where}"
            loc += ": "
        elif where:
            loc = f"{where}: "
        super().__init__(f"{loc}{message}")


class MetricUnavailable(CapevalError):
    """A metric cannot run here (no Java, missing jar or model); says what is missing and how to get it."""


class CapevalWarning(UserWarning):
    """Input that was accepted but gives numbers that deserve a second look; the CLI prints it as one line."""


class DegenerateInputWarning(CapevalWarning):
    """A score that is what the formula gives but not informative (e.g. CIDEr-D on one image is 0 by construction)."""
