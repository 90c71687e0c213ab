#!/usr/bin/env python3
"""The whole search pipeline at catalogue sizes users have: a real library grown to 100 and 1,000 hours.

bench/scale.py measures the landmark look-up alone on synthetic postings; this one runs ``Library.search``
end to end (decode, embed with the real model, vector index, fusion, landmarks, alignment, policy) on a
whole library of that size, built cheaply from a real one (``--source``; default the library
bench/long_reference.py builds, 21 real tracks, 1.37 h):

- copy 0 is the source library as it is (its real vectors, landmarks, prints and audio);
- every other copy is *distinct music* to the index: its segment and track vectors are rotated by a random
  orthogonal matrix of its own (the same geometry, somewhere else in the space), its landmark hashes' lower
  13 bits XOR a random mask (the same per-bin popularity, other hashes: bench/scale.py's "remixed"), its scan
  prints XOR a random bit mask; its files are symbolic links to the source's audio (so an alignment could
  decode them) with a content hash of their own.
  What this leaves out: 999 hours of *similar* music around each query (here the rotated copies do not crowd
  its neighbourhood), so the vector index costs what it costs, but recall and votes are the easy case.

Then the library is rebuilt (``rebuild_index``: the vector index and the landmark postings) and, with the
model loaded, searched with 10 s and 30 s clips of the source's tracks (clean, white noise 10 dB, pink noise
0 dB, phone band, pitch -2 st, tempo +5 %) and of music it does not hold, timing CPU (all threads) and wall
per search; then one new track is indexed into the open library (the flush while serving) and searched for.
Prints per size: catalogue and index bytes per hour, build time, CPU and wall p50/p95 per kind of query,
top-1 per degradation, peak RSS of the process (a server holds the same) before and after the flush, the flush's
cost.

    .venv/bin/python bench/scale_search.py --hours 100 1000 [--keep] [--clips 12]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / ".data"
DEGRADATIONS = ("clean", "white-10dB", "pink-0dB", "phone", "pitch-2st", "tempo+5%")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def grow(source: Path, dest: Path, hours: float) -> dict:
    """``dest``: the library at ``source`` grown to ``hours`` with rotated, remixed copies (module docstring)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    t0 = time.perf_counter()
    src = sqlite3.connect(f"file:{source / 'catalog.sqlite'}?mode=ro", uri=True)
    src.backup(db := sqlite3.connect(dest / "catalog.sqlite"))
    src.close()
    seconds = db.execute("SELECT SUM(duration) FROM tracks").fetchone()[0]
    copies = max(1, int(np.ceil(hours * 3600 / seconds)))
    dim = int(db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0])
    cols = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in ("files", "tracks", "segments",
                                                                            "track_landmarks")}
    files = db.execute(f"SELECT {', '.join(cols['files'])} FROM files WHERE status = 'ok'").fetchall()
    tracks = db.execute(f"SELECT {', '.join(cols['tracks'])} FROM tracks").fetchall()
    segments = db.execute(f"SELECT {', '.join(cols['segments'])} FROM segments ORDER BY id").fetchall()
    marks = db.execute(f"SELECT {', '.join(cols['track_landmarks'])} FROM track_landmarks").fetchall()
    fstride = max(r[0] for r in files) + 1
    tstride = max(r[0] for r in tracks) + 1
    sstride = max(r[0] for r in segments) + 1
    fi, ti, si = ({c: i for i, c in enumerate(cols[t])} for t in ("files", "tracks", "segments"))
    li = {c: i for i, c in enumerate(cols["track_landmarks"])}
    rng = np.random.default_rng(11)
    audio = dest / "audio"

    def q(t):
        return ", ".join("?" * len(cols[t]))

    for c in range(1, copies):
        rot, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        rot = rot.astype(np.float32)
        hmask, pmask = int(rng.integers(1, 1 << 13)), rng.integers(0, 256, size=64, dtype=np.uint8)
        folder = audio / f"c{c:05d}"
        folder.mkdir(parents=True)
        frows = []
        for r in files:
            r = list(r)
            link = folder / f"{r[fi['id']]}-{Path(r[fi['path']]).name}"
            link.symlink_to(r[fi["path"]])
            r[fi["id"]] += c * fstride
            r[fi["path"]] = str(link)
            r[fi["sha256"]] = f"synthetic-{c}-{r[fi['sha256']]}"
            frows.append(r)
        db.executemany(f"INSERT INTO files ({', '.join(cols['files'])}) VALUES ({q('files')})", frows)

        def turn(blob):
            if blob is None:
                return None
            v = np.frombuffer(blob, np.float16).astype(np.float32).reshape(-1, dim) @ rot
            return v.astype(np.float16).tobytes()

        trows = []
        for r in tracks:
            r = list(r)
            r[ti["id"]] += c * tstride
            r[ti["file_id"]] += c * fstride
            r[ti["vector"]] = turn(r[ti["vector"]])
            trows.append(r)
        db.executemany(f"INSERT INTO tracks ({', '.join(cols['tracks'])}) VALUES ({q('tracks')})", trows)
        srows = []
        for r in segments:
            r = list(r)
            r[si["id"]] += c * sstride
            r[si["track_id"]] += c * tstride
            r[si["vector"]] = turn(r[si["vector"]])
            srows.append(r)
        db.executemany(f"INSERT INTO segments ({', '.join(cols['segments'])}) VALUES ({q('segments')})", srows)
        lrows = []
        for r in marks:
            r = list(r)
            r[li["track_id"]] += c * tstride
            h = np.frombuffer(r[li["hashes"]], "<u4") ^ np.uint32(hmask)
            r[li["hashes"]] = h.astype("<u4").tobytes()
            if r[li["prints"]] is not None:
                p = np.frombuffer(r[li["prints"]], np.uint8)
                r[li["prints"]] = (p ^ np.resize(pmask, len(p))).tobytes()
            if "stamp" in li:
                r[li["stamp"]] = int(rng.integers(1, 1 << 62))
            lrows.append(r)
        db.executemany(f"INSERT INTO track_landmarks ({', '.join(cols['track_landmarks'])}) "
                       f"VALUES ({q('track_landmarks')})", lrows)
        if c % 50 == 0:
            db.commit()
            print(f"  {c}/{copies} copies", file=sys.stderr, flush=True)
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('index_dirty', '1')")
    db.commit()
    db.close()
    return {"copies": copies, "hours": copies * seconds / 3600, "source_hours": seconds / 3600,
            "grow_s": time.perf_counter() - t0}


