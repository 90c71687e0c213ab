"""Classification in the REST API (soundalike.organise.classify): run it, review the least certain predictions,
accept or correct one (it becomes a user label), evaluate it."""

from __future__ import annotations

from typing import Annotated, Optional, Union

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ..errors import QueryError
from ..library import MAX_ID
from ..organise import classify as C

router = APIRouter()

FieldQ = Annotated[str, Query(min_length=1, max_length=200, description="The label field (genre, mood, ...).")]


class _NotFound(QueryError):
    status = 404


class RunBody(BaseModel):
    field: str = Field(min_length=1, max_length=200, description="The label field to fill.")
    k: Optional[int] = Field(None, ge=1, le=C.MAX_K, description="Labelled tracks that vote (default: sqrt of their number, 5-25).")
    classes: Optional[dict[str, str]] = Field(None, max_length=50, description="Classes defined by words instead of "
                                              "labelled tracks: {value: words}.")
    dry_run: bool = Field(False, description="Predict, but store nothing.")
    limit: int = Field(50, ge=0, le=10_000, description="Predictions to return, least certain first.")


class AcceptBody(BaseModel):
    field: str = Field(min_length=1, max_length=200)
    track_id: int = Field(ge=1, le=MAX_ID)
    value: Optional[Union[str, int, float]] = Field(None, description="A correction; none: accept the prediction.")


def _with_audio(preds) -> list[dict]:
    return [{**p.to_dict(), "audio": f"/api/tracks/{p.track_id}/audio"} for p in preds]


@router.get("/classify/fields", summary="The label fields, with how many user and predicted values each holds")
async def fields(request: Request) -> dict:
    def work(lib):
        rows = lib.catalog.db.execute("SELECT name, sum(source = 'user'), sum(source = 'predicted') FROM labels "
                                      "GROUP BY name ORDER BY name").fetchall()
        return {"fields": [{"field": n, "user": u, "predicted": p} for n, u, p in rows]}

    return await request.app.state.engine.run(work)


@router.post("/classify/run", summary="Predict a label field for the tracks that lack it (kNN, or classes by words)")
async def run(request: Request, body: RunBody) -> dict:
    """Stores the predictions (marked predicted, with confidence and margin) unless ``dry_run``; answers with the
    summary and the ``limit`` least certain predictions."""
    def work(lib):
        if body.classes is not None:
            classes = C.parse_classes(f"{k}={v}" for k, v in body.classes.items())
            r = lib.classify(body.field, classes=classes, dry_run=body.dry_run)
        else:
            r = lib.classify(body.field, k=body.k, dry_run=body.dry_run)
        d = r.to_dict()
        d["count"] = len(r.predictions)
        d["predictions"] = _with_audio(r.predictions[: body.limit])
        return d

    return await request.app.state.engine.run(work)


@router.get("/classify/review", summary="The stored predictions of a field, least certain first")
async def review(
    request: Request, field: FieldQ,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict:
    """Each prediction with its confidence (the winner's share of the votes), margin (its lead over the
    runner-up) and audio; ``values``: the values the field holds (user and predicted counts), to correct with."""
    def work(lib):
        total, preds = C.review(lib.catalog, field, limit=limit, offset=offset)
        return {"field": C._field_name(lib.catalog, field), "count": total, "offset": offset,
                "predictions": _with_audio(preds), "values": C.field_values(lib.catalog, field)}

    return await request.app.state.engine.run(work)


@router.post("/classify/accept", summary="Make a prediction (or a correction of it) a user label")
async def accept(request: Request, body: AcceptBody) -> dict:
    def work(lib):
        if lib.catalog.track(body.track_id) is None:
            raise _NotFound(f"no track {body.track_id} in this library")
        return C.accept(lib.catalog, body.field, body.track_id, body.value)

    return await request.app.state.engine.run(work)


@router.get("/classify/evaluate", summary="Cross-validated accuracy and confusion table of a field's kNN")
async def evaluate(
    request: Request, field: FieldQ,
    k: Annotated[Optional[int], Query(ge=1, le=C.MAX_K)] = None,
    folds: Annotated[int, Query(ge=2, le=50)] = 5,
) -> dict:
    def work(lib):
        return C.evaluate(lib.catalog, field, options=C.ClassifyOptions(k=k, folds=folds)).to_dict()

    return await request.app.state.engine.run(work)
