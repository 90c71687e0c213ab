"""soundalike info / rebuild-index / export"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, StoreOpt, StoreUrlOpt, clock, console, err_console, open_library, print_json


def describe_row(row) -> str:
    """One line of a track's measured descriptors, e.g. '-14.2 LUFS, peak -1.0 dBTP, 121 BPM (0.84), A minor (0.71)'."""
    parts = []
    if row.loudness is not None:
        parts.append(f"{row.loudness:.1f} LUFS")
    if row.true_peak is not None:
        parts.append(f"peak {row.true_peak:.1f} dBTP")
    if row.bpm is not None:
        parts.append(f"{row.bpm:.1f} BPM ({row.bpm_confidence:.2f})")
    if row.key is not None:
        parts.append(f"{row.key} ({row.key_confidence:.2f})")
    return ", ".join(parts)


def show_tags_over_time(track_tags, *, tags: int = 4) -> None:
    """A compact table: one row per time span, the probability of the track's top tags in it."""
    names = list(track_tags.series)[:tags]
    if not names or len(track_tags.spans) < 2:
        return
    table = Table(title=f"tags over time ({track_tags.span_seconds:g} s spans)", title_justify="left")
    table.add_column("time", no_wrap=True)
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("top in span", overflow="fold")
    for k, span in enumerate(track_tags.spans):
        vals = [track_tags.series[n][k] for n in names]
        table.add_row(f"{clock(span.start)}–{clock(span.end)}", *("-" if v is None else f"{v:.2f}" for v in vals),
                      ", ".join(span.top) if span.informative else "[dim]silence[/]")
    console.print(table)


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
        stats["store_health"] = health = lib.store_health()
        errors = [{"path": e.path, "reason": e.error} for e in lib.errors()]
        if json_out:
            print_json({**stats, "error_files": errors})
            return
        table = Table(show_header=False)
        for k, v in stats.items():
            if k == "landmark_postings":
                v = (f"{v['postings']:,} in {v['generations']} generation{'s' * (v['generations'] != 1)} on disk, "
                     f"{v['bytes'] / 2**20:.1f} MB" if v["generations"] else "read from the catalogue (none on disk)")
            if k == "model_tracks":  # tracks per model: music and sound effects (soundalike/kinds.py)
                v = ", ".join(f"{m} {n:,}" for m, n in v.items()) or "none"
            if k != "store_health":
                table.add_row(k, str(v))
        if health["reachable"]:
            extra = "".join(f", {k} {health[k]}" for k in ("pgvector", "iterative_scan") if k in health)
            table.add_row("store health", f"reachable: {health['segments']} segment and {health['tracks']} track "
                                          f"vectors{extra}")
        else:
            table.add_row("store health", f"[red]unreachable[/]: {health['error']}")
        console.print(table)
        for e in errors:
            console.print(f"[red]error[/] {e['path']}: {e['reason']}", highlight=False)
        return
    row = lib.track(track)
    track_tags = lib.track_tags(row.id, top=tags)  # tags both models share are merged (see soundalike.tags)
    top = list(track_tags.top.items())
    segs = lib.catalog.segments_of(row.id)
    data = {**asdict(row), "labels": lib.catalog.labels_of(row.path), "top_tags": dict(top),
            "segments": [{"start": s[1], "end": s[2], "informative": s[3], "level_db": round(s[4], 1)} for s in segs]}
    data["tags_over_time"] = [asdict(span) for span in track_tags.spans]
    if json_out:
        print_json(data)
        return
    console.print(f"[bold]#{row.id}[/] {row.path}", highlight=False)
    console.print(f"{clock(row.duration)}  {row.codec} {row.sample_rate} Hz {row.channels} ch  "
                  f"{row.n_segments} segments ({sum(s[3] for s in segs)} informative)  model {row.model_id} {row.model_version}")
    for key in ("title", "artist", "album", "genre", "year", "tag_bpm", "tag_key", "comment"):
        if getattr(row, key) is not None:
            console.print(f"{key}: {getattr(row, key)}", highlight=False)
    measured = describe_row(row)
    if measured:
        console.print("measured: " + measured, highlight=False)
    if data["labels"]:
        console.print("labels: " + ", ".join(f"{k}={v}" for k, v in data["labels"].items()), highlight=False)
    if top:
        console.print("tags: " + ", ".join(f"{n} {p:.2f}" for n, p in top), highlight=False)
        show_tags_over_time(track_tags)


@app.command("rebuild-index")
def rebuild_cmd(
    library: LibraryOpt = None, store: StoreOpt = None, store_url: StoreUrlOpt = None, json_out: JsonOpt = False
) -> None:
    """Rebuild the vector index from the catalogue (after a crash, or to change store).

    With --store (and --store-url), the library moves to that store: it is filled from the catalogue
    and recorded; the old store is left as it was.

    [b]Examples[/b]

      soundalike rebuild-index -L ~/music-library

      soundalike rebuild-index -L ~/music-library --store qdrant --store-url http://localhost:6333
    """
    lib = open_library(library)
    done = total = 0
    with Progress(console=err_console, disable=json_out) as bar:
        task = bar.add_task("rebuilding", total=None)
        for done, total in lib.rebuild_index(store=store, store_url=store_url):
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