def clips(paths: list[str], seconds: float, n: int, work: Path, seed: int) -> list[tuple[str, str | None, Path]]:
    """(degradation, source path or None, query file): ``n`` excerpts per degradation, and ``n`` absent ones."""
    from soundalike.decode import decode
    from soundalike.evaluate.degrade import by_name, write_query
    from soundalike.synth import render_track

    rng = np.random.default_rng(seed)
    sr = 22050
    out = []
    work.mkdir(parents=True, exist_ok=True)
    for deg in by_name(list(DEGRADATIONS)):
        for i in range(n):
            path = paths[(i * 7 + seed) % len(paths)]
            x = decode(path, sample_rate=sr).samples
            want = int(seconds * deg.tempo * sr)
            start = int(rng.uniform(0, max(1, len(x) - want)))
            out.append((deg.name, path, write_query(deg, x[start:start + want], sr,
                                                     work / f"{deg.name}-{seconds:g}-{i}", rng)))
    from soundalike.synth import encode

    for i in range(n):
        p = work / f"absent-{seconds:g}-{i}.flac"
        encode(render_track(9100 + i, seconds=seconds, sample_rate=sr), sr, p)
        out.append(("absent", None, p))
    return out


def measure(lib, queries, ids: dict[str, int]) -> list[dict]:
    """Search each query; a query is right when its source's audio comes first, or, for an absent one, when
    nothing is judged a copy."""
    rows = []
    for deg, source, path in queries:
        w0, c0 = time.perf_counter(), time.process_time()
        res = lib.search(path, top=10)
        c1, w1 = time.process_time(), time.perf_counter()
        top = res.hits[0] if res.hits else None
        # the source first, or another file of the very same audio (the copies link to it: a search that aligns
        # one finds the source's audio, and CopyTest does not group them, their vectors being rotated)
        ok = (top is None or not top.copy) if source is None else (
            top is not None and (top.track_id == ids[source] or os.path.realpath(top.path) == os.path.realpath(source)))
        rows.append({"degradation": deg, "cpu_ms": (c1 - c0) * 1000, "wall_ms": (w1 - w0) * 1000, "ok": bool(ok),
                     "timings_ms": res.timings_ms})
    return rows


