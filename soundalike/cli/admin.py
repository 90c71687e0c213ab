"""soundalike info / rebuild-index / export"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.progress import Progress
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, clock, console, err_console, open_library, print_json


@app.command("info")
def info_cmd(
    track: Annotated[Optional[str], typer.Argument(help="A track id or path; omit for the library.", show_default=False)] = None,
    library: LibraryOpt = None,
    tags: Annotated[int, typer.Option(help="Top tags shown for a track.")] = 10,
    json_out: JsonOpt = False,
) -> None:
    """Show the library (size, model, errors) or one track (metadata, segments, top tags).

    [b]Examples[/b]

      soundalike info

      soundalike info 42 --json
    """
    lib = open_library(library)
    if track is None:
        stats = lib.stats()
        errors = [{"path": e.path, "reason": e.error} for e in lib.errors()]
        if json_out:
            print_json({**stats, "error_files": errors})
            return
        table = Table(show_header=False)
        for k, v in stats.items():
            table.add_row(k, str(v))
        console.print(table)
        for e in errors:
            console.print(f"[red]error[/] {e['path']}: {e['reason']}", highlight=False)
        return
    row = lib.track(track)
    names = json.loads(lib.catalog.get_meta("tag_names") or "[]")
    blob = lib.catalog.db.execute("SELECT tags FROM tracks WHERE id = ?", (row.id,)).fetchone()[0]
    probs = np.frombuffer(blob, np.float16).astype(float) if blob else np.zeros(0)
    top = [(names[i], round(float(probs[i]), 3)) for i in np.argsort(-probs)[:tags]] if len(probs) == len(names) else []
    segs = lib.catalog.segments_of(row.id)
    data = {**asdict(row), "top_tags": dict(top),
            "segments": [{"start": s[1], "end": s[2], "informative": s[3], "level_db": round(s[4], 1)} for s in segs]}
    if json_out:
        print_json(data)
        return
    console.print(f"[bold]#{row.id}[/] {row.path}", highlight=False)
    console.print(f"{clock(row.duration)}  {row.codec} {row.sample_rate} Hz {row.channels} ch  "
                  f"{row.n_segments} segments ({sum(s[3] for s in segs)} informative)  model {row.model_id} {row.model_version}")
    for key in ("title", "artist", "album"):
        if getattr(row, key):
            console.print(f"{key}: {getattr(row, key)}", highlight=False)
    if top:
        console.print("tags: " + ", ".join(f"{n} {p:.2f}" for n, p in top), highlight=False)


@app.command("rebuild-index")
def rebuild_cmd(library: LibraryOpt = None, json_out: JsonOpt = False) -> None:
    """Rebuild the vector index from the catalogue (after a crash, or to change store).

    [b]Example[/b]

      soundalike rebuild-index -L ~/music-library
    """
    lib = open_library(library)
    done = total = 0
    with Progress(console=err_console, disable=json_out) as bar:
        task = bar.add_task("rebuilding", total=None)
        for done, total in lib.rebuild_index():
            bar.update(task, completed=done, total=total)
    stats = lib.stats()
    lib.close()
    if json_out:
        print_json({"vectors": done, "tracks": stats["tracks"], "segments": stats["informative_segments"]})
    else:
        console.print(f"[green]rebuilt[/]: {done} vectors ({stats['tracks']} tracks)")


@app.command("export")
def export_cmd(
    target: Annotated[Path, typer.Argument(help="Folder (audiovector) or .parquet file.", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="audiovector (JSON per track) or parquet.")] = "audiovector",
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export track vectors and metadata for other tools.

    [b]Examples[/b]

      soundalike export vectors/ --format audiovector

      soundalike export library.parquet --format parquet
    """
    lib = open_library(library)
    files = [str(p) for p in lib.export(target, format=format)]
    lib.close()
    if json_out:
        print_json({"format": format, "files": len(files), "target": str(target)})
    else:
        console.print(f"[green]exported[/] {len(files)} file(s) to {target}")
