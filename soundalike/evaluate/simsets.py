"""The similarity benchmark's labelled sets, built from free material in Debian packages.

Every set labels what a listener means by "sounds like", and every class holds
*different* pieces or recordings, so that neither system can win by finding the
same phrase twice. Each item has a ``group`` (the piece, groove file, soundtrack
track, or recording family such as one drum kit); groups are split between a
``calibration`` half and a ``report`` half, so no piece or recording is in both.
Tune on the calibration half; quote the report half.

* ``instrument``: the GM instrument family (piano, chromatic percussion, organ,
  guitar, strings, brass, reed, pipe). Every item is a different score of
  music21's corpus (Bach, Palestrina, Monteverdi, Trecento), rendered by
  fluidsynth on a program of the family through one of several SoundFonts
  (``fluid-soundfont-gm``, ``timgm6mb-soundfont``, ``musescore-general-soundfont-small``).
* ``groove``: the accompaniment style of MMA's groove library (``mma``): rock,
  swing, latin, waltz, march, blues, country, ballad; each groove file in one
  half, rendered at several tempos and keys on varied chord progressions.
* ``game``: which game's soundtrack a clip comes from, one package per class
  (``warzone2100-music``, ``hyperrogue-music``, ``wesnoth-*-music``, ``extremetuxracer-data``).
* ``sfx``: sound-effect and sample categories from the recordings in
  ``sonic-pi-samples``, ``hydrogen-drumkits``, ``sound-theme-freedesktop`` and the
  sound folders of game data packages (``scorched3d-data``, ``lincity-ng-data``,
  ``hyperrogue-music``, ``chromium-bsu-data``, ``pingus-data``, ``frozen-bubble-data``,
  ``extremetuxracer-data``), by their own folder and file names.

``build(folder, sets=..., size=...)`` fetches the packages with ``apt-get download``
into ``folder/debs`` (unpacked with ``dpkg-deb -x``; nothing is installed), writes the
clips to ``folder/audio`` under neutral names (``sfx-0007.flac``: a file name must not
give the class away to text search) and ``folder/items.csv``; each package's Debian
copyright file is kept in ``folder/licences``. Nothing here prints; ``progress(stage,
done, total)`` reports.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["SimItem", "LABEL_SETS", "SIZES", "build", "read_items", "fetch_deb", "HALVES"]

HALVES = ("calibration", "report")
Progress = Callable[[str, int, int], None]


def _noop(stage: str, done: int, total: int) -> None:
    pass


@dataclass
class SimItem:
    file: str  # relative to <folder>/audio
    label_set: str
    label: str
    group: str  # piece / groove file / soundtrack track / recording family: never in both halves
    half: str  # "calibration" or "report"
    source: str  # where it comes from (package and path, score and SoundFont, ...)
    licence: str


# label set -> class -> the text query derived from the class name (None: no text query for that set)
LABEL_SETS: dict[str, dict[str, str | None]] = {
    "instrument": {"piano": "piano", "chromatic": "vibraphone marimba bells", "organ": "organ",
                   "guitar": "guitar", "strings": "strings violin", "brass": "brass trumpet",
                   "reed": "saxophone clarinet", "pipe": "flute"},
    "groove": {"rock": "rock", "swing": "jazz swing", "latin": "latin bossa nova samba", "waltz": "waltz",
               "march": "march polka", "blues": "blues", "country": "country", "ballad": "ballad"},
    "game": {"warzone2100": None, "hyperrogue": None, "wesnoth": None, "extremetuxracer": None},
    "sfx": {"explosion": "explosion", "water": "water splash", "kick": "kick drum", "snare": "snare drum",
            "cymbal": "cymbal hi-hat", "tabla": "tabla", "voice": "voice speech", "alert": "notification beep",
            "machine": "machine engine noise", "crowd": "crowd people", "electronic": "electronic glitch",
            "ambient": "ambient drone", "impact": "sword hit impact"},
}

SIZES = {
    # per_class: music items per class; sfx_per_class: effects per class (at most; they are short);
    # seconds: clip length of music items; sfx_seconds: cap on effects
    "ci": dict(per_class=4, sfx_per_class=4, seconds=5.0, sfx_seconds=3.0),  # the test suite's version
    "small": dict(per_class=4, sfx_per_class=8, seconds=12.0, sfx_seconds=6.0),
    "full": dict(per_class=12, sfx_per_class=24, seconds=15.0, sfx_seconds=8.0),
}

# -- Debian packages ----------------------------------------------------------------


def fetch_deb(package: str, debs: Path) -> tuple[Path, str]:
    """``apt-get download`` and ``dpkg-deb -x`` a package once; returns (unpacked root, version)."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise UserError(f"cannot fetch {package}: apt-get and dpkg-deb are needed (a Debian or Ubuntu system)")
    root = debs / f"x-{package}"
    if not (root / ".done").exists():
        debs.mkdir(parents=True, exist_ok=True)
        if not list(debs.glob(f"{package}_*.deb")):
            proc = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
            if proc.returncode:
                raise UserError(f"apt-get download {package} failed: {proc.stderr.strip()[-200:]} "
                                "(run apt-get update?)")
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, capture_output=True)
        (root / ".done").write_text(deb.name)
    return root, (root / ".done").read_text().split("_")[1]


