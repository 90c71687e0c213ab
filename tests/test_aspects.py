"""Aspects (``--like``): weights over feature groups rank the tracks instead of the default similarity."""

import math

import numpy as np
import pytest

from soundalike import aspects
from soundalike.aspects import FeatureTable, SeedFeatures, key_position
from soundalike.errors import UserError
from tests.fakes import fake_library

SR = 8000


def bursts(bpm: float, freq: float, *, seconds: float = 20.0, noise: float = 0.0) -> np.ndarray:
    """Decaying tone bursts of ``freq`` Hz (plus ``noise``) on every beat at ``bpm``: a tempo and a timbre."""
    rng = np.random.default_rng(0)
    x = np.zeros(int(seconds * SR), np.float32)
    t = np.arange(int(0.08 * SR)) / SR
    burst = (np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(len(t))) * np.exp(-t / 0.02)
    for s in np.arange(0, seconds, 60.0 / bpm):
        i = int(s * SR)
        x[i : i + len(t)] += burst[: len(x) - i]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def grooves(tmp_path_factory):
    """t1 (the query): 120 BPM, low tone. t2: the same tempo, a bright noisy timbre. t3: nearly t1's timbre
    at 92 BPM. t4, t5: other tempos and timbres."""
    root = tmp_path_factory.mktemp("aspects")
    lib = fake_library(root, {1: bursts(120, 300), 2: bursts(120, 2400, noise=0.5), 3: bursts(92, 320),
                              4: bursts(150, 1200, noise=1.0), 5: bursts(75, 600, noise=0.2)}, SR)
    yield lib, root
    lib.close()


def _names(result) -> list[str]:
    return [h.path.rsplit("/", 1)[-1] for h in result.hits]


def test_rhythm_ranks_the_same_tempo_first_where_the_default_ranks_the_same_timbre(grooves):
    lib, root = grooves
    q = lib.track(root / "music" / "t1.flac").id
    assert {t.path.rsplit("/", 1)[-1]: round(t.bpm) for t in lib.tracks()}["t2.flac"] == 120  # measured at indexing
    default = lib.similar(q)
    assert _names(default)[0] == "t3.flac" and default.like is None
    assert all(h.aspect_scores is None for h in default.hits)
    rhythm = lib.similar(q, like="rhythm")
    assert _names(rhythm)[0] == "t2.flac" and rhythm.like == "rhythm"
    top = rhythm.hits[0]
    assert top.aspect_scores["tempo"] == 1.0 and top.votes > 0 and top.matches  # the search's evidence is kept
    assert [h.score for h in rhythm.hits] == sorted((h.score for h in rhythm.hits), reverse=True)
    assert _names(lib.similar(q, like="timbre"))[0] == "t3.flac"


def test_like_by_reference_audio_and_with_a_filter(grooves):
    lib, root = grooves
    result = lib.search(root / "music" / "t1.flac", like="rhythm", top=3)
    assert _names(result)[:2] == ["t1.flac", "t2.flac"] and len(result.hits) == 3 and result.like == "rhythm"
    filtered = lib.similar(lib.track(root / "music" / "t1.flac").id, like="rhythm", where="bpm < 100")
    assert set(_names(filtered)) == {"t3.flac", "t5.flac"}


def test_unknown_aspect_is_one_line_naming_the_valid_ones(grooves):
    lib, _ = grooves
    with pytest.raises(UserError, match="unknown aspect 'groove'; --like takes one of timbre, instruments, genre, "
                                        "mood, rhythm, tonality"):
        lib.similar(1, like="groove")
    with pytest.raises(UserError, match="does not combine with --not"):
        lib.search(1, negatives=[2], like="mood")


def _table(**columns) -> FeatureTable:
    n = len(columns["ids"])
    return FeatureTable(ids=np.array(columns["ids"]), vectors=columns.get("vectors"), tags=columns.get("tags"),
                        log_bpm=np.array(columns.get("log_bpm", [math.nan] * n), float),
                        keys=np.array(columns.get("keys", [(math.nan, math.nan)] * n), float),
                        tag_names=columns.get("tag_names", ()))


def test_circle_of_fifths_puts_the_relative_minor_and_the_dominant_nearest():
    assert key_position("A minor") == (key_position("C major")[0], 1.0)
    assert key_position("C major") == (0.0, 0.0) and key_position("G major") == (1.0, 0.0)
    assert math.isnan(key_position(None)[0]) and math.isnan(key_position("H dorian")[0])
    names = ["G major", "F# major", "A minor", "C minor", None]
    table = _table(ids=[1, 2, 3, 4, 5], keys=[key_position(k) for k in names])
    ranked = aspects.rank(table, aspects.ASPECTS["tonality"], [SeedFeatures(None, None, key=key_position("C major"))])
    # A minor (relative, mode differs: 0.5) before G major (a fifth: 1) before C minor (3 fifths + 0.5) before
    # F# major (6 fifths); the track with no key sits in the middle
    assert [r.track_id for r in ranked] == [3, 1, 5, 4, 2]


