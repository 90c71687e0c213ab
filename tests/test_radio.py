"""Radio and sonic paths (soundalike/organise/radio.py), their playlist files, the CLI and the API.

Two libraries: a synthetic one (600 tracks of clustered random vectors written through the real
catalogue and vector index, albums of six tracks from one cluster, as albums are) for the walks'
properties; and a real one (synthesised music encoded with PyAV, FakeModel, landmarks) with copies, for
leaving copies out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.catalog import Catalog
from soundalike.errors import QueryError, UserError
from soundalike.models import register_model
from soundalike.organise.playlist import format_for, render
from soundalike.organise.radio import Playlist, PlaylistEntry, album_key
from soundalike.stores import open_store
from soundalike.synth import encode, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 22050
DIM = 32
XSPF = "{http://xspf.org/ns/0/}"


def synthetic_library(path: Path, *, tracks: int, clusters: int, album_size: int = 6, dim: int = DIM,
                      seed: int = 0, store: str = "embedded") -> Path:
    """A library folder of ``tracks`` tracks whose vectors lie around ``clusters`` centres (each album's tracks
    around one), written through ``Catalog.replace_track`` and the real vector index; no audio."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    cat = Catalog(path / "catalog.sqlite")
    for k, v in (("model_id", "fake"), ("model_version", "1"), ("dim", str(dim)), ("hop", "2.0"),
                 ("store", store), ("tag_names", "[]")):
        cat.set_meta(k, v)
    centres = rng.standard_normal((clusters, dim))
    ids, vecs = [], []
    for i in range(tracks):
        album = i // album_size
        v = centres[album % clusters] + 0.6 * rng.standard_normal(dim)
        v /= np.linalg.norm(v)
        tid, _, _ = cat.replace_track(
            f"/music/artist{album % 7}/album{album}/{i:05d}.flac", size=1000 + i, mtime=0.0,
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            info={"duration": 120.0 + i % 90, "title": f"Song {i}", "artist": f"Artist {album % 7}",
                  "album": f"Album {album}", "bpm": 80.0 + i % 80},
            model_id="fake", model_version="1", vector=v, tags=None, segments=[])
        ids.append(tid)
        vecs.append(v)
    st = open_store(store, path / "index", dim)
    st.upsert("tracks", np.array(ids, np.int64), np.array(vecs, np.float32))
    st.close()
    cat.close()
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    lib = soundalike.open(synthetic_library(tmp_path_factory.mktemp("radio") / "lib", tracks=600, clusters=12),
                          create=False)
    yield lib
    lib.close()


def _unit_vectors(lib, ids):
    v = np.stack([lib.catalog.track_vector(i) for i in ids]).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- radio: the walk's properties ---------------------------------------------------------------------


def test_a_radio_is_varied_without_repeats_or_albums_back_to_back(synth):
    pl = synth.radio([5], n=30)
    ids = [e.track_id for e in pl.entries]
    assert len(ids) == 30 and ids[0] == 5 and pl.entries[0].role == "seed"
    assert len(set(ids)) == 30
    rows = {r.id: r for r in synth.catalog.tracks(ids)}
    keys = [album_key(rows[i]) for i in ids]
    assert all(a != b for a, b in zip(keys, keys[1:]))
    # varied: not the 29 nearest neighbours in order
    seed_vec = _unit_vectors(synth, [5])[0]
    nn, _ = synth.store.search("tracks", seed_vec[None], 30)
    assert ids[1:] != [int(i) for i in nn[0] if i != 5][:29]
    assert len(set(keys)) >= 6  # many albums, not two or three over and over
    # each entry's similarities to its neighbours, and the smoothness
    v = _unit_vectors(synth, ids)
    assert pl.entries[1].similarity_prev == pytest.approx(float(v[0] @ v[1]), abs=1e-3)
    assert pl.entries[0].similarity_next == pl.entries[1].similarity_prev
    assert pl.smoothness == pytest.approx(np.mean([float(a @ b) for a, b in zip(v, v[1:])]), abs=1e-3)
    assert pl.roughest <= pl.smoothness
    # it stays near the seed: most tracks closer to it than a random track
    assert np.median(v[1:] @ seed_vec) > np.median(_unit_vectors(synth, range(1, 601)) @ seed_vec) + 0.2


def test_a_radio_is_reproducible_by_its_seed(synth):
    a = [e.track_id for e in synth.radio([5], n=20, seed=1).entries]
    assert a == [e.track_id for e in synth.radio([5], n=20, seed=1).entries]
    assert a != [e.track_id for e in synth.radio([5], n=20, seed=2).entries]


