"""Run soundalike (and its peers) over an evaluation corpus or a user's own library; return one report dict.

``evaluate_corpus(corpus, work)`` reads a corpus made by ``bench/corpus.py``
(``tracks.csv``, ``queries.csv``, ``duplicates.csv``), indexes its catalogue
into ``work/lib-catalogue`` (incremental, so a second run only searches), and
the catalogue plus the duplicate set into ``work/lib-duplicates`` (a copy of
the first library, so only the duplicates are embedded). ``store`` and
``store_url`` choose the vector store of the libraries it creates, as
``soundalike index --store`` does. It measures:

* identification: top-1, top-5, MRR and the median offset error per degradation;
* duplicates: precision, recall and F1 over the pairs of music files (the
  drum one-shots stay out: velocity layers of one hit are near-copies by design);
* similarity: precision@10 and leave-one-out 5-NN label accuracy per label set,
  ranking only tracks of the same label set;
* latency of a query, per system.

``evaluate_self(library, work)`` samples and degrades the library's own tracks
and reports the identification part. Nothing here prints; ``progress(stage,
done, total)`` is called as work proceeds.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import QueryError, UserError
from . import metrics
from .degrade import DEGRADATIONS, by_name
from .sets import DupCase, QueryCase, make_queries, read_csv

__all__ = ["evaluate_corpus", "evaluate_self", "SYSTEMS"]

SYSTEMS = ("soundalike", "chromaprint", "mfcc")
Progress = Callable[[str, int, int], None]


def _real(p: str | Path) -> str:
    return os.path.realpath(str(p))


def _noop(stage: str, done: int, total: int) -> None:
    pass


def _summary(rows: list[dict]) -> dict:
    out = metrics.identification([r["rank"] for r in rows])
    errs = [r["offset_error"] for r in rows if r.get("offset_error") is not None]
    out["offset_error_median"] = statistics.median(errs) if errs else None
    return out


def _latency(ms: list[float]) -> dict:
    return {"median_ms": metrics.percentile(ms, 50), "p95_ms": metrics.percentile(ms, 95), "n": len(ms)}


def _ranking(hits) -> list[str]:
    """The files in rank order: each hit, then the copies folded into it (``Hit.copies``), so that ranks are
    counted over files as they were before copies were folded."""
    return [_real(p) for h in hits for p in (h.path, *(c.path for c in h.copies))]


def identify(lib, queries: Sequence[QueryCase], *, root: Path | None = None, top: int = 10, search_options=None,
             progress: Progress = _noop) -> tuple[list[dict], list[float]]:
    """Run every query through ``lib.search``; per query the rank of the true track and the offset error."""
    rows, times = [], []
    if queries:  # load the model and warm the index outside the timings
        lib.search((root / queries[0].query) if root else Path(queries[0].query), top=top, **(search_options or {}))
    for i, q in enumerate(queries):
        path = (root / q.query) if root else Path(q.query)
        target = _real((root / q.track) if root else q.track)
        t0 = time.perf_counter()
        result = lib.search(path, top=top, **(search_options or {}))
        times.append((time.perf_counter() - t0) * 1000)
        ranking = _ranking(result.hits)
        rank = metrics.rank_of(ranking, target)
        err = None
        if rank == 1 and result.hits[0].offset is not None:
            err = abs(result.hits[0].offset - q.start)
        rows.append({"query": q.query, "degradation": q.degradation, "rank": rank, "offset_error": err,
                     "score": result.hits[0].score if result.hits else None})
        progress("identification: soundalike", i + 1, len(queries))
    return rows, times


def _index(lib, folders: list[Path], progress: Progress, stage: str, coverage: int | None = None) -> None:
    for ev in lib.index(folders, coverage=coverage):
        if ev.event in ("indexed", "error", "unchanged", "moved"):
            progress(stage, ev.files_done, ev.files_total)


def _by_degradation(rows: list[dict], system: str, report: dict) -> None:
    groups = defaultdict(list)
    for r in rows:
        groups[r["degradation"]].append(r)
    order = [d.name for d in DEGRADATIONS if d.name in groups] + sorted(set(groups) - {d.name for d in DEGRADATIONS})
    for deg in order:
        report.setdefault(deg, {})[system] = _summary(groups[deg])
    report.setdefault("all", {})[system] = _summary(rows)


def evaluate_corpus(
    corpus: Path,
    work: Path,
    *,
    peers: Sequence[str] = ("chromaprint", "mfcc"),
    degradations: str | list[str] | None = None,
    limit: int | None = None,
    threshold: float | None = None,
    search_options: dict | None = None,
    parts: Sequence[str] = ("identification", "duplicates", "similarity"),
    coverage: int | None = None,
    store: str | None = None,
    store_url: str | None = None,
    progress: Progress = _noop,
) -> dict:
    """Evaluate on a corpus folder; see the module docstring. ``limit``: at most this many queries per degradation.
    ``coverage``: index the catalogue with ``--coverage N`` (the fast mode), in a library of its own.
    ``store``, ``store_url``: the vector store of the libraries it creates in ``work`` (``Library``'s); the
    report names the store the catalogue's library uses."""
    import soundalike

    from .peers import Chromaprint, MfccBaseline

    corpus, work = Path(corpus).resolve(), Path(work)
    if not (corpus / "tracks.csv").exists():
        raise UserError(f"{corpus}: not an evaluation corpus (no tracks.csv); build one with bench/corpus.py")
    import json

    manifest = json.loads((corpus / "manifest.json").read_text()) if (corpus / "manifest.json").exists() else {}
    tracks = _read_tracks(corpus / "tracks.csv")
    queries = read_csv(corpus / "queries.csv", QueryCase) if (corpus / "queries.csv").exists() else []
    wanted = {d.name for d in by_name(degradations)}
    per: dict[str, int] = defaultdict(int)
    selected = []
    for q in queries:
        if q.degradation in wanted and (limit is None or per[q.degradation] < limit):
            per[q.degradation] += 1
            selected.append(q)
    queries = selected
    dups = read_csv(corpus / "duplicates.csv", DupCase) if (corpus / "duplicates.csv").exists() else []
    peers = [p for p in peers if p != "chromaprint" or Chromaprint.available()]
    report: dict = {"corpus": str(corpus), "manifest": manifest, "systems": ["soundalike", *peers],
                    "load_before": list(os.getloadavg()), "identification": {}, "duplicates": {}, "similarity": {},
                    "latency": {}, "timings_s": {}}
    work.mkdir(parents=True, exist_ok=True)
    catalogue = corpus / "catalogue"
    t0 = time.perf_counter()
    lib = soundalike.open(work / ("lib-catalogue" if not coverage else f"lib-catalogue-coverage{coverage}"),
                          store=store, store_url=store_url)
    _index(lib, [catalogue], progress, "index catalogue", coverage)
    report["coverage"] = coverage
    report["store"] = lib.store_args()[0]
    report["timings_s"]["index"] = round(time.perf_counter() - t0, 1)
    cat_paths = [_real(catalogue / t["file"]) for t in tracks]

    cp = mf = None
    if "chromaprint" in peers and ("identification" in parts or "duplicates" in parts):
        cp = Chromaprint()
        cp.add(cat_paths)
    if "mfcc" in peers:
        mf = MfccBaseline()
        mf.add(cat_paths)

    # -- identification ---------------------------------------------------------
    if "identification" in parts and queries:
        t1 = time.perf_counter()
        rows, times = identify(lib, queries, root=corpus, search_options=search_options, progress=progress)
        _by_degradation(rows, "soundalike", report["identification"])
        report["latency"]["soundalike"] = _latency(times)
        report["queries"] = rows
        for name, system in (("chromaprint", cp), ("mfcc", mf)):
            if system is None:
                continue
            prow, ptimes = [], []
            for i, q in enumerate(queries):
                t = time.perf_counter()
                ranked = system.rank(_real(corpus / q.query))
                ptimes.append((time.perf_counter() - t) * 1000)
                rank = metrics.rank_of(ranked[0], _real(corpus / q.track))
                err = abs(ranked[2][0] - q.start) if name == "chromaprint" and rank == 1 else None
                prow.append({"degradation": q.degradation, "rank": rank, "offset_error": err})
                progress(f"identification: {name}", i + 1, len(queries))
            _by_degradation(prow, name, report["identification"])
            report["latency"][name] = _latency(ptimes)
        report["timings_s"]["identification"] = round(time.perf_counter() - t1, 1)

    # -- similarity ---------------------------------------------------------------
    if "similarity" in parts:
        t1 = time.perf_counter()
        report["similarity"] = _similarity(lib, tracks, catalogue, mf, progress, search_options)
        report["timings_s"]["similarity"] = round(time.perf_counter() - t1, 1)
    lib.close()

    # -- duplicates ---------------------------------------------------------------
    if "duplicates" in parts and dups:
        t1 = time.perf_counter()
        report["duplicates"] = _duplicates(corpus, work, tracks, dups, cp, mf, threshold, progress, store, store_url)
        report["timings_s"]["duplicates"] = round(time.perf_counter() - t1, 1)
    report["load_after"] = list(os.getloadavg())
    return report


def _read_tracks(path: Path) -> list[dict]:
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _similarity(lib, tracks, catalogue: Path, mf, progress: Progress, search_options) -> dict:
    by_path = {_real(t.path): t.id for t in lib.catalog.tracks()}
    sets: dict[str, dict[str, str]] = defaultdict(dict)
    for t in tracks:
        if t.get("label_set") and t.get("label"):
            sets[t["label_set"]][_real(catalogue / t["file"])] = t["label"]
    out = {}
    n_all = len(by_path)
    weights = (search_options or {}).get("weights")
    done = 0
    total = sum(len(v) for v in sets.values())
    for label_set, labels in sorted(sets.items()):
        rankings: dict[str, dict[str, list[str]]] = {"soundalike": {}, "mfcc": {}}
        silent = 0
        for path in labels:
            if path in by_path:
                try:
                    res = lib.similar(by_path[path], top=max(n_all - 1, 1), weights=weights)
                except QueryError:  # quieter than silence_db throughout: nothing to search with, for every system
                    silent += 1
                    done += 1
                    continue
                rankings["soundalike"][path] = _ranking(res.hits)
            if mf is not None:
                rankings["mfcc"][path] = mf.rank(path, top=len(mf.refs), exclude=path)[0]
            done += 1
            progress("similarity", done, total)
        out[label_set] = {"tracks": len(labels), "classes": len(set(labels.values())), "silent": silent}
        for system, ranks in rankings.items():
            if not ranks:
                continue
            p10 = [metrics.precision_at_k(r, labels, q, 10) for q, r in ranks.items()]
            p10 = [p for p in p10 if p is not None]
            out[label_set][system] = {"p10": float(np.mean(p10)) if p10 else float("nan"),
                                      "knn5": metrics.knn_accuracy(ranks, labels, 5)}
    return out


def _copy_library(src: Path, dst: Path, store_url: str | None = None) -> None:
    """Copy the library at ``src`` to ``dst``. A folder store is copied with it. A server store's collections
    (tables) would be shared by the copy, whose new tracks would then land in the original's index: the copy
    gets a prefix of its own, filled from its catalogue."""
    import soundalike

    from ..catalog import Catalog
    from ..library import SERVER_KINDS, store_prefix_for

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("index.lock", "index-qdrant"))
    catalog = Catalog(dst / "catalog.sqlite")
    try:
        server = catalog.get_meta("store") in SERVER_KINDS
        if server:
            catalog.set_meta("store_prefix", store_prefix_for(dst))
    finally:
        catalog.close()
    if server:
        lib = soundalike.open(dst, store_url=store_url)
        try:
            for _ in lib.rebuild_index():
                pass
        finally:
            lib.close()


