"""Run the similarity benchmark (``simsets``): soundalike, the MFCC baseline and text search on the same labels.

``evaluate_similarity(folder, work)`` indexes ``folder/audio`` into a library of
its own under ``work`` (incremental: a second run only searches), then, for every
label set and each half (calibration, report) separately, ranks the items of that
set and half only:

* ``soundalike``: ``Library.similar`` of each item (its stored windows; the item
  itself left out), restricted by ``where`` to the items of the same set and half;
* ``mfcc``: the mean and standard deviation of 20 MFCCs over the file, z-scored
  with the benchmark's statistics, by cosine (``peers.MfccBaseline(spread=True)``);
* each item's precision@10 (k shrinks to the class size less one) and the
  leave-one-out 5-NN label accuracy;
* text: each class's query (``simsets.LABEL_SETS``, derived from the class name)
  through ``Library.text_search`` over the same items; precision@5 (k shrinks to
  the class size) per query and its mean.

Text search never sees a class name unless ``named_half`` is given: then the items
of that half carry their class as a user label (``NAMED_LABEL``, "category"), as in
a library where a user named some tracks and searches for the rest, and text search
is scored on the other half only (the named items are outside its ``where``, so they
can only act as seeds, ``text_seeds.py``): ``text`` with seeding off and
``text_seeded`` with it on, in the same run. ``named_half="calibration"`` is the
figure to quote; ``"report"`` scores the calibration half, which is where the
seeding constants are tuned (``bench/text_seeds.py``).

``representations=True`` adds rankings from the stored vectors alone (see
``spaces``), which is how item 2 of issue 20 compares candidate representations.
``aspects`` (names of ``aspects.ASPECTS``) adds ``Library.similar(like=...)`` for
each, scored as ``like <aspect>`` (issue 20, item 4).
Nothing here prints; ``progress(stage, done, total)`` reports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .. import settings
from ..errors import QueryError, UserError
from . import metrics
from .simsets import HALVES, LABEL_SETS, SimItem, read_items

__all__ = ["evaluate_similarity", "LABEL_NAME", "NAMED_LABEL", "name_half", "text_queries"]

Progress = Callable[[str, int, int], None]
LABEL_NAME = "simbench"  # the user-metadata column that holds "<set>:<half>" (no class names: text search reads labels)
NAMED_LABEL = "category"  # the class name, on the items of ``named_half`` only


def _noop(stage: str, done: int, total: int) -> None:
    pass


def _real(p: str | Path) -> str:
    return os.path.realpath(str(p))


def _p_at(ranking: Sequence[str], labels: dict[str, str], query: str, k: int) -> float | None:
    return metrics.precision_at_k(ranking, labels, query, k)


def _scores(rankings: dict[str, list[str]], labels: dict[str, str]) -> dict:
    p10 = [p for q, r in rankings.items() if (p := _p_at(r, labels, q, 10)) is not None]
    per_class: dict[str, list[float]] = {}
    for q, r in rankings.items():
        p = _p_at(r, labels, q, 10)
        if p is not None:
            per_class.setdefault(labels[q], []).append(p)
    return {"p10": float(np.mean(p10)) if p10 else float("nan"), "knn5": metrics.knn_accuracy(rankings, labels, 5),
            "p10_by_class": {c: round(float(np.mean(v)), 3) for c, v in sorted(per_class.items())}}


def _text_p5(ranking: Sequence[str], labels: dict[str, str], label: str, k: int = 5) -> tuple[float, int]:
    relevant = sum(1 for v in labels.values() if v == label)
    k = min(k, relevant)
    top = [p for p in ranking if p in labels][:k]
    return (sum(1 for p in top if labels[p] == label) / k if k else float("nan")), relevant


def evaluate_similarity(
    folder: Path,
    work: Path,
    *,
    sets: Sequence[str] | None = None,
    model: str | None = None,
    peers: Sequence[str] = ("mfcc",),
    text: bool = True,
    representations: bool = False,
    named_half: str | None = None,
    aspects: Sequence[str] = (),
    progress: Progress = _noop,
) -> dict:
    """Evaluate on a benchmark folder built by ``simsets.build``; see the module docstring.
    ``model``: the embedding model of the benchmark's library (a new library per model)."""
    if named_half is not None and named_half not in HALVES:
        raise UserError(f"named half: must be one of {', '.join(HALVES)}, not {named_half!r}")
    from ..aspects import aspect

    aspects = [aspect(a).name for a in aspects]
    import soundalike

    folder, work = Path(folder).resolve(), Path(work)
    items = read_items(folder)
    names = list(dict.fromkeys(it.label_set for it in items))
    wanted = list(sets) if sets else names
    missing = [s for s in wanted if s not in names]
    if missing:
        raise UserError(f"{folder}: label set {', '.join(missing)} not built (built: {', '.join(names) or 'none'}); "
                        "build it with --fetch")
    items = [it for it in items if it.label_set in wanted]
    audio = folder / "audio"
    absent = [it.file for it in items if not (audio / it.file).exists()]
    if absent:
        raise UserError(f"{audio / absent[0]}: missing ({len(absent)} benchmark files absent); rebuild with --fetch")
    report: dict = {"folder": str(folder), "model": model or "default", "systems": ["soundalike", *peers],
                    "load_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                    "named_half": named_half,
                    "sets": {}, "timings_s": {}}
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    lib = soundalike.open(work / f"lib-{model or 'default'}", model=model)
    try:
        paths = [audio / it.file for it in items]
        for ev in lib.index(paths):
            if ev.event in ("indexed", "error", "unchanged", "moved"):
                progress("index", ev.files_done, ev.files_total)
        report["timings_s"]["index"] = round(time.perf_counter() - t0, 1)
        report["model_id"] = f"{lib.catalog.get_meta('model_id')} {lib.catalog.get_meta('model_version')}"
        lib.catalog.set_labels([(str(audio / it.file), {LABEL_NAME: f"{it.label_set}:{it.half}"}) for it in items])
        name_half(lib, audio, items, named_half)
        ids = {_real(t.path): t.id for t in lib.catalog.tracks()}
        mf = None
        if "mfcc" in peers:
            from .peers import MfccBaseline

            t1 = time.perf_counter()
            mf = MfccBaseline(spread=True)
            mf.add([_real(audio / it.file) for it in items])
            report["timings_s"]["mfcc"] = round(time.perf_counter() - t1, 1)
        spaces = None
        if representations:
            from .spaces import vector_spaces

            spaces = vector_spaces(lib, [ids[_real(audio / it.file)] for it in items if _real(audio / it.file) in ids])
        t1 = time.perf_counter()
        for name in wanted:
            report["sets"][name] = {}
            for half in HALVES:
                chosen = [it for it in items if it.label_set == name and it.half == half]
                if chosen:
                    report["sets"][name][half] = _evaluate_part(lib, audio, name, half, chosen, ids, mf, spaces,
                                                                text and half != named_half, named_half, progress,
                                                                aspects)
        report["timings_s"]["search"] = round(time.perf_counter() - t1, 1)
    finally:
        lib.close()
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def name_half(lib, audio: Path, items: list[SimItem], half: str | None) -> None:
    """The items of ``half`` carry their class as label ``NAMED_LABEL``, the others none (None: no item does)."""
    lib.catalog.set_labels([(str(audio / it.file), {NAMED_LABEL: it.label if it.half == half else None})
                            for it in items])