def test_several_seeds_each_have_their_turn(synth):
    pl = synth.radio([5, 300], n=21)
    ids = [e.track_id for e in pl.entries]
    assert ids[:2] == [5, 300] and [e.role for e in pl.entries[:3]] == ["seed", "seed", "radio"]
    v = _unit_vectors(synth, ids[2:])
    s = _unit_vectors(synth, [5, 300])
    nearer = (v @ s.T).argmax(axis=1)
    assert 6 <= int(nearer.sum()) <= 13  # about half near each seed
    assert nearer[0] == 1  # the first added track follows on from the last seed


def test_where_limits_the_added_tracks(synth):
    pl = synth.radio([5], n=15, where="bpm >= 120")
    assert all(r.bpm >= 120 for r in synth.catalog.tracks([e.track_id for e in pl.entries[1:]]))
    assert synth.catalog.track(5).bpm < 120  # the seed itself need not pass


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": [999999]}, "no track 999999"),
    ({"seeds": [5], "n": 0}, "n: must be from 1 to 500"),
    ({"seeds": [5], "n": 501}, "n: must be from 1 to 500"),
    ({"seeds": [5, 6], "n": 2}, "no room after 2 seeds"),
    ({"seeds": [5], "n": 30, "where": "bpm > 158"}, "--where 'bpm > 158' leaves 7 tracks besides the seeds, and 29 are needed; ask for --n 8 or fewer"),
    ({"seeds": [5], "n": 30, "where": "bpm >"}, "bpm >"),
])
def test_radio_errors_are_one_line(synth, kwargs, message):
    with pytest.raises(UserError) as err:
        synth.radio(kwargs.pop("seeds"), **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_radio_longer_than_the_rules_allow_says_why(tmp_path):
    # albums of 4 and 2 tracks: the albums must alternate, so 5 is the most a list from the first can hold
    lib = soundalike.open(synthetic_library(tmp_path / "lib", tracks=6, clusters=2, album_size=4), create=False)
    pl = lib.radio([1], n=6)
    rows = {r.id: r for r in lib.catalog.tracks([e.track_id for e in pl.entries])}
    lib.close()
    assert [album_key(rows[e.track_id])[-1] for e in pl.entries] == list("01010")
    assert pl.note.startswith("only 5 of 6 tracks") and "album" in pl.note


def test_a_library_of_copies_gives_the_seed_alone(tmp_path):
    lib = soundalike.open(synthetic_library(tmp_path / "lib", tracks=4, clusters=2, album_size=1), create=False)
    lib.catalog.db.execute("UPDATE files SET sha256 = 'same'")  # four files of one content
    lib.catalog.db.commit()
    pl = lib.radio([1], n=4)
    assert [e.track_id for e in pl.entries] == [1] and pl.copies_skipped == 3
    assert pl.note.startswith("only 1 of 4 tracks: no other track passes the rules")
    lib.close()


def test_without_a_filter_a_small_library_gives_what_it_has(tmp_path):
    lib = soundalike.open(synthetic_library(tmp_path / "lib", tracks=8, clusters=2, album_size=1), create=False)
    pl = lib.radio([1], n=30)
    assert len(pl.entries) == 8 and pl.note == "only 8 of 30 tracks: the library holds 7 besides the seeds"
    pp = lib.sonic_path(1, 2, steps=10)
    assert [e.track_id for e in pp.entries][::len(pp.entries) - 1] == [1, 2] and len(pp.entries) <= 8
    assert pp.note.endswith("the library holds 6 tracks besides A and B")
    lib.close()


# -- paths -------------------------------------------------------------------------------------------------


def _far_pair(lib):
    v = _unit_vectors(lib, range(1, 601))
    sims = v @ v[0]
    return 1, int(np.argmin(sims)) + 1


def test_a_path_goes_from_a_to_b_always_moving_towards_b(synth):
    a, b = _far_pair(synth)
    pl = synth.sonic_path(a, b, steps=10)
    ids = [e.track_id for e in pl.entries]
    assert ids[0] == a and ids[-1] == b and len(ids) == 12 and len(set(ids)) == 12
    assert [e.role for e in pl.entries] == ["start"] + ["step"] * 10 + ["end"]
    prog = [e.progress for e in pl.entries]
    assert prog[0] == 0 and prog[-1] == 1 and all(x < y for x, y in zip(prog, prog[1:]))
    # smoother than jumping: every transition closer than A to B directly, and on average much closer
    assert pl.direct < pl.roughest and pl.smoothness > pl.direct + 0.3
    # monotone: each step nearer B (and further from A) than A is
    v = _unit_vectors(synth, ids)
    assert all(float(x @ v[-1]) > pl.direct for x in v[1:-1])


def test_path_errors_are_one_line(synth):
    with pytest.raises(UserError, match="A and B are the same track"):
        synth.sonic_path(3, 3)
    with pytest.raises(UserError, match="steps: must be from 1 to 100"):
        synth.sonic_path(1, 2, steps=0)
    with pytest.raises(QueryError, match="leaves 7 tracks besides A and B, and 10 are needed; ask for --steps 7"):
        synth.sonic_path(1, 2, where="bpm >= 159")
    with pytest.raises(QueryError, match="no track 7777"):
        synth.sonic_path(1, 7777)


# -- playlist files ---------------------------------------------------------------------------------------


def _awkward_playlist() -> Playlist:
    e1 = PlaylistEntry(1, 7, "/m/R&B <live>/01 \"Intro\".flac", 'Rock & "Roll" <1>', "AC/DC & Co", "Hits & <B-sides>",
                       61.4, "seed", None, 0.91)
    e2 = PlaylistEntry(2, 9, "/m/café/02 ünïcode.mp3", None, None, None, 200.6, "radio", 0.91, None)
    return Playlist(kind="radio", title="Radio: Rock & Roll", entries=[e1, e2], options={}, smoothness=0.91)


def test_m3u8_has_extinf_lines_and_paths():
    text = render(_awkward_playlist(), "m3u8")
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#PLAYLIST:Radio: Rock & Roll"
    assert lines[2] == '#EXTINF:61,AC/DC & Co - Rock & "Roll" <1>'
    assert lines[3] == "/m/R&B <live>/01 \"Intro\".flac"
    assert lines[4] == "#EXTINF:201,02 ünïcode" and lines[5] == "/m/café/02 ünïcode.mp3"


def test_xspf_is_valid_xml_with_file_uris_and_milliseconds():
    text = render(_awkward_playlist(), "xspf")
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{XSPF}playlist" and root.get("version") == "1"
    tracks = root.findall(f"{XSPF}trackList/{XSPF}track")
    assert len(tracks) == 2
    t = tracks[0]
    assert t.findtext(f"{XSPF}location") == Path("/m/R&B <live>/01 \"Intro\".flac").as_uri()
    assert t.findtext(f"{XSPF}location").startswith("file:///m/R%26B%20%3Clive%3E/")
    assert t.findtext(f"{XSPF}title") == 'Rock & "Roll" <1>' and t.findtext(f"{XSPF}creator") == "AC/DC & Co"
    assert t.findtext(f"{XSPF}album") == "Hits & <B-sides>" and t.findtext(f"{XSPF}duration") == "61400"
    assert tracks[1].findtext(f"{XSPF}duration") == "200600" and tracks[1].find(f"{XSPF}creator") is None
    assert root.findtext(f"{XSPF}title") == "Radio: Rock & Roll"


def test_csv_round_trips():
    rows = list(csv.DictReader(io.StringIO(render(_awkward_playlist(), "csv"))))
    assert [r["track_id"] for r in rows] == ["7", "9"]
    assert rows[0]["title"] == 'Rock & "Roll" <1>' and rows[1]["similarity_prev"] == "0.91"


def test_format_from_option_or_extension():
    assert format_for(None, "x.M3U") == "m3u8" and format_for("XSPF", None) == "xspf"
    assert format_for(None, None) == "json"
    with pytest.raises(UserError, match="--format: expected one of"):
        format_for("pls", None)
    with pytest.raises(UserError, match="cannot tell the format"):
        format_for(None, "mix.txt")


# -- real audio: copies are left out -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_library(tmp_path_factory):
    """Eight tracks in four folders (no album tags: a folder is an album); an identical copy of t1 (WAV), a
    re-encode of t5 at -6 dB (MP3), the first half of t1 (an excerpt), each in a folder of its own."""
    register_model("fake", FakeModel)
    root = tmp_path_factory.mktemp("radio-audio")
    music = root / "music"
    signals = {s: render_track(s, seconds=30, sample_rate=SR) for s in range(8)}
    for s, x in signals.items():
        (music / f"album{s % 4}").mkdir(parents=True, exist_ok=True)
        encode(x, SR, music / f"album{s % 4}" / f"t{s}.flac")
    for folder, name, x, kw in (("c1", "t1 copy.wav", signals[1], {}),
                                ("c2", "t5 quieter.mp3", signals[5] * 0.5, {"bitrate": 128000}),
                                ("c3", "t1 first half.flac", signals[1][: 15 * SR], {})):
        (music / folder).mkdir()
        encode(x, SR, music / folder / name, **kw)
    lib = soundalike.open(root / "lib", model=FakeModel(), hop=2.0)
    assert list(lib.index([music]))[-1].event == "done"
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    assert len(ids) == 11
    yield lib, ids, root
    lib.close()


def test_a_radio_leaves_out_copies_of_listed_tracks(audio_library):
    lib, ids, _ = audio_library
    names = {v: k for k, v in ids.items()}
    pl = lib.radio([ids["t1.flac"]], n=11)
    listed = [names[e.track_id] for e in pl.entries]
    assert not {"t1 copy.wav", "t1 first half.flac"} & set(listed)
    assert len({"t5.flac", "t5 quieter.mp3"} & set(listed)) == 1
    assert len(listed) == len(set(listed)) == 8  # every distinct recording, once
    assert pl.copies_skipped >= 3 and "only 8 of 11" in pl.note


def test_a_path_leaves_out_copies_of_a_and_b(audio_library):
    lib, ids, _ = audio_library
    names = {v: k for k, v in ids.items()}
    pl = lib.sonic_path(ids["t1.flac"], ids["t5.flac"], steps=8)
    listed = [names[e.track_id] for e in pl.entries]
    assert listed[0] == "t1.flac" and listed[-1] == "t5.flac"
    assert not {"t1 copy.wav", "t1 first half.flac", "t5 quieter.mp3"} & set(listed)


# -- the CLI -------------------------------------------------------------------------------------------------


def test_cli_radio_table_json_and_files(synth, capsys, tmp_path):
    lib = synth.path
    code, out, err = cli(capsys, "radio", "5", "-L", lib, "--n", 12)
    assert code == 0, err
    assert "Radio: Song 4" in out and "smoothness" in out and "(seed)" in out
    code, out, err = cli(capsys, "radio", "5", "-L", lib, "--n", 12, "--json")
    data = json.loads(out)
    assert code == 0 and len(data["entries"]) == 12 and data["entries"][0]["track_id"] == 5
    code, out, err = cli(capsys, "radio", "5", "-L", lib, "--n", 12, "-o", tmp_path / "mix.xspf")
    assert code == 0 and "wrote 12 tracks" in err
    root = ET.parse(tmp_path / "mix.xspf").getroot()
    assert len(root.findall(f"{XSPF}trackList/{XSPF}track")) == 12
    code, out, _ = cli(capsys, "radio", "5", "-L", lib, "--n", 12, "--format", "m3u8")
    assert code == 0 and out.startswith("#EXTM3U\n") and out.count("#EXTINF:") == 12
    # a path as the seed, resolved like `similar`'s
    path = synth.catalog.track(5).path
    code, out, err = cli(capsys, "radio", path, "-L", lib, "--n", 12, "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[1].split(",")[:3] == ["1", "5", path]


def test_cli_path_table_and_json(synth, capsys):
    a, b = _far_pair(synth)
    code, out, err = cli(capsys, "path", a, b, "-L", synth.path, "--steps", 6)
    assert code == 0, err
    assert "Path: Song 0 to" in out and "progress" in out and "directly" in out
    code, out, _ = cli(capsys, "path", a, b, "-L", synth.path, "--steps", 6, "--json")
    data = json.loads(out)
    assert [e["role"] for e in data["entries"]] == ["start"] + ["step"] * 6 + ["end"]


@pytest.mark.parametrize("args, message", [
    (["radio", "999999"], "error: no track 999999"),
    (["radio", "5", "--n", "0"], "error: n: must be from 1 to 500"),
    (["radio", "5", "--where", "bpm > 158"], "leaves 7 tracks besides the seeds"),
    (["radio", "5", "--format", "pls"], "error: --format: expected one of m3u8, xspf, csv, json"),
    (["radio", "5", "--json", "--format", "csv"], "give either --json or --format"),
    (["path", "3", "3"], "error: path: A and B are the same track (3)"),
    (["path", "1", "2", "--steps", "500"], "error: steps: must be from 1 to 100"),
])
def test_cli_errors_are_one_line(synth, capsys, args, message):
    code, out, err = cli(capsys, *args, "-L", synth.path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_help_has_examples(capsys):
    for cmd in ("radio", "path"):
        code, out, _ = cli(capsys, cmd, "--help")
        assert code == 0 and "Examples" in out and f"soundalike {cmd} " in out


# -- the REST API ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(synth):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app

    with TestClient(create_app(synth.path, model=FakeModel())) as c:
        yield c


def test_api_radio_json_and_files(client):
    r = client.get("/api/radio", params=[("seed", 5), ("seed", 300), ("n", 12), ("random_seed", 3)])
    assert r.status_code == 200, r.text
    data = r.json()
    assert [e["track_id"] for e in data["entries"][:2]] == [5, 300] and len(data["entries"]) == 12
    assert data["entries"][2]["audio"] == f"/api/tracks/{data['entries'][2]['track_id']}/audio"
    assert {"smoothness", "roughest", "note", "title", "options"} <= data.keys()
    again = client.get("/api/radio", params=[("seed", 5), ("seed", 300), ("n", 12), ("random_seed", 3)]).json()
    assert [e["track_id"] for e in again["entries"]] == [e["track_id"] for e in data["entries"]]
    for fmt, media in (("m3u8", "audio/x-mpegurl"), ("xspf", "application/xspf+xml"), ("csv", "text/csv")):
        f = client.get("/api/radio", params={"seed": 5, "n": 12, "format": fmt})
        assert f.status_code == 200 and f.headers["content-type"].startswith(media)
        assert f.headers["content-disposition"] == f'attachment; filename="radio.{fmt}"'
    x = client.get("/api/radio", params={"seed": 5, "n": 12, "format": "xspf"})
    assert len(ET.fromstring(x.content).findall(f"{XSPF}trackList/{XSPF}track")) == 12
    m = client.get("/api/radio", params={"seed": 5, "n": 12, "format": "m3u8"}).text
    assert m.startswith("#EXTM3U\n") and m.count("#EXTINF:") == 12


def test_api_radio_with_a_filter(client, synth):
    data = client.get("/api/radio", params={"seed": 5, "n": 6, "where": "bpm >= 120"}).json()
    assert all(r.bpm >= 120 for r in synth.catalog.tracks([e["track_id"] for e in data["entries"][1:]]))


def test_api_path(client, synth):
    a, b = _far_pair(synth)
    r = client.get("/api/path", params={"a": a, "b": b, "steps": 5})
    assert r.status_code == 200, r.text
    data = r.json()
    ids = [e["track_id"] for e in data["entries"]]
    assert ids[0] == a and ids[-1] == b and len(ids) == 7
    prog = [e["progress"] for e in data["entries"]]
    assert prog == sorted(prog) and len(set(prog)) == 7 and data["direct"] < data["smoothness"]
    c = client.get("/api/path", params={"a": a, "b": b, "steps": 5, "format": "csv"})
    assert c.headers["content-disposition"] == 'attachment; filename="path.csv"'
    assert [row["track_id"] for row in csv.DictReader(io.StringIO(c.text))] == [str(i) for i in ids]


@pytest.mark.parametrize("url, status, message", [
    ("/api/radio?seed=999999", 404, "no track 999999 in this library"),
    ("/api/radio", 422, "seed: Field required"),
    ("/api/radio?seed=5&n=1", 422, "n: Input should be greater than or equal to 2"),
    ("/api/radio?seed=5&n=501", 422, "n: Input should be less than or equal to 500"),
    ("/api/radio?seed=5&format=pls", 422, "format: Input should be"),
    ("/api/radio?seed=5&where=bpm%20%3E%20158", 400, "leaves 7 tracks besides the seeds"),
    ("/api/radio?seed=5&where=bpm%20%3E", 400, "bpm >"),
    ("/api/path?a=3&b=3", 400, "path: A and B are the same track (3)"),
    ("/api/path?a=1&b=2&steps=0", 422, "steps: Input should be greater than or equal to 1"),
    ("/api/path?a=1", 422, "b: Field required"),
    ("/api/path?a=1&b=99999999999999999999", 422, "b:"),
])
def test_api_errors_are_json_one_liners(client, url, status, message):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and r.json()["status"] == status


def test_api_routes_are_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/radio" in paths and "/api/path" in paths
