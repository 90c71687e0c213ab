#!/usr/bin/env python3
"""Descriptors benchmark: tempo/key accuracy, loudness/peak error, CPU cost, ingest impact.

1. Accuracy on synthetic audio of known content (tests/test_descriptors.py renders it):
   click tracks at several tempos, and I-IV-V-I / i-iv-V-i cadences in all 24 keys,
   analysed at 16 kHz exactly as the indexer does (``analyze``: 30 s excerpt).
2. Loudness and true peak of the indexer's stream (mono, 16 kHz) against the
   reference measured on the full-band, per-channel audio (pyloudnorm's
   integrated loudness; true peak = max over channels of the 4x-oversampled
   signal), on the real stereo music of the search benchmark (bench/.data/music-12).
3. CPU seconds per audio minute of the streaming analyzer on that music.
4. With --ingest-runs N: `soundalike index --json` on that music into fresh
   libraries, alternating SOUNDALIKE_DESCRIPTORS=1 and =0, N times each.

    .venv/bin/python bench/descriptors.py [--ingest-runs 2] [--max-tracks 12]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent / "soundalike"
SR = 16000

TEMPOS = [60, 72, 85, 90, 100, 110, 120, 128, 140, 150, 165, 174]
KEYS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def accuracy() -> dict:
    from soundalike.descriptors import analyze
    from tests.test_descriptors import chords, click_track

    tempo_rows = []
    for bpm in TEMPOS:
        for accent in (True, False):
            d = analyze(click_track(bpm, 40, accent=accent), SR)
            tempo_rows.append({"bpm": bpm, "accent": accent, "got": d.bpm, "confidence": d.bpm_confidence})
    key_rows = []
    for mode in ("major", "minor"):
        for i, tonic in enumerate(KEYS):
            d = analyze(chords(tonic, mode, 40, bpm=80 + 5 * i), SR)
            key_rows.append({"key": f"{tonic} {mode}", "got": d.key, "confidence": d.key_confidence})

    def within(rows, tol=2.0):
        return sum(r["got"] is not None and abs(r["got"] - r["bpm"]) <= tol for r in rows)

    def octave(rows, tol=2.0):
        return sum(
            r["got"] is not None and abs(r["got"] - r["bpm"]) > tol
            and any(abs(r["got"] - r["bpm"] * f) <= tol * f for f in (0.5, 2.0, 1.5, 2 / 3))
            for r in rows
        )

    exact = sum(r["got"] == r["key"] for r in key_rows)
    relative = sum(r["got"] != r["key"] and r["got"] is not None and _related(r["key"], r["got"]) for r in key_rows)
    return {
        "clicks": {"n": len(tempo_rows), "within_2_bpm": within(tempo_rows), "octave_or_3_2_errors": octave(tempo_rows),
                   "rows": tempo_rows},
        "keys": {"n": len(key_rows), "exact": exact, "relative_or_fifth": relative, "rows": key_rows},
    }


def _related(truth: str, got: str) -> bool:
    """Relative major/minor, or a fifth away in the same mode."""
    t, tm = truth.split()
    g, gm = got.split()
    ti, gi = KEYS.index(t), KEYS.index(g)
    if tm != gm:
        return (gi - ti) % 12 == (9 if tm == "major" else 3)
    return (gi - ti) % 12 in (5, 7)


def reference_stereo(path: Path):
    """(channels, n) float64 at the file's own rate, every channel (PyAV, no downmix)."""
    import av

    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        chunks = []
        rate = st.codec_context.sample_rate
        for frame in c.decode(st):
            a = frame.to_ndarray()
            if not frame.format.is_planar:
                a = a.reshape(-1, len(frame.layout.channels)).T
            chunks.append(a.astype(np.float64))
    return np.concatenate(chunks, axis=1), rate


