"""soundalike search / similar"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, clock, console, open_library, print_json

TopOpt = Annotated[Optional[int], typer.Option("--top", "-n", help="How many tracks to return. [default: 10]", show_default=False)]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option(help="Fusion weights, e.g. 'votes=0.2,similarity=0.8,track=0'.", show_default=False),
]
MatchesOpt = Annotated[int, typer.Option(help="Matched segment pairs shown per track.")]


def show(result, *, matches: int) -> None:
    q = result.query
    console.print(
        f"query [bold]{q.source}[/] {clock(q.start)}–{clock(q.end)}: {q.informative_windows} of {q.windows} "
        f"windows used, hop {q.hop:g} s; {sum(result.timings_ms.values()):.0f} ms",
        highlight=False,
    )
    if not result.hits:
        console.print("no matches")
        return
    table = Table(show_lines=matches > 0, expand=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("votes", justify="right")
    table.add_column("at", justify="right")
    table.add_column("track", overflow="fold", min_width=20)
    table.add_column("query ↔ track   sim", no_wrap=True)
    for rank, h in enumerate(result.hits, 1):
        name = h.title or Path(h.path).name
        if h.artist:
            name = f"{h.artist} – {name}"
        best = sorted(sorted(h.matches, key=lambda m: -m.similarity)[:matches], key=lambda m: m.query_start)
        pairs = "\n".join(
            f"{clock(m.query_start)} ↔ {clock(m.track_start)}  {m.similarity:.2f}"
            for m in best
        )
        table.add_row(str(rank), f"{h.score * 100:.1f}%", f"{h.votes}/{q.informative_windows}",
                      clock(h.offset), f"{name} [dim]#{h.track_id}[/]", pairs)
    console.print(table)


@app.command("search")
def search_cmd(
    reference: Annotated[Path, typer.Argument(help="Reference audio file.", show_default=False)],
    start: Annotated[Optional[float], typer.Option(help="Start of the range to search with, in seconds.")] = None,
    end: Annotated[Optional[float], typer.Option(help="End of the range to search with, in seconds.")] = None,
    top: TopOpt = None,
    weights: WeightsOpt = None,
    query_hop: Annotated[Optional[float], typer.Option(help="Seconds between query windows. [default: 2/3 of the library hop]")] = None,
    matches: MatchesOpt = 3,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find tracks that sound like a reference file, or a time range of it.

    Each result shows its score, how many query windows voted for it, where in the
    track the query fits (offset), and which part of the query matched which part
    of the track.

    [b]Examples[/b]

      soundalike search clip.mp3

      soundalike search song.wav --start 60 --end 75 --top 5 --json
    """
    if not reference.exists():
        from ..errors import UserError

        raise UserError(f"no such file: {reference}")
    lib = open_library(library)
    result = lib.search(reference, start=start, end=end, top=top, weights=weights, query_hop=query_hop)
    lib.close()
    print_json(result.to_dict()) if json_out else show(result, matches=matches)


@app.command("similar")
def similar_cmd(
    track: Annotated[str, typer.Argument(help="Catalogue track id or path.", show_default=False)],
    top: TopOpt = None,
    weights: WeightsOpt = None,
    matches: MatchesOpt = 3,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find tracks that sound like a track already in the library (nothing is decoded).

    [b]Examples[/b]

      soundalike similar 42

      soundalike similar ~/Music/album/01.flac --top 20 --json
    """
    lib = open_library(library)
    result = lib.similar(track, top=top, weights=weights)
    lib.close()
    print_json(result.to_dict()) if json_out else show(result, matches=matches)
