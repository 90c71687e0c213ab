"""Settings declared as data, with help text. Each can be set by ``SOUNDALIKE_<NAME>``.

The CLI's options take their defaults from here, and a test checks that every
setting is documented in the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str
    type: type | None = None  # what the environment value is cast to; default: the default's type

    @property
    def env(self) -> str:
        return "SOUNDALIKE_" + self.name.upper()


def _default_library() -> str:
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("soundalike")) / "library")


SETTINGS = {
    s.name: s
    for s in [
        Setting("library", None, "library folder (catalogue + index); default: the user data dir's soundalike/library"),
        Setting("model", "musicnn", "embedding model of a new library"),
        Setting("hop", 3.0, "seconds between catalogue windows (a new library records it)"),
        Setting("query_hop", None, "seconds between query windows; default: 2/3 of the library's hop (2 s for 3 s), which puts query windows at three phases of the catalogue grid, one always within hop/6 of a catalogue window", float),
        Setting("silence_db", -55.0, "windows quieter than this RMS level (dBFS) are not informative and never vote"),
        Setting("top", 10, "how many tracks a search returns"),
        Setting("k", 50, "catalogue segments fetched per query window before fusion"),
        Setting("rerank", 10, "search by audio: align the audio of this many leading candidates, and of the tracks the query's landmarks point to, with the query's (a fingerprint around the estimated offset) and move up the ones it is a copy of; 0 turns it off"),
        Setting("scan_hours", 100.0, "search by audio: when landmarks find no copy, sweep every track's scan print (a coarse fingerprint, prints.py) at every offset for the query, which finds the source under noise as loud as the music; in libraries up to this many hours of audio (about 5 ms per hour a query); 0 turns it off"),
        Setting("weights", "votes=0.2,similarity=0.8,track=0", "fusion weights of votes, similarity, track-vector cosine and offset (similarity of the windows that agree on one offset; 0 by default)"),
        Setting("landmarks", True, "store landmark hashes of every track while indexing: search by audio then also finds the source of a noisy, filtered or short excerpt that the embedding misses (false skips them)"),
        Setting("workers", 2, "decode/feature threads while indexing"),
        Setting("store", "embedded", "vector index: embedded (HNSW + exact planner) or exact (brute force)"),
        Setting("cache", None, "where converted model weights are cached; default: the user cache dir"),
        Setting("descriptors", True, "measure loudness, true peak, tempo and key while indexing (needs the descriptors extra; false skips them)"),
        Setting("api_key", None, "when set, every /api route of `soundalike serve` requires this key (X-API-Key header); the web app asks for it once", str),
        Setting("max_upload_mb", 100.0, "largest upload `soundalike serve` accepts (MB); bigger requests get 413"),
        Setting("cors_origins", None, "comma-separated origins allowed to call the API from other sites (CORS is off when unset)", str),
        Setting("serve_threads", 4, "threads that run searches, decoding and catalogue reads in `soundalike serve`"),
    ]
}


def get(name: str):
    """The value of a setting: the environment if set, else the default, cast to the default's type."""
    s = SETTINGS[name]
    raw = os.environ.get(s.env)
    if raw is None or raw == "":
        return _default_library() if name == "library" and s.default is None else s.default
    cast = s.type or type(s.default)
    if cast is bool:
        return raw.lower() in ("1", "true", "yes", "on")
    if cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            raise UserError(f"{s.env}: expected a {cast.__name__}, got {raw!r}") from None
    return raw
