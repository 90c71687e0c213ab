"""soundalike classify: predict a label field for the tracks that lack it; evaluate; review the least certain"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, LibraryOpt, console, err_console, open_library, print_json


def _name(p) -> str:
    return f"{p.artist} – {p.name}" if p.artist else p.name


def _predictions_table(preds, title: str, *, runner_up: bool = True) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("#", "track", "predicted", "confidence", "margin") + (("runner-up",) if runner_up else ()):
        table.add_column(col, justify="right" if col in ("#", "confidence", "margin") else "left")
    for p in preds:
        row = [str(p.track_id), _name(p), str(p.value), f"{p.confidence:.2f}", f"{p.margin:.2f}"]
        if runner_up:
            row.append("" if p.runner_up is None else str(p.runner_up))
        table.add_row(*row)
    console.print(table)


def _show_classification(r, limit: int) -> None:
    n = len(r.predictions)
    if n:
        shown = r.predictions[:limit]
        _predictions_table(shown, f"{r.field}: the {len(shown)} least certain of {n} predictions")
    if r.method == "knn":
        src = f"from {r.examples} labelled tracks in {len(r.classes)} categories (k={r.k})"
    else:
        src = "from words: " + "; ".join(f"{v} ({tags})" for v, tags in r.classes.items())
    low = sum(1 for p in r.predictions if p.confidence < 0.6)
    line = f"predicted {r.field} for {n} {'track' if n == 1 else 'tracks'} {src}; {low} below 0.60 confidence"
    if r.dry_run:
        line += "; nothing stored (--dry-run)"
    else:
        line += f"; {r.written} stored as predictions (review: soundalike classify {r.field} --review)"
    console.print(line, highlight=False)
    if r.without_vector:
        err_console.print(f"[yellow]note:[/] {r.without_vector} tracks without {r.field} have no informative audio "
                          "to classify", highlight=False)
    for note in r.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)


def _show_evaluation(ev) -> None:
    table = Table(title=f"{ev.field}: {ev.folds}-fold cross-validation over {ev.examples} labelled tracks",
                  title_justify="left")
    for col in ("system", "accuracy", "balanced", "errors", "errors in least certain 10 %", "k"):
        table.add_column(col, justify="left" if col == "system" else "right")
    names = {"soundalike": "soundalike (track vectors)", "mfcc": "MFCC statistics (baseline)"}
    for s in ev.systems.values():
        table.add_row(names.get(s.name, s.name), f"{s.accuracy:.3f}", f"{s.balanced_accuracy:.3f}",
                      f"{s.errors}/{s.n}", "-" if s.uncertain_errors is None else f"{s.uncertain_errors:.0%}",
                      str(s.k))
    console.print(table)
    s = ev.systems["soundalike"]
    conf = Table(title="confusion (rows: the user's value, columns: predicted)", title_justify="left")
    conf.add_column("")
    for c in ev.classes:
        conf.add_column(c[:14], justify="right")
    for i, (c, row) in enumerate(zip(ev.classes, s.confusion)):
        conf.add_row(f"{c} ({sum(row)})", *(f"[bold]{v}[/]" if i == j else (str(v) if v else "[dim]·[/]")
                                            for j, v in enumerate(row)))
    console.print(conf)
    if ev.left_out:
        err_console.print(f"[yellow]note:[/] left out (a single example): {', '.join(ev.left_out)}", highlight=False)
    for note in ev.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)


@app.command("classify")
def classify_cmd(
    field: Annotated[str, typer.Argument(help="The label field to fill: genre, mood, category, any imported label.",
                                         show_default=False)],
    class_specs: Annotated[Optional[list[str]], typer.Argument(
        metavar="[CLASSES]...", help="With --classes: NAME=WORDS for each class.", show_default=False)] = None,
    classes: Annotated[bool, typer.Option("--classes", help="Classes defined by words, not by labelled tracks: "
                                          "the arguments after FIELD, NAME=WORDS each.")] = False,
    k: Annotated[Optional[int], typer.Option("--k", "-k", help="Labelled tracks that vote. [default: the square root "
                                             "of their number, from 5 to 25]", show_default=False)] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Cross-validated accuracy and a confusion table over "
                                           "the labelled tracks; stores nothing.")] = False,
    mfcc: Annotated[bool, typer.Option("--mfcc", help="With --evaluate: also a kNN over MFCC statistics (decodes every "
                                       "labelled track; needs the evaluate extra).")] = False,
    folds: Annotated[int, typer.Option("--folds", help="With --evaluate: stratified folds.")] = 5,
    review: Annotated[bool, typer.Option("--review", help="List the stored predictions, least certain first.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the field's predictions (user values stay).")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Predictions to list.")] = 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Predict and show, but store nothing.")] = False,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Put tracks into your own categories: predict FIELD for the tracks that lack it, by the votes of the most
    similar tracks that have it (weighted by similarity).

    Each prediction is stored with its confidence (the winner's share of the votes) and margin (its lead over
    the runner-up), marked as predicted: it never replaces your own value, your later value replaces it, and
    --where filters see it. --review lists the least certain first (the web app's Classify page lets you
    play, accept or correct them). With --classes, the categories are defined by words instead, through the
    tag vocabulary of text search.

    [b]Examples[/b]

      soundalike labels import moods.csv && soundalike classify mood

      soundalike classify genre --evaluate --mfcc

      soundalike classify mood --review -n 50

      soundalike classify energy --classes "calm=calm ambient piano" "energetic=fast loud drums" --dry-run

      soundalike classify mood --k 10 --json
    """
    from ..errors import UserError
    from ..organise import classify as C

    modes = [m for m, on in (("--evaluate", evaluate), ("--review", review), ("--clear", clear), ("--classes", classes))
             if on]
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)}: choose one")
    if class_specs and not classes:
        raise UserError(f"unexpected arguments after {field!r}: {' '.join(class_specs)} (class definitions "
                        "go after --classes)")
    if mfcc and not evaluate:
        raise UserError("--mfcc: only with --evaluate")
    if k is not None and (classes or review or clear):
        raise UserError("--k: only when classifying from your labels (or --evaluate), not with "
                        f"{modes[0]}")
    if not 1 <= limit <= 10_000:
        raise UserError(f"--limit: must be from 1 to 10000, got {limit}")
    lib = open_library(library)
    try:
        if evaluate:
            ev = C.evaluate(lib.catalog, field, options=C.ClassifyOptions(k=k, folds=folds), mfcc=mfcc)
            print_json(ev.to_dict()) if json_out else _show_evaluation(ev)
            return
        if review:
            total, preds = C.review(lib.catalog, field, limit=limit)
            if json_out:
                print_json({"field": field, "count": total, "predictions": [p.to_dict() for p in preds]})
                return
            if not total:
                console.print(f"no predictions of {field} to review (run: soundalike classify {field})",
                              highlight=False)
                return
            _predictions_table(preds, f"{field}: the {len(preds)} least certain of {total} predictions",
                               runner_up=False)
            return
        if clear:
            n = C.clear(lib.catalog, field)
            print_json({"field": field, "cleared": n}) if json_out else console.print(
                f"removed {n} predictions of {field}", highlight=False)
            return
        if classes:
            specs = C.parse_classes(class_specs or [])
            r = lib.classify(field, classes=specs, dry_run=dry_run)
        else:
            r = lib.classify(field, k=k, dry_run=dry_run)
    finally:
        lib.close()
    print_json(r.to_dict()) if json_out else _show_classification(r, limit)
