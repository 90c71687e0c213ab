"""soundalike: find audio that sounds like other audio, offline.

    >>> import soundalike
    >>> lib = soundalike.open("my-library")
    >>> for event in lib.index(["~/Music"]): pass
    >>> result = lib.search("reference.mp3", start=30, end=45)
    >>> result.hits[0].path, result.hits[0].score, result.hits[0].offset
"""

from .errors import (
    CatalogError,
    DecodeError,
    ModelError,
    QueryError,
    SoundalikeError,
    StoreError,
    UserError,
)
from .fusion import Weights
from .ingest import Progress
from .library import Library, open
from .types import Hit, MatchedPair, QueryInfo, SearchResult

__version__ = "0.1.0"

__all__ = [
    "open",
    "Library",
    "Progress",
    "Weights",
    "Hit",
    "MatchedPair",
    "QueryInfo",
    "SearchResult",
    "SoundalikeError",
    "UserError",
    "QueryError",
    "DecodeError",
    "ModelError",
    "CatalogError",
    "StoreError",
    "__version__",
]
