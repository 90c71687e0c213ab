"""soundalike roots / relocate / merge: libraries whose music moves, and libraries built on several machines"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, console, err_console, open_library, print_json


@app.command("roots")
def roots_cmd(library: LibraryOpt = None, json_out: JsonOpt = False) -> None:
    """List the library's roots (the folders it indexed) and whether they are there.

    Paths are stored relative to these roots: when music moves, `soundalike
    relocate` re-points its root and every search, label and audio link
    follows, without re-indexing.

    [b]Examples[/b]

      soundalike roots -L ~/music-library

      soundalike roots --json
    """
    from ..catalog_roots import list_roots

    lib = open_library(library)
    rows = list_roots(lib.catalog.db)
    lib.close()
    if json_out:
        print_json({"roots": [r.to_dict() for r in rows]})
        return
    table = Table()
    for col in ("#", "root", "tracks", "files", "there"):
        table.add_column(col, justify="right" if col in ("#", "tracks", "files") else "left")
    for r in rows:
        table.add_row(str(r.id), r.path, str(r.tracks), str(r.files), "yes" if r.exists else "[red]missing[/]")
    console.print(table)
    if any(not r.exists for r in rows):
        err_console.print("a missing root: if its music moved, run `soundalike relocate OLD NEW`", highlight=False)


@app.command("relocate")
def relocate_cmd(
    old: Annotated[str, typer.Argument(help="Where the music was (a root, or a folder in one).", show_default=False)],
    new: Annotated[Path, typer.Argument(help="Where it is now.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Record NEW even if it does not exist (yet).")] = False,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The music under OLD is now at NEW: re-point its roots, paths and labels.

    Nothing is decoded or embedded again: searches, audio playback in
    `serve`, labels, duplicates and radio keep working at the new place. A
    library folder moved or copied together with its music (both inside one
    folder) finds it again by itself. Copy music with its times kept (mv, cp
    -a, rsync -a): a file whose time changed is checked again by the next
    `soundalike index`, by its hash.

    [b]Examples[/b]

      soundalike relocate /home/me/Music /mnt/nas/Music -L ~/music-library

      soundalike relocate /media/old-disk/samples /media/new-disk/samples --json
    """
    lib = open_library(library)
    try:
        moved = lib.relocate(old, new, must_exist=not force)
    finally:
        lib.close()
    if json_out:
        print_json(moved.to_dict())
        return
    for a, b in moved.roots:
        console.print(f"[green]root[/] {a} -> {b}", highlight=False)
    console.print(f"[green]relocated[/] {moved.files} files and {moved.labels} labels", highlight=False)


@app.command("merge")
def merge_cmd(
    other: Annotated[Path, typer.Argument(help="The library folder to merge in (its catalog.sqlite).",
                                          show_default=False)],
    root: Annotated[Optional[list[str]], typer.Option(
        "--root", help="OLD=NEW: the other library's root OLD is at NEW on this machine (repeatable).",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be merged; write nothing.")] = False,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Merge another library (built on another machine, say) into this one.

    Tracks, segments with their vectors and tags, landmarks, descriptors and
    labels are copied with new ids, and the vector index and landmark
    postings take the new tracks in: nothing is decoded or embedded again. A
    track this library already has (same root and relative path, or same
    content) is not added twice, so merging the same library again adds
    nothing. The two libraries must use the same model, model version,
    window, hop and tag names.

    [b]Examples[/b]

      soundalike merge /mnt/laptop/music-library -L ~/music-library --dry-run

      soundalike merge ./studio-lib -L ~/music-library --root /home/studio/Music=/mnt/studio/Music

      soundalike merge ./studio-lib --json
    """
    from ..catalog_merge import parse_root_map

    roots = parse_root_map(root)
    lib = open_library(library, create=not dry_run)  # a new library may be merged into
    report = None
    try:
        events = lib.merge(other, roots=roots, dry_run=dry_run)
        first = next(events)  # the checks are done and the plan made before any bar is drawn
        if first.event == "plan" and not json_out:
            err_console.print(first.message, highlight=False)
        report = first.report
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err_console, disable=json_out or not first.total) as bar:
            task = bar.add_task("merging", total=first.total or None)
            for event in events:
                if event.event == "postings":
                    bar.update(task, description="landmark postings")
                bar.update(task, completed=event.done, total=event.total or None)
                report = event.report
    finally:
        lib.close()
    if json_out:
        print_json(report.to_dict())
        return
    verb = "would add" if report.dry_run else "added"
    console.print(
        f"[green]{verb}[/] {report.tracks_added} tracks ({report.segments_added} segments), "
        f"{report.labels_added} labels; {report.present} already here, {report.copies} copies of tracks here"
        + (f"; {report.failed_there} files that failed to index there left out" if report.failed_there else ""),
        highlight=False)
    for r in report.roots_added:
        console.print(f"new root: {r}" + ("" if Path(r).is_dir() else " [yellow](not on this machine: "
                      "`soundalike relocate` it once its music is here)[/]"), highlight=False)
    if report.labels_kept:
        console.print(f"{report.labels_kept} labels set differently there: this library's values kept")
    if report.conflicts:
        err_console.print(f"[yellow]{len(report.conflicts)} conflicts[/] (this library's file kept):")
        for path, reason in report.conflicts[:20]:
            err_console.print(f"  {path}: {reason}", highlight=False)
        if len(report.conflicts) > 20:
            err_console.print(f"  … and {len(report.conflicts) - 20} more (--json lists all)")