def test_instruments_read_instrument_tags_not_genre_tags():
    names = ("msd:rock", "mtt:jazz", "mtt:piano", "mtt:guitar")
    seed = SeedFeatures(None, np.array([0.9, 0.1, 0.9, 0.1]))  # rock on the piano
    tags = np.array([[0.1, 0.9, 0.9, 0.1],  # 1: jazz on the piano
                     [0.9, 0.1, 0.1, 0.9],  # 2: rock on the guitar
                     [0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]])
    table = _table(ids=[1, 2, 3, 4], tags=tags, tag_names=names)
    assert aspects.rank(table, aspects.ASPECTS["instruments"], [seed])[0].track_id == 1
    assert aspects.rank(table, aspects.ASPECTS["genre"], [seed])[0].track_id == 2


def test_an_aspect_without_any_of_its_features_says_so():
    table = _table(ids=[1, 2])
    with pytest.raises(UserError, match="stores none of its features"):
        aspects.rank(table, aspects.ASPECTS["mood"], [SeedFeatures(None, None)])


def test_cli_like_on_similar_and_search(grooves, capsys):
    import json

    from soundalike.models import register_model
    from tests.conftest import cli
    from tests.fakes import FakeModel

    register_model("fake", FakeModel)
    _, root = grooves
    lib, t1 = root / "lib", root / "music" / "t1.flac"
    code, out, err = cli(capsys, "similar", t1, "-L", lib, "--like", "rhythm", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["like"] == "rhythm" and data["hits"][0]["path"].endswith("t2.flac")
    assert set(data["hits"][0]["aspect_scores"]) == {"tempo", "embedding"}
    code, out, err = cli(capsys, "search", t1, "-L", lib, "--like", "Rhythm", "--top", 2)
    assert code == 0, err
    assert "ranked by rhythm" in out and "t2.flac" in out
    code, out, err = cli(capsys, "similar", t1, "-L", lib, "--json")
    assert code == 0 and json.loads(out)["like"] is None and json.loads(out)["hits"][0]["path"].endswith("t3.flac")
    code, out, err = cli(capsys, "search", t1, "-L", lib, "--like", "groove")
    assert code == 2 and err.strip().count("\n") == 0
    assert "unknown aspect 'groove'; --like takes one of timbre, instruments, genre, mood, rhythm, tonality" in err
    code, out, _ = cli(capsys, "similar", "--help")
    assert code == 0 and "--like" in out and "similar 42 --like instruments" in out


def test_api_takes_like_on_search_and_the_similar_shelf(grooves):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app
    from tests.fakes import FakeModel

    lib, root = grooves
    t1 = lib.track(root / "music" / "t1.flac").id
    with TestClient(create_app(root / "lib", model=FakeModel())) as client:
        r = client.post("/api/search", data={"track": str(t1), "like": "rhythm", "top": "3"})
        assert r.status_code == 200, r.text
        assert r.json()["like"] == "rhythm" and r.json()["hits"][0]["path"].endswith("t2.flac")
        audio = (root / "music" / "t1.flac").read_bytes()
        r = client.post("/api/search", files={"file": ("q.flac", audio, "audio/flac")}, data={"like": "rhythm"})
        assert r.status_code == 200, r.text
        assert [h["path"].rsplit("/", 1)[-1] for h in r.json()["hits"]][:2] == ["t1.flac", "t2.flac"]
        r = client.post("/api/search", data={"track": str(t1), "like": ""})  # the web app's "overall" choice
        assert r.status_code == 200 and r.json()["like"] is None and r.json()["hits"][0]["path"].endswith("t3.flac")
        r = client.get(f"/api/tracks/{t1}/similar", params={"like": "rhythm"})
        assert r.status_code == 200 and r.json()["hits"][0]["path"].endswith("t2.flac")
        r = client.post("/api/search", data={"track": str(t1), "like": "groove"})
        assert r.status_code == 400 and "--like takes one of timbre" in r.text


def test_similarity_benchmark_scores_each_aspect_beside_the_default(grooves):
    from soundalike.evaluate.simrun import LABEL_NAME, _evaluate_part, _noop
    from soundalike.evaluate.simsets import SimItem

    lib, root = grooves
    tempo_class = {1: "120", 2: "120", 3: "slow", 4: "fast", 5: "slow"}
    items = [SimItem(f"t{s}.flac", "g", c, f"g{s}", "report", "", "") for s, c in tempo_class.items()]
    lib.catalog.set_labels([(str(root / "music" / it.file), {LABEL_NAME: "g:report"}) for it in items])
    ids = {str((root / "music" / it.file).resolve()): lib.track(root / "music" / it.file).id for it in items}
    out = _evaluate_part(lib, root / "music", "g", "report", items, ids, None, None, False, None, _noop,
                         ["rhythm", "timbre"])
    assert {"soundalike", "like rhythm", "like timbre"} <= out.keys()
    assert out["like rhythm"]["p10"] > out["soundalike"]["p10"]  # the classes here are tempos
