"""Text search's seeding (``soundalike/text_seeds.py``): the tracks a library names with the query's words pull in
the tracks that sound like them. A real small library: rumbling noise bursts ("explosions") and synthetic music,
indexed with the deterministic ``FakeModel``; the text model is the bundled MiniLM."""

import json

import numpy as np
import pytest

from soundalike.synth import render_track
from soundalike.text import TextSearcher
from tests.conftest import cli
from tests.fakes import fake_library

SR = 8000
NAMED, UNNAMED = (0, 1, 2), (3, 4)  # explosions the user labelled, and the ones left to find
MUSIC = range(10, 18)


def _boom(seed: int, seconds: float = 6.0) -> np.ndarray:
    """Three decaying bursts of low-passed noise at random times."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * SR), np.float32)
    m = int(1.5 * SR)
    for start in rng.uniform(0, seconds - 1.5, 3):
        burst = np.convolve(rng.standard_normal(m), np.ones(80) / 80, "same") * np.exp(-np.arange(m) / (0.3 * SR))
        x[int(start * SR) : int(start * SR) + m] += burst.astype(np.float32)
    return 0.8 * x / np.abs(x).max()


@pytest.fixture(scope="module")
def booms(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    tracks = {s: _boom(s) for s in (*NAMED, *UNNAMED)}
    tracks.update({s: render_track(s - 10, seconds=6, sample_rate=SR) for s in MUSIC})
    lib = fake_library(root, tracks, SR)
    for s in NAMED:
        lib.set_labels(root / "music" / f"t{s}.flac", category="explosion")
    yield lib, root
    lib.close()


def _names(result) -> list[str]:
    return [h.path.rsplit("/", 1)[-1].removesuffix(".flac") for h in result.hits]


def test_tracks_named_explosion_find_the_unnamed_ones_that_sound_like_them(booms):
    lib, _ = booms
    result = lib.text_search("explosion", top=8)
    names = _names(result)
    assert set(names[:3]) == {f"t{s}" for s in NAMED}  # the keyword still ranks the named ones first
    assert set(names[3:5]) == {f"t{s}" for s in UNNAMED}, names  # then what sounds like them, before any music
    hit = result.hits[3]
    assert hit.keyword_score == 0 and hit.seed_score > 1.0
    seed = next(c for c in hit.explanation if c.kind == "seed")
    assert seed.name == "sounds like 3 tracks named 'explosion'"
    assert seed.score == pytest.approx(hit.seed_score, abs=1e-3) and "vs library mean" in seed.detail
    assert "sounds like 3 tracks named 'explosion' +" in hit.why()
    # the premise: without the seeds, the tags alone put music before an unnamed explosion
    plain = TextSearcher(lib.catalog).search("explosion", top=8, seeding=None)
    assert set(_names(plain)[3:5]) != {f"t{s}" for s in UNNAMED}
    assert all(h.seed_score == 0 for h in plain.hits)


def test_seeds_outside_the_filter_still_count(booms):
    """A library where some tracks are named and the user searches the rest (the similarity benchmark's
    ``--named-half``): the named tracks are filtered out of the results, and still seed them."""
    lib, _ = booms
    result = lib.text_search("explosion", top=3, where="category is null")
    assert set(_names(result)[:2]) == {f"t{s}" for s in UNNAMED}
    assert result.candidates == len(UNNAMED) + len(MUSIC) and not result.weak


def test_weak_seeds_count_less_and_no_match_changes_nothing(booms):
    lib, root = booms
    full = lib.text_search("explosion", top=8).hits[3].seed_score
    assert full > 1.0
    # the same tracks matched on one term of two ("explosion" of "explosion rumble"): half-strength seeds
    half = lib.text_search("explosion rumble", top=8)
    unnamed = [h for h in half.hits if h.keyword_score == 0][0]
    assert _names(half)[3] in {f"t{s}" for s in UNNAMED}
    assert unnamed.seed_score == pytest.approx(full / 2, rel=0.01)
    # no keyword matches: exactly the ranking without seeding
    on, off = lib.text_search("thunder", top=8), TextSearcher(lib.catalog).search("thunder", top=8, seeding=None)
    assert [(h.track_id, h.score) for h in on.hits] == [(h.track_id, h.score) for h in off.hits]


def test_the_cli_why_column_the_json_and_the_api_say_so(booms, capsys):
    _, root = booms
    code, out, _ = cli(capsys, "text", "explosion", "--top", "5", "-L", root / "lib")
    assert code == 0 and "sounds like 3 tracks named" in out
    code, out, _ = cli(capsys, "text", "explosion", "--top", "5", "--json", "-L", root / "lib")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[3]["seed_score"] > 0
    first = hits[3]["explanation"][0]
    assert first["kind"] == "seed" and first["name"] == "sounds like 3 tracks named 'explosion'"
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app
    from tests.fakes import FakeModel

    with TestClient(create_app(root / "lib", model=FakeModel())) as client:
        r = client.post("/api/search/text", json={"query": "explosion", "top": 5})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][3]["explanation"][0]["name"] == "sounds like 3 tracks named 'explosion'"


def test_in_a_library_of_music_and_effects_each_model_compares_its_own_tracks(tmp_path, monkeypatch):
    """Effects embedded by the effect model (``kinds.py``; here the fake of tests/test_kinds.py, which has no
    tags) are found by the words of the effects named so; music, in another vector space, is not pulled in."""
    import soundalike
    from soundalike.models import register_model
    from soundalike.synth import encode
    from tests.fakes import FakeModel
    from tests.test_kinds import FakeEffectModel

    register_model("fake", FakeModel)
    register_model("fakefx", FakeEffectModel, kind="effect")
    monkeypatch.setenv("SOUNDALIKE_KINDS", "*/sfx/*=effect")
    (tmp_path / "music").mkdir()
    (tmp_path / "sfx").mkdir()
    for s in range(4):
        encode(render_track(s, seconds=8, sample_rate=SR), SR, tmp_path / "music" / f"song{s}.flac")
    rng = np.random.default_rng(7)
    for s in (*NAMED, *UNNAMED):
        encode(_boom(s, seconds=3.0), SR, tmp_path / "sfx" / f"fx{s}.wav")
    for s in range(5):  # other effects: short chirps
        t = np.arange(int(1.5 * SR)) / SR
        encode((0.5 * np.sin(2 * np.pi * (400 + 300 * s + 900 * t) * t)).astype(np.float32) * rng.uniform(0.5, 1),
               SR, tmp_path / "sfx" / f"chirp{s}.wav")
    lib = soundalike.open(tmp_path / "lib", model="fake", effect_model="fakefx", hop=1.5)
    assert list(lib.index([tmp_path / "music", tmp_path / "sfx"]))[-1].event == "done"
    assert lib.stats()["model_tracks"] == {"fake": 4, "fakefx": 10}
    for s in NAMED:
        lib.set_labels(tmp_path / "sfx" / f"fx{s}.wav", category="explosion")
    result = lib.text_search("explosion", top=16, where="category is null")
    names = [h.path.rsplit("/", 1)[-1] for h in result.hits]
    assert result.candidates == 11 and set(names[:2]) == {f"fx{s}.wav" for s in UNNAMED}, names
    assert result.hits[0].explanation[0].name == "sounds like 3 tracks named 'explosion'"
    assert all(h.seed_score == 0 for h in result.hits if "/music/" in h.path)
    lib.close()
