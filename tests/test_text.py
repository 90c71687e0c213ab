"""Text search and tags, on a small library of real General MIDI renders indexed with the real musicnn.

Eight 20 s clips (two each of piano, strings, drums and synth) are rendered with
fluidsynth and FluidR3_GM; the text model is the bundled MiniLM. Without
fluidsynth the library tests skip and say why.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import QueryError, UserError
from soundalike.synth import GM_DRUMS, fluidsynth_missing, gm_phrase, render_gm, write_midi
from soundalike.text import WEAK_SIMILARITY, QueryTerm, parse_query, tag_concepts
from tests.conftest import cli, missing_tool, needs_tool

# family -> the two GM programs its clips use
CLIPS = {"piano": (0, 1), "strings": (48, 49), "drums": (GM_DRUMS, GM_DRUMS), "synth": (81, 90)}
SECONDS = 20.0

needs_fluidsynth = needs_tool(fluidsynth_missing() and f"GM renders: {fluidsynth_missing()}")


# --------------------------------------------------------------------------
# parsing (no model needed)
# --------------------------------------------------------------------------


def test_parse_negation_weighting_and_phrases():
    phrases = tag_concepts(["msd:rock", "mtt:no vocals", "msd:hard rock", "mtt:piano"]).phrases
    assert parse_query("piano -vocals") == [QueryTerm("piano"), QueryTerm("vocals", 1.0, True)]
    assert parse_query("dark:2 ambient") == [QueryTerm("dark", 2.0), QueryTerm("ambient")]
    assert parse_query("-drums:0.5") == [QueryTerm("drums", 0.5, True)]
    # a multi-word tag stays one term, so "no vocals" is not read as "vocals"; stopwords go
    assert parse_query("sad piano with no vocals", phrases=phrases) == [
        QueryTerm("sad"), QueryTerm("piano"), QueryTerm("no vocals")]
    assert parse_query('"rain on a window":2 -"hard rock"') == [
        QueryTerm("rain on a window", 2.0), QueryTerm("hard rock", 1.0, True)]
    assert parse_query("Hip-Hop MUSIC") == [QueryTerm("hip-hop")]


@pytest.mark.parametrize("query, message", [
    ("", "empty"), ("   ", "empty"), ("the music", "no words"), ("piano:x2", "bad weight"),
    ("piano:0", "positive"), ("piano:-1", "positive"),
])  # fmt: skip
def test_parse_errors_name_the_problem(query, message):
    with pytest.raises(QueryError, match=message):
        parse_query(query)


def test_tag_concepts_merge_the_two_vocabularies():
    c = tag_concepts(["msd:rock", "msd:Mellow", "mtt:rock", "mtt:piano"])
    assert c.names == ("rock", "mellow", "piano")
    assert c.columns == ((0, 2), (1,), (3,))


def test_write_midi_is_a_standard_midi_file(tmp_path):
    from soundalike.synth import GMNote

    path = tmp_path / "a.mid"
    write_midi([GMNote(60, 0.0, 0.5), GMNote(64, 0.5, 0.5)], 48, path, end=2.0)
    data = path.read_bytes()
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    assert int.from_bytes(data[18:22], "big") == len(data) - 22
    assert bytes([0xC0, 48]) in data  # program change to strings
    assert data.endswith(b"\xff\x2f\x00")
    with pytest.raises(UserError, match="pitch"):
        write_midi([GMNote(200, 0, 1)], 0, path)
    with pytest.raises(UserError, match="program"):
        write_midi([], 300, path)


@needs_fluidsynth
def test_render_gm_writes_the_requested_length(tmp_path):
    from soundalike.decode import decode

    path = render_gm(gm_phrase(seconds=4, seed=1), 0, tmp_path / "p.wav", seconds=4)
    audio = decode(path, sample_rate=22050)
    assert audio.duration == pytest.approx(4.0, abs=0.05)
    assert float(np.abs(audio.samples).max()) > 0.05  # it is not silence
    drums = render_gm(gm_phrase(seconds=3, seed=2, drums=True), GM_DRUMS, tmp_path / "d.wav", seconds=3)
    assert decode(drums, sample_rate=22050).duration == pytest.approx(3.0, abs=0.05)


# --------------------------------------------------------------------------
# a real library
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gm_library(tmp_path_factory):
    """{family: [track ids]} and the Library: 8 GM clips indexed with the real musicnn."""
    reason = fluidsynth_missing()
    if reason:
        missing_tool(f"GM renders need fluidsynth: {reason}")
    base = tmp_path_factory.mktemp("text")
    music = base / "music"
    music.mkdir()
    family_of = {}
    k = 0
    for family, programs in CLIPS.items():
        for program in programs:
            name = f"clip{k:02d}.wav"  # neutral names: keywords must not give the answer away
            notes = gm_phrase(seconds=SECONDS, seed=500 + k, drums=program == GM_DRUMS)
            render_gm(notes, program, music / name, seconds=SECONDS)
            family_of[name] = family
            k += 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOUNDALIKE_DESCRIPTORS", "0")  # not needed here; saves indexing time
        mp.setenv("SOUNDALIKE_CACHE", str(base / "cache"))
        lib = soundalike.open(base / "lib")
        for _ in lib.index([music]):
            pass
        lib.text_search("piano")  # loads MiniLM; the library's text searcher keeps this cache dir
    ids = {}
    for t in lib.tracks():
        ids.setdefault(family_of[t.path.rsplit("/", 1)[-1]], []).append(t.id)
    yield lib, ids, base
    lib.close()


@pytest.mark.slow
@pytest.mark.parametrize("query, family", [
    ("piano", "piano"), ("strings", "strings"), ("drums", "drums"), ("synth", "synth"), ("electronic", "synth"),
])  # fmt: skip
def test_instrument_queries_find_their_clips_in_the_top_3(gm_library, query, family):
    lib, ids, _ = gm_library
    result = lib.text_search(query, top=3)
    assert not result.weak
    got = [h.track_id for h in result.hits]
    assert set(ids[family]) <= set(got), f"{query!r}: top 3 {got}, {family} clips {ids[family]}"
    assert got[0] in ids[family]
    # the explanation names the tag that carried the query
    top_tag = max(result.tag_weights, key=result.tag_weights.get)
    assert result.hits[0].explanation[0].kind == "tag"
    assert result.hits[0].explanation[0].name == top_tag
    assert result.hits[0].explanation[0].score > 0


@pytest.mark.slow
def test_negation_and_weighting_change_the_ranking(gm_library):
    lib, ids, _ = gm_library

    def scores(q):
        return {h.track_id: h.score for h in lib.text_search(q, top=8).hits}

    plain, negated = scores("strings"), scores("strings -piano")
    for t in ids["piano"]:  # excluding piano pushes the piano clips down relative to the strings clips
        assert negated[t] - min(negated[s] for s in ids["strings"]) < plain[t] - min(plain[s] for s in ids["strings"])
    r = lib.text_search("strings -piano")
    assert any(m.negated and m.term == "piano" for m in r.terms)
    assert r.tag_weights["piano"] < 0 < r.tag_weights["strings"]

    def best_family(q):
        top = lib.text_search(q, top=1).hits[0].track_id
        return next(f for f, v in ids.items() if top in v)

    assert best_family("piano:4 drums") == "piano"
    assert best_family("piano drums:4") == "drums"


@pytest.mark.slow
def test_a_query_the_vocabulary_cannot_express_is_flagged_weak(gm_library):
    lib, _, _ = gm_library
    r = lib.text_search("dog barking")
    assert r.weak
    assert "weak" in r.message and "dog barking" in r.message
    assert all(m.best_similarity < WEAK_SIMILARITY for m in r.terms)
    assert not lib.text_search("piano").weak
    # a word no tag means, next to one that a tag does, is reported and left to keywords
    r = lib.text_search("dark:2 ambient")
    assert not r.weak
    dark = next(m for m in r.terms if m.term == "dark")
    assert not dark.used_for_tags and dark.weight == 2
    assert "dark" in r.message


@pytest.mark.slow
def test_keywords_on_labels_and_filters(gm_library):
    lib, ids, _ = gm_library
    target = ids["drums"][0]
    lib.set_labels(target, genre="field recording", mood="calm")
    lib.set_labels(ids["piano"][0], mood="calm")
    try:
        r = lib.text_search("field recording")  # the tags cannot say it; the label can
        assert not r.weak
        assert r.hits[0].track_id == target
        kw = [c for c in r.hits[0].explanation if c.kind == "keyword"]
        assert kw and kw[0].name == "label:genre" and kw[0].score > 0
        # filters: only the two 'calm' tracks, whatever the query prefers
        r = lib.text_search("strings", where="mood = 'calm'")
        assert r.candidates == 2
        assert {h.track_id for h in r.hits} == {target, ids["piano"][0]}
    finally:
        lib.set_labels(target, genre=None, mood=None)
        lib.set_labels(ids["piano"][0], mood=None)


@pytest.mark.slow
def test_tag_embeddings_are_cached_on_disk(gm_library):
    lib, _, base = gm_library
    files = list((base / "cache" / "text").glob("*.npy"))
    assert len(files) == 1 and "MiniLM" in files[0].name
    assert np.load(files[0]).shape == (len(tag_concepts(json.loads(lib.catalog.get_meta("tag_names"))).names), 384)


@pytest.mark.slow
def test_track_tags_top_and_over_time(gm_library):
    lib, ids, _ = gm_library
    tt = lib.track_tags(ids["piano"][0], top=5)
    probs = list(tt.top.values())
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    assert "piano" in tt.top
    assert len(tt.spans) >= 2 and tt.spans[0].start == 0 and tt.spans[-1].end == pytest.approx(SECONDS, abs=0.1)
    assert all(len(v) == len(tt.spans) for v in tt.series.values())
    # the time series averages back to the track's tag (the track tag is the mean of its segments)
    assert np.mean(tt.series["piano"]) == pytest.approx(tt.top["piano"], abs=0.08)
    assert json.dumps(tt.to_dict())


@pytest.mark.slow
def test_cli_text_json_and_human(gm_library, capsys):
    lib, ids, base = gm_library
    code, out, _ = cli(capsys, "text", "drums", "--top", "2", "--json", "-L", base / "lib")
    assert code == 0
    data = json.loads(out)
    scores = [h["score"] for h in data["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert {h["track_id"] for h in data["hits"]} == set(ids["drums"])
    assert data["weak"] is False and data["hits"][0]["explanation"][0]["name"] == "drums"
    code, out, err = cli(capsys, "text", "dog barking", "-L", base / "lib")
    assert code == 0 and "weak" in err
    code, out, _ = cli(capsys, "text", "piano -vocals", "-L", base / "lib")
    assert code == 0 and "-vocals" in out and "piano +" in out
    code, _, err = cli(capsys, "text", "piano:x", "-L", base / "lib")
    assert code == 2 and err.startswith("error: bad weight")


@pytest.mark.slow
def test_cli_info_shows_tags_over_time(gm_library, capsys):
    lib, ids, base = gm_library
    code, out, _ = cli(capsys, "info", ids["strings"][0], "-L", base / "lib")
    assert code == 0
    assert "tags over time" in out and "0:00.0–0:03.0" in out
    code, out, _ = cli(capsys, "info", ids["strings"][0], "--json", "-L", base / "lib")
    data = json.loads(out)
    assert len(data["tags_over_time"]) >= 2 and data["top_tags"]
    assert all(set(s) == {"start", "end", "informative", "top"} for s in data["tags_over_time"])


def test_loading_the_text_model_prints_nothing(tmp_path):
    """transformers draws a "Loading weights" bar on stderr while MiniLM loads; the library never prints."""
    import subprocess
    import sys

    code = "from soundalike.text import encode_text; print(encode_text(['sad piano']).shape)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(1, 384)"
    assert "Loading weights" not in run.stderr and run.stderr.strip() == ""


def test_copies_of_one_recording_are_one_text_hit(tmp_path):
    """A text search lists a recording once, with its other files as ``copies`` (issue 20: copies count once in
    every result type), and still fills ``top`` with other recordings."""
    import shutil

    from soundalike.synth import render_track
    from tests.fakes import fake_library

    lib = fake_library(tmp_path, {s: render_track(s, seconds=8, sample_rate=22050) for s in range(3)}, 22050)
    shutil.copy(tmp_path / "music" / "t1.flac", tmp_path / "music" / "t1-copy.flac")
    assert list(lib.index([tmp_path / "music"]))[-1].event == "done"
    for name in ("t0", "t1", "t1-copy", "t2"):
        lib.set_labels(tmp_path / "music" / f"{name}.flac", mood="sunny")
    hits = lib.text_search("sunny", top=3).hits
    names = [h.path.rsplit("/", 1)[-1] for h in hits]
    assert len(hits) == 3 and len({"t1.flac", "t1-copy.flac"} & set(names)) == 1, names
    grouped = next(h for h in hits if h.path.endswith(("t1.flac", "t1-copy.flac")))
    assert [c.path.rsplit("/", 1)[-1] for c in grouped.copies] == [
        ({"t1.flac", "t1-copy.flac"} - {grouped.path.rsplit("/", 1)[-1]}).pop()]
