"""soundalike radio and soundalike path: playlists from seed tracks, and a smooth walk from one track to another"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, clock, console, err_console, open_library

WhereOpt = Annotated[Optional[str], typer.Option("--where", "-w", help="Only add tracks that pass this filter (see README).", show_default=False)]
FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", help="m3u8, xspf, csv or json. [default: from -o's extension; a table without -o]", show_default=False)]
OutOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the playlist to this file.", show_default=False)]


def _emit(playlist, *, fmt: str | None, output: Path | None, json_out: bool) -> None:
    from ..errors import UserError
    from ..organise.playlist import format_for, render

    if json_out:
        if fmt and fmt.lower() != "json":
            raise UserError("--json: prints JSON; give either --json or --format, not both")
        fmt = "json"
    if fmt is None and output is None:
        _table(playlist)
        return
    kind = format_for(fmt, output)
    text = render(playlist, kind)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.expanduser().write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    if playlist.note:
        err_console.print(f"[yellow]note:[/] {playlist.note}", highlight=False)
    err_console.print(f"[green]wrote[/] {len(playlist.entries)} tracks to {output} ({kind})", highlight=False)


def _table(pl) -> None:
    table = Table(title=pl.title, title_justify="left")
    for col in ("#", "track", "album", "length", "sim. prev"):
        table.add_column(col, justify="right" if col in ("#", "length", "sim. prev") else "left")
    if pl.kind == "path":
        table.add_column("progress", justify="right")
    for e in pl.entries:
        name = f"{e.artist} – {e.name}" if e.artist else e.name
        if e.role in ("seed", "start", "end"):
            name += f" [dim]({e.role})[/]"
        row = [str(e.position), f"{name} [dim]#{e.track_id}[/]", e.album or Path(e.path).parent.name,
               clock(e.duration), "" if e.similarity_prev is None else f"{e.similarity_prev:.3f}"]
        if pl.kind == "path":
            row.append(f"{e.progress:.0%}")
        table.add_row(*row)
    console.print(table)
    line = f"{len(pl.entries)} tracks · smoothness {pl.smoothness:.3f} (mean similarity of neighbours), " \
           f"roughest {pl.roughest:.3f}" if pl.smoothness is not None else f"{len(pl.entries)} tracks"
    if pl.direct is not None:
        line += f" · A to B directly {pl.direct:.3f}"
    if pl.copies_skipped:
        line += f" · {pl.copies_skipped} copies left out"
    console.print(line, highlight=False)
    if pl.note:
        err_console.print(f"[yellow]note:[/] {pl.note}", highlight=False)


@app.command("radio")
def radio_cmd(
    seeds: Annotated[list[str], typer.Argument(help="Seed tracks: catalogue ids or paths.", show_default=False)],
    n: Annotated[int, typer.Option("--n", "-n", help="Tracks in the playlist, seeds included.")] = 30,
    where: WhereOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same playlist.")] = 0,
    fmt: FormatOpt = None,
    output: OutOpt = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A playlist that sounds like one or more seed tracks: varied, no copies, never two of one album in a row.

    The seeds come first; each next track is drawn among the few that sound most like a seed and the last
    track while unlike the tracks already listed. Copies of a listed track (re-encodes, trims) are left
    out. With several seeds, the list turns to each in turn.

    [b]Examples[/b]

      soundalike radio 42

      soundalike radio 42 ~/Music/album/07.flac --n 50 -o mix.m3u8

      soundalike radio 42 --where "bpm between 90 and 120" --seed 7 --format xspf > mix.xspf

      soundalike radio 42 --json
    """
    lib = open_library(library)
    try:
        pl = lib.radio(seeds, n=n, where=where, seed=seed)
    finally:
        lib.close()
    _emit(pl, fmt=fmt, output=output, json_out=json_out)


@app.command("path")
def path_cmd(
    a: Annotated[str, typer.Argument(help="The first track: catalogue id or path.", show_default=False)],
    b: Annotated[str, typer.Argument(help="The last track: catalogue id or path.", show_default=False)],
    steps: Annotated[int, typer.Option("--steps", "-s", help="Tracks between A and B.")] = 10,
    where: WhereOpt = None,
    fmt: FormatOpt = None,
    output: OutOpt = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A smooth walk from track A to track B: each step the track nearest the next point on the way, always
    moving towards B (a sonic adventure).

    Shows each track's similarity to the one before, how far along the way it is, and the smoothness: the
    mean similarity of neighbouring tracks (compare it with A to B directly).

    [b]Examples[/b]

      soundalike path 12 345

      soundalike path 12 345 --steps 20 -o journey.xspf

      soundalike path ~/Music/calm.flac ~/Music/loud.flac --where "duration < 300" --format csv

      soundalike path 12 345 --json
    """
    lib = open_library(library)
    try:
        pl = lib.sonic_path(a, b, steps=steps, where=where)
    finally:
        lib.close()
    _emit(pl, fmt=fmt, output=output, json_out=json_out)
