"""Music and sound effects in one library (soundalike/kinds.py), and the explicit model registry.

The mechanics run with two deterministic fake models (tests/fakes.py), one registered for music and one for
effects, on real encoded audio; test_mixed_library_with_the_real_models runs musicnn and aisfx themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import UserError
from soundalike.kinds import KindRules, parse_kinds
from soundalike.models import load_model, model_names, model_spec, register_model
from soundalike.synth import encode, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 22050


class FakeEffectModel(FakeModel):
    """A second fake: another id, size and rate, as a third model's adapter would be."""

    model_id = "fakefx"
    version = "1"
    sample_rate = 11025
    window_seconds = 1.5
    dim = 24
    tag_names = ()

    def __init__(self) -> None:
        super().__init__()
        self.proj = np.random.default_rng(99).standard_normal((64, self.dim)).astype(np.float32)

    def embed_batch(self, features):
        out = super().embed_batch(features)
        return type(out)(out.embeddings, np.zeros((len(features), 0), np.float32))


def effect(seed: int, seconds: float, sr: int = SR) -> np.ndarray:
    """A short synthetic sound effect: a decaying noise hit, a knock train or a sweep, by ``seed % 3``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    kind = seed % 3
    if kind == 0:
        x = rng.standard_normal(len(t)) * np.exp(-t * (8 + seed))
    elif kind == 1:
        x = np.sin(2 * np.pi * (150 + 10 * seed) * t) * np.exp(-((t % 0.25) * 40))
    else:
        x = np.sin(2 * np.pi * (300 + (1500 + 100 * seed) * t) * t) * np.hanning(len(t))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    (root / "music").mkdir()
    (root / "sfx").mkdir()
    for seed in range(4):
        encode(render_track(seed, seconds=16, sample_rate=SR), SR, root / "music" / f"song{seed}.flac")
    for seed in range(6):
        encode(effect(seed, 1.0 + 0.3 * seed), SR, root / "sfx" / f"fx{seed}.wav")
    return root


@pytest.fixture
def data(tmp_path, folders):
    return Path(shutil.copytree(folders, tmp_path / "data"))


@pytest.fixture(autouse=True)
def fakes():
    register_model("fake", FakeModel)
    register_model("fakefx", FakeEffectModel, kind="effect")


def open_lib(path, **kw):
    return soundalike.open(path, model="fake", effect_model="fakefx", hop=1.5, **kw)


def index(lib, *paths):
    events = list(lib.index(paths))
    assert events[-1].event == "done" and [e.event for e in events].count("done") == 1
    return events


# -- the registry ----------------------------------------------------------------------------------------------
def test_registry_lists_models_by_kind_with_their_licence():
    assert "musicnn" in model_names("music") and "aisfx" in model_names("effect")
    spec = model_spec("aisfx")
    assert spec.kind == "effect" and "CC BY 4.0" in spec.licence and "Ma" in spec.credit
    assert "--no-deps aisfx==0.1.2" in spec.install
    with pytest.raises(UserError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(UserError, match="kind must be one of"):
        register_model("x", FakeModel, kind="speech")


def test_a_third_model_is_one_registration(tmp_path, data, monkeypatch):
    """A model the package does not know, registered by name as an effect model, embeds a library's effects."""
    register_model("thirdfx", FakeEffectModel, kind="effect", licence="test")
    assert "thirdfx" in model_names("effect")
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    lib = soundalike.open(tmp_path / "lib", model="fake", effect_model="thirdfx", hop=1.5)
    index(lib, data)
    assert lib.stats()["model_tracks"] == {"fake": 4, "fakefx": 6}  # FakeEffectModel's model_id
    assert lib.stats()["effect_model"] == "fakefx"


# -- kinds ------------------------------------------------------------------------------------------------------
def test_parse_kinds_and_the_rules():
    rules = parse_kinds("*/sfx/*=effect; loop*.wav=music ;auto", effect_seconds=5)
    assert rules.globs == (("*/sfx/*", "effect"), ("loop*.wav", "music")) and rules.auto
    assert rules.kind_of(Path("/a/sfx/x.flac")) == "effect"
    assert rules.kind_of(Path("/a/loop1.wav"), duration=lambda: 1.0) == "music"  # the glob wins over auto
    assert rules.kind_of(Path("/a/b.wav"), duration=lambda: 1.0) == "effect"  # auto: short
    assert rules.kind_of(Path("/a/b.wav"), duration=lambda: 60.0) == "music"
    assert rules.kind_of(Path("/a/sfx/x.flac"), label="music") == "music"  # a label wins over everything
    assert not parse_kinds("").active and KindRules().kind_of(Path("/x/sfx/y.wav")) == "music"
    for bad in ("*.wav", "*.wav=speech", "=effect"):
        with pytest.raises(UserError, match="kinds: expected GLOB=KIND"):
            parse_kinds(bad)
    with pytest.raises(UserError, match="label 'kind'"):
        rules.kind_of(Path("/a/b.wav"), label="loud")


