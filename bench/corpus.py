#!/usr/bin/env python3
"""Assemble the search-quality corpus from free recordings in Debian packages (nothing is installed).

Sources, each fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``
into a cache under the data dir, its Debian copyright file kept beside it:

* ``wesnoth``: the Battle for Wesnoth soundtrack (through scripts/demo_library.py);
  label set ``collection`` = "wesnoth";
* ``warzone``: the Warzone 2100 soundtracks (``warzone2100-music``); ``collection``
  = "warzone2100-<album>" (original, legacy, aftermath);
* ``drums``: one-shot samples from ``hydrogen-drumkits``; label set ``drum`` =
  kick, snare, hihat, tom, cymbal, clap, rim or handperc, from the file names;
* ``gm``: scores from the music21 package's corpus rendered through fluidsynth
  and the FluidR3 GM soundfont (``fluid-soundfont-gm``) with several GM programs;
  label set ``gm_family`` = the program's GM family.

Then it writes the query set (every degradation of ``soundalike.evaluate.degrade``,
ground truth in ``queries.csv``) and the duplicate set (``duplicates.csv``).

Layout of ``<data>/corpus-<size>/``: ``catalogue/`` (the library's audio),
``tracks.csv`` (file, source, label_set, label, seconds, licence), ``queries/`` +
``queries.csv``, ``duplicates/`` + ``duplicates.csv``, ``licences/`` and
``manifest.json`` (sources, package versions, licences, sizes, stretch backend).

    .venv/bin/python bench/corpus.py --size small          # ~100 short tracks, for CI
    .venv/bin/python bench/corpus.py --size full           # everything, several hundred tracks
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "bench" / ".data"

SIZES = {
    # clip: seconds kept of each soundtrack track (None: whole tracks, copied as they are)
    "small": dict(wesnoth=10, warzone=10, drums_per_class=6, drum_classes=("kick", "snare", "hihat", "tom", "cymbal"),
                  gm_scores=6, gm_programs=4, gm_seconds=30.0, clip=30.0, queries=10, dup_originals=10, dup_variants=2),
    "full": dict(wesnoth=None, warzone=None, drums_per_class=40, drum_classes=None,
                 gm_scores=40, gm_programs=6, gm_seconds=60.0, clip=None, queries=40, dup_originals=40, dup_variants=3),
}

# GM programs (0-based) used for the renders, with their GM family
GM_PROGRAMS = [
    (0, "piano"), (19, "organ"), (24, "guitar"), (48, "strings"), (56, "brass"), (73, "pipe"),
    (40, "strings"), (61, "brass"), (16, "organ"), (25, "guitar"), (4, "piano"), (71, "reed"),
]

DRUM_CLASSES = [  # first match wins
    ("handperc", r"conga|bongo|cowbell|tamb|shak|clave|agogo|cabasa|guiro|djembe|timbal"),
    ("clap", r"clap"),
    ("rim", r"rim|stick"),
    ("cymbal", r"crash|ride|china|splash|cymbal|cym"),
    ("hihat", r"hat|hh|hi-h"),
    ("tom", r"tom"),
    ("snare", r"snare|snr|sd\b"),
    ("kick", r"kick|bd\b|bass.?drum"),
]


class Unavailable(RuntimeError):
    """A source cannot be fetched here (no apt, no package, no fluidsynth)."""


@dataclass
class Track:
    file: str  # relative to catalogue/
    source: str
    label_set: str
    label: str
    seconds: float
    licence: str


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(*cmd: str, cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def licence_summary(copyright_file: Path) -> str:
    """The distinct License: names of a Debian copyright file."""
    names = []
    for m in re.finditer(r"^License:\s*(\S.*)$", copyright_file.read_text(errors="replace"), re.M):
        if m.group(1).strip() not in names:
            names.append(m.group(1).strip())
    return ", ".join(names) or "see copyright file"


def fetch_deb(package: str, data: Path) -> tuple[Path, str]:
    """Download and unpack a Debian package once; returns (unpacked root, version)."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise Unavailable("apt-get/dpkg-deb not available")
    debs = data / "debs"
    root = debs / f"x-{package}"
    if not (root / ".done").exists():
        debs.mkdir(parents=True, exist_ok=True)
        if not list(debs.glob(f"{package}_*.deb")):
            log(f"apt-get download {package}")
            try:
                _run("apt-get", "download", package, cwd=debs)
            except subprocess.CalledProcessError as exc:
                raise Unavailable(f"apt-get download {package} failed: {exc.stderr.strip()[-200:]}") from None
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        shutil.rmtree(root, ignore_errors=True)
        _run("dpkg-deb", "-x", str(deb), str(root))
        (root / ".done").write_text(deb.name)
    version = (root / ".done").read_text().split("_")[1]
    return root, version


