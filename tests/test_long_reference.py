"""Whole songs and long recordings as the reference: the main use of the tool.

A reference of any length is decoded and embedded streaming, in batches; the
window budget (setting ``query_windows``) widens the query hop of a long one.
These run through the Library, the CLI and the REST API with ``FakeModel``;
tests/test_e2e.py searches whole tracks with the real model.
"""

import json
from pathlib import Path

import pytest

import soundalike
from soundalike.models import register_model
from soundalike.segment import widened_hop
from soundalike.synth import encode, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 22050
SECONDS = {0: 100.0, 1: 130.0, 2: 115.0, 3: 160.0}  # 5 to 8 decode blocks of 20 s each


@pytest.fixture(scope="module")
def songs():
    return {seed: render_track(seed, seconds=s, sample_rate=SR) for seed, s in SECONDS.items()}


@pytest.fixture(scope="module")
def library(tmp_path_factory, songs):
    """Four whole songs, and a long reference that plays them one after the other (505 s)."""
    base = tmp_path_factory.mktemp("long")
    music = base / "music"
    music.mkdir()
    for seed, x in songs.items():
        encode(x, SR, music / f"song{seed}.ogg")
    encode(iter(songs.values()), SR, base / "medley.ogg")
    lib = soundalike.open(base / "lib", model=FakeModel(), hop=2.0)
    events = list(lib.index([music]))
    assert events[-1].event == "done" and not events[-1].error_list
    ids = {Path(t.path).stem: t.id for t in lib.tracks()}
    lib.close()
    return base, ids


@pytest.fixture
def lib(library):
    base, _ = library
    opened = soundalike.open(base / "lib", model=FakeModel())
    yield opened
    opened.close()


def starts_in_medley() -> dict[int, float]:
    out, t = {}, 0.0
    for seed, s in SECONDS.items():
        out[seed] = t
        t += s
    return out


def test_a_whole_song_as_the_reference_ranks_itself_first_at_offset_0(lib, library):
    base, ids = library
    for seed in SECONDS:
        path = base / "music" / f"song{seed}.ogg"
        for rerank in (0, 10):
            result = lib.search(path, top=3, rerank=rerank)
            best = result.hits[0]
            assert best.track_id == ids[f"song{seed}"], (seed, rerank, [h.path for h in result.hits])
            assert best.offset == pytest.approx(0.0, abs=0.1)
            assert result.query.end == pytest.approx(SECONDS[seed], abs=0.1)
            assert best.votes == result.query.informative_windows > 48
            if rerank:
                assert best.copy


def test_a_reference_of_several_hundred_windows_finds_every_song_it_plays(lib, library):
    """The medley at an explicit 1 s hop: about 500 windows in 32 network batches, no budget."""
    base, ids = library
    result = lib.search(base / "medley.ogg", top=4, query_hop=1.0)
    assert result.query.windows >= 500 and result.query.hop == 1.0
    assert {h.track_id for h in result.hits} == set(ids.values())
    for h in result.hits:  # track time = query time + offset: each song starts where the medley plays it
        seed = int(Path(h.path).stem.removeprefix("song"))
        assert h.offset == pytest.approx(-starts_in_medley()[seed], abs=1.0), h.path
        agreeing = [m for m in h.matches if abs(m.track_start - m.query_start - h.offset) <= 1.5]
        assert len(agreeing) >= SECONDS[seed] / 2  # most of the song's 1 s windows, and only those
        assert all(starts_in_medley()[seed] - 1 <= m.query_start <= starts_in_medley()[seed] + SECONDS[seed]
                   for m in agreeing)


def test_a_long_reference_is_embedded_within_the_window_budget(lib, library, monkeypatch):
    base, ids = library
    dense = lib.search(base / "medley.ogg", top=4, query_hop=2 * 2 / 3)
    budgeted = lib.search(base / "medley.ogg", top=4)  # default: at most 120 windows
    assert dense.query.windows > 300
    assert budgeted.query.windows <= 121 and budgeted.query.hop == pytest.approx(4.3)  # (505 s - 2 s) / 119, rounded up
    assert {h.track_id for h in budgeted.hits} == set(ids.values())
    monkeypatch.setenv("SOUNDALIKE_QUERY_WINDOWS", "0")  # no budget: the default hop
    assert lib.search(base / "medley.ogg", top=1, rerank=0).query.windows == dense.query.windows
    monkeypatch.setenv("SOUNDALIKE_QUERY_WINDOWS", "40")
    narrow = lib.search(base / "medley.ogg", top=1, rerank=0).query
    assert narrow.hop == 8.0 and narrow.windows < 70  # at most 4 windows apart, so more than 40 here
    monkeypatch.setenv("SOUNDALIKE_QUERY_WINDOWS", "-1")
    with pytest.raises(soundalike.UserError, match="query_windows"):
        lib.search(base / "medley.ogg", top=1)


def test_similar_to_a_whole_track_thins_its_windows_to_the_budget(lib, library, monkeypatch):
    _, ids = library
    full = lib.similar(ids["song3"], top=3)
    assert full.query.windows == full.query.informative_windows >= 79 and full.query.hop == 2.0
    monkeypatch.setenv("SOUNDALIKE_QUERY_WINDOWS", "30")
    thin = lib.similar(ids["song3"], top=3)
    assert thin.query.windows == 27 and thin.query.hop == 6.0  # every 3rd of 80
    assert thin.hits[0].track_id == full.hits[0].track_id
    monkeypatch.setenv("SOUNDALIKE_QUERY_WINDOWS", "10")
    widest = lib.similar(ids["song3"], top=3).query
    assert widest.windows == 20 and widest.hop == 8.0  # every 4th: windows at most 4 windows' length apart


def test_widened_hop_bounds():
    assert widened_hop(None, hop=2.0, window_seconds=3.0, max_windows=120) == 2.0
    assert widened_hop(200.0, hop=2.0, window_seconds=3.0, max_windows=120) == 2.0
    assert widened_hop(300.0, hop=2.0, window_seconds=3.0, max_windows=120) == 2.5
    assert widened_hop(7200.0, hop=2.0, window_seconds=3.0, max_windows=120) == 12.0  # 4 windows: 600 windows
    assert widened_hop(7200.0, hop=2.0, window_seconds=3.0, max_windows=0) == 2.0


def test_the_cli_searches_with_a_whole_song(library, capsys):
    register_model("fake", FakeModel)
    base, ids = library
    code, out, err = cli(capsys, "search", base / "music" / "song3.ogg", "-L", base / "lib", "--json", "--top", 2)
    assert code == 0, err
    data = json.loads(out)
    assert data["hits"][0]["track_id"] == ids["song3"] and data["hits"][0]["offset"] == 0
    code, out, err = cli(capsys, "search", base / "medley.ogg", "-L", base / "lib", "--top", 4)
    assert code == 0, err
    assert all(f"song{seed}.ogg" in out for seed in SECONDS)


def test_the_api_searches_with_a_whole_song(library):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app

    base, ids = library
    with TestClient(create_app(base / "lib", model=FakeModel())) as client:
        data = (base / "medley.ogg").read_bytes()
        r = client.post("/api/search", files={"file": ("medley.ogg", data, "audio/ogg")}, data={"top": "4"})
        assert r.status_code == 200, r.text
        assert {h["track_id"] for h in r.json()["hits"]} == set(ids.values())
        r = client.post("/api/search", files={"file": ("medley.ogg", data, "audio/ogg")},
                        data={"top": "4", "rerank": "0"})
        assert r.status_code == 200, r.text

