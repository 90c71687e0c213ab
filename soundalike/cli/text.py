"""soundalike text"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, console, err_console, open_library, print_json
from .search import ExcludeAlbumOpt, WhereOpt, copies_note


def show(result) -> None:
    read = []
    for m in result.terms:
        sign = "-" if m.negated else ""
        weight = f":{m.weight:g}" if m.weight != 1 else ""
        tags = ", ".join(m.tags) if m.used_for_tags else f"no tag (closest {m.best_tag!r} {m.best_similarity:.2f})"
        read.append(f"{sign}{m.term}{weight} → {tags}")
    console.print("query: " + "; ".join(read), highlight=False)
    if result.message:
        style = "bold yellow" if result.weak else "yellow"
        err_console.print(f"[{style}]{'weak match: ' if result.weak else 'note: '}[/]{result.message}", highlight=False)
    if not result.hits:
        console.print("no tracks")
        return
    table = Table(expand=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("track", overflow="fold", min_width=20)
    table.add_column("why", overflow="fold")
    for rank, h in enumerate(result.hits, 1):
        name = h.title or Path(h.path).name
        if h.artist:
            name = f"{h.artist} – {name}"
        table.add_row(str(rank), f"{h.score:+.2f}", f"{name} [dim]#{h.track_id}[/]{copies_note(h)}", h.why())
    console.print(table)
    if result.weak:
        err_console.print("[bold yellow]these are weak guesses: the tag vocabulary cannot express this query[/]")


@app.command("text")
def text_cmd(
    query: Annotated[str, typer.Argument(help="Words to search for; -word excludes, word:2 weighs.", show_default=False)],
    top: Annotated[int, typer.Option("--top", "-n", help="How many tracks to return.")] = 10,
    where: WhereOpt = None,
    exclude_album_of: ExcludeAlbumOpt = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Find tracks by words: the query is mapped onto the model's 100 tags (piano, strings,
    drums, synth, ambient, sad, no vocals, ...) and blended with keyword matches on titles,
    artists, albums, genres, comments, file names and user labels.

    Each result shows the tags and fields that ranked it.
    A query the tags cannot express, such as "dog barking", is reported as a weak match.

    [b]Examples[/b]

      soundalike text "piano"

      soundalike text "piano -vocals" --top 20

      soundalike text "dark:2 ambient" --json

      soundalike text "chill electronic beats" --where "duration < 180"

      soundalike text -- "-vocals piano"   [dim](a query starting with - goes after --)[/dim]
    """
    lib = open_library(library)
    result = lib.text_search(query, top=top, where=where, exclude_album_of=exclude_album_of)
    lib.close()
    print_json(result.to_dict()) if json_out else show(result)