def _duration(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        return float(c.duration or 0) / 1e6


def _cut(src: Path, dst: Path, start: float, seconds: float) -> float:
    """Write seconds of src from start as 44.1 kHz stereo FLAC; returns the length written."""
    from soundalike.evaluate.sets import read_stereo
    from soundalike.synth import encode

    x = read_stereo(src, 44100)
    a = int(start * 44100)
    y = x[:, a : a + int(seconds * 44100)]
    encode(y, 44100, dst, channels=2)
    return y.shape[1] / 44100


def _pick(items: list, n: int | None, rng: np.random.Generator) -> list:
    if n is None or n >= len(items):
        return items
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def soundtrack(files: list[tuple[Path, str]], name: str, cat: Path, cfg: dict, n: int | None, licence: str,
               rng: np.random.Generator) -> list[Track]:
    """files: (path, collection label). Keeps tracks >= 40 s; cuts cfg['clip'] seconds when set."""
    out = []
    usable = [(p, lab) for p, lab in files if _duration(p) >= 40]
    for p, lab in _pick(usable, n, rng):
        dst_name = f"{name}-{lab.split('-')[-1]}-{p.stem}" if name == "warzone" else f"{name}-{p.stem}"
        if cfg["clip"]:
            dur = _duration(p)
            start = float(rng.uniform(0, max(dur - cfg["clip"], 0)))
            seconds = _cut(p, cat / f"{dst_name}.flac", start, cfg["clip"])
            out.append(Track(f"{dst_name}.flac", name, "collection", lab, round(seconds, 2), licence))
        else:
            shutil.copy2(p, cat / f"{dst_name}{p.suffix}")
            out.append(Track(f"{dst_name}{p.suffix}", name, "collection", lab, round(_duration(p), 2), licence))
    return out


def wesnoth_files(data: Path, lic_dir: Path) -> tuple[list[tuple[Path, str]], str]:
    dest = data / "sources" / "wesnoth"
    if not (dest / "manifest.json").exists():
        spec = importlib.util.spec_from_file_location("demo_library", ROOT / "scripts" / "demo_library.py")
        demo = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(demo)
        dest.mkdir(parents=True, exist_ok=True)
        log("fetching the Wesnoth soundtrack (scripts/demo_library.py)")
        try:
            tracks = demo.wesnoth(dest, max_tracks=None, max_seconds=None)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            raise Unavailable(str(exc)) from None
        (dest / "manifest.json").write_text(json.dumps({"kind": "real", "tracks": tracks}, indent=1))
    manifest = json.loads((dest / "manifest.json").read_text())
    shutil.copy2(dest / "LICENSE-wesnoth-music.txt", lic_dir / "wesnoth-music.copyright")
    lic = licence_summary(dest / "LICENSE-wesnoth-music.txt")
    return [(dest / t["file"], "wesnoth") for t in manifest["tracks"]], f"{manifest['tracks'][0]['source']}: {lic}"


def warzone_files(data: Path, lic_dir: Path) -> tuple[list[tuple[Path, str]], str]:
    root, version = fetch_deb("warzone2100-music", data)
    cp = root / "usr/share/doc/warzone2100-music/copyright"
    shutil.copy2(cp, lic_dir / "warzone2100-music.copyright")
    albums = root / "usr/share/games/warzone2100/music/albums"
    files = [(p, f"warzone2100-{p.parent.name.replace('_soundtrack', '')}") for p in sorted(albums.rglob("*.opus"))]
    return files, f"Debian package warzone2100-music {version}: {licence_summary(cp)}"


def drum_class(name: str) -> str | None:
    n = name.lower()
    for cls, pat in DRUM_CLASSES:
        if re.search(pat, n):
            return cls
    return None


def drums(data: Path, cat: Path, cfg: dict, lic_dir: Path, rng: np.random.Generator) -> tuple[list[Track], str]:
    root, version = fetch_deb("hydrogen-drumkits", data)
    cp = root / "usr/share/doc/hydrogen-drumkits/copyright"
    shutil.copy2(cp, lic_dir / "hydrogen-drumkits.copyright")
    licence = f"Debian package hydrogen-drumkits {version}: {licence_summary(cp)} (per kit, see licences/)"
    by_class: dict[str, list[Path]] = {}
    for p in sorted((root / "usr/share/hydrogen/data/drumkits").rglob("*")):
        if p.suffix.lower() in (".wav", ".flac") and (cls := drum_class(p.stem)):
            if cfg["drum_classes"] is None or cls in cfg["drum_classes"]:
                by_class.setdefault(cls, []).append(p)
    out = []
    for cls, files in sorted(by_class.items()):
        if len(files) < 3:
            continue
        for p in _pick(files, cfg["drums_per_class"], rng):
            kit = re.sub(r"[^A-Za-z0-9]+", "", p.parent.name)[:16]
            dst = f"drum-{cls}-{kit}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', p.stem)[:40]}{p.suffix.lower()}"
            shutil.copy2(p, cat / dst)
            out.append(Track(dst, "drums", "drum", cls, round(_duration(p), 3), licence))
    return out, licence


def score_notes(path: Path, *, seconds: float, bpm: float = 100.0):
    """The notes of a music21 corpus score as ``synth.GMNote`` (all parts; chords spread), up to ``seconds``."""
    from music21 import corpus

    from soundalike.synth import GMNote

    beat = 60.0 / bpm
    notes = []
    for n in corpus.parse(str(path)).flatten().notes:
        t = float(n.offset) * beat
        if t >= seconds:
            break
        dur = max(float(n.quarterLength) * beat, 0.05)
        vel = int(getattr(n.volume, "velocity", None) or 90)
        for p in n.pitches:
            notes.append(GMNote(int(p.midi), t, min(dur, seconds - t), vel))
    return notes


def gm_renders(cat: Path, cfg: dict, lic_dir: Path, rng: np.random.Generator) -> tuple[list[Track], str]:
    from soundalike.synth import fluidsynth_missing, render_gm

    reason = fluidsynth_missing()
    if reason:
        raise Unavailable(reason)
    try:
        import music21
        from music21 import corpus
    except ImportError:
        raise Unavailable("music21 is not installed (pip install music21)") from None
    sf_copyright = Path("/usr/share/doc/fluid-soundfont-gm/copyright")
    if sf_copyright.exists():
        shutil.copy2(sf_copyright, lic_dir / "fluid-soundfont-gm.copyright")
    m21_licence = next(Path(music21.__file__).parent.parent.glob("music21-*.dist-info/licenses/LICENSE"), None)
    if m21_licence:
        shutil.copy2(m21_licence, lic_dir / "music21.LICENSE")

    paths = sorted(corpus.getComposer("bach"), key=str)
    programs = GM_PROGRAMS[: cfg["gm_programs"]]
    out = []
    for s in _pick(paths, cfg["gm_scores"] * 2, rng):  # twice as many: some scores are too short
        if len({t.file.split("-p")[0] for t in out}) >= cfg["gm_scores"]:
            break
        try:
            notes = score_notes(s, seconds=cfg["gm_seconds"])
        except Exception as exc:  # noqa: BLE001 - a score music21 cannot read is skipped
            log(f"skipping {s}: {exc}")
            continue
        length = max((n.start + n.duration for n in notes), default=0.0)
        if length < 20:
            continue
        for prog, family in programs:
            name = f"gm-{Path(s).stem.replace('.', '_')}-p{prog:03d}.wav"
            render_gm(notes, prog, cat / name, sample_rate=22050, seconds=min(cfg["gm_seconds"], length + 1.0))
            out.append(Track(name, "gm", "gm_family", family, round(_duration(cat / name), 2),
                             "music21 corpus score (BSD-3-Clause) rendered with FluidR3_GM (MIT)"))
    return out, "scores: music21 corpus (BSD-3-Clause, public-domain music); FluidR3_GM soundfont (MIT, Debian fluid-soundfont-gm)"


def build(size: str, data: Path, *, seed: int = 0, sources: list[str] | None = None, force: bool = False) -> Path:
    """Build (or reuse) ``data/corpus-<size>``. One build per folder at a time: a second
    process waits for the first (it wipes the folder before building)."""
    import fcntl

    data.mkdir(parents=True, exist_ok=True)
    with (data / f".corpus-{size}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another process is building {data / f'corpus-{size}'}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
            force = False  # it has just been built
        return _build(size, data, seed=seed, sources=sources, force=force)


def _build(size: str, data: Path, *, seed: int, sources: list[str] | None, force: bool) -> Path:
    from soundalike.evaluate.degrade import DEGRADATIONS, stretch_backend
    from soundalike.evaluate.sets import make_duplicates, make_queries, write_csv

    cfg = SIZES[size]
    out = data / f"corpus-{size}"
    if (out / "manifest.json").exists() and not force:
        log(f"{out}: already built")
        return out
    shutil.rmtree(out, ignore_errors=True)
    cat, lic_dir = out / "catalogue", out / "licences"
    cat.mkdir(parents=True)
    lic_dir.mkdir()
    t0 = time.perf_counter()
    tracks: list[Track] = []
    manifest = {"size": size, "seed": seed, "sources": {}, "unavailable": {}}
    wanted = sources or ["wesnoth", "warzone", "drums", "gm"]
    for name in wanted:
        rng = np.random.default_rng([seed, wanted.index(name)])
        try:
            if name == "wesnoth":
                files, lic = wesnoth_files(data, lic_dir)
                got = soundtrack(files, "wesnoth", cat, cfg, cfg["wesnoth"], lic, rng)
            elif name == "warzone":
                files, lic = warzone_files(data, lic_dir)
                got = soundtrack(files, "warzone", cat, cfg, cfg["warzone"], lic, rng)
            elif name == "drums":
                got, lic = drums(data, cat, cfg, lic_dir, rng)
            elif name == "gm":
                got, lic = gm_renders(cat, cfg, lic_dir, rng)
            else:
                raise SystemExit(f"unknown source {name}")
        except Unavailable as exc:
            log(f"{name}: unavailable ({exc})")
            manifest["unavailable"][name] = str(exc)
            continue
        tracks += got
        manifest["sources"][name] = {"tracks": len(got), "licence": lic,
                                     "seconds": round(sum(t.seconds for t in got), 1)}
        log(f"{name}: {len(got)} tracks ({time.perf_counter() - t0:.0f} s)")
    if not tracks:
        raise Unavailable("no source available: " + "; ".join(manifest["unavailable"].values()))
    write_csv(out / "tracks.csv", tracks)

    # queries from the music (drum one-shots are too short to excerpt)
    music = [str(cat / t.file) for t in tracks if t.source != "drums" and t.seconds >= 12]
    if music:
        t1 = time.perf_counter()
        queries = make_queries(music, out / "queries", degradations=DEGRADATIONS, per_degradation=cfg["queries"],
                               seed=seed)
        for q in queries:  # store paths relative to the corpus folder
            q.query, q.track = str(Path(q.query).relative_to(out)), str(Path(q.track).relative_to(out))
        write_csv(out / "queries.csv", queries)
        log(f"queries: {len(queries)} ({time.perf_counter() - t1:.0f} s)")
        rng = np.random.default_rng([seed, 99])
        originals = _pick(music, cfg["dup_originals"], rng)
        dups = make_duplicates(originals, out / "duplicates", variants=cfg["dup_variants"], seed=seed)
        for d in dups:
            d.file, d.original = str(Path(d.file).relative_to(out)), str(Path(d.original).relative_to(out))
        write_csv(out / "duplicates.csv", dups)
        log(f"duplicates: {len(dups)} variants of {len(originals)} tracks")
    manifest.update(
        tracks=len(tracks), catalogue_seconds=round(sum(t.seconds for t in tracks), 1),
        queries=cfg["queries"] * len(DEGRADATIONS) if music else 0, stretch_backend=stretch_backend(),
        build_seconds=round(time.perf_counter() - t0, 1),
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cache and output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sources", default=None, help="comma-separated subset of wesnoth,warzone,drums,gm")
    ap.add_argument("--force", action="store_true", help="rebuild even if the corpus exists")
    args = ap.parse_args()
    try:
        out = build(args.size, args.data, seed=args.seed, sources=args.sources.split(",") if args.sources else None,
                    force=args.force)
    except Unavailable as exc:
        log(f"corpus unavailable: {exc}")
        return 3
    m = json.loads((out / "manifest.json").read_text())
    print(f"{out}: {m['tracks']} tracks, {m['catalogue_seconds'] / 60:.1f} min, {m['queries']} queries; "
          f"sources {', '.join(m['sources'])}" + (f"; unavailable {', '.join(m['unavailable'])}" if m["unavailable"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
