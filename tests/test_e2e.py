"""End to end with the real default model (musicnn): every format, real music, degraded queries.

The real-music library comes from scripts/demo_library.py (the Wesnoth soundtrack from
Debian's archive); where apt is unavailable it is synthesised instead, and the test says so.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.decode import decode
from soundalike.synth import add_noise, encode, excerpt
from tests.conftest import data_lock

ROOT = Path(__file__).resolve().parent.parent
SR = 22050
FORMATS = [
    ("mp3", {}), ("wav", {}), ("wav", {"codec": "pcm_s24le"}), ("wav", {"codec": "pcm_f32le"}),
    ("flac", {}), ("aiff", {}), ("m4a", {}), ("ogg", {}), ("opus", {}),
]

pytestmark = pytest.mark.slow


def degraded(x, sr, start, path, *, seconds=10.0, snr=20.0, seed=0):
    """A 10 s excerpt with white noise at `snr` dB, re-encoded as 64 kbit/s MP3."""
    clip = add_noise(excerpt(x, sr, start, seconds), snr, np.random.default_rng(seed))
    encode(clip, sr, path, bitrate=64000)
    return path


@pytest.fixture(scope="module")
def demo_music():
    """Real music (a few Wesnoth tracks), or synthesised music where apt is unavailable."""
    music = ROOT / "tests" / ".data" / "music"
    with data_lock():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(music),
                        "--max-tracks", "6", "--max-seconds", "150"], check=True)
    manifest = json.loads((music / "manifest.json").read_text())
    if manifest["kind"] != "real":
        print("apt unavailable: the end-to-end tests run on synthesised music")
    return music, manifest


@pytest.fixture(scope="module")
def formats_lib(tmp_path_factory, demo_music):
    """30 s of real music in every format (each file a different part of the demo tracks), plus a corrupt file."""
    music, manifest = demo_music
    base = tmp_path_factory.mktemp("e2e")
    folder = base / "music"
    folder.mkdir()
    sources = [decode(music / t["file"], sample_rate=SR) for t in manifest["tracks"]]
    # non-overlapping parts of at most 30 s, taken from each track in turn
    parts = [(k, s) for k, src in enumerate(sources) for s in range(0, max(int(src.duration) - 20, 1), 30)]
    parts.sort(key=lambda p: (p[1], p[0]))
    assert len(parts) >= len(FORMATS), "not enough demo music for one distinct part per format"
    signals = {}
    for i, (ext, kw) in enumerate(FORMATS):
        k, start = parts[i]
        x = excerpt(sources[k].samples, SR, start, 30.0)
        name = f"t{i}-{kw.get('codec', ext)}.{ext}"
        encode(x, SR, folder / name, channels=2 if i % 2 else 1, **kw)
        signals[name] = x
    (folder / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    lib = soundalike.open(base / "lib")
    events = list(lib.index([folder]))
    return base, lib, signals, events[-1], manifest["kind"]


def test_every_format_is_indexed_and_the_corrupt_file_reported(formats_lib):
    _, lib, signals, done, _ = formats_lib
    assert lib.catalog.track_count() == len(FORMATS)
    assert [Path(p).name for p, _ in done.error_list] == ["corrupt.flac"]
    for t in lib.tracks():
        assert t.duration == pytest.approx(len(signals[Path(t.path).name]) / SR, abs=0.2), t.path
        assert t.model_id == "musicnn"
    assert lib.stats()["dim"] == 200


def test_reindexing_is_a_no_op(formats_lib):
    base, lib, _, _, _ = formats_lib
    events = list(lib.index([base / "music"]))
    assert events[0].files_todo == 0
    assert not [e for e in events if e.event == "indexed"]


@pytest.mark.parametrize("index", range(len(FORMATS)))
def test_degraded_excerpt_of_each_format_ranks_its_source_first(formats_lib, tmp_path, index):
    _, lib, signals, _, kind = formats_lib
    name = sorted(signals, key=lambda n: int(n.split("-")[0][1:]))[index]
    start = 2.0 + 1.7 * index
    result = lib.search(degraded(signals[name], SR, start, tmp_path / "q.mp3", seed=index), top=3)
    assert Path(result.hits[0].path).name == name
    assert result.hits[0].score > result.hits[1].score
    if kind == "real":  # synthesised loops repeat too exactly for a 3 s-window model to place a clip
        assert abs(result.hits[0].offset - start) <= 1.5


@pytest.fixture(scope="module")
def real_lib(tmp_path_factory, demo_music):
    music, manifest = demo_music
    lib = soundalike.open(tmp_path_factory.mktemp("real") / "lib")
    list(lib.index([music]))
    return music, manifest, lib


def test_real_music_degraded_excerpts_rank_their_source_first(real_lib, tmp_path):
    music, manifest, lib = real_lib
    rng = np.random.default_rng(5)
    for i, t in enumerate(manifest["tracks"]):
        audio = decode(music / t["file"], sample_rate=44100)
        start = float(rng.uniform(0, max(audio.duration - 11, 0)))
        q = degraded(audio.samples, 44100, start, tmp_path / f"q{i}.mp3", seed=i)
        result = lib.search(q, top=3)
        assert Path(result.hits[0].path).name == t["file"], (t["file"], [h.path for h in result.hits])
        if manifest["kind"] == "real":
            assert abs(result.hits[0].offset - start) <= 1.5, (t["file"], start, result.hits[0].offset)


def test_similar_on_real_music_returns_other_tracks(real_lib):
    _, manifest, lib = real_lib
    result = lib.similar(1, top=3)
    assert len(result.hits) == min(3, len(manifest["tracks"]) - 1)
    assert 1 not in [h.track_id for h in result.hits]


def test_a_whole_track_as_the_reference_ranks_itself_first_at_offset_0(real_lib):
    """The main use: "tracks that sound like this song", with the whole song (up to 150 s here; longer than
    two network batches, which once failed) as the reference."""
    music, manifest, lib = real_lib
    for t in sorted(manifest["tracks"], key=lambda t: -t["seconds"])[:2]:  # 95 and 85 s of Wesnoth
        result = lib.search(music / t["file"], top=3)
        best = result.hits[0]
        assert Path(best.path).name == t["file"], (t["file"], [h.path for h in result.hits])
        assert best.offset == pytest.approx(0.0, abs=0.1) and best.copy
        assert result.query.end - result.query.start > 80 or manifest["kind"] != "real"
