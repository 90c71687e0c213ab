"""soundalike clusters (the library grouped by sound, each group named, stored as a label field) and
soundalike map (every track as a point in 2-D, for the web app's map page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, console, err_console, open_library, print_json


@app.command("clusters")
def clusters_cmd(
    k: Annotated[Optional[int], typer.Option(
        "--k", "-k", help="Number of clusters. [default: chosen from the data, the best silhouette from 2 to --k-max]",
        show_default=False)] = None,
    k_max: Annotated[int, typer.Option("--k-max", help="The most clusters tried when --k is not given.")] = 40,
    field: Annotated[str, typer.Option("--field", "-f",
                                       help="Label field to store each track's cluster in.")] = "cluster",
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a field that holds values clusters did not "
                                          "write (your own labels).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the clusters; store nothing.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of k-means: the same seed, the same clusters.")] = 0,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Group the library's tracks by how they sound, name each group, and store it as a label field.

    Each cluster is named by its most distinctive tags (the model's tag probabilities, against the whole
    library) and by the genre, artist, album, folder or label value most of its tracks share. Each
    track's cluster ("3: piano, ambient · Chopin") goes into the label field (default: cluster), so that
    filters, the library page and the map can use it. Running it again replaces the field.

    [b]Examples[/b]

      soundalike clusters

      soundalike clusters --k 12 --field mood_group

      soundalike clusters --dry-run --json

      soundalike tracks --where "cluster like '3:%'"
    """
    lib = open_library(library)
    try:
        result = lib.clusters(k=k, k_max=k_max, field=None if dry_run else field, replace=replace, seed=seed)
    finally:
        lib.close()
    if json_out:
        print_json(result.to_dict())
        return
    table = Table(title=f"{result.k} clusters of {result.tracks} tracks", title_justify="left")
    for col in ("#", "name", "tracks", "distinctive tags", "metadata", "cohesion"):
        table.add_column(col, justify="right" if col in ("#", "tracks", "cohesion") else "left")
    for c in result.clusters:
        tags = ", ".join(f"{t['tag']} [dim]+{t['lift']:.2f}[/]" for t in c.tags)
        meta = ", ".join(f"{m['field']}={m['value']} [dim]{m['share']:.0%}[/]" for m in c.metadata[:3])
        table.add_row(str(c.number), c.name, str(c.size), tags, meta, f"{c.cohesion:.2f}")
    console.print(table)
    if result.chosen_by == "silhouette":
        ks = sorted(result.tried)
        line = f"k = {result.k}: the best silhouette ({result.silhouette:.3f}) of k from {ks[0]} to {ks[-1]}" \
            if ks else f"k = {result.k}"
    else:
        line = f"k = {result.k} (given)"
    console.print(f"{line} · {result.elapsed_ms / 1000:.1f} s", highlight=False)
    if dry_run:
        err_console.print("[yellow]dry run:[/] nothing stored", highlight=False)
    else:
        console.print(f"[green]stored[/] in the label field {field!r} of {result.stored} tracks; "
                      f"filter with --where \"{field} like '1:%'\"", highlight=False)


@app.command("map")
def map_cmd(
    refit: Annotated[bool, typer.Option("--refit", help="Lay the whole map out again (tracks move).")] = False,
    method: Annotated[Optional[str], typer.Option("--method", help="tsne, umap or pca. [default: the map's, "
                                                  "else tsne]", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of a new layout.")] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the points as CSV to this file.",
                                                   show_default=False)] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The library map: every track as a point in 2-D, near the tracks it sounds like (the web app's Map page).

    The first run lays out the whole library (t-SNE by default); after that, tracks indexed since are
    placed among their nearest neighbours without moving any other point (the web app does this too).
    --refit lays everything out again.

    [b]Examples[/b]

      soundalike map

      soundalike map --refit --method umap

      soundalike map -o map.csv

      soundalike map --json
    """
    from ..organise.map import map_points

    lib = open_library(library)
    try:
        info = lib.map(refit=refit, method=method, seed=seed)
        points = map_points(lib.catalog) if (json_out or output) else None
    finally:
        lib.close()
    if json_out:
        print_json({**info.to_dict(), "items": points})
        return
    if output is not None:
        import csv

        from ..errors import UserError

        try:
            with output.expanduser().open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["track_id", "x", "y", "placed", "path", "title", "artist", "album"])
                for p in points:
                    w.writerow([p["id"], p["x"], p["y"], int(p["placed"]), p["path"], p["title"] or "",
                                p["artist"] or "", p["album"] or ""])
        except OSError as exc:
            raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    console.print(f"{info.points} tracks on the map ({info.method}): {info.fitted} laid out"
                  + (f" in {info.fit_seconds:.1f} s" if info.fit_seconds is not None else "")
                  + f", {info.placed} placed since by their neighbours", highlight=False)
    if output is not None:
        console.print(f"[green]wrote[/] {info.points} points to {output}", highlight=False)
