"""Every exception docshift raises on purpose.

    DocshiftError                 base class; ``str()`` is a complete, user-facing message
    ├── MappingError              the mapping file is wrong (names file, table, column) → exit 2
    ├── SourceError               a source cannot be opened or read (names file / collection)
    ├── ConversionError           one value of one document cannot be converted; never stops a
    │                             run: the document goes to quarantine with this error's fields
    ├── UsageError                a library call got an argument it cannot use (a scale
    │                             of 0, a rate above 1); also a ValueError → exit 2
    ├── TargetError               the target PostgreSQL refused something docshift needs
    │   └── LeaseLost             another process holds or moved a work unit's lease; the
    │                             batch was rolled back and this loader stops
    └── RunAborted                the run stopped on purpose (``--max-errors`` exceeded) → exit 1

Errors carry context as attributes so that the CLI, the quarantine table and the reports
can show *which* document, field and table a problem is about.
"""

from __future__ import annotations


class DocshiftError(Exception):
    """Base class for all docshift errors."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class MappingError(DocshiftError):
    """The mapping file is invalid. ``problems`` lists every problem found, one line each."""

    def __init__(self, message: str, *, problems: list[str] | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or [message]


class SourceError(DocshiftError):
    """A source could not be opened or read."""


class ConversionError(DocshiftError):
    """A single source value could not be converted to its PostgreSQL column type.

    ``field`` is the source path (``account.owner``) and ``value`` the offending value;
    ``error_class`` is a short stable name used to group rejects (``bad_date``,
    ``out_of_range``, ``not_in_enum``, ``missing_required``, ``nul_byte``, …).
    """

    def __init__(self, reason: str, *, error_class: str, value: object = None,
                 field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class
        self.value = value
        self.field = field

    def __str__(self) -> str:
        where = f"field {self.field!r}: " if self.field else ""
        return f"{where}{self.reason} (value: {preview(self.value)})"


class UsageError(DocshiftError, ValueError):
    """A library function was given an argument it cannot use (a scale of 0, a rate above 1)."""


class TargetError(DocshiftError):
    """The target database refused an operation docshift needs."""


class LeaseLost(TargetError):
    """A work unit's checkpoint moved under this loader: someone else is loading it."""


class RunAborted(DocshiftError):
    """The run was stopped on purpose, e.g. because ``--max-errors`` was exceeded."""


PREVIEW_CHARS = 80
"""How much of an offending value an error message shows."""


def preview(value: object) -> str:
    """A short, printable rendering of ``value`` for error messages."""
    try:
        text = repr(value)
    except RecursionError:  # nested deeper than repr can go
        return f"a {type(value).__name__} nested too deeply to show"
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 1] + "…"
    return text
