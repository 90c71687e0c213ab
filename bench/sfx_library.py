"""A library of music and sound effects, end to end: musicnn alone against musicnn + aisfx (``kinds=auto``).

Usage (from the repository root; about 3 minutes)::

    .venv/bin/python bench/sfx_library.py [--data tests/.data] [--out bench/results/sfx-library.json]

The same files are indexed twice, with landmarks and descriptors off (they do not depend on the model):
bench/kinds.py's effects (35 sound-theme-freedesktop sounds, 101 hydrogen-drumkits one-shots) and music (the 6
wesnoth pieces and the first 6 warzone2100 ones). Once into a music-only library (every file through musicnn,
today's behaviour), once with ``kinds=auto`` (effects through aisfx). Then for every drum one-shot of the report
half, ``similar(top=10)``: how many of its 10 neighbours are music, and precision at 5 for its instrument class
(kick, snare, hi-hat, ...) among them. And the indexing speed of each run, per kind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import kinds as K  # noqa: E402  (bench/kinds.py: the data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="bench/results/sfx-library.json")
    args = ap.parse_args()
    if args.data:
        K.DATA = Path(args.data)
    import soundalike
    from soundalike.errors import QueryError

    drums = K.drum_set()
    effects = sorted(K.unpacked("sound-theme-freedesktop").rglob("*.oga")) + [p for p, _ in drums]
    music = sorted((K.DATA / "music").glob("*.ogg")) + sorted(K.unpacked("warzone2100-music").rglob("*.opus"))[:6]
    work = Path(tempfile.mkdtemp(prefix="sfx-library-"))
    (work / "sfx").mkdir()
    (work / "music").mkdir()
    label, original = {}, {}
    for i, p in enumerate(effects):  # copies with unique names: kits reuse file names
        link = work / "sfx" / f"{i:03d}-{p.parent.name.replace(' ', '_')}-{p.name}"
        shutil.copyfile(p, link)
        label[link.name] = next((c for q, c in drums if q == p), None)
        original[link.name] = p
    for p in music:
        shutil.copyfile(p, work / "music" / p.name)
    os.environ.update(SOUNDALIKE_LANDMARKS="0", SOUNDALIKE_DESCRIPTORS="0")
    out = {}
    try:
        for name, kinds in (("musicnn only", ""), ("musicnn + aisfx (kinds=auto)", "auto")):
            os.environ["SOUNDALIKE_KINDS"] = kinds
            lib = soundalike.open(work / f"lib-{bool(kinds)}", hop=3.0)
            t0 = time.perf_counter()
            done = list(lib.index([work]))[-1]
            wall = time.perf_counter() - t0
            secs = {kind: sum(t.duration for t in lib.tracks() if f"/{kind}/" in t.path) for kind in ("sfx", "music")}
            music_share, p5, quiet = [], [], 0
            for link in sorted((work / "sfx").iterdir()):
                cls = label.get(link.name)
                if cls is None or K.half(original[link.name]) != "report":
                    continue
                try:
                    hits = lib.similar(lib.track(link).id, top=10).hits
                except QueryError:  # a one-shot too quiet to have an informative window (below silence_db)
                    quiet += 1
                    continue
                music_share.append(sum("/music/" in h.path for h in hits) / max(len(hits), 1))
                p5.append(sum(label.get(Path(h.path).name) == cls for h in hits[:5]) / 5)
            out[name] = {
                "tracks": lib.stats()["model_tracks"], "errors": done.errors,
                "index_wall_s": round(wall, 1), "audio_s": {k: round(v, 1) for k, v in secs.items()},
                "x_realtime": round((secs["sfx"] + secs["music"]) / wall, 1),
                "queries": len(p5), "too_quiet_to_query": quiet,
                "music_share_of_similar_top10": round(sum(music_share) / len(music_share), 3),
                "drum_class_p@5": round(sum(p5) / len(p5), 3),
            }
            print(name, json.dumps(out[name]))
            lib.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
