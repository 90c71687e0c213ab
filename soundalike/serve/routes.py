"""The REST API, mounted at ``/api``. Every route is a thin call into ``Library`` run in the engine's pool."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal, Optional

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from .. import __version__
from ..decode import MAX_SECONDS
from ..errors import QueryError, UserError
from ..library import MAX_ID
from .media import open_catalogue_file, parse_range, peaks, read_range

router = APIRouter()

TAGS_SHOWN = 5  # top tags per result card

# Bounds on every number a client sends, so that out-of-range input is a 422 naming the field rather than an
# OverflowError (SQLite's integers are 64-bit; a start of 1e308 s overflowed a sample index).
TrackId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="A catalogue track id.")]


def _engine(request: Request):
    return request.app.state.engine


# -- tags ------------------------------------------------------------------------


def _tag_names(lib) -> list[str]:
    return json.loads(lib.catalog.get_meta("tag_names") or "[]")


def _display(name: str) -> str:
    return name.split(":", 1)[-1]


def _top_tags(names: list[str], probs: np.ndarray | None, n: int) -> list[dict]:
    """Highest tag probabilities; a word both taggers have is their mean (as ``soundalike.tags`` shows it)."""
    if probs is None or len(probs) != len(names):
        return []
    groups: dict[str, list[float]] = {}
    for name, p in zip(names, probs.tolist()):
        groups.setdefault(_display(name).lower(), []).append(p)
    best = {k: sum(v) / len(v) for k, v in groups.items()}
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:n]
    return [{"name": k, "p": round(v, 3)} for k, v in ranked]


def _track_tag_probs(lib, ids: list[int]) -> dict[int, np.ndarray]:
    out = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = lib.catalog.db.execute(
            f"SELECT id, tags FROM tracks WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        for tid, blob in rows:
            if blob is not None:
                out[tid] = np.frombuffer(blob, np.float16).astype(np.float32)
    return out


def _tags_over_time(lib, track_id: int, *, top: int, shown: int = 8, spans: int = 48) -> tuple[list[dict], dict]:
    """(top tags, their probabilities over time) from ``Library.track_tags``, shaped for drawing."""
    tt = lib.track_tags(track_id, top=top, max_spans=spans)
    top_tags = [{"name": k, "p": v} for k, v in tt.top.items()]
    names = list(tt.series)[:shown]
    values = [
        [tt.series[n][i] for n in names] if span.informative else None for i, span in enumerate(tt.spans)
    ]
    return top_tags, {"tags": names, "starts": [s.start for s in tt.spans], "ends": [s.end for s in tt.spans],
                      "values": values, "span_seconds": tt.span_seconds}


# -- shaping results ---------------------------------------------------------------


def _track_dict(row) -> dict:
    d = asdict(row)
    d["name"] = row.title or Path(row.path).name
    d["filename"] = Path(row.path).name
    return d


def _result_dict(lib, result, *, source: str | None = None) -> dict:
    data = result.to_dict()
    if source is not None:
        data["query"]["source"] = source
    names = _tag_names(lib)
    probs = _track_tag_probs(lib, [h["track_id"] for h in data["hits"]])
    rows = {r.id: r for r in lib.catalog.tracks([h["track_id"] for h in data["hits"]])}
    for h in data["hits"]:
        h["tags"] = _top_tags(names, probs.get(h["track_id"]), TAGS_SHOWN)
        h["name"] = h.get("title") or Path(h["path"]).name
        row = rows.get(h["track_id"])
        h["album"] = getattr(row, "album", None)
    return data


def _check_track(lib, track_id: int):
    row = lib.catalog.track(track_id)
    if row is None:
        raise _NotFound(f"no track {track_id} in this library")
    return row


def _relabel(exc: Exception, name: str) -> None:
    """Raise ``exc`` again naming the uploaded file ``name`` (the decoder only saw a file object)."""
    from ..errors import DecodeError, TooLongError

    if isinstance(exc, DecodeError):
        raise DecodeError(name, exc.reason) from None
    if isinstance(exc, TooLongError):
        raise TooLongError(name, exc.detail) from None


def _link_policy(lib) -> dict:
    """``open_catalogue_file``'s symbolic link options: the library's roots, and the follow_links setting."""
    from .. import settings

    return {"roots": [str(r) for r in lib.roots()], "follow_links": settings.get("follow_links")}


class _NotFound(QueryError):
    status = 404


# -- health and stats --------------------------------------------------------------


@router.get("/health", summary="Liveness: the server answers and the library opens")
async def health(request: Request) -> dict:
    e = _engine(request)
    tracks = await e.run(lambda lib: lib.catalog.track_count())
    return {"status": "ok", "version": __version__, "tracks": tracks, "model_loaded": e.model_loaded,
            "text_model_loaded": e.text_model_loaded, "uptime_s": round(time.time() - e.started, 1)}


@router.get("/stats", summary="Library size, model, index status and what this server offers")
async def stats(request: Request) -> dict:
    e = _engine(request)

    def work(lib):
        s = lib.stats()
        s["index"] = {"segments": lib.store.count("segments"), "tracks": lib.store.count("tracks"),
                      "dirty": s.get("index_dirty", False)}
        return s

    data = await e.run(work)
    data.update(model_loaded=e.model_loaded, threads=e.threads, version=__version__,
                api_key_required=request.app.state.api_key_required, max_upload_bytes=request.app.state.max_upload)
    return data


@router.get("/errors", summary="Files that failed to index, with the reason")
async def errors(request: Request) -> dict:
    rows = await _engine(request).run(lambda lib: lib.errors())
    return {"errors": [{"path": r.path, "error": r.error, "size": r.size} for r in rows]}


# -- search -------------------------------------------------------------------------

TopForm = Annotated[Optional[int], Form(ge=1, le=200, description="How many tracks to return (default 10).")]
_LIKE_HELP = ("Rank by one aspect instead of the overall similarity: timbre, instruments, genre, mood, rhythm or "
              "tonality (empty: the overall similarity).")
LikeForm = Annotated[Optional[str], Form(max_length=40, description=_LIKE_HELP)]


@router.post("/search", summary="Tracks that sound like an uploaded file, or a catalogue track")
async def search(
    request: Request,
    file: Annotated[Optional[UploadFile], File(description="Reference audio (any format FFmpeg reads).")] = None,
    track: Annotated[Optional[int], Form(ge=1, le=MAX_ID, description="A catalogue track id to search with instead of a file.")] = None,
    start: Annotated[Optional[float], Form(ge=0, le=MAX_SECONDS, description="Start of the range to search with (s).")] = None,
    end: Annotated[Optional[float], Form(gt=0, le=MAX_SECONDS, description="End of the range to search with (s).")] = None,
    top: TopForm = None,
    where: Annotated[Optional[str], Form(description="Filter, e.g. \"bpm between 90 and 110 and genre = 'jazz'\".")] = None,
    exclude_album_of: Annotated[Optional[int], Form(ge=1, le=MAX_ID, description="Leave out tracks from this track's album.")] = None,
    weights: Annotated[Optional[str], Form(description="Fusion weights, e.g. 'votes=0.2,similarity=0.8,track=0'.")] = None,
    like: LikeForm = None,
) -> dict:
    """Upload a reference (multipart field ``file``) or name a catalogue ``track``; optionally a ``start``/``end``
    range in seconds. Returns ranked tracks with score, votes, offset, top tags and matched segment pairs
    (query start/end ↔ track start/end, similarity)."""
    has_file = file is not None and (file.filename or file.size)
    if bool(has_file) == (track is not None):
        raise UserError("search: give either an uploaded file or a catalogue track id, not both or neither")
    e = _engine(request)

    def work(lib):
        opts = {"where": where or None, "exclude_album_of": exclude_album_of}
        if exclude_album_of is not None:
            _check_track(lib, exclude_album_of)
        if track is not None:
            row = _check_track(lib, track)
            result = lib.similar(row.id, start=start, end=end, top=top, weights=weights, like=like or None, **opts)
            return _result_dict(lib, result, source=f"#{row.id} {row.title or Path(row.path).name}")
        file.file.seek(0)
        name = Path(file.filename or "upload").name
        try:
            result = lib.search(file.file, start=start, end=end, top=top, weights=weights, like=like or None,
                                max_seconds=request.app.state.max_upload_seconds, **opts)
        except Exception as exc:
            _relabel(exc, name)
            raise
        return _result_dict(lib, result, source=name)

    return await e.run(work)


class TextQuery(BaseModel):
    query: str = Field(min_length=1, max_length=500, description="Words, e.g. 'sad piano ballad'.")
    top: int | None = Field(None, ge=1, le=200)
    where: str | None = Field(None, description="Filter, as for /api/search.")
    exclude_album_of: int | None = Field(None, ge=1, le=MAX_ID, description="Leave out tracks from this track's album.")


@router.post("/search/text", summary="Tracks that match a text query (through tag space)")
async def search_text(request: Request, body: TextQuery) -> dict:
    e = _engine(request)

    def work(lib):
        result = lib.text_search(body.query, top=body.top or 10, where=body.where or None,
                                 exclude_album_of=body.exclude_album_of)
        return _text_result_dict(lib, result)

    return await e.run(work)


def _text_result_dict(lib, result) -> dict:
    data = result.to_dict()
    hits = data["hits"]
    ids = [h["track_id"] for h in hits]
    names = _tag_names(lib)
    probs = _track_tag_probs(lib, ids)
    rows = {r.id: r for r in lib.catalog.tracks(ids)}
    for h in hits:
        row = rows.get(h["track_id"])
        if row is not None:
            for k in ("album", "duration", "bpm", "key"):
                h.setdefault(k, getattr(row, k, None))
            h["name"] = row.title or Path(row.path).name
        h["tags"] = _top_tags(names, probs.get(h["track_id"]), TAGS_SHOWN)
    return data


# -- tracks ---------------------------------------------------------------------------

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@router.get("/tracks", summary="The library's tracks: paged, sortable, filterable")
async def tracks(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    sort: Annotated[str, Query(description="A track field (title, artist, duration, bpm, ...) or a user label.")] = "path",
    order: Literal["asc", "desc"] = "asc",
    where: Annotated[Optional[str], Query(description="Filter, as for /api/search.")] = None,
) -> dict:
    if not _FIELD.match(sort):
        raise UserError(f"sort: {sort!r} is not a field name")

    def work(lib):
        rows = lib.tracks(where=where or None, order_by=f"{sort} {order}, id", limit=limit, offset=offset)
        total = lib.count_tracks(where or None)
        return {"total": total, "offset": offset, "limit": limit, "sort": sort, "order": order,
                "items": [_track_dict(r) for r in rows]}

    return await _engine(request).run(work)


@router.get("/tracks/{track_id}", summary="One track: metadata, descriptors, top tags, tags over time")
async def track_detail(request: Request, track_id: TrackId, tags: Annotated[int, Query(ge=1, le=100)] = 10) -> dict:
    def work(lib):
        row = _check_track(lib, track_id)
        f = lib.catalog.file_by_path(row.path)
        data = _track_dict(row)
        data["file"] = {"size": f.size, "mtime": f.mtime, "sha256": f.sha256} if f else None
        data["top_tags"], data["tags_over_time"] = _tags_over_time(lib, row.id, top=tags)
        data["labels"] = lib.catalog.labels_of(row.path)  # user metadata (labels import)
        return data

    return await _engine(request).run(work)


@router.get("/tracks/{track_id}/similar", summary="The 'similar sounds' shelf: nearest tracks to a catalogue track")
async def similar(
    request: Request,
    track_id: TrackId,
    top: Annotated[int, Query(ge=1, le=200)] = 8,
    where: Annotated[Optional[str], Query(description="Filter, as for /api/search.")] = None,
    exclude_album: Annotated[bool, Query(description="Leave out tracks from the same album.")] = False,
    like: Annotated[Optional[str], Query(max_length=40, description=_LIKE_HELP)] = None,
) -> dict:
    def work(lib):
        row = _check_track(lib, track_id)
        result = lib.similar(row.id, top=top, where=where or None, exclude_album_of=row.id if exclude_album else None,
                             like=like or None)
        return _result_dict(lib, result, source=f"#{row.id} {row.title or Path(row.path).name}")

    return await _engine(request).run(work)


@router.get(
    "/tracks/{track_id}/audio",
    summary="The track's file, streamed with HTTP Range support",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/*": {}}}, 206: {"description": "Partial content (a Range request)"}},
)
async def audio(request: Request, track_id: TrackId):
    def work(lib):
        row = _check_track(lib, track_id)
        f = lib.catalog.file_by_path(row.path)
        if f is None:
            raise _NotFound(f"no file for track {track_id}")
        return open_catalogue_file(f.path, size=f.size, mtime=f.mtime, **_link_policy(lib))

    opened = await _engine(request).run(work)
    size = opened.size
    try:
        rng = parse_range(request.headers.get("range"), size)
    except BaseException:
        opened.file.close()
        raise
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    if rng is None:
        first, last, status = 0, size - 1, 200
    else:
        (first, last), status = rng, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(max(0, last - first + 1))
    return StreamingResponse(read_range(opened.file, first, last), status_code=status, headers=headers,
                             media_type=opened.media_type)


@router.get("/tracks/{track_id}/waveform", summary="Waveform peaks of a track, for drawing")
async def track_waveform(request: Request, track_id: TrackId, points: Annotated[int, Query(ge=16, le=10000)] = 800) -> dict:
    e = _engine(request)

    def work(lib):
        row = _check_track(lib, track_id)
        f = lib.catalog.file_by_path(row.path)
        key = (row.id, f.size if f else None, f.mtime if f else None, points)
        cached = e.waveforms.get(key)
        if cached is None:
            opened = open_catalogue_file(f.path, size=f.size, mtime=f.mtime, **_link_policy(lib)) if f else None
            if opened is None:
                raise _NotFound(f"no file for track {track_id}")
            try:
                with opened.file as fh:
                    cached = peaks(fh, points=points)
            except Exception as exc:
                from ..errors import DecodeError

                if isinstance(exc, DecodeError):
                    raise DecodeError(row.path, exc.reason) from None
                raise
            e.waveforms.put(key, cached)
        return {"track_id": row.id, **cached}

    return await e.run(work)


@router.post("/waveform", summary="Waveform peaks of an uploaded file (the reference), checked by decoding it")
async def upload_waveform(
    request: Request,
    file: Annotated[UploadFile, File(description="Audio to draw.")],
    points: Annotated[int, Form(ge=16, le=10000)] = 1000,
) -> dict:
    name = Path(file.filename or "upload").name

    def work(lib):
        file.file.seek(0)
        try:
            return {"source": name, **peaks(file.file, points=points, max_seconds=request.app.state.max_upload_seconds)}
        except Exception as exc:
            _relabel(exc, name)
            raise

    data = await _engine(request).run(work)
    if data["duration"] == 0:
        raise UserError(f"{name}: no audio in the file")
    return data
