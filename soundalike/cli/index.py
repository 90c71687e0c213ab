"""soundalike index"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import settings
from . import app
from .common import JsonOpt, LibraryOpt, StoreOpt, StoreUrlOpt, console, err_console, open_library, print_json


@app.command("index")
def index_cmd(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        help="Audio files or folders to index; none: the folders the library already holds.", show_default=False)] = None,
    library: LibraryOpt = None,
    hop: Annotated[Optional[float], typer.Option(help="Seconds between windows (new library only).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Embedding model (new library only).")] = None,
    workers: Annotated[int, typer.Option(help="Decode/feature threads.")] = settings.get("workers"),
    keep_missing: Annotated[bool, typer.Option("--keep-missing", help="Keep catalogue entries of files that are gone.")] = False,
    coverage: Annotated[Optional[int], typer.Option(help="Fast mode: embed at most N evenly spaced windows per track.")] = None,
    follow_links: Annotated[Optional[bool], typer.Option(
        "--follow-links/--no-follow-links",
        help="Index symbolic links that lead out of the given folders (default: SOUNDALIKE_FOLLOW_LINKS, else no: "
             "they are listed as skipped).", show_default=False)] = None,
    store: StoreOpt = None,
    store_url: StoreUrlOpt = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", metavar="ADDRESS",
        help="Decode and embed on a Ray cluster (host:port of its head, ray://host:10001, or auto: the one this "
             "machine is part of, else a local one); the catalogue is written here. Needs soundalike[ray].",
        show_default=False)] = None,
    ray_actors: Annotated[Optional[int], typer.Option(
        help="Model actors on the Ray cluster (default: one per CPU, or one per GPU).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Index audio files and folders into a library (incremental, resumable).

    Unchanged files are skipped, changed ones re-embedded and deleted ones removed.
    Files that fail to decode are recorded with their reason and listed at the end.

    [b]Examples[/b]

      soundalike index ~/Music -L ~/music-library

      soundalike index sfx/ more.wav --workers 2 --json

      soundalike index ~/Music --coverage 8     # fast first pass; a later run without it fills in

      soundalike index -L ~/music-library       # no paths: refresh its folders (re-embeds after a model upgrade)

      soundalike index ~/Music -L lib --store qdrant --store-url http://localhost:6333

      SOUNDALIKE_STORE_URL=postgresql://me:secret@db/music soundalike index ~/Music -L lib --store pgvector

      soundalike index /shared/music -L lib --ray head-node:6379   # decode and embed on a Ray cluster
    """
    if paths:
        lib = open_library(library, create=True, model=model, hop=hop, store=store, store_url=store_url)
        events = lib.index(paths, workers=workers, prune=not keep_missing, coverage=coverage, follow_links=follow_links,
                           ray=ray, ray_actors=ray_actors)
    else:
        lib = open_library(library, model=model, hop=hop, store=store, store_url=store_url)
        events = lib.reindex(workers=workers, prune=not keep_missing, coverage=coverage, follow_links=follow_links,
                             ray=ray, ray_actors=ray_actors)
    try:
        scan = next(events)  # bad paths fail here, before any progress bar is drawn
        if not json_out and not err_console.is_terminal:
            err_console.print(f"{scan.files_total} audio files, {scan.files_todo} to index")
        if not json_out:
            for path, reason in scan.skipped:
                err_console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False, soft_wrap=True)
        final = None
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=8),
            MofNCompleteColumn(),
            TextColumn("files, [red]{task.fields[errors]} errors[/], {task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),  # from the files done so far and their pace
            console=err_console,
            disable=json_out,
        ) as bar:
            task = bar.add_task("indexing", total=scan.files_total, completed=scan.files_done, errors=0, speed="")
            for p in events:
                if p.event == "done":
                    final = p
                    break
                bar.update(task, completed=p.files_done, errors=p.errors,
                           speed=f"{p.audio_seconds / 60:.1f} min, {p.realtime:.0f}x realtime")
                if p.event == "error":
                    bar.console.print(f"[red]error[/] {p.path}: {p.message}", highlight=False)
                elif p.event == "postings":
                    bar.console.print(f"{p.message} …", highlight=False)
    finally:
        events.close()  # interrupted (Ctrl-C) or failed: the indexer stops its workers and saves the index now
    summary = {
        "library": str(lib.path),
        "files": final.files_total,
        "indexed_or_updated": final.files_todo,
        "errors": [{"path": path, "reason": reason} for path, reason in final.error_list],
        "skipped": [{"path": path, "reason": reason} for path, reason in final.skipped],
        "audio_seconds": round(final.audio_seconds, 2),
        "seconds": round(final.elapsed, 2),
        "realtime": round(final.realtime, 1),
        "stage_seconds": {k: round(v, 2) for k, v in final.stage_seconds.items()},
        "coverage": coverage,
        "tracks": lib.catalog.track_count(),
    }
    lib.close()
    if json_out:
        print_json(summary)
        return
    console.print(
        f"[green]done[/]: {summary['tracks']} tracks in {summary['library']}; "
        f"{summary['indexed_or_updated']} of {summary['files']} files processed, "
        f"{summary['audio_seconds'] / 60:.1f} min of audio at {summary['realtime']:.0f}x realtime"
    )
    if final.error_list:
        console.print(f"[red]{len(final.error_list)} file(s) could not be indexed:[/]")
        for path, reason in final.error_list:
            console.print(f"  {path}: {reason}", markup=False, highlight=False)
    if final.skipped:
        reasons = {reason for _, reason in final.skipped}
        console.print(f"[yellow]{len(final.skipped)} file(s) skipped[/]"
                      + (f": {next(iter(reasons))}" if len(reasons) == 1 else ""), highlight=False)
        for path, reason in final.skipped[:20]:
            console.print(f"  {path}" + ("" if len(reasons) == 1 else f": {reason}"), markup=False, highlight=False)
        if len(final.skipped) > 20:
            console.print(f"  … and {len(final.skipped) - 20} more (--json lists all)")