def _licence(root: Path, package: str, lic_dir: Path) -> str:
    cp = root / "usr/share/doc" / package / "copyright"
    names: list[str] = []
    if cp.exists():
        lic_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cp, lic_dir / f"{package}.copyright")
        for m in re.finditer(r"^License:\s*(\S.*)$", cp.read_text(errors="replace"), re.M):
            if m.group(1).strip() not in names:
                names.append(m.group(1).strip())
    return f"Debian {package}: {', '.join(names) or 'see licences/'}"


# -- audio helpers ------------------------------------------------------------------


def _read(path: Path, sr: int = 44100) -> np.ndarray:
    from .sets import read_stereo

    return read_stereo(path, sr)


def _read_part(path: Path, seconds: float, at: float, sr: int = 44100) -> np.ndarray | None:
    """``seconds`` of a long file from fraction ``at`` of what is left over, decoding only that part
    (a seek); None when it cannot be decoded."""
    import av

    try:
        with av.open(str(path)) as c:
            st = c.streams.audio[0]
            total = float(c.duration or 0) / 1e6
            start = max(total - seconds, 0.0) * at
            if start > 0:
                c.seek(int(start / st.time_base), stream=st)
            rs = av.AudioResampler(format="fltp", layout="stereo", rate=sr)
            chunks, got, first = [], 0, None
            for frame in c.decode(st):
                if first is None:
                    first = float(frame.time or 0.0)
                for f in rs.resample(frame):
                    a = f.to_ndarray()
                    chunks.append(a)
                    got += a.shape[1]
                if got >= (seconds + max(start - first, 0.0) + 1) * sr:
                    break
    except (av.error.FFmpegError, OSError, IndexError):
        return None
    if not chunks:
        return None
    x = np.concatenate(chunks, axis=1).astype(np.float32)
    skip = int(max(start - (first or 0.0), 0.0) * sr)  # a seek lands on the keyframe before the start
    return x[:, skip : skip + int(seconds * sr)]


def _try_read(path: Path, sr: int = 44100) -> np.ndarray | None:
    """The audio, or None when the file cannot be decoded (hyperrogue-music has an Ogg FFmpeg rejects)."""
    import av

    try:
        return _read(path, sr)
    except (av.error.FFmpegError, OSError):
        return None


def _write(x: np.ndarray, path: Path, sr: int = 44100) -> None:
    from ..synth import encode

    encode(np.ascontiguousarray(x, dtype=np.float32), sr, path, channels=2)


def _clip(x: np.ndarray, sr: int, seconds: float, at: float = 0.3) -> np.ndarray:
    """``seconds`` of ``x`` starting at fraction ``at`` of what is left over (the whole of a shorter one)."""
    n = int(seconds * sr)
    if x.shape[1] <= n:
        return x
    a = int((x.shape[1] - n) * at)
    return x[:, a : a + n]


