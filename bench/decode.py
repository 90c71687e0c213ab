"""Decode benchmark: speed (x realtime) and peak memory of streaming a long file.

    python bench/decode.py                 # 2-hour stereo FLAC and MP3 (cached in /tmp)
    python bench/decode.py --hours 0.25    # quicker

Synthesises a 2-hour stereo 44.1 kHz track (a few minutes of ``render_track``
tiled, written block by block so it never sits in memory), encodes it to FLAC
and MP3 under /tmp, then streams each file to 16 kHz mono (the musicnn rate)
in a fresh subprocess, recording wall and CPU time and peak RSS. It also times
soxr's HQ against VHQ quality. Prints the figures and writes
bench/results/decode.json. Big files stay in /tmp and are never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = Path(os.environ.get("SOUNDALIKE_BENCH_DIR", "/tmp/soundalike-bench"))
RESULTS = ROOT / "bench" / "results" / "decode.json"
SR_FILE = 44100
SR_MODEL = 16000


def make_file(path: Path, hours: float) -> float:
    """Write ``hours`` of tiled synthetic stereo music to ``path``; returns seconds taken."""
    from soundalike.synth import encode, render_track

    if path.exists() and path.stat().st_size > 0 and path.with_suffix(path.suffix + ".ok").exists():
        return 0.0
    t = time.perf_counter()
    tile = render_track(7, seconds=300, sample_rate=SR_FILE, channels=2)  # 5 min, 106 MB float32
    total = int(hours * 3600 * SR_FILE)

    def blocks():
        done = 0
        while done < total:
            n = min(tile.shape[1], total - done)
            for i in range(0, n, SR_FILE * 30):
                yield tile[:, i : min(i + SR_FILE * 30, n)]
            done += n

    kw = {"bitrate": 192000} if path.suffix == ".mp3" else {}
    encode(blocks(), SR_FILE, path, channels=2, **kw)
    path.with_suffix(path.suffix + ".ok").touch()
    return time.perf_counter() - t


def vm_hwm_mb() -> float:
    """Peak RSS of this process image. (ru_maxrss would include the parent's peak
    from before exec: Linux carries it over.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str, rate: int, quality: str, block_seconds: float) -> None:
    """Runs in a fresh process: stream the file, print one JSON line of figures."""
    import soundalike.decode as dec

    dec.RESAMPLE_QUALITY = quality
    rss0 = vm_hwm_mb()
    info = dec.probe(path)
    t, c = time.perf_counter(), time.process_time()
    n = blocks = 0
    checksum = 0.0
    for block in dec.stream(path, sample_rate=rate, block_seconds=block_seconds):
        n += len(block)
        blocks += 1
        checksum += float(block[::997].sum())
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = vm_hwm_mb()
    seconds = n / rate
    print(
        json.dumps(
            {
                "file": Path(path).name,
                "codec": info.codec,
                "audio_seconds": round(seconds, 3),
                "out_rate": rate,
                "resample_quality": quality,
                "block_seconds": block_seconds,
                "blocks": blocks,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "x_realtime_wall": round(seconds / wall, 1),
                "x_realtime_cpu": round(seconds / cpu, 1),
                "peak_rss_mb": round(peak, 1),
                "rss_before_decode_mb": round(rss0, 1),
                "decoded_size_if_held_mb": round(n * 4 / 1e6, 1),
                "checksum": round(checksum, 3),
            }
        )
    )


def run_child(path: Path, rate: int, quality: str, block_seconds: float = 20.0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(rate), quality, str(block_seconds)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def resampler_speed() -> dict:
    import soxr

    x = np.random.default_rng(0).standard_normal(SR_FILE * 120).astype(np.float32)
    res = {}
    for q in ("HQ", "VHQ"):
        rs = soxr.ResampleStream(SR_FILE, SR_MODEL, 1, dtype="float32", quality=q)
        t = time.process_time()
        for i in range(0, len(x), SR_FILE * 5):
            rs.resample_chunk(x[i : i + SR_FILE * 5])
        rs.resample_chunk(np.zeros(0, np.float32), last=True)
        cpu = time.process_time() - t
        res[q] = {"cpu_s_per_120s": round(cpu, 4), "x_realtime_cpu": round(120 / cpu, 0)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--child", nargs=4, metavar=("PATH", "RATE", "QUALITY", "BLOCK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        p, r, q, b = args.child
        child(p, int(r), q, float(b))
        return

    WORK.mkdir(parents=True, exist_ok=True)
    tag = f"{args.hours:g}h"
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "hours": args.hours,
        "files": {},
        "runs": [],
    }
    for ext in (".flac", ".mp3"):
        path = WORK / f"synthetic-{tag}-stereo-44k{ext}"
        took = make_file(path, args.hours)
        results["files"][path.name] = {"bytes": path.stat().st_size, "encode_s": round(took, 1)}
        print(f"{path.name}: {path.stat().st_size / 1e6:.0f} MB" + (f" (encoded in {took:.0f} s)" if took else " (cached)"))
    results["resampler"] = resampler_speed()
    print("soxr 44.1k->16k:", ", ".join(f"{q} {v['x_realtime_cpu']:.0f}x realtime" for q, v in results["resampler"].items()))

    for ext in (".flac", ".mp3"):
        path = WORK / f"synthetic-{tag}-stereo-44k{ext}"
        for rate, quality in ((SR_MODEL, "HQ"), (SR_MODEL, "VHQ"), (SR_FILE, "HQ")):
            r = run_child(path, rate, quality)
            results["runs"].append(r)
            print(
                f"{r['file']:<34} -> {rate // 1000:>2} kHz {quality:<3}  "
                f"{r['x_realtime_wall']:>6.0f}x realtime (wall), {r['x_realtime_cpu']:>6.0f}x (cpu)  "
                f"peak RSS {r['peak_rss_mb']:.0f} MB (held whole: {r['decoded_size_if_held_mb']:.0f} MB)"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