def text_queries(lib, name: str, labels: dict[str, str], where: str, *, seeding="default") -> dict:
    """Each class's query of label set ``name`` over the tracks ``where`` selects (``labels``: their paths ->
    class); its p@5. ``seeding``: a ``text_seeds.Seeding``, None (off), or "default" (``Library.text_search``)."""
    if seeding == "default":
        def search(query: str):
            return lib.text_search(query, top=len(labels), where=where)
    else:
        from ..text import TextSearcher

        searcher = TextSearcher(lib.catalog, cache_dir=settings.get("cache"))
        allowed = lib.allowed_tracks(where)

        def search(query: str):
            return searcher.search(query, top=len(labels), allowed=allowed, seeding=seeding)
    queries = {}
    for c in sorted(set(labels.values())):
        query = LABEL_SETS.get(name, {}).get(c)
        if not query:
            continue
        p5, relevant = _text_p5([_real(h.path) for h in search(query).hits], labels, c)
        queries[c] = {"query": query, "p5": p5, "relevant": relevant}
    vals = [q["p5"] for q in queries.values() if not np.isnan(q["p5"])]
    return {"mean_p5": float(np.mean(vals)) if vals else float("nan"), "queries": queries,
            "random_p5": float(np.mean([q["relevant"] / len(labels) for q in queries.values()]))}


def _similar_rankings(lib, labels: dict[str, str], ids: dict[str, int], where: str, stage: str,
                      progress: Progress, like: str | None = None) -> tuple[dict[str, list[str]], int]:
    """Each item's ``Library.similar`` ranking among ``where``'s items (paths), and how many were silent."""
    rankings: dict[str, list[str]] = {}
    silent = 0
    for i, path in enumerate(labels):
        if path not in ids:
            continue
        try:
            res = lib.similar(ids[path], top=len(labels), where=where, like=like)
        except QueryError:  # quieter than silence_db throughout: nothing to search with
            silent += 1
            continue
        rankings[path] = [_real(p) for h in res.hits for p in (h.path, *(c.path for c in getattr(h, "copies", ())))]
        progress(stage, i + 1, len(labels))
    return rankings, silent


def _evaluate_part(lib, audio: Path, name: str, half: str, chosen: list[SimItem], ids: dict[str, int], mf,
                   spaces, text: bool, named_half: str | None, progress: Progress, aspects: Sequence[str] = ()
                   ) -> dict:
    labels = {_real(audio / it.file): it.label for it in chosen}
    where = f"{LABEL_NAME} = '{name}:{half}'"
    out: dict = {"tracks": len(chosen), "classes": len(set(labels.values())),
                 "groups": len({it.group for it in chosen})}
    rankings, silent = _similar_rankings(lib, labels, ids, where, f"similar: {name} {half}", progress)
    out["silent"] = silent
    out["unindexed"] = sum(1 for p in labels if p not in ids)
    out["soundalike"] = _scores(rankings, labels)
    for a in aspects:
        ranked, _ = _similar_rankings(lib, labels, ids, where, f"like {a}: {name} {half}", progress, like=a)
        out[f"like {a}"] = _scores(ranked, labels)
    if mf is not None:
        out["mfcc"] = _scores({p: mf.rank(p, top=len(mf.refs), exclude=p, among=labels)[0] for p in labels}, labels)
    if spaces is not None:
        by_id = {ids[p]: p for p in labels if p in ids}
        for space, rank in spaces.items():
            out[space] = _scores({by_id[q]: [by_id[r] for r in rank(q, list(by_id))] for q in by_id}, labels)
    if text and any(LABEL_SETS.get(name, {}).get(c) for c in set(labels.values())):
        if named_half is None:
            out["text"] = text_queries(lib, name, labels, where)
        else:  # before and after: the other half's names as seeds, off and on
            from ..text_seeds import SEEDING

            out["text"] = text_queries(lib, name, labels, where, seeding=None)
            out["text_seeded"] = text_queries(lib, name, labels, where, seeding=SEEDING)
    return out
