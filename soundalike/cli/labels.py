"""soundalike labels import / export, and soundalike tracks (filtered listings)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, clock, console, err_console, open_library, print_json

labels_app = typer.Typer(
    name="labels",
    help="User metadata (genre, mood, BPM, licence, any column): import from CSV, export to CSV.",
    no_args_is_help=True,
)
app.add_typer(labels_app, name="labels")


@labels_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV file with a header row.", show_default=False)],
    key: Annotated[Optional[str], typer.Option(help="Key column: path or track_id. [default: the one present]", show_default=False)] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Merge user metadata from a CSV keyed by path or track id; report rows that match no track.

    Every column but the key becomes a field you can show and filter on
    (--where "mood = 'calm'"). Empty cells leave a field as it was; "-" removes it.
    Relative paths are read from the CSV's folder, then the working directory.

    [b]Examples[/b]

      soundalike labels import moods.csv

      soundalike labels import licences.csv --key track_id --json
    """
    lib = open_library(library)
    report = lib.import_labels(file, key=key)
    lib.close()
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"[green]imported[/] {report.matched} of {report.rows} rows by {report.key} "
        f"({report.values} values; columns: {', '.join(report.columns) or 'none'})",
        highlight=False,
    )
    if report.unmatched:
        n = len(report.unmatched)
        err_console.print(f"[yellow]{n} {'row matches' if n == 1 else 'rows match'} no track:[/]", highlight=False)
        for line, ref in report.unmatched[:50]:
            err_console.print(f"  line {line}: {ref or '(empty key)'}", highlight=False)
        if len(report.unmatched) > 50:
            err_console.print(f"  … and {len(report.unmatched) - 50} more (--json lists all)")


@labels_app.command("export")
def export_cmd(
    file: Annotated[Optional[Path], typer.Argument(help="CSV file to write; omit for stdout.", show_default=False)] = None,
    library: LibraryOpt = None,
) -> None:
    """Write the user metadata out as CSV: path, track_id, then one column per field.

    [b]Examples[/b]

      soundalike labels export labels.csv

      soundalike labels export > labels.csv
    """
    lib = open_library(library)
    n = lib.export_labels(file)
    lib.close()
    if file is not None:
        console.print(f"[green]exported[/] {n} rows to {file}")


@app.command("tracks")
def tracks_cmd(
    where: Annotated[Optional[str], typer.Option("--where", "-w", help="Filter (see README).", show_default=False)] = None,
    order_by: Annotated[Optional[str], typer.Option(help="e.g. 'bpm desc, title'. [default: path]", show_default=False)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="At most this many tracks.", show_default=False)] = None,
    offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List catalogue tracks with their metadata and descriptors, filtered and sorted.

    [b]Examples[/b]

      soundalike tracks --where "bpm between 90 and 110 and key like '% minor'" --order-by "loudness desc"

      soundalike tracks --where "mood = 'calm' and duration < 180" --json
    """
    from dataclasses import asdict

    lib = open_library(library)
    rows = lib.tracks(where=where, order_by=order_by, limit=limit, offset=offset)
    total = lib.count_tracks(where)
    labels = {r.id: lib.catalog.labels_of(r.path) for r in rows}
    lib.close()
    if json_out:
        print_json({"count": total, "tracks": [{**asdict(r), "labels": labels[r.id]} for r in rows]})
        return
    table = Table()
    for col in ("#", "track", "length", "bpm", "key", "LUFS", "labels"):
        table.add_column(col, justify="right" if col in ("#", "length", "bpm", "LUFS") else "left")
    for r in rows:
        name = r.title or Path(r.path).name
        if r.artist:
            name = f"{r.artist} – {name}"
        table.add_row(
            str(r.id), name, clock(r.duration), "" if r.bpm is None else f"{r.bpm:.0f}", r.key or "",
            "" if r.loudness is None else f"{r.loudness:.1f}",
            ", ".join(f"{k}={v}" for k, v in labels[r.id].items()),
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} tracks" + (f" matching {where}" if where else ""), highlight=False)