def test_a_music_library_is_indexed_as_before(tmp_path, data):
    """No kinds: one store, no effect model, the vectors of a library built by the single-model path."""
    lib = open_lib(tmp_path / "lib")
    index(lib, data)
    assert lib.stats()["model_tracks"] == {"fake": 10} and lib.stats()["effect_model"] is None
    assert not lib.holds_effects()
    assert sorted(p.name for p in (tmp_path / "lib").iterdir() if p.name.startswith("index")) == ["index", "index.lock"]
    plain = soundalike.open(tmp_path / "plain", model=FakeModel(), hop=1.5)
    index(plain, data)
    for f in sorted(data.rglob("*.*")):
        a, b = lib.track(f), plain.track(f)
        assert a.model_id == b.model_id == "fake"
        np.testing.assert_array_equal(lib.catalog.track_vector(a.id), plain.catalog.track_vector(b.id))
    q = data / "music" / "song2.flac"
    assert [h.path for h in lib.search(q).hits] == [h.path for h in plain.search(q).hits]


def test_mixed_library_compares_like_with_like(tmp_path, data, monkeypatch, capsys):
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    monkeypatch.setenv("SOUNDALIKE_EFFECT_SECONDS", "8")
    lib = open_lib(tmp_path / "lib")
    events = index(lib, data)
    assert events[0].event == "scan" and (events[0].files_total, events[0].files_todo) == (10, 10)
    assert [e.event for e in events].count("scan") == 1
    done = [e.files_done for e in events]
    assert done == sorted(done) and done[-1] == 10 == events[-1].files_total == events[-1].files_todo
    assert not events[-1].errors and sum(e.event == "indexed" for e in events) == 10
    stats = lib.stats()
    assert stats["model_tracks"] == {"fake": 4, "fakefx": 6} and stats["effect_model"] == "fakefx"
    assert lib.store.count("tracks") == 4 and lib.store_of("fakefx").count("tracks") == 6
    assert (tmp_path / "lib" / "index-fakefx").is_dir()

    def kinds_of(result):
        return ["sfx" if "/sfx/" in h.path else "music" for h in result.hits]

    fx = lib.search(data / "sfx" / "fx1.wav", top=10)
    assert kinds_of(fx)[:6] == ["sfx"] * 6 and fx.hits[0].path.endswith("fx1.wav")
    song = lib.search(data / "music" / "song3.flac", top=10)
    assert kinds_of(song)[:4] == ["music"] * 4 and song.hits[0].path.endswith("song3.flac")
    fx_id = lib.track(data / "sfx" / "fx4.wav").id
    assert set(kinds_of(lib.similar(fx_id, top=10))) == {"sfx"}  # a track's own model only
    assert set(kinds_of(lib.similar(lib.track(data / "music" / "song0.flac").id, top=10))) == {"music"}
    assert set(kinds_of(lib.search(fx_id, top=10))) == {"sfx"}

    # a second run changes nothing; a removed effect leaves its store
    assert all(e.event in ("scan", "done") for e in index(lib, data))
    (data / "sfx" / "fx0.wav").unlink()
    index(lib, data)
    assert lib.store_of("fakefx").count("tracks") == 5 and lib.stats()["model_tracks"]["fakefx"] == 5

    # the index rebuilt from the catalogue gives the same answers
    before = [h.path for h in lib.search(data / "sfx" / "fx2.wav").hits]
    list(lib.rebuild_index())
    assert lib.store.count("tracks") == 4 and lib.store_of("fakefx").count("tracks") == 5
    assert [h.path for h in lib.search(data / "sfx" / "fx2.wav").hits] == before

    # info shows how many tracks each model holds
    lib.close()
    code, out, _ = cli(capsys, "info", "-L", str(lib.path))
    assert code == 0 and "fake 4, fakefx 5" in out


def test_duplicates_radio_and_paths_stay_within_a_model(tmp_path, data, monkeypatch):
    """Each of these compares track vectors: in a library of two models, only vectors of one model."""
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    shutil.copy(data / "sfx" / "fx3.wav", data / "sfx" / "fx3-copy.wav")
    lib = open_lib(tmp_path / "lib")
    index(lib, data)
    fx = [lib.track(data / "sfx" / f"fx{i}.wav").id for i in range(3)]
    songs = [lib.track(data / "music" / f"song{i}.flac").id for i in range(3)]
    pairs = lib.duplicates()
    names = {(Path(lib.track(p.a).path).name, Path(lib.track(p.b).path).name) for p in pairs}
    assert names == {("fx3.wav", "fx3-copy.wav")} or names == {("fx3-copy.wav", "fx3.wav")}
    assert {e.track_id for e in lib.radio([fx[0]], n=5).entries} <= lib.catalog.track_ids_of_model("fakefx")
    assert {e.track_id for e in lib.radio([songs[0]], n=5).entries} <= lib.catalog.track_ids_of_model("fake")
    steps = lib.sonic_path(fx[0], fx[1], steps=3).entries
    assert {e.track_id for e in steps} <= lib.catalog.track_ids_of_model("fakefx") and len(steps) >= 3
    with pytest.raises(UserError, match="different models"):
        lib.sonic_path(fx[0], songs[0])
    with pytest.raises(UserError, match="different models"):
        lib.search([fx[0], songs[1]])


