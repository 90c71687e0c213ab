"""soundalike search / similar"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, clock, console, err_console, open_library, print_json

TopOpt = Annotated[Optional[int], typer.Option("--top", "-n", help="How many tracks to return. [default: 10]", show_default=False)]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option(help="Fusion weights, e.g. 'votes=0.2,similarity=0.8,track=0'.", show_default=False),
]
MatchesOpt = Annotated[int, typer.Option(help="Matched segment pairs shown per track.")]
LikeOpt = Annotated[
    Optional[str],
    typer.Option("--like", help="Rank by one aspect of the sound instead of the overall similarity: timbre, "
                 "instruments, genre, mood, rhythm or tonality.", show_default=False),
]
StartOpt = Annotated[Optional[float], typer.Option(help="Start of the range to search with, in seconds.")]
EndOpt = Annotated[Optional[float], typer.Option(help="End of the range to search with, in seconds.")]


def copy_note(h) -> str:
    """A note for a hit the query is a copy of (``Hit.copy``), with how sure the search is and the pitch or
    tempo change the landmarks found: 'copy, +1 st, 97% sure'."""
    from ..identify.landmarks import Warp

    if not h.copy:
        return ""
    warp = Warp(h.semitones or 0.0, h.tempo or 1.0)
    parts = ["copy", *([str(warp)] if warp != Warp() else []),
             *([f"{h.copy_confidence:.0%} sure"] if h.copy_confidence is not None else [])]
    return f" [green]{', '.join(parts)}[/]"


def warn(result) -> None:
    """The result's warnings on stderr (also with --json, whose stdout stays pure JSON)."""
    for w in getattr(result, "warnings", None) or []:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)


def copies_note(h) -> str:
    """'+1 copy: other.flac #12' for a hit that stands for several files of one recording (``Hit.copies``)."""
    if not h.copies:
        return ""
    from rich.markup import escape

    names = ", ".join(f"{escape(c.title or Path(c.path).name)} #{c.track_id}" for c in h.copies[:3])
    more = f", … {len(h.copies) - 3} more" if len(h.copies) > 3 else ""
    return f"\n[dim]+{len(h.copies)} {'copy' if len(h.copies) == 1 else 'copies'}: {names}{more}[/]"


