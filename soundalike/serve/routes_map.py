"""The library map and clusters in the REST API: ``GET /api/map`` (every track as a point, new tracks placed
first), ``GET``/``POST /api/clusters`` (the stored clustering; a new one), ``POST /api/map/labels`` (a label
on a selection) and ``GET /api/map/playlist`` (a selection as a playlist: JSON, or an M3U8, XSPF or CSV file)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..errors import QueryError
from ..library import MAX_ID
from ..organise.clusters import DEFAULT_FIELD, MAX_K
from ..organise.radio import MAX_TRACKS
from .routes_radio import FormatQ, _answer

router = APIRouter()


class _NotFound(QueryError):
    status = 404


@router.get("/map", summary="Every track as a point in 2-D, near the tracks it sounds like")
async def library_map(
    request: Request,
    method: Annotated[Optional[Literal["tsne", "umap", "pca"]], Query(
        description="The layout when there is no map yet (default tsne); an existing map keeps its own.")] = None,
) -> dict:
    """Tracks indexed since the map was laid out are placed among their nearest neighbours first (no point
    moves). Each item: id, x and y (in [-1, 1]), placed (true: placed since the layout), title, artist,
    album, genre, bpm, loudness, duration, path, cluster (the `cluster` field's value) and its labels (every
    cluster field among them).
    ``label_fields``: the label names present; ``clusters``: what `soundalike clusters` stored, per field."""
    from ..organise.clusters import stored_clusters
    from ..organise.map import DEFAULT_METHOD, map_info, map_points

    def work(lib):
        items = map_points(lib.catalog, method=method or DEFAULT_METHOD)
        names = lib.catalog.label_names()
        clusters = {}
        for name in names:
            s = stored_clusters(lib.catalog, name)
            if s is not None:
                clusters[name] = {"k": s["k"], "clusters": [{k: c[k] for k in ("number", "name", "label", "size")}
                                                            for c in s["clusters"]]}
        return {**map_info(lib.catalog).to_dict(), "label_fields": names, "clusters": clusters, "items": items}

    return await request.app.state.engine.run(work)


@router.get("/clusters", summary="The clusters `soundalike clusters` stored in a label field")
async def get_clusters(
    request: Request,
    field: Annotated[str, Query(min_length=1, max_length=64, description="The label field.")] = DEFAULT_FIELD,
) -> dict:
    from ..organise.clusters import stored_clusters

    def work(lib):
        s = stored_clusters(lib.catalog, field)
        if s is None:
            raise _NotFound(f"no clusters stored in the field {field!r}; "
                            "POST /api/clusters or run `soundalike clusters`")
        return s

    return await request.app.state.engine.run(work)


class ClustersRequest(BaseModel):
    k: int | None = Field(None, ge=1, le=MAX_K, description="Number of clusters (default: chosen from the data).")
    field: str = Field(DEFAULT_FIELD, min_length=1, max_length=64, description="Label field to store them in.")
    replace: bool = Field(False, description="Overwrite a field holding values clusters did not write.")
    dry_run: bool = Field(False, description="Compute only; store nothing.")
    seed: int = Field(0, ge=0, le=2**31 - 1)


@router.post("/clusters", summary="Group the library by sound, name the groups, store them as a label field")
async def make_clusters(request: Request, body: ClustersRequest) -> dict:
    """As `soundalike clusters`; answers the clustering without its per-track assignments."""
    def work(lib):
        result = lib.clusters(k=body.k, field=None if body.dry_run else body.field, replace=body.replace,
                              seed=body.seed)
        return result.to_dict(assignments=False)

    return await request.app.state.engine.run(work)


class SelectionLabel(BaseModel):
    track_ids: list[int] = Field(min_length=1, max_length=100_000, description="The selected tracks.")
    name: str = Field(min_length=1, max_length=64, description="Label field, e.g. mood.")
    value: str | float | None = Field(description="The value; null removes the field from these tracks.")


@router.post("/map/labels", summary="Set (or remove) a label on every selected track")
async def label_selection(request: Request, body: SelectionLabel) -> dict:
    from ..metadata import check_label_name

    check_label_name(body.name)
    value = body.value.strip() if isinstance(body.value, str) else body.value
    if value == "":
        value = None

    def work(lib):
        ids = sorted({int(i) for i in body.track_ids})
        paths = {}
        for i in range(0, len(ids), 500):
            part = ids[i: i + 500]
            paths.update(lib.catalog.db.execute(
                f"SELECT t.id, f.path FROM tracks t JOIN files f ON f.id = t.file_id "
                f"WHERE t.id IN ({','.join('?' * len(part))})", part).fetchall())
        unknown = [i for i in ids if i not in paths]
        if unknown:
            raise _NotFound(f"no track {unknown[0]} in this library")
        lib.catalog.set_labels((paths[i], {body.name: value}) for i in ids)
        return {"name": body.name, "value": value, "tracks": len(ids)}

    return await request.app.state.engine.run(work)


@router.get("/map/playlist", summary="The selected tracks as a playlist, in a smooth order")
async def selection_playlist(
    request: Request,
    id: Annotated[list[int], Query(  # noqa: A002 - the query parameter's name
        min_length=1, max_length=MAX_TRACKS, description="Track ids (id=1&id=2).")],
    format: FormatQ = None,  # noqa: A002
) -> object:
    """From the track least like the selection's mean, each next the unlisted one most like the last.
    ``format=m3u8|xspf|csv`` answers with the playlist file instead of JSON."""
    from ..organise.map import selection_playlist as make

    for i in id:
        if not 1 <= i <= MAX_ID:
            raise QueryError(f"id: track ids are from 1 to {MAX_ID}, got {i}")

    def work(lib):
        try:
            pl = make(lib.catalog, id)
        except QueryError as exc:
            raise _NotFound(str(exc)) from None
        return _answer(pl, format, "selection")

    return await request.app.state.engine.run(work)
