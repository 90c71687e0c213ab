"""``GET /api/duplicates``: the duplicate report (soundalike.organise.duplicates_report) as JSON."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request

router = APIRouter()


@router.get("/duplicates", summary="Groups of copies of one recording, how each pair differs, which file to keep")
async def duplicates(
    request: Request,
    min_score: Annotated[Optional[float], Query(gt=0, le=1, description="Keep pairs whose aligned windows score at "
                                                "least this (default: the library's calibrated thresholds).")] = None,
) -> dict:
    from ..organise.duplicates_report import duplicate_report

    def work(lib):
        groups = duplicate_report(lib, min_score=min_score)
        return {"groups": [g.to_dict() for g in groups], "count": len(groups),
                "copies": sum(len(g.copies) - 1 for g in groups)}

    return await request.app.state.engine.run(work)