def summarise(rows) -> dict:
    out = {}
    for kind, sel in (("present", [r for r in rows if r["degradation"] != "absent"]),
                      ("absent", [r for r in rows if r["degradation"] == "absent"])):
        if not sel:
            continue
        cpu, wall = [r["cpu_ms"] for r in sel], [r["wall_ms"] for r in sel]
        out[kind] = {"n": len(sel), "cpu_ms_p50": float(np.median(cpu)), "cpu_ms_p95": float(np.percentile(cpu, 95)),
                     "wall_ms_p50": float(np.median(wall)), "wall_ms_p95": float(np.percentile(wall, 95))}
    out["top1"] = {d: float(np.mean([r["ok"] for r in rows if r["degradation"] == d]))
                   for d in [*DEGRADATIONS, "absent"] if any(r["degradation"] == d for r in rows)}
    stages = {}
    for r in rows:
        for k, v in r["timings_ms"].items():
            stages.setdefault(k, []).append(v)
    out["stages_ms_p50"] = {k: float(np.median(v)) for k, v in stages.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DATA / "long-lib")
    ap.add_argument("--hours", type=float, nargs="*", default=[100.0, 1000.0])
    ap.add_argument("--clips", type=int, default=6, help="queries per degradation and length")
    ap.add_argument("--seconds", type=float, nargs="*", default=[10.0, 30.0])
    ap.add_argument("--keep", action="store_true", help="keep the grown libraries, and reuse kept ones")
    ap.add_argument("--data", type=Path, default=DATA / "scale-search")
    ap.add_argument("--build", type=float, default=None, help=argparse.SUPPRESS)  # grow one size, then stop
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale-search.json")
    args = ap.parse_args()

    from _machine import machine

    import soundalike
    from soundalike.models.musicnn.fast import instruction_set

    src = soundalike.Library(args.source)
    ids = {t.path: t.id for t in src.catalog.tracks()}
    paths = sorted(ids)
    src.close()
    if args.build:  # in a process of its own, so that the measuring process's peak RSS is a server's
        grown = grow(args.source, args.data / f"{args.build:g}h", args.build)
        lib = soundalike.Library(args.data / f"{args.build:g}h")
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in lib.rebuild_index():
            pass
        grown["rebuild_s"], grown["rebuild_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        lib.close()
        (args.data / f"{args.build:g}h" / "grown.json").write_text(json.dumps(grown))
        return 0
    results = {}
    for hours in args.hours:
        dest = args.data / f"{hours:g}h"
        grown = json.loads((dest / "grown.json").read_text()) if args.keep and (dest / "grown.json").exists() else None
        if grown is None:
            import subprocess

            subprocess.run([sys.executable, __file__, "--source", str(args.source), "--data", str(args.data),
                            "--build", str(hours)], check=True)
            grown = json.loads((dest / "grown.json").read_text())
        r = dict(grown)
        r["catalogue_bytes"] = (dest / "catalog.sqlite").stat().st_size
        r["index_bytes"] = dir_bytes(dest / "index")
        r["postings_bytes"] = dir_bytes(dest / "postings") if (dest / "postings").exists() else 0
        for k in ("catalogue_bytes", "index_bytes", "postings_bytes"):
            r[k.replace("bytes", "mib_per_hour")] = r[k] / 2**20 / r["hours"]
        lib = soundalike.Library(dest)
        lib.search(paths[0], start=30.0, end=40.0, top=3)  # the model and the index, loaded before the timings
        for seconds in args.seconds:
            qs = clips(paths, seconds, args.clips, args.data / "queries", seed=int(seconds))
            rows = measure(lib, qs, ids)
            r[f"{seconds:g}s"] = summarise(rows)
            s = r[f"{seconds:g}s"]
            print(f"{r['hours']:7.0f} h, {seconds:g} s clips: present CPU p50 {s['present']['cpu_ms_p50']:.0f} ms "
                  f"(p95 {s['present']['cpu_ms_p95']:.0f}), wall p50 {s['present']['wall_ms_p50']:.0f} ms "
                  f"(p95 {s['present']['wall_ms_p95']:.0f}); absent CPU p50 {s['absent']['cpu_ms_p50']:.0f} ms, "
                  f"wall {s['absent']['wall_ms_p50']:.0f} ms; top-1 {s['top1']}", flush=True)
        r["peak_rss_searching_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the flush
        # the flush while serving: one new track indexed into the open library, then searched for
        from soundalike.synth import encode, render_track

        new = args.data / f"new-{hours:g}h"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        x = render_track(4242, seconds=180, sample_rate=22050)
        encode(x, 22050, new / "new-track.flac")
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in lib.index([new]):
            pass
        r["flush_one_track_s"], r["flush_one_track_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        encode(x[22050 * 60: 22050 * 70], 22050, new / "q.flac")
        t0 = time.perf_counter()
        hits = lib.search(new / "q.flac", top=3).hits
        r["first_search_after_flush_ms"] = (time.perf_counter() - t0) * 1000
        r["new_track_found"] = bool(hits) and hits[0].path.endswith("new-track.flac")
        t0 = time.perf_counter()
        lib.search(new / "q.flac", top=3)
        r["next_search_ms"] = (time.perf_counter() - t0) * 1000
        r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        lib.close()
        print(f"{r['hours']:7.0f} h: catalogue {r['catalogue_mib_per_hour']:.1f} MiB/h, index "
              f"{r['index_mib_per_hour']:.1f} MiB/h, postings {r['postings_mib_per_hour']:.1f} MiB/h; rebuild "
              f"{r.get('rebuild_s', 0):.0f} s; one track flushed in {r['flush_one_track_s']:.1f} s, the next search "
              f"{r['first_search_after_flush_ms']:.0f} ms (found {r['new_track_found']}); peak RSS "
              f"{r['peak_rss_searching_mb']:.0f} MB searching, {r['peak_rss_mb']:.0f} MB after the flush", flush=True)
        results[f"{hours:g}h"] = r
        if not args.keep:
            shutil.rmtree(dest, ignore_errors=True)
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(instruction_set()),
              "load_before": os.getloadavg(), "source": str(args.source), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
