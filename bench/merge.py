#!/usr/bin/env python3
"""Merging one library into another (``soundalike merge``): how long it takes per track, and merging again.

Library A indexes one synthesised 60 s track; library B indexes three (``FakeModel``: 48-d vectors at a 2 s
hop, real landmarks and scan prints), then B's catalogue is grown to N tracks with copies of those rows under
new paths and new hashes (so every one is a new track to A). B is merged into A through ``Library.merge``,
timed per phase from its progress events (wall and process CPU): the catalogue copy with the vector-store
inserts (``tracks`` events), then the landmark postings (``postings`` to ``done``); then B is merged again
(everything is present, nothing is added). Prints the figures and writes bench/results/merge.json.

    .venv/bin/python bench/merge.py [--tracks 1000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def grow(catalog: Path, music: Path, n: int) -> dict:
    """Copies of the catalogue's tracks (files, tracks, segments, landmarks) until it holds ``n``."""
    db = sqlite3.connect(catalog)
    base = db.execute("SELECT f.id, t.id FROM files f JOIN tracks t ON t.file_id = f.id").fetchall()
    cols = {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})") if r[1] not in skip]
            for t, skip in (("files", ("id", "path", "sha256", "rel")), ("tracks", ("id", "file_id")),
                            ("segments", ("id", "track_id")))}
    fc, tc, sc = (", ".join(cols[t]) for t in ("files", "tracks", "segments"))
    for i in range(n - len(base)):
        fid, tid = base[i % len(base)]
        rel = f"copy{i:06d}.flac"
        nf = db.execute(f"INSERT INTO files(path, sha256, rel, {fc}) SELECT ?, ?, ?, {fc} FROM files WHERE id = ?",
                        (f"{music}/{rel}", f"copy{i}", rel, fid)).lastrowid
        nt = db.execute(f"INSERT INTO tracks(file_id, {tc}) SELECT ?, {tc} FROM tracks WHERE id = ?",
                        (nf, tid)).lastrowid
        db.execute(f"INSERT INTO segments(track_id, {sc}) SELECT ?, {sc} FROM segments WHERE track_id = ? ORDER BY id",
                   (nt, tid))
        db.execute("INSERT INTO track_landmarks(track_id, hashes, frames, prints, stamp) "
                   "SELECT ?, hashes, frames, prints, stamp FROM track_landmarks WHERE track_id = ?", (nt, tid))
    db.commit()
    out = {"tracks": db.execute("SELECT count(*) FROM tracks").fetchone()[0],
           "segments": db.execute("SELECT count(*) FROM segments").fetchone()[0],
           "landmark_postings": db.execute("SELECT sum(length(hashes)) / 4 FROM track_landmarks").fetchone()[0]}
    db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=1000)
    args = ap.parse_args()

    import soundalike
    from _machine import cpu_model
    from soundalike.synth import render_track
    from tests.fakes import FakeModel, fake_library

    sr = 22050
    signals = {s: render_track(s, seconds=60, sample_rate=sr) for s in range(4)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        fake_library(tmp / "a", {0: signals[0]}, sr).close()
        fake_library(tmp / "b", {s: signals[s] for s in (1, 2, 3)}, sr).close()
        other = grow(tmp / "b" / "lib" / "catalog.sqlite", tmp / "b" / "music", args.tracks)
        lib = soundalike.open(tmp / "a" / "lib", model=FakeModel())
        marks, report = {}, None
        t0, c0 = time.perf_counter(), time.process_time()
        for event in lib.merge(tmp / "b" / "lib"):
            marks.setdefault(event.event, (time.perf_counter() - t0, time.process_time() - c0))
            report = event.report
        total = (time.perf_counter() - t0, time.process_time() - c0)
        t1 = time.perf_counter()
        again = list(lib.merge(tmp / "b" / "lib"))[-1].report
        again_s = time.perf_counter() - t1
        store_vectors = lib.store.count("segments") + lib.store.count("tracks")
        lib.close()
    postings = marks.get("postings", total)
    result = {
        "cpu": cpu_model(), "other": other, "tracks_added": report.tracks_added,
        "segments_added": report.segments_added, "vectors_added": report.vectors_added,
        "store_vectors_after": store_vectors,
        "plan_s": round(marks["plan"][0], 2),
        "tracks_phase_s": round(postings[0] - marks["plan"][0], 2),
        "tracks_phase_cpu_s": round(postings[1] - marks["plan"][1], 2),
        "postings_phase_s": round(total[0] - postings[0], 2),
        "total_s": round(total[0], 2), "total_cpu_s": round(total[1], 2),
        "tracks_per_s": round(report.tracks_added / total[0], 1),
        "again_s": round(again_s, 3), "again_added": again.tracks_added, "again_present": again.present,
    }
    for k, v in result.items():
        print(f"{k:>22}: {v}")
    out = ROOT / "bench" / "results" / "merge.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