def real_music(music: Path, max_tracks: int) -> dict:
    import pyloudnorm as pyln

    from soundalike.decode import stream
    from soundalike.descriptors import Analyzer, full_peak

    rows = []
    cpu = audio = 0.0
    for path in sorted(music.glob("*.ogg"))[:max_tracks]:
        x, rate = reference_stereo(path)
        ref_lufs = pyln.Meter(rate).integrated_loudness(x.T)
        # the downmix at full band, +3.01 dB as the analyzer adds: separates decorrelation from band limit
        mono_lufs = pyln.Meter(rate).integrated_loudness(x.mean(axis=0)) + (10 * np.log10(2) if len(x) == 2 else 0)
        ref_tp = 20 * np.log10(max(full_peak(ch) for ch in x))
        a = Analyzer(SR, channels=x.shape[0], expected_seconds=x.shape[1] / rate)
        sides = []
        blocks = list(stream(path, sample_rate=SR, side=sides.append if a.wants_side else None))
        t = time.process_time()
        for s in sides:  # in ingest the side chunks arrive interleaved, ahead of the blocks
            a.push_side(s)
        for b in blocks:
            a.push(b)
        d = a.result()
        cpu += time.process_time() - t
        audio += sum(len(b) for b in blocks) / SR
        rows.append({"file": path.name, "channels": x.shape[0], "ref_lufs": round(ref_lufs, 2), "lufs": d.loudness,
                     "downmix_fullband_lufs": round(mono_lufs, 2),
                     "ref_true_peak": round(ref_tp, 2), "true_peak": d.true_peak, "bpm": d.bpm, "key": d.key})
    dl = [r["lufs"] - r["ref_lufs"] for r in rows]
    dp = [r["true_peak"] - r["ref_true_peak"] for r in rows]
    dm = [r["downmix_fullband_lufs"] - r["ref_lufs"] for r in rows]
    return {
        "tracks": len(rows), "audio_minutes": round(audio / 60, 1),
        "loudness_error_db": {"median": statistics.median(dl), "min": min(dl), "max": max(dl)},
        "of_which_downmix_db": {"median": statistics.median(dm), "min": min(dm), "max": max(dm)},
        "true_peak_error_db": {"median": statistics.median(dp), "min": min(dp), "max": max(dp)},
        "cpu_ms_per_audio_minute": round(cpu / (audio / 60) * 1000, 1),
        "rows": rows,
    }


def ingest(music: Path, runs: int, max_tracks: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="soundalike-desc-"))
    src = work / "music"
    src.mkdir()
    for p in sorted(music.glob("*.ogg"))[:max_tracks]:
        os.symlink(p, src / p.name)
    out = {"1": [], "0": []}
    try:
        for r in range(runs):
            for flag in ("1", "0"):
                lib = work / f"lib-{flag}-{r}"
                env = {**os.environ, "SOUNDALIKE_DESCRIPTORS": flag}
                t = time.perf_counter()
                before = os.times()
                p = subprocess.run([str(BIN), "index", str(src), "-L", str(lib), "--json"], env=env,
                                   capture_output=True, text=True, check=True)
                after = os.times()
                wall = time.perf_counter() - t
                data = json.loads(p.stdout)
                cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
                out[flag].append({"realtime": data["realtime"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                  "descriptors_s": data["stage_seconds"].get("descriptors"),
                                  "audio_s": round(data["realtime"] * data["seconds"], 1), "loadavg": os.getloadavg()})
                print(f"run {r} descriptors={flag}: {data['realtime']}x realtime, cpu {cpu:.1f} s", flush=True)
                shutil.rmtree(lib, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(flag, key):
        return statistics.median(x[key] for x in out[flag])

    return {"runs": out, "median_realtime": {"with": med("1", "realtime"), "without": med("0", "realtime")},
            "median_cpu_s": {"with": med("1", "cpu_s"), "without": med("0", "cpu_s")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "bench" / ".data")
    ap.add_argument("--max-tracks", type=int, default=12)
    ap.add_argument("--ingest-runs", type=int, default=0)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "descriptors.json")
    args = ap.parse_args()
    result = {"loadavg_start": os.getloadavg()}
    if not args.skip_accuracy:
        acc = accuracy()
        result["accuracy"] = acc
        print(f"click tempo: {acc['clicks']['within_2_bpm']}/{acc['clicks']['n']} within 2 BPM, "
              f"{acc['clicks']['octave_or_3_2_errors']} octave (or 3:2) errors")
        print(f"keys: {acc['keys']['exact']}/{acc['keys']['n']} exact, {acc['keys']['relative_or_fifth']} relative or fifth")
        for r in acc["keys"]["rows"]:
            if r["got"] != r["key"]:
                print(f"  {r['key']} -> {r['got']}")
        for r in acc["clicks"]["rows"]:
            if r["got"] is None or abs(r["got"] - r["bpm"]) > 2:
                print(f"  clicks {r['bpm']} (accent {r['accent']}) -> {r['got']}")
    music = args.data / "music-12"
    if music.exists():
        real = real_music(music, args.max_tracks)
        result["real_music"] = real
        print(f"real stereo music ({real['tracks']} tracks, {real['audio_minutes']} min): loudness error "
              f"{real['loudness_error_db']} (downmix alone {real['of_which_downmix_db']}), "
              f"true peak error {real['true_peak_error_db']}, "
              f"{real['cpu_ms_per_audio_minute']} CPU ms per audio minute")
        if args.ingest_runs:
            result["ingest"] = ingest(music, args.ingest_runs, args.max_tracks)
            print(f"ingest: {result['ingest']['median_realtime']} x realtime, CPU s {result['ingest']['median_cpu_s']}")
    result["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