def _duplicates(corpus, work, tracks, dups, cp, mf, threshold, progress: Progress, store: str | None = None,
                store_url: str | None = None) -> dict:
    import soundalike

    from ..duplicates import required_score

    lib_b = work / "lib-duplicates"
    if not (lib_b / "catalog.sqlite").exists():
        _copy_library(work / "lib-catalogue", lib_b, store_url)
    lib = soundalike.open(lib_b, store=store, store_url=store_url)
    _index(lib, [corpus / "catalogue", corpus / "duplicates"], progress, "index duplicates")
    music = {_real(corpus / "catalogue" / t["file"]) for t in tracks if t["source"] != "drums"}
    variants = {_real(corpus / d.file): _real(corpus / d.original) for d in dups}
    members = music | set(variants)
    groups: dict[str, list[str]] = defaultdict(list)
    for v, o in variants.items():
        groups[o].append(v)
    truth = []
    for o, vs in groups.items():
        g = [o, *vs]
        truth += [(a, b) for i, a in enumerate(g) for b in g[i + 1 :]]
    paths = {r.id: _real(r.path) for r in lib.catalog.tracks()}
    t0 = time.perf_counter()
    found = lib.duplicates(threshold=0.5)  # every candidate pair with its score, for the curve
    ms = (time.perf_counter() - t0) * 1000
    scored, chosen = {}, []
    for p in found:
        a, b = paths.get(p.a), paths.get(p.b)
        if a in members and b in members:
            scored[tuple(sorted((a, b)))] = p.score
            if p.score >= required_score(threshold, p.landmarks):  # the pairs lib.duplicates(threshold) gives
                chosen.append(tuple(sorted((a, b))))
    lib.close()
    out = {"pairs_true": len(truth), "files": len(members), "variants": len(variants)}
    at = metrics.pair_scores(chosen, truth)
    best_t, best = metrics.best_threshold(scored, truth)
    t = "default" if threshold is None else threshold
    out["soundalike"] = {"threshold": t, **at, "best_threshold": best_t, "best_f1": best["f1"], "ms": ms}
    ordered = sorted(members)
    for name, system in (("chromaprint", cp), ("mfcc", mf)):
        if system is None:
            continue
        extra = [p for p in ordered if p not in system.refs]
        if name == "chromaprint":
            system.add(extra)
        else:
            for p in extra:
                system.refs[p] = system.vector(p)
        t0 = time.perf_counter()
        ps = system.pair_scores(ordered)
        ms = (time.perf_counter() - t0) * 1000
        bt, b = metrics.best_threshold({tuple(sorted(k)): v for k, v in ps.items()}, truth)
        # peers get the threshold that is best for them on this very set (an oracle; it flatters them)
        out[name] = {"threshold": bt, **b, "best_threshold": bt, "best_f1": b["f1"], "ms": ms}
        progress(f"duplicates: {name}", 1, 1)
    return out


def evaluate_self(
    library,
    work: Path,
    *,
    tracks: int = 20,
    per_degradation: int | None = None,
    degradations: str | list[str] | None = None,
    seed: int = 0,
    progress: Progress = _noop,
) -> dict:
    """Sample ``tracks`` of a library's own tracks, degrade excerpts, and report identification."""
    rows = [t for t in library.catalog.tracks() if t.duration >= 12 and Path(t.path).exists()]
    if not rows:
        raise UserError(f"library {library.path}: no track of 12 s or more whose file is still there")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(rows, min(tracks, len(rows))), key=lambda t: t.id)
    degs = by_name(degradations)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    cases = make_queries([t.path for t in chosen], work / "queries", degradations=degs,
                         per_degradation=per_degradation or len(chosen), seed=seed,
                         progress=lambda d, n: progress("making queries", d, n))
    report: dict = {"library": str(library.path), "tracks_sampled": len(chosen), "systems": ["soundalike"],
                    "load_before": list(os.getloadavg()), "identification": {}, "latency": {}}
    rows_, times = identify(library, cases, progress=progress)
    _by_degradation(rows_, "soundalike", report["identification"])
    report["latency"]["soundalike"] = _latency(times)
    report["load_after"] = list(os.getloadavg())
    return report