def show(result, *, matches: int, offsets: bool = True) -> None:
    """The result as a table. ``offsets``: show where in each track the query fits (not for ``similar``, whose
    query is another track: an offset between two tracks means nothing to a reader; the pairs show the parts)."""
    q = result.query
    console.print(
        f"query [bold]{q.source}[/] {clock(q.start)}–{clock(q.end)}: {q.informative_windows} of {q.windows} "
        f"windows used, hop {q.hop:g} s; {sum(result.timings_ms.values()):.0f} ms",
        highlight=False,
    )
    if getattr(result, "like", None):
        console.print(f"ranked by [bold]{result.like}[/]: a score of 90% is closer to the query than nine tracks "
                      "in ten on that aspect", highlight=False)
    hits = [h for h in result.hits if h.evidence]
    hidden = len(result.hits) - len(hits)
    if not hits:
        console.print("no matches" + (f" ({hidden} track(s) in the list had nothing that matched)" if hidden else ""))
        return
    table = Table(show_lines=matches > 0, expand=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("votes", justify="right")
    if offsets:
        table.add_column("at", justify="right")
    table.add_column("track", overflow="fold", min_width=20)
    table.add_column("query ↔ track   sim", no_wrap=True)
    for rank, h in enumerate(hits, 1):
        name = h.title or Path(h.path).name
        if h.artist:
            name = f"{h.artist} – {name}"
        best = sorted(sorted(h.matches, key=lambda m: -m.similarity)[:matches], key=lambda m: m.query_start)
        pairs = "\n".join(
            f"{clock(m.query_start)} ↔ {clock(m.track_start)}  {m.similarity:.2f}"
            for m in best
        )
        votes = f"{h.votes}/{q.informative_windows}" if h.seed is None else f"{h.votes} (ref {h.seed + 1})"
        cells = [str(rank), f"{h.score * 100:.1f}%", votes, *([clock(h.offset)] if offsets else []),
                 f"{name} [dim]#{h.track_id}[/]{copy_note(h)}{copies_note(h)}", pairs]
        table.add_row(*cells)
    console.print(table)
    if hidden:
        console.print(f"[dim]{hidden} more track(s) filled the list with nothing that matched: not shown "
                      "(--json lists them)[/]")


WhereOpt = Annotated[
    Optional[str],
    typer.Option("--where", "-w", help="Filter, e.g. \"bpm between 90 and 110 and genre = 'jazz'\" (see README).",
                 show_default=False),
]
ExcludeAlbumOpt = Annotated[
    Optional[str],
    typer.Option("--exclude-album-of", help="Leave out the album of this track (id or path).", show_default=False),
]


@app.command("search")
def search_cmd(
    references: Annotated[list[Path], typer.Argument(help="Reference audio file(s); several are combined.", show_default=False)],
    negatives: Annotated[Optional[list[Path]], typer.Option("--not", help="Audio the results should not sound like (repeatable).", show_default=False)] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    top: TopOpt = None,
    weights: WeightsOpt = None,
    query_hop: Annotated[Optional[float], typer.Option(help="Seconds between query windows. [default: 2/3 of the library hop]")] = None,
    rerank: Annotated[Optional[int], typer.Option(help="Align this many leading candidates' audio with the query's (0: off). [default: setting rerank, 10]")] = None,
    where: WhereOpt = None,
    exclude_album_of: ExcludeAlbumOpt = None,
    like: LikeOpt = None,
    matches: MatchesOpt = 3,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find tracks that sound like a reference file, or a time range of it.

    Each result shows its score, how many query windows voted for it, where in the
    track the query fits (offset), and which part of the query matched which part
    of the track. With several references, the score is the mean of the scores
    against each; every --not reference subtracts the score against it.

    --like ranks by one aspect (the same groove, the same instruments, ...): the score is then the share of the library each track is closer than, on that aspect's features.

    [b]Examples[/b]

      soundalike search clip.mp3

      soundalike search song.wav --start 60 --end 75 --top 5 --json

      soundalike search clip.mp3 --where "bpm between 90 and 110 and duration < 180"

      soundalike search a.mp3 b.wav --not c.mp3 --exclude-album-of a.mp3

      soundalike search loop.wav --like rhythm --top 20
    """
    from ..aspects import aspect
    from ..errors import UserError

    if like is not None:
        aspect(like)  # an unknown aspect fails before the library opens
    for ref in [*references, *(negatives or [])]:
        if not ref.exists():
            raise UserError(f"no such file: {ref}")
    lib = open_library(library)
    seeds = references if len(references) > 1 else references[0]
    result = lib.search(seeds, negatives=negatives, start=start, end=end, top=top, weights=weights,
                        query_hop=query_hop, where=where, exclude_album_of=exclude_album_of, rerank=rerank,
                        like=like)
    lib.close()
    warn(result)
    print_json(result.to_dict()) if json_out else show(result, matches=matches)


@app.command("similar")
def similar_cmd(
    track: Annotated[str, typer.Argument(help="Catalogue track id or path.", show_default=False)],
    start: StartOpt = None,
    end: EndOpt = None,
    top: TopOpt = None,
    weights: WeightsOpt = None,
    where: WhereOpt = None,
    exclude_album_of: ExcludeAlbumOpt = None,
    like: LikeOpt = None,
    matches: MatchesOpt = 3,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find tracks that sound like a track already in the library, or a part of it (nothing is decoded).

    --like ranks by one aspect: timbre, instruments, genre, mood, rhythm (tempo and beat) or tonality (key).

    [b]Examples[/b]

      soundalike similar 42

      soundalike similar 42 --start 60 --end 90

      soundalike similar ~/Music/album/01.flac --top 20 --json

      soundalike similar 42 --exclude-album-of 42 --where "key = 'A minor'"

      soundalike similar 42 --like instruments

      soundalike similar 42 --like rhythm --json
    """
    from ..aspects import aspect

    if like is not None:
        aspect(like)  # an unknown aspect fails before the library opens
    lib = open_library(library)
    result = lib.similar(track, start=start, end=end, top=top, weights=weights, where=where,
                         exclude_album_of=exclude_album_of, like=like)
    lib.close()
    warn(result)
    print_json(result.to_dict()) if json_out else show(result, matches=matches, offsets=False)