def _halves(items: list[SimItem]) -> None:
    """Split each class's groups between the halves, balanced, in the order of a hash of the group. A group in
    several classes (one drum kit's kick and snare) keeps the half it got first, so it is never in both."""
    by_class: dict[tuple[str, str], list[str]] = {}
    for it in items:
        groups = by_class.setdefault((it.label_set, it.label), [])
        if it.group not in groups:
            groups.append(it.group)
    half_of: dict[tuple[str, str], str] = {}  # (label set, group) -> half
    for (label_set, _), groups in sorted(by_class.items()):
        count = dict.fromkeys(HALVES, 0)
        for g in sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest()):
            half = half_of.setdefault((label_set, g), min(HALVES, key=lambda h: count[h]))
            count[half] += 1
    for it in items:
        it.half = half_of[(it.label_set, it.group)]


# -- instrument family: music21 scores on several SoundFonts ------------------------

FAMILY_PROGRAMS = {  # 0-based GM programs of each family used for the renders
    "piano": (0, 1, 2, 4), "chromatic": (8, 11, 12, 13), "organ": (16, 17, 19, 20),
    "guitar": (24, 25, 26, 27), "strings": (40, 41, 42, 48), "brass": (56, 57, 60, 61),
    "reed": (64, 65, 68, 71), "pipe": (72, 73, 74, 75),
}
SOUNDFONTS = (  # (package, path inside it)
    ("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2"),
    ("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2"),
    ("musescore-general-soundfont-small", "usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
)
COMPOSERS = ("bach", "palestrina", "monteverdi", "trecento")


def _score_notes(path: str, seconds: float, bpm: float = 100.0):
    from music21 import corpus

    from ..synth import GMNote

    beat = 60.0 / bpm
    notes = []
    for n in corpus.parse(path).flatten().notes:
        t = float(n.offset) * beat
        if t >= seconds:
            break
        dur = max(float(n.quarterLength) * beat, 0.05)
        for p in n.pitches:
            notes.append(GMNote(int(p.midi), t, min(dur, seconds - t), 90))
    return notes


def _soundfonts(debs: Path, lic: Path) -> list[tuple[str, Path, str]]:
    out = []
    for package, rel in SOUNDFONTS:
        installed = Path("/") / rel
        if installed.exists():
            out.append((package, installed, f"Debian {package} (installed)"))
            continue
        root, _ = fetch_deb(package, debs)
        out.append((package, root / rel, _licence(root, package, lic)))
    return out


def instrument_set(folder: Path, cfg: dict, rng: np.random.Generator, progress: Progress) -> list[SimItem]:
    from ..synth import render_gm

    if shutil.which("fluidsynth") is None:
        raise UserError("the instrument set needs fluidsynth (apt-get install fluidsynth)")
    try:
        from music21 import corpus
    except ImportError:
        raise UserError("the instrument set needs music21: pip install 'soundalike[evaluate]'") from None
    fonts = _soundfonts(folder / "debs", folder / "licences")
    pools = {c: [str(p) for p in sorted(corpus.getComposer(c), key=str)] for c in COMPOSERS}
    for c in pools:
        rng.shuffle(pools[c])
    items: list[SimItem] = []
    n = cfg["per_class"]
    total = n * len(FAMILY_PROGRAMS)
    for f_i, (family, programs) in enumerate(FAMILY_PROGRAMS.items()):
        made = 0
        while made < n:
            composer = COMPOSERS[(made + f_i) % len(COMPOSERS)]
            if not pools[composer]:
                raise UserError(f"music21 corpus: ran out of {composer} scores")
            score = pools[composer].pop()
            try:
                notes = _score_notes(score, cfg["seconds"])
            except Exception:  # noqa: BLE001 - a score music21 cannot read is skipped
                continue
            if max((x.start + x.duration for x in notes), default=0.0) < cfg["seconds"] * 0.8:
                continue
            package, sf, sf_lic = fonts[(made + f_i) % len(fonts)]
            program = programs[made % len(programs)]
            name = f"instrument-{len(items) + 1:04d}.flac"
            wav = folder / "audio" / (name + ".wav")
            render_gm(notes, program, wav, sample_rate=44100, seconds=cfg["seconds"], soundfont=sf)
            _write(_read(wav), folder / "audio" / name)
            wav.unlink()
            piece = "/".join(Path(score).parts[-2:])
            items.append(SimItem(name, "instrument", family, f"score:{piece}", "", f"{piece} on program {program} "
                                 f"({package})", f"music21 corpus (BSD-3-Clause; public-domain music); {sf_lic}"))
            made += 1
            progress("instrument set", len(items), total)
    return items


# -- groove: MMA's groove library rendered through fluidsynth -----------------------

GROOVE_FILES = {
    "rock": ("50srock", "60srock", "basicrock", "bubblerock", "softrock", "folkrock", "8beat", "jazzrock"),
    "swing": ("swing", "bigband", "easyswing", "fastswing", "jazzcombo", "bebop", "dixie", "foxtrot"),
    "latin": ("bossanova", "samba", "rhumba", "chacha", "mambo", "salsa", "beguine", "merengue"),
    "waltz": ("waltz", "vienesewaltz", "fastwaltz", "frenchwaltz", "broadwaywaltz", "countrywaltz"),
    "march": ("march", "68march", "bwmarch", "dixiemarch", "polka"),
    "blues": ("blues", "slowblues", "fastblues", "blues128", "countryblues", "shuffleboggie", "boggiewoggie"),
    "country": ("countryswing", "bluegrass", "westernswing", "hillcountry", "slowcountry", "zydeco"),
    "ballad": ("ballad", "pianoballad", "popballad", "rockballad", "folkballad", "guitarballad", "stringballad"),
}
TEMPOS = {"rock": (100, 140), "swing": (110, 170), "latin": (100, 140), "waltz": (100, 170), "march": (100, 130),
          "blues": (70, 120), "country": (100, 160), "ballad": (60, 85)}
PROGRESSIONS = (("I", "vi", "ii7", "V7"), ("I", "IV", "V7", "I"), ("ii7", "V7", "I", "I"), ("I", "V", "vi", "IV"),
                ("vi", "IV", "I", "V"))
KEYS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_DEGREE = {"I": (0, ""), "ii7": (2, "m7"), "iii": (4, "m"), "IV": (5, ""), "V": (7, ""), "V7": (7, "7"), "vi": (9, "m")}


def _chord(key: str, roman: str) -> str:
    step, quality = _DEGREE[roman]
    return KEYS[(KEYS.index(key) + step) % 12] + quality


def _grooves(mma_lib: Path, stem: str) -> list[str]:
    """Main grooves defined in a groove file (no intros, endings, fills)."""
    text = (mma_lib / f"{stem}.mma").read_text(errors="replace")
    names = re.findall(r"^\s*DefGroove\s+(\S+)", text, re.M | re.I)
    return [g for g in dict.fromkeys(names) if not re.search(r"intro|end|fill|break", g, re.I)]


def _mma(debs: Path, lic: Path) -> tuple[list[str], Path, str]:
    """The MMA command (from the unpacked package, its groove database built once) and its groove library."""
    root, _ = fetch_deb("mma", debs)
    home = root / "usr/share/mma"
    cmd = [sys.executable, str(root / "usr/bin/mma")]  # MMA is pure Python 3: run it with this interpreter
    if not (home / "lib/stdlib/.mmaDB").exists():
        subprocess.run([*cmd, "-G"], env={**os.environ, "MMA_HOME": str(home)}, capture_output=True, check=True,
                       timeout=600)
    return cmd, home, _licence(root, "mma", lic)


def groove_set(folder: Path, cfg: dict, rng: np.random.Generator, progress: Progress) -> list[SimItem]:
    if shutil.which("fluidsynth") is None:
        raise UserError("the groove set needs fluidsynth (apt-get install fluidsynth)")
    cmd, home, mma_lic = _mma(folder / "debs", folder / "licences")
    fonts = _soundfonts(folder / "debs", folder / "licences")
    items: list[SimItem] = []
    n = cfg["per_class"]
    total = n * len(GROOVE_FILES)
    tmp = folder / "tmp-mma"
    tmp.mkdir(parents=True, exist_ok=True)
    for c_i, (genre, files) in enumerate(GROOVE_FILES.items()):
        files = [f for f in files if (home / "lib/stdlib" / f"{f}.mma").exists()]
        for i in range(n):
            stem = files[i % len(files)]
            grooves = _grooves(home / "lib/stdlib", stem) or [stem]
            groove = grooves[(i // len(files)) % len(grooves)]
            tempo = int(rng.integers(*TEMPOS[genre]))
            key = KEYS[int(rng.integers(12))]
            prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
            bars = int(np.ceil((cfg["seconds"] + 2) * tempo / 60 / 3)) + 1  # enough bars even in 3/4
            song = [f"Tempo {tempo}", f"Groove {groove}"]
            song += [f"{b + 1} {_chord(key, prog[b % 4])}" for b in range(bars)]
            src, mid = tmp / "song.mma", tmp / "song.mid"
            src.write_text("\n".join(song) + "\n")
            proc = subprocess.run([*cmd, str(src), "-f", str(mid)], env={**os.environ, "MMA_HOME": str(home)},
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode or not mid.exists():
                raise UserError(f"mma failed on groove {groove}: {(proc.stdout + proc.stderr).strip()[-200:]}")
            package, sf, sf_lic = fonts[(i + c_i) % len(fonts)]
            wav = tmp / "song.wav"
            subprocess.run(["fluidsynth", "-n", "-i", "-q", "-g", "0.5", "-r", "44100", "-T", "wav", "-O", "s16",
                            "-F", str(wav), str(sf), str(mid)], check=True, capture_output=True, timeout=300)
            x = _read(wav)[:, int(1.0 * 44100) : int((1.0 + cfg["seconds"]) * 44100)]
            name = f"groove-{len(items) + 1:04d}.flac"
            _write(x, folder / "audio" / name)
            mid.unlink()
            items.append(SimItem(name, "groove", genre, f"groove:{stem}", "",
                                 f"MMA groove {groove} at {tempo} bpm in {key} ({package})", f"{mma_lic}; {sf_lic}"))
            progress("groove set", len(items), total)
    shutil.rmtree(tmp, ignore_errors=True)
    return items


# -- game-music style: one soundtrack package per class -----------------------------


def _wesnoth_package() -> str:
    out = subprocess.run(["apt-cache", "depends", "wesnoth-music"], capture_output=True, text=True).stdout
    names = re.findall(r"Depends:\s*(wesnoth-[\d.]+-music)", out)
    if not names:
        raise UserError("no wesnoth-*-music package in the apt lists (run apt-get update)")
    return names[0]


GAME_MUSIC = {  # class -> (package or a function naming it, glob inside the package)
    "warzone2100": ("warzone2100-music", "usr/share/games/warzone2100/music/**/*.opus"),
    "hyperrogue": ("hyperrogue-music", "usr/share/hyperrogue/music/*.ogg"),
    "wesnoth": (_wesnoth_package, "usr/share/games/wesnoth/*/data/core/music/*.ogg"),
    "extremetuxracer": ("extremetuxracer-data", "usr/share/games/etr/music/*.ogg"),
}


def game_set(folder: Path, cfg: dict, rng: np.random.Generator, progress: Progress) -> list[SimItem]:
    items: list[SimItem] = []
    n = cfg["per_class"]
    total = n * len(GAME_MUSIC)
    for label, (package, pattern) in GAME_MUSIC.items():
        package = package() if callable(package) else package
        root, version = fetch_deb(package, folder / "debs")
        lic = _licence(root, package, folder / "licences")
        files = sorted(p for p in root.glob(pattern) if p.stat().st_size > 200_000)  # music, not jingles
        if not files:
            raise UserError(f"{package} {version}: no music found at {pattern}")
        made = 0
        for p in [files[i] for i in rng.permutation(len(files))]:
            x = _read_part(p, cfg["seconds"], 0.4) if made < n else None
            if x is None or x.shape[1] < cfg["seconds"] * 44100 * 0.9:
                continue
            made += 1
            name = f"game-{len(items) + 1:04d}.flac"
            _write(x, folder / "audio" / name)
            rel = str(p.relative_to(root))
            items.append(SimItem(name, "game", label, f"{package}:{rel}", "", f"{package} {version}: {rel}", lic))
            progress("game set", len(items), total)
    return items


# -- sound-effect categories --------------------------------------------------------

# (package, folder glob inside it, file-name pattern, class); first match wins. ``group``: the file
# name without its digits (Water1..Water5 are one group), or the drum kit for hydrogen.
SFX_RULES = [
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/*/data/wav/explosions", r".", "explosion"),
    ("chromium-bsu-data", "usr/share/games/chromium-bsu/wav", r"boom|explo", "explosion"),
    ("hyperrogue-music", "usr/share/hyperrogue/sounds", r"^explosion", "explosion"),
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds", r"RocketExplosion|Raze", "explosion"),
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds", r"^Water\d|ParklandLake", "water"),
    ("hyperrogue-music", "usr/share/hyperrogue/sounds", r"^splash|seen-water", "water"),
    ("pingus-data", "usr/share/games/pingus/data/sounds", r"^splash", "water"),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples", r"^bd_", "kick"),
    ("hydrogen-drumkits", "usr/share/hydrogen/data/drumkits/*", r"kick|bd\b|bass.?drum", "kick"),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples", r"^sn_|^drum_snare", "snare"),
    ("hydrogen-drumkits", "usr/share/hydrogen/data/drumkits/*", r"snare|snr|sd\b", "snare"),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples", r"^drum_cymbal", "cymbal"),
    ("hydrogen-drumkits", "usr/share/hydrogen/data/drumkits/*", r"crash|ride|china|splash|cymbal|hat|hh", "cymbal"),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples", r"^tabla_", "tabla"),
    ("pingus-data", "usr/share/games/pingus/data/sounds", r"letsgo|ohno|yipee|goodidea", "voice"),
    ("hyperrogue-music", "usr/share/hyperrogue/sounds", r"^speak-|^dzia-|^hit-prince|^heal-prince", "voice"),
    ("sound-theme-freedesktop", "usr/share/sounds/freedesktop/stereo", r"^(?!audio-channel|audio-test)", "alert"),
    ("frozen-bubble-data", "usr/share/games/frozen-bubble/snd", r"^menu_|^cancel|^chatted", "alert"),
    ("chromium-bsu-data", "usr/share/games/chromium-bsu/wav", r"life_add|power", "alert"),
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds",
     r"^(Industry|Mill|CoalMine|OreMine|Blacksmith|RailTrain|Trafic|PowerCoal|Substation)", "machine"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/*/data/wav/movement", r".", "machine"),
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds", r"^(SportsCroud|School|Shanty|University|Market|"
     r"Residential)", "crowd"),
    ("frozen-bubble-data", "usr/share/games/frozen-bubble/snd", r"^applause", "crowd"),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples", r"^elec_|^glitch_", "electronic"),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples", r"^ambi_", "ambient"),
    ("hyperrogue-music", "usr/share/hyperrogue/sounds", r"^hit-(axe|crush|sword|orb)", "impact"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/*/data/wav/shoot", r".", "impact"),
    ("extremetuxracer-data", "usr/share/games/etr/sounds", r"tree_hit", "impact"),
]
AUDIO_EXT = (".wav", ".flac", ".ogg", ".oga", ".opus")


def _sfx_group(package: str, path: Path) -> str:
    if package == "hydrogen-drumkits":
        return f"{package}:{path.parent.name}"
    return f"{package}:{re.sub(r'[0-9]+', '', path.stem).lower()}"


def sfx_set(folder: Path, cfg: dict, rng: np.random.Generator, progress: Progress,
            per_group: int = 2) -> list[SimItem]:
    found: dict[str, dict[str, list[tuple[str, Path, str]]]] = {}  # class -> group -> (package, path, licence)
    seen: set[Path] = set()
    licences: dict[str, str] = {}
    for package, folder_glob, pattern, label in SFX_RULES:
        root, version = fetch_deb(package, folder / "debs")
        if package not in licences:
            licences[package] = _licence(root, package, folder / "licences")
        for d in sorted(root.glob(folder_glob)):
            for p in sorted(d.iterdir()) if d.is_dir() else []:
                if p.suffix.lower() in AUDIO_EXT and p not in seen and re.search(pattern, p.stem, re.I):
                    seen.add(p)
                    found.setdefault(label, {}).setdefault(_sfx_group(package, p), []).append(
                        (package, p, f"{licences[package]} ({version})"))
    items: list[SimItem] = []
    n = cfg["sfx_per_class"]
    total = n * len(found)
    for label in LABEL_SETS["sfx"]:
        groups = found.get(label, {})
        # round-robin over groups (at most per_group each), so one kit or one game does not fill a class
        order = sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
        picks: list[tuple[str, tuple[str, Path, str]]] = []
        for r in range(per_group):
            for g in order:  # one hit per drum kit: a kit's other samples are velocity layers of the same drum
                limit = 1 if g.startswith("hydrogen-drumkits:") else per_group
                if r < min(limit, len(groups[g])) and len(picks) < n:
                    choice = groups[g][int(rng.integers(len(groups[g])))] if r == 0 else groups[g][r]
                    if all(choice[1] != c[1][1] for c in picks):
                        picks.append((g, choice))
        for g, (package, p, lic) in picks:
            x = _try_read(p)
            if x is None or x.shape[1] < 0.05 * 44100 or float(np.abs(x).max(initial=0.0)) < 1e-3:
                continue  # empty or silent files
            name = f"sfx-{len(items) + 1:04d}.flac"
            _write(_clip(x, 44100, cfg["sfx_seconds"], at=0.0), folder / "audio" / name)
            items.append(SimItem(name, "sfx", label, g, "", f"{package}: {p.name}", lic))
            progress("sfx set", len(items), total)
    return items


BUILDERS = {"instrument": instrument_set, "groove": groove_set, "game": game_set, "sfx": sfx_set}


# -- the whole benchmark folder -------------------------------------------------------


def read_items(folder: Path) -> list[SimItem]:
    path = Path(folder) / "items.csv"
    if not path.exists():
        raise UserError(f"{folder}: no similarity benchmark here (no items.csv); build it with --fetch")
    with path.open(newline="") as f:
        return [SimItem(**{k: row[k] for k in (fl.name for fl in fields(SimItem))}) for row in csv.DictReader(f)]


def _write_items(folder: Path, items: list[SimItem]) -> None:
    with (folder / "items.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(SimItem)])
        w.writeheader()
        for it in items:
            w.writerow(asdict(it))


def build(folder: Path, *, sets: list[str] | None = None, size: str = "full", seed: int = 0,
          debs: Path | None = None, progress: Progress = _noop) -> list[SimItem]:
    """Build the label sets that ``folder/items.csv`` does not hold yet; returns every item.
    ``debs``: where packages are downloaded and unpacked (default ``folder/debs``; ``bench/corpus.py``'s
    cache has the same layout and can be shared)."""
    if size not in SIZES:
        raise UserError(f"size: {size!r} is not one of {', '.join(SIZES)}")
    wanted = list(BUILDERS) if not sets else list(sets)
    unknown = [s for s in wanted if s not in BUILDERS]
    if unknown:
        raise UserError(f"unknown label set {', '.join(unknown)} (known: {', '.join(BUILDERS)})")
    folder = Path(folder)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    if debs is not None and not (folder / "debs").exists():
        Path(debs).resolve().mkdir(parents=True, exist_ok=True)  # a link to a cache not made yet would dangle
        if not (folder / "debs").is_symlink():
            (folder / "debs").symlink_to(Path(debs).resolve(), target_is_directory=True)
    manifest = folder / "manifest.json"
    recorded = json.loads(manifest.read_text()) if manifest.exists() else {"size": size, "seed": seed}
    if (recorded.get("size"), recorded.get("seed")) != (size, seed):
        raise UserError(f"{folder} was built with size {recorded.get('size')} and seed {recorded.get('seed')}, "
                        f"not {size} and {seed}: use another folder")
    manifest.write_text(json.dumps({"size": size, "seed": seed}) + "\n")
    items = read_items(folder) if (folder / "items.csv").exists() else []
    have = {it.label_set for it in items}
    cfg = SIZES[size]
    for name in wanted:
        if name in have:
            continue
        rng = np.random.default_rng([seed, list(BUILDERS).index(name)])
        items += BUILDERS[name](folder, cfg, rng, progress)
        _halves(items)
        _write_items(folder, items)  # after each set, so an interrupted build keeps what is done
    before = [it.half for it in items]
    _halves(items)  # the split is a function of the groups: a folder built by an older split is brought up to date
    if [it.half for it in items] != before:
        _write_items(folder, items)
    return items
