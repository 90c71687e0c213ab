#!/usr/bin/env python3
"""Load test of `soundalike serve` on loopback: concurrent searches while an ingest runs.

A copy of the demo library (the Wesnoth soundtrack, built by `make demo`; built
here if missing) is served by `soundalike serve` on 127.0.0.1. N clients
(default 8) upload 10 s degraded excerpts of library tracks (noise at 20 dB SNR,
64 kbit/s MP3) to POST /api/search in a loop for D seconds (default 60), while
`soundalike index` adds synthesised tracks to the same library in another
process. Reports p50/p99 latency and the error rate, overall and while the
ingest ran, the top-1 rate, and the machine load; first, for comparison in the
same run, the same clients search without an ingest. Writes bench/results/serve.json.

    .venv/bin/python bench/serve.py [--clients 8] [--seconds 60] [--ingest-tracks 40] [--baseline-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "soundalike"


def pct(xs, q):
    return round(float(np.percentile(np.asarray(xs), q)), 1) if len(xs) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(samples: list[tuple[float, float, int, bool]]) -> dict:
    """samples: (sent at, latency ms, HTTP status or 0 for a connection error, top-1 right)."""
    lat = [s[1] for s in samples if s[2] == 200]
    errors = sum(1 for s in samples if s[2] != 200)
    return {
        "requests": len(samples),
        "errors": errors,
        "error_rate": round(errors / len(samples), 4) if samples else None,
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": round(max(lat), 1) if lat else None,
        "top1_rate": round(sum(1 for s in samples if s[3]) / len(lat), 3) if lat else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--ingest-tracks", type=int, default=40,
                    help="synthesised 30 s tracks indexed during the test (stopped at the end if not done)")
    ap.add_argument("--queries", type=int, default=12)
    ap.add_argument("--baseline-seconds", type=float, default=30.0,
                    help="first, the same clients without an ingest for this long (0: skip)")
    ap.add_argument("--demo", type=Path, default=ROOT / "demo")
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = ap.parse_args()

    import httpx

    from soundalike.decode import decode
    from soundalike.synth import add_noise, encode, excerpt, render_track

    # the library: a fresh copy of the demo library, so the ingest never touches the demo
    if not (args.demo / "library" / "catalog.sqlite").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(args.demo)], check=True)
    lib = args.data / "serve-lib"
    if lib.exists():
        shutil.rmtree(lib)
    shutil.copytree(args.demo / "library", lib, ignore=shutil.ignore_patterns("index.lock"))

    import soundalike

    with soundalike.open(lib, create=False) as library:
        every = library.tracks()
        tracks = [(t.id, t.path, t.duration) for t in every if t.duration >= 30]
    rng = np.random.default_rng(7)
    qdir = args.data / "serve-queries"
    qdir.mkdir(parents=True, exist_ok=True)
    queries = []
    for i, idx in enumerate(rng.choice(len(tracks), size=min(args.queries, len(tracks)), replace=False)):
        tid, path, duration = tracks[int(idx)]
        q = qdir / f"q{i:02d}.mp3"
        if not q.exists():
            a = decode(path, sample_rate=44100)
            start = float(rng.uniform(0, duration - 11))
            encode(add_noise(excerpt(a.samples, 44100, start, 10.0), 20.0, rng), 44100, q, bitrate=64000)
        queries.append((q.read_bytes(), tid))

    ingest_dir = args.data / f"serve-ingest-{args.ingest_tracks}x30s"
    ingest_dir.mkdir(parents=True, exist_ok=True)
    for i in range(args.ingest_tracks):
        p = ingest_dir / f"ingest{i:03d}.flac"
        if not p.exists():
            encode(render_track(5000 + i, seconds=30, sample_rate=22050), 22050, p)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(BIN), "serve", "-L", str(lib), "--port", str(port), "--threads", "4"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {server.stderr.read() if server.poll() is not None else ''}")
            time.sleep(0.5)
        # one warm-up search (torch's first call allocates its buffers)
        httpx.post(url + "/api/search", files={"file": ("q.mp3", queries[0][0])}, timeout=120)

        def phase(seconds: float, t_start: float) -> list[tuple[float, float, int, bool]]:
            """N clients searching in a loop for ``seconds``; (sent at, latency ms, status, top-1 right)."""
            samples: list[tuple[float, float, int, bool]] = []
            lock = threading.Lock()
            stop_at = time.monotonic() + seconds

            def client(n: int) -> None:
                with httpx.Client(base_url=url, timeout=120) as c:
                    i = n
                    while time.monotonic() < stop_at:
                        data, tid = queries[i % len(queries)]
                        i += args.clients
                        t0 = time.monotonic()
                        try:
                            r = c.post("/api/search", files={"file": (f"q{i}.mp3", data)}, data={"top": "5"})
                            status = r.status_code
                            right = status == 200 and bool(r.json()["hits"]) and r.json()["hits"][0]["track_id"] == tid
                        except httpx.HTTPError:
                            status, right = 0, False
                        with lock:
                            samples.append((t0 - t_start, (time.monotonic() - t0) * 1000, status, right))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return samples

        baseline, baseline_wall, baseline_load = [], 0.0, None
        if args.baseline_seconds > 0:  # the same clients without an ingest, for comparison in the same run
            t_b = time.monotonic()
            baseline = phase(args.baseline_seconds, t_b)
            baseline_wall, baseline_load = time.monotonic() - t_b, os.getloadavg()

        load_before = os.getloadavg()
        t_start = time.monotonic()
        # to files, not pipes: an unread pipe fills with progress output and stalls the indexer
        ingest_out = open(args.data / "serve-ingest.out", "w+")  # noqa: SIM115 - closed below
        ingest_err = open(args.data / "serve-ingest.err", "w+")  # noqa: SIM115
        ingest = subprocess.Popen([str(BIN), "index", str(ingest_dir), "-L", str(lib), "--json"],
                                  stdout=ingest_out, stderr=ingest_err, text=True,
                                  # a shell's background job ignores SIGINT, and children inherit that
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        ingest_t0 = time.monotonic() - t_start
        ingest_end = None

        def watch_ingest() -> None:
            nonlocal ingest_end
            while ingest.poll() is None and not clients_done.is_set():
                time.sleep(0.2)
            if ingest.poll() is not None:
                ingest_end = time.monotonic() - t_start

        clients_done = threading.Event()
        watcher = threading.Thread(target=watch_ingest)
        watcher.start()
        samples = phase(args.seconds, t_start)
        clients_done.set()
        watcher.join()
        wall = time.monotonic() - t_start
        load_after = os.getloadavg()
        stopped = ingest_end is None
        if stopped:  # still indexing when the clients stop: interrupt it like Ctrl-C (finished tracks are kept)
            ingest.send_signal(signal.SIGINT)
            ingest_end = wall
        ingest.wait()
        ingest_out.seek(0)
        out = ingest_out.read()
        ingest_out.close()
        ingest_err.close()
        try:
            ingest_report = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            ingest_report = {}
        stats = httpx.get(url + "/api/stats", timeout=30).json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    during = [s for s in samples if ingest_t0 <= s[0] and s[0] + s[1] / 1000 <= ingest_end]
    result = {
        "clients": args.clients,
        "seconds": args.seconds,
        "wall_s": round(wall, 1),
        "query": "10 s excerpt, noise at 20 dB SNR, 64 kbit/s MP3, top 5, server with 4 threads",
        "library_tracks_before": len(every),
        "library_tracks_after": stats["tracks"],
        **summary(samples),
        "throughput_rps": round(len(samples) / wall, 2),
        "during_ingest": summary(during),
        "baseline_without_ingest": {**summary(baseline), "seconds": args.baseline_seconds,
                                    "throughput_rps": round(len(baseline) / baseline_wall, 2) if baseline_wall else None,
                                    "loadavg_after": [round(x, 2) for x in baseline_load] if baseline_load else None},
        "ingest": {
            "tracks": args.ingest_tracks,
            "audio_s": args.ingest_tracks * 30,
            "tracks_added": stats["tracks"] - len(every),
            "started_s": round(ingest_t0, 1),
            "finished_s": round(ingest_end, 1),
            "still_running_at_end": stopped,
            "exit_code": ingest.returncode,
            "realtime": ingest_report.get("realtime") if isinstance(ingest_report, dict) else None,
        },
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
