"""soundalike duplicates: groups of copies, how each pair differs, which file to keep."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, clock, console, open_library, print_json

CSV_COLUMNS = ("group", "keep", "track_id", "path", "codec", "bitrate_kbps", "duration", "pair_with", "score",
               "relation", "offset", "level_db", "tempo_pct", "semitones", "reason")


def _csv_rows(groups):
    """One row per copy: its group, whether it is the keeper, and its relation to the keeper (or to the copy
    it was paired with when not paired with the keeper directly)."""
    for n, g in enumerate(groups, 1):
        for c in g.copies:
            pair = next((p for p in g.pairs if {p.a, p.b} == {g.keep, c.track_id}), None)
            if pair is None:
                pair = next((p for p in g.pairs if c.track_id in (p.a, p.b)), None)
            other = None if pair is None or c.track_id == g.keep else (pair.a if pair.b == c.track_id else pair.b)
            rel = pair.relation if other is not None else None
            yield {
                "group": n, "keep": int(c.track_id == g.keep), "track_id": c.track_id, "path": c.path,
                "codec": c.codec or "", "bitrate_kbps": "" if c.bitrate_kbps is None else c.bitrate_kbps,
                "duration": c.duration, "pair_with": "" if other is None else other,
                "score": "" if other is None else pair.score, "relation": "" if rel is None else rel.text,
                "offset": "" if rel is None else rel.offset,
                "level_db": "" if rel is None or rel.level_db is None else rel.level_db,
                "tempo_pct": "" if rel is None or rel.tempo_pct is None else rel.tempo_pct,
                "semitones": "" if rel is None or rel.semitones is None else rel.semitones,
                "reason": g.reason if c.track_id == g.keep else "",
            }


@app.command("duplicates")
def duplicates_cmd(
    min_score: Annotated[Optional[float], typer.Option(
        "--min-score", help="Keep pairs whose aligned windows score at least this (0-1). "
        "[default: 0.92 for pairs whose landmarks agree, 0.955 without landmarks]", show_default=False)] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV (one row per file) instead of tables.")] = False,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find copies of one recording: re-encodes, trims, level changes, fades, speed changes.

    Copies are grouped (a copy of a copy is in the same group). Each pair says
    how the two differ, and each group which file to keep: lossless over lossy,
    then the higher bitrate, then the longer, with the reason.

    [b]Examples[/b]

      soundalike duplicates -L ~/music-lib

      soundalike duplicates --json > duplicates.json

      soundalike duplicates --csv --min-score 0.95 > duplicates.csv
    """
    from ..errors import UserError
    from ..organise.duplicates_report import duplicate_report

    if json_out and csv_out:
        raise UserError("--json and --csv: choose one")
    lib = open_library(library)
    try:
        groups = duplicate_report(lib, min_score=min_score)
    finally:
        lib.close()
    if json_out:
        print_json({"groups": [g.to_dict() for g in groups], "count": len(groups),
                    "copies": sum(len(g.copies) - 1 for g in groups)})
        return
    if csv_out:
        w = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(_csv_rows(groups))
        return
    if not groups:
        console.print("no duplicates found")
        return
    for n, g in enumerate(groups, 1):
        names = {c.track_id: c.title or Path(c.path).name for c in g.copies}
        table = Table(title=f"group {n}: keep #{g.keep} {names[g.keep]} ({g.reason})", title_justify="left",
                      show_lines=False)
        for col in ("#", "file", "codec", "kbit/s", "length"):
            table.add_column(col, justify="right" if col in ("#", "kbit/s", "length") else "left", overflow="fold")
        for c in g.copies:
            mark = "keep" if c.track_id == g.keep else ""
            table.add_row(f"{c.track_id}", f"{names[c.track_id]} [dim]{mark}[/]", c.codec or "?",
                          "" if c.bitrate_kbps is None else f"{c.bitrate_kbps:.0f}", clock(c.duration))
        console.print(table)
        for p in g.pairs:
            console.print(f"  #{p.a} ~ #{p.b}  score {p.score:.3f}  at {clock(p.relation.offset)}: {p.relation.text}",
                          highlight=False)
    copies = sum(len(g.copies) - 1 for g in groups)
    noun = "copy" if copies == 1 else "copies"
    console.print(f"{len(groups)} groups, {copies} {noun} that could go", highlight=False)
