"""One exception tree for the whole package.

    SoundalikeError
    ├── UserError            bad arguments, paths or options (exit code 2 in the CLI)
    │   ├── QueryError       a query that cannot be answered (range past the end, unknown track)
    │   │   └── TooLongError audio that decodes to more than a limit allows (an upload to the server)
    │   └── FilterError      a --where filter that does not parse; names the offending token and position
    ├── DecodeError          a file that cannot be decoded: DecodeError(path, reason)
    ├── ModelError           model weights missing, corrupt or incompatible
    ├── CatalogError         the SQLite catalogue is unusable or belongs to another model
    └── StoreError           the vector index is unusable

Every interface (CLI, REST) turns these into a one-line message in one place.
"""

from __future__ import annotations

__all__ = [
    "SoundalikeError",
    "UserError",
    "QueryError",
    "TooLongError",
    "FilterError",
    "DecodeError",
    "ModelError",
    "CatalogError",
    "StoreError",
]


class SoundalikeError(Exception):
    """Root of every error soundalike raises on purpose."""


class UserError(SoundalikeError):
    """The caller asked for something impossible: a missing path, a bad option."""


class QueryError(UserError):
    """A query that cannot be answered as asked."""


class TooLongError(QueryError):
    """Audio longer than a limit (``max_seconds``) allows; the server answers 413.
    ``str()`` reads ``{label}: {detail}``."""

    status = 413

    def __init__(self, label: object, detail: str) -> None:
        self.label = str(label)
        self.detail = detail
        super().__init__(f"{self.label}: {detail}")


class FilterError(UserError):
    """A filter expression that does not parse or names an unknown field. ``position`` is 1-based."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        self.position = position
        super().__init__(message)


class DecodeError(SoundalikeError):
    """A file that cannot be decoded. ``str()`` reads ``error reading {path}: {reason}``."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"error reading {self.path}: {reason}")


class ModelError(SoundalikeError):
    """Model weights are missing, corrupt or incompatible."""


class CatalogError(SoundalikeError):
    """The catalogue database cannot be used as asked."""


class StoreError(SoundalikeError):
    """The vector index cannot be used as asked."""
