"""soundalike evaluate: search quality on an evaluation corpus, or a health check of your own library."""

from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import app
from .common import JsonOpt, StoreUrlOpt, console, err_console, open_library, print_json


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}"


def _f(x, digits=2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def tables(report: dict) -> list[Table]:
    """The report as Rich tables: identification, duplicates, similarity, latency (systems side by side)."""
    systems = report.get("systems", ["soundalike"])
    out = []
    ident = report.get("identification") or {}
    if ident:
        t = Table(title="identification: top-1 % / top-5 % / MRR (offset error, s)", title_justify="left")
        t.add_column("degradation")
        t.add_column("n", justify="right")
        for s in systems:
            t.add_column(s, justify="right")
        for deg, row in ident.items():
            n = next(iter(row.values()))["n"]
            cells = []
            for s in systems:
                m = row.get(s)
                if m is None:
                    cells.append("")
                    continue
                off = m.get("offset_error_median")
                cells.append(f"{_pct(m['top1'])} / {_pct(m['top5'])} / {_f(m['mrr'])}"
                             + (f" ({off:.1f})" if off is not None else ""))
            t.add_row(f"[b]{deg}[/]" if deg == "all" else deg, str(n), *cells, end_section=deg == "all")
        out.append(t)
    dup = report.get("duplicates") or {}
    if dup:
        t = Table(title=f"duplicates: {dup.get('files')} files, {dup.get('variants')} variants, "
                        f"{dup.get('pairs_true')} true pairs", title_justify="left")
        for c in ("system", "threshold", "precision", "recall", "F1", "best F1 (at)"):
            t.add_column(c, justify="right" if c != "system" else "left")
        for s in systems:
            m = dup.get(s)
            if m:
                note = "" if s == "soundalike" else " *"
                at = m["threshold"] if isinstance(m["threshold"], str) else _f(m["threshold"], 3)
                t.add_row(s, at + note, _f(m["precision"]), _f(m["recall"]), _f(m["f1"]),
                          f"{_f(m['best_f1'])} ({_f(m['best_threshold'], 3)})")
        t.caption = "* peers use the threshold that is best for them on this set"
        out.append(t)
    sim = report.get("similarity") or {}
    if sim:
        t = Table(title="similarity: precision@10 / leave-one-out 5-NN label accuracy", title_justify="left")
        t.add_column("label set")
        t.add_column("tracks / classes", justify="right")
        sim_systems = [s for s in systems if any(s in v for v in sim.values())]
        for s in sim_systems:
            t.add_column(s, justify="right")
        for name, row in sim.items():
            t.add_row(name, f"{row['tracks']} / {row['classes']}",
                      *[f"{_f(row[s]['p10'])} / {_f(row[s]['knn5'])}" if s in row else "-" for s in sim_systems])
        out.append(t)
    lat = report.get("latency") or {}
    if lat:
        t = Table(title="query latency (ms)", title_justify="left")
        for c in ("system", "median", "p95", "queries"):
            t.add_column(c, justify="right" if c != "system" else "left")
        for s, m in lat.items():
            t.add_row(s, f"{m['median_ms']:.0f}", f"{m['p95_ms']:.0f}", str(m["n"]))
        load = report.get("load_before")
        if load:
            t.caption = f"load average before {load[0]:.1f}, after {report.get('load_after', [0])[0]:.1f} (2 cores)"
        out.append(t)
    return out


def similarity_tables(report: dict) -> list[Table]:
    """The similarity benchmark as Rich tables: a row per label set and system with both halves side by side,
    then the text queries."""
    from ..evaluate.simsets import HALVES

    systems = list(report.get("systems", []))
    extra = sorted({k for parts in report["sets"].values() for row in parts.values() for k in row
                    if isinstance(row.get(k), dict) and "p10" in row[k] and k not in systems})
    t = Table(title="similarity: precision@10 / leave-one-out 5-NN accuracy", title_justify="left")
    t.add_column("label set")
    t.add_column("system")
    for half in HALVES:
        t.add_column(f"{half} (tracks / classes)", justify="right")
    for name, parts in report["sets"].items():
        shown = [s for s in [*systems, *extra] if any(s in parts.get(h, {}) for h in HALVES)]
        for i, s in enumerate(shown):
            cells = []
            for half in HALVES:
                row = parts.get(half) or {}
                m = row.get(s)
                size = f" ({row['tracks']} / {row['classes']})" if i == 0 and row else ""
                cells.append(f"{_f(m['p10'])} / {_f(m['knn5'])}{size}" if m else "-")
            t.add_row(name if i == 0 else "", s, *cells, end_section=i == len(shown) - 1)
    load = report.get("load_before")
    if load:
        t.caption = (f"model {report.get('model_id') or report.get('model')}; load average before {load[0]:.1f}, "
                     f"after {report.get('load_after', [0])[0]:.1f} ({report.get('cpus')} CPUs)")
    out = [t]
    named = report.get("named_half")
    title = "text search: precision@5 of each class's query"
    if named:
        title += f" (the {named} half named; seeding off -> on)"
    q = Table(title=title, title_justify="left")
    q.add_column("label set")
    q.add_column("class")
    q.add_column("query")
    for half in HALVES:
        q.add_column(half, justify="right")
    for name, parts in report["sets"].items():
        texts = {h: (parts.get(h) or {}).get("text") for h in HALVES}
        seeded = {h: (parts.get(h) or {}).get("text_seeded") for h in HALVES}
        if not any(texts.values()):
            continue

        def cell(h: str, value) -> str:  # "off -> on" where the run has both
            on = seeded[h]
            return f"{_f(value(texts[h]))} -> {_f(value(on))}" if on else _f(value(texts[h]))

        classes = sorted({c for tx in texts.values() if tx for c in tx["queries"]})
        for c in classes:
            first = next(tx["queries"][c] for tx in texts.values() if tx and c in tx["queries"])
            q.add_row(name, c, first["query"], *[cell(h, lambda tx: tx["queries"][c]["p5"])
                                                 if texts[h] and c in texts[h]["queries"] else "-" for h in HALVES])
        q.add_row(f"[b]{name}[/]", "[b]mean[/]", "(random)",
                  *[f"{cell(h, lambda tx: tx['mean_p5'])} ({_f(texts[h]['random_p5'])})" if texts[h] else "-"
                    for h in HALVES], end_section=True)
    if q.row_count:
        out.append(q)
    return out


@contextmanager
def _stages(quiet: bool):
    """A progress bar per stage on stderr (none with ``quiet``); yields the ``progress(stage, done, total)``
    callback the evaluation runs call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield progress


def _similarity_cmd(folder, work, *, fetch, sets, size, model, seed, peers, representations, named_half,
                    json_out) -> None:
    from ..errors import UserError
    from ..evaluate.simrun import evaluate_similarity
    from ..evaluate.simsets import build

    if folder is None:
        raise UserError("evaluate --similarity: give the benchmark folder (it is built there with --fetch)")
    peer_list = [] if peers.strip() in ("", "none") else [p.strip() for p in peers.split(",") if p.strip()]
    peer_list = [p for p in peer_list if p != "chromaprint"]  # identification only
    if any(p != "mfcc" for p in peer_list):
        raise UserError(f"--peers: the similarity benchmark knows mfcc only, not {', '.join(peer_list)}")
    set_list = [s.strip() for s in sets.split(",") if s.strip()] if sets else None
    # the libraries live in FOLDER/work unless --work says otherwise, so a second run only searches
    with _stages(json_out) as progress:
        if fetch:
            build(folder, sets=set_list, size=size, seed=seed, progress=progress)
        elif not folder.is_dir():
            raise UserError(f"no such benchmark folder: {folder} (add --fetch to build it)")
        report = evaluate_similarity(folder, work or folder / "work", sets=set_list, model=model, peers=peer_list,
                                     representations=representations, named_half=named_half, progress=progress)
    if json_out:
        print_json(report)
        return
    for t in similarity_tables(report):
        console.print(t)


@app.command("evaluate")
def evaluate_cmd(
    corpus: Annotated[Optional[Path], typer.Argument(help="Evaluation corpus folder (made by bench/corpus.py).",
                                                     show_default=False)] = None,
    self_lib: Annotated[Optional[Path], typer.Option("--self", help="Check this library instead: sample, degrade "
                                                     "and search its own tracks.", show_default=False)] = None,
    work: Annotated[Optional[Path], typer.Option(help="Where libraries and queries are kept (a corpus run reuses "
                                                 "them). [default: a temporary folder]", show_default=False)] = None,
    degradations: Annotated[str, typer.Option(help="Comma-separated degradations, or 'all'.")] = "all",
    limit: Annotated[Optional[int], typer.Option(help="At most this many queries per degradation.")] = None,
    tracks: Annotated[int, typer.Option(help="--self: how many of the library's tracks to sample.")] = 20,
    peers: Annotated[str, typer.Option(help="Peers run on the same sets: chromaprint,mfcc or 'none'.")] = "chromaprint,mfcc",
    threshold: Annotated[Optional[float], typer.Option(help="Duplicate threshold. [default: the library's]",
                                                       show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="--self: seed of the sampling and the degradations.")] = 0,
    similarity: Annotated[bool, typer.Option("--similarity", help="Run the similarity benchmark instead (labelled "
                                             "sets: instrument, groove, game, sfx); CORPUS is its folder, and its "
                                             "libraries are kept in CORPUS/work unless --work is given.")] = False,
    fetch: Annotated[bool, typer.Option("--fetch", help="--similarity: build the missing label sets first (Debian "
                                        "packages by apt-get download, renders by fluidsynth and MMA).")] = False,
    sets: Annotated[Optional[str], typer.Option(help="--similarity: comma-separated label sets. [default: all "
                                                "built]", show_default=False)] = None,
    size: Annotated[str, typer.Option(help="--similarity --fetch: ci, small or full (items per class).")] = "full",
    model: Annotated[Optional[str], typer.Option(help="--similarity: embedding model of the benchmark's library "
                                                 "(one library per model under --work). [default: the setting]",
                                                 show_default=False)] = None,
    representations: Annotated[bool, typer.Option("--representations", help="--similarity: also rank by "
                                                  "candidate vector spaces of the stored vectors.")] = False,
    named_half: Annotated[Optional[str], typer.Option(help="--similarity: give this half's items their class name "
                                                      "as a user label (category) and score text search on the other "
                                                      "half, with the named tracks as seeds, off and on: calibration "
                                                      "(to quote) or report (to tune).", show_default=False)] = None,
    store: Annotated[Optional[str], typer.Option(help="CORPUS: vector store of the libraries made under --work "
                                                 "(embedded, exact, qdrant or pgvector). [default: the setting]",
                                                 show_default=False)] = None,
    store_url: StoreUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure search quality: identification under degradations, duplicates, similarity, latency.

    On a corpus (bench/corpus.py builds one from Debian's free music), soundalike runs
    beside Chromaprint (fpcalc) and a mean-MFCC baseline and one table compares them.
    With [b]--self[/b] it samples your library's tracks, cuts 10 s excerpts, degrades
    them (MP3, noise, filters, reverb, tempo, pitch, short excerpts) and reports how
    often each one still finds its source: a health check of your own library.

    [b]Examples[/b]

      soundalike evaluate bench/.data/corpus-small --work bench/.data/work-small

      soundalike evaluate --self ~/music-lib --tracks 10 --degradations clean,mp3-32k,white-10dB

      soundalike evaluate corpus/ --limit 5 --peers none --json

      soundalike evaluate corpus/ --work work-pg --peers none --store pgvector --store-url postgresql://me@db/eval

      soundalike evaluate --similarity bench/.data/similarity --fetch --sets sfx,groove --json

      soundalike evaluate --similarity bench/.data/similarity --named-half calibration
    """
    from ..errors import UserError
    from ..evaluate.run import evaluate_corpus, evaluate_self

    if (store or store_url) and (similarity or self_lib is not None):
        raise UserError("evaluate: --store and --store-url apply to a corpus run (--self uses the library's "
                        "own store)")
    if similarity:
        return _similarity_cmd(corpus, work, fetch=fetch, sets=sets, size=size, model=model, seed=seed,
                               peers=peers, representations=representations, named_half=named_half,
                               json_out=json_out)
    if (corpus is None) == (self_lib is None):
        raise UserError("evaluate: give a corpus folder or --self LIBRARY (one of them)")
    peer_list = [] if peers.strip() in ("", "none") else [p.strip() for p in peers.split(",") if p.strip()]
    bad = [p for p in peer_list if p not in ("chromaprint", "mfcc")]
    if bad:
        raise UserError(f"--peers: unknown {', '.join(bad)} (known: chromaprint, mfcc)")
    if corpus is not None and not corpus.is_dir():
        raise UserError(f"no such corpus folder: {corpus}")
    with tempfile.TemporaryDirectory(prefix="soundalike-eval-") as tmp:
        workdir = work or Path(tmp)
        with _stages(json_out) as progress:
            if self_lib is not None:
                lib = open_library(self_lib)
                try:
                    report = evaluate_self(lib, workdir, tracks=tracks, degradations=degradations, seed=seed,
                                           progress=progress, per_degradation=limit)
                finally:
                    lib.close()
            else:
                report = evaluate_corpus(corpus, workdir, peers=peer_list, degradations=degradations, limit=limit,
                                         threshold=threshold, store=store, store_url=store_url, progress=progress)
    if json_out:
        print_json(report)
        return
    for t in tables(report):
        console.print(t)
