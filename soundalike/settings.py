"""Settings declared as data, with help text. Each can be set by ``SOUNDALIKE_<NAME>``.

The CLI's options take their defaults from here, and a test checks that every
setting is documented in the README.
"""

from __future__ import annotations

import math
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
        Setting("effect_model", "aisfx", "the model that embeds sound effects, in a library that tells them from music (setting kinds; docs/models.md)"),
        Setting("kinds", "", "which files are sound effects, embedded by effect_model instead of the music model: GLOB=KIND entries separated by ';' (*/sfx/*=effect; *.wav=effect), first match wins, and 'auto' for the measured rule (shorter than effect_seconds: an effect); a label 'kind' on a file overrides both; empty: every file is music", str),
        Setting("effect_seconds", 19.4, "kinds=auto: a file shorter than this many seconds is a sound effect (calibrated on Debian recordings: bench/kinds.py); also the kind of a query when the music model is not musicnn"),
        Setting("hop", 3.0, "seconds between catalogue windows (a new library records it)"),
        Setting("query_hop", None, "seconds between query windows; default: 2/3 of the library's hop (2 s for 3 s), which puts query windows at three phases of the catalogue grid, one always within hop/6 of a catalogue window", float),
        Setting("query_windows", 120, "search by audio or by a catalogue track: the most windows a reference embeds at the default query hop; a longer one is embedded at a wider hop (up to 4 windows apart), so a whole song costs about what a 4-minute excerpt does and an hour-long reference stays bounded; 0: no limit. An explicit query_hop is kept as given"),
        Setting("silence_db", -55.0, "windows quieter than this RMS level (dBFS) are not informative and never vote"),
        Setting("top", 10, "how many tracks a search returns"),
        Setting("k", 50, "catalogue segments fetched per query window before fusion"),
        Setting("rerank", 10, "search by audio: align the audio of this many leading candidates, and of the tracks the query's landmarks point to, with the query's (a fingerprint around the estimated offset) and move up the ones it is a copy of; 0 turns it off"),
        Setting("scan_hours", 100.0, "search by audio: when landmarks find no copy, sweep every track's scan print (a coarse fingerprint, identify/prints.py) at every offset for the query, which finds the source under noise as loud as the music; in libraries up to this many hours of audio (about 5 ms per hour a query); 0 turns it off"),
        Setting("weights", "votes=0.2,similarity=0.8,track=0", "fusion weights of votes, similarity, track-vector cosine and offset (similarity of the windows that agree on one offset; 0 by default)"),
        Setting("landmarks", True, "store landmark hashes of every track while indexing: search by audio then also finds the source of a noisy, filtered or short excerpt that the embedding misses (false skips them)"),
        Setting("workers", 2, "decode/feature threads while indexing"),
        Setting("follow_links", False, "index symbolic links that lead out of the folders being indexed, and let `soundalike serve` stream such files (by default they are skipped and listed, and not served)"),
        Setting("store", "embedded", "vector index of a new library: embedded (HNSW + exact planner), exact (brute force), qdrant (a Qdrant server, or qdrant-client's local mode) or pgvector (PostgreSQL with pgvector)"),
        Setting("store_url", None, "the server of a qdrant or pgvector store (http://host:6333, a folder for qdrant's local mode, postgresql://user:password@host/db); set it here rather than in --store-url to keep a password out of `ps`; the catalogue records the URL without its password", str),
        Setting("cache", None, "where converted model weights are cached; default: the user cache dir"),
        Setting("descriptors", True, "measure loudness, true peak, tempo and key while indexing (needs the descriptors extra; false skips them)"),
        Setting("api_key", None, "when set, every /api route of `soundalike serve` requires this key (X-API-Key header); the web app asks for it once. An environment variable is not visible in `ps` as --api-key is", str),
        Setting("api_key_file", None, "a file holding the API key (its first line; keep it mode 600): the recommended way to give `soundalike serve` its key", str),
        Setting("read_timeout", 30.0, "`soundalike serve`: a request body that pauses longer than this many seconds, or takes longer than 20 times it in all, is answered 408 and its connection closed"),
        Setting("max_upload_mb", 100.0, "largest upload `soundalike serve` accepts (MB); bigger requests get 413"),
        Setting("max_upload_seconds", 7200.0, "longest audio an upload to `soundalike serve` may decode to (seconds; a few MB of compressed silence can hold hours); longer uploads get 413"),
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
            value = cast(raw)
        except ValueError:
            raise UserError(f"{s.env}: expected a {cast.__name__}, got {raw!r}") from None
        if not math.isfinite(value):
            raise UserError(f"{s.env}: expected a finite number, got {raw!r}")
        return value
    return raw