def test_a_label_moves_a_file_to_the_other_model(tmp_path, data, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    lib = open_lib(tmp_path / "lib")
    index(lib, data)
    song = lib.track(data / "music" / "song1.flac")
    lib.set_labels(song.id, kind="effect")
    index(lib, data)
    assert lib.track(data / "music" / "song1.flac").model_id == "fakefx"
    assert lib.stats()["model_tracks"] == {"fake": 3, "fakefx": 7}
    assert lib.store.count("tracks") == 3 and lib.store_of("fakefx").count("tracks") == 7


def test_a_new_music_model_version_re_embeds_the_music_only(tmp_path, data, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    monkeypatch.setenv("SOUNDALIKE_EFFECT_SECONDS", "8")  # the fakes are not musicnn: queries go by duration
    lib = open_lib(tmp_path / "lib")
    index(lib, data)
    lib.close()

    class FakeModel2(FakeModel):
        version = "2"

    register_model("fake", FakeModel2)
    lib = open_lib(tmp_path / "lib")
    events = index(lib, data)
    assert sum(e.event == "indexed" for e in events) == 4  # the songs; the effects' model did not change
    assert lib.catalog.get_meta("model_version") == "2"
    assert lib.search(data / "music" / "song1.flac").hits[0].path.endswith("song1.flac")


def test_auto_uses_the_measured_duration_rule(tmp_path, data, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_KINDS", "auto")
    monkeypatch.setenv("SOUNDALIKE_EFFECT_SECONDS", "8")
    lib = open_lib(tmp_path / "lib")
    index(lib, data)
    assert lib.stats()["model_tracks"] == {"fake": 4, "fakefx": 6}


def test_bad_kinds_setting_is_one_line(tmp_path, data, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=speech")
    lib = open_lib(tmp_path / "lib")
    with pytest.raises(UserError, match="kinds: expected GLOB=KIND"):
        index(lib, data)


def _real_models_installed() -> bool:
    from soundalike.errors import ModelError
    from soundalike.models.aisfx.weights import locate_checkpoint
    from soundalike.models.musicnn.weights import locate_checkpoints

    try:
        return locate_checkpoint().is_file() and (locate_checkpoints() / "MSD_musicnn" / ".index").is_file()
    except ModelError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _real_models_installed() and not __import__("os").environ.get("CI"),
                    reason="musicnn and aisfx weights not installed (make setup)")
def test_mixed_library_with_the_real_models(tmp_path, data, monkeypatch):
    """musicnn for the songs, aisfx for the effects, each in its own store: an effect query lists effects first
    and a music excerpt lists music first; the effect store holds 512-d vectors."""
    monkeypatch.setenv("SOUNDALIKE_KINDS", "auto")
    monkeypatch.setenv("SOUNDALIKE_EFFECT_SECONDS", "8")
    monkeypatch.setenv("SOUNDALIKE_LANDMARKS", "0")
    monkeypatch.setenv("SOUNDALIKE_DESCRIPTORS", "0")
    lib = soundalike.open(tmp_path / "lib")  # the defaults: musicnn, aisfx
    index(lib, data)
    assert lib.stats()["model_tracks"] == {"aisfx": 6, "musicnn": 4}
    assert int(lib.catalog.get_meta("effect_dim")) == 512 and lib.store_of("aisfx").count("tracks") == 6
    query = tmp_path / "knock.wav"
    encode(effect(13, 1.2), SR, query)  # a knock train not in the library (seed 13 % 3 == 1)
    hits = lib.search(query, top=10).hits
    assert all("/sfx/" in h.path for h in hits[:6])
    excerpt = tmp_path / "excerpt.flac"
    encode(render_track(2, seconds=16, sample_rate=SR)[SR * 4: SR * 14], SR, excerpt)
    hits = lib.search(excerpt, top=10).hits
    assert hits[0].path.endswith("song2.flac") and all("/music/" in h.path for h in hits[:4])


def test_the_server_searches_a_mixed_library(tmp_path, data, monkeypatch):
    """`soundalike serve` over a library of both kinds: one effect store shared by its threads."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app

    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    lib = open_lib(tmp_path / "lib")
    index(lib, data)
    fx = lib.track(data / "sfx" / "fx2.wav").id
    lib.close()
    with TestClient(create_app(tmp_path / "lib", model=FakeModel())) as c:
        stats = c.get("/api/stats").json()
        assert stats["model_tracks"] == {"fake": 4, "fakefx": 6}
        files = {"file": ("q.wav", (data / "sfx" / "fx2.wav").read_bytes(), "application/octet-stream")}
        for _ in range(3):  # several pool threads, one store
            r = c.post("/api/search", files=files, data={"top": "6"})
            assert r.status_code == 200, r.text
            assert all("/sfx/" in h["path"] for h in r.json()["hits"])
        r = c.get(f"/api/tracks/{fx}/similar", params={"top": 5})
        assert r.status_code == 200 and all("/sfx/" in h["path"] for h in r.json()["hits"])
