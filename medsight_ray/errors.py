"""User-facing errors.

Every error a user can cause names what was expected, what came, and where (file,
column, row or image id), and says how to fix it. Command-line entry points turn these
into a one-paragraph message and exit code 2, never a traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

_URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>,;)\]}]+")


def redact(uri: str) -> str:
    """``uri`` without the keys of its user part (``s3://KEY:SECRET@bucket`` → ``s3://bucket``)
    and without its query (endpoint options): what a log or an error may show."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


def redact_all(value: Any) -> Any:
    """``value`` with every URI in it redacted (:func:`redact`), however deep: in a
    string (a message may hold several), a mapping's keys and values, a list or tuple.
    The one function every console line, log record and saved summary or request
    passes through, so no key written into a URI is printed, logged or saved."""
    if isinstance(value, str):
        return _URI.sub(lambda m: redact(m.group(0)), value) if "://" in value else value
    if isinstance(value, dict):
        return {redact_all(k): redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_all(v) for v in value)
    return value


class MedsightError(Exception):
    """An error caused by the user's input, data or configuration.

    Args:
        what: one line saying what is wrong.
        where: file, column, row or image id the problem was found at.
        expected: what a valid input looks like.
        got: what was actually found.
        fix: how to fix it.
    """

    def __init__(
        self,
        what: str,
        *,
        where: str = "",
        expected: str = "",
        got: str = "",
        fix: str = "",
    ) -> None:
        self.what = what
        self.where = where
        self.expected = expected
        self.got = got
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        """Return the error as one paragraph."""
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.got:
            parts.append(f"got {self.got}")
        text = "; ".join(parts) + "."
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class DataError(MedsightError):
    """A dataset does not match its layout or cannot be used for training."""


class ConfigError(MedsightError):
    """A configuration, search space or command-line request is invalid."""


def exit_on_error(main: Callable[[], int | None]) -> Callable[[], NoReturn]:
    """Wrap a CLI ``main`` so that user errors print one paragraph and exit with 2."""

    def wrapped() -> NoReturn:
        try:
            code = main()
        except MedsightError as err:
            print(f"error: {redact_all(err.message())}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code or 0)

    return wrapped


def exit_code(summary: dict) -> int:
    """Exit code of a command that wrote a summary: 1 (and the reason on stderr) when
    it records a failure, else 0."""
    if "failed" in summary:
        print(f"failed: {redact_all(summary['failed'])}", file=sys.stderr)
        return 1
    return 0
