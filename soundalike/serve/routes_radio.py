"""Radio and sonic paths in the REST API (``/api/radio``, ``/api/path``): JSON by default, or the playlist
file (``format=m3u8|xspf|csv``) with its content type and a file name to save it under."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..errors import QueryError, UserError
from ..library import MAX_ID
from ..organise.playlist import MEDIA_TYPES, render
from ..organise.radio import MAX_SEEDS, MAX_STEPS, MAX_TRACKS

router = APIRouter()

FormatQ = Annotated[Optional[Literal["json", "m3u8", "xspf", "csv"]],
                    Query(description="json (default), or a playlist file: m3u8, xspf or csv.")]
WhereQ = Annotated[Optional[str], Query(description="Only add tracks that pass this filter, as for /api/search.")]


class _NotFound(QueryError):
    status = 404


def _known(lib, *ids: int) -> None:
    """404 for an unknown track id (naming the id, not the library's folder)."""
    for i in ids:
        if lib.catalog.track(i) is None:
            raise _NotFound(f"no track {i} in this library")


def _answer(playlist, fmt: str | None, stem: str):
    if fmt in (None, "json"):
        data = playlist.to_dict()
        for e in data["entries"]:
            e["audio"] = f"/api/tracks/{e['track_id']}/audio"
        return data
    return Response(render(playlist, fmt), media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})


@router.get("/radio", summary="A playlist from seed tracks: varied, no copies, never two of one album in a row")
async def radio(
    request: Request,
    seed: Annotated[list[int], Query(min_length=1, max_length=MAX_SEEDS, description="Seed track ids (repeat: seed=1&seed=2).")],
    n: Annotated[int, Query(ge=2, le=MAX_TRACKS, description="Tracks in the playlist, seeds included.")] = 30,
    where: WhereQ = None,
    random_seed: Annotated[int, Query(ge=0, le=MAX_ID, description="The same number gives the same playlist.")] = 0,
    format: FormatQ = None,  # noqa: A002 - the query parameter's name
):
    """The seeds first, then tracks drawn among those that sound most like a seed and the last track while
    unlike the tracks already listed. Each entry has its cosine to its neighbours; ``smoothness`` is their
    mean. ``format=m3u8|xspf|csv`` answers with the playlist file instead of JSON."""
    for s in seed:
        if not 1 <= s <= MAX_ID:
            raise UserError(f"seed: track ids are from 1 to {MAX_ID}, got {s}")

    def work(lib):
        _known(lib, *seed)
        return _answer(lib.radio(seed, n=n, where=where or None, seed=random_seed), format, "radio")

    return await request.app.state.engine.run(work)


@router.get("/path", summary="A smooth walk from track A to track B (a sonic adventure)")
async def sonic_path(
    request: Request,
    a: Annotated[int, Query(ge=1, le=MAX_ID, description="The first track's id.")],
    b: Annotated[int, Query(ge=1, le=MAX_ID, description="The last track's id.")],
    steps: Annotated[int, Query(ge=1, le=MAX_STEPS, description="Tracks between A and B.")] = 10,
    where: WhereQ = None,
    format: FormatQ = None,  # noqa: A002
):
    """``steps`` tracks between A and B, each the nearest to the next point on the line from A to B among
    the tracks further along it (``progress``, 0 at A, 1 at B). ``smoothness``: the mean cosine of
    neighbouring entries; ``direct``: A's and B's."""
    def work(lib):
        _known(lib, a, b)
        return _answer(lib.sonic_path(a, b, steps=steps, where=where or None), format, "path")

    return await request.app.state.engine.run(work)
