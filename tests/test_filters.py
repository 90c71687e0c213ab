"""The filter language, its SQL, and filtered / multi-seed search on a real library (FakeModel)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import FilterError, UserError
from soundalike.filters import compile_filter, compile_order, parse
from soundalike.fusion import FusedTrack
from soundalike.search import combine
from soundalike.synth import encode, excerpt, render_track
from tests.fakes import FakeModel

# -- parser and SQL -------------------------------------------------------------------------------


def test_example_compiles_to_parameterised_sql():
    c = compile_filter("bpm between 90 and 110 and genre = 'jazz' and duration < 180")
    assert c.sql == "(t.bpm BETWEEN ? AND ?) AND (t.genre COLLATE NOCASE = ?) AND (t.duration < ?)"
    assert c.params == (90, 110, "jazz", 180)


def test_every_operator_parses():
    for text in [
        "bpm = 120", "bpm == 120", "bpm != 120", "bpm <> 120", "bpm < 1", "bpm <= 1", "bpm > 1", "bpm >= 1.5e2",
        "key in ('C major', \"A minor\")", "key not in ('C major')", "title like 'Intro%'", "title not like '%x'",
        "artist contains 'band'", "artist not contains 'live'", "genre is null", "genre is not null",
        "bpm not between 1 and 2", "not (bpm > 1 or bpm < 0) and year >= 2000", "NOT bpm > 3 AND Key = 'x'",
        "loudness > -14", "track.bpm > 3", "channels = 2 and sample_rate >= 44100",
    ]:
        compile_filter(text)


def test_values_are_never_pasted_into_sql():
    evil = "x' OR 1=1; DROP TABLE tracks; --"
    c = compile_filter(f"title = '{evil.replace(chr(39), chr(39) * 2)}' or artist contains '%_'")
    assert "DROP" not in c.sql and "'" not in c.sql.replace("'\\'", "")
    assert c.params == (evil, "%\\%\\_%")


def test_precedence_and_beats_or_and_not_binds_tightest():
    tree = parse("a = 1 or b = 2 and not c = 3")
    assert tree.op == "or" and tree.parts[1].op == "and"


def test_unknown_fields_and_labels():
    with pytest.raises(FilterError, match=r"position 1: unknown field 'bmp'"):
        compile_filter("bmp > 3")
    c = compile_filter("mood = 'calm'", labels={"mood"})
    assert "labels" in c.sql and c.params == ("mood", "calm")
    c = compile_filter("Genre = 'x'", labels={"genre"})  # user value first, then the file's tag
    assert c.sql.startswith("coalesce(") and c.params == ("genre", "x")
    assert compile_filter("track.genre = 'x'", labels={"genre"}).params == ("x",)
    with pytest.raises(FilterError, match="no user metadata column 'nope'"):
        compile_filter("label.nope = 1", labels={"mood"})


@pytest.mark.parametrize(
    "text,pos,token",
    [
        ("bpm > and genre = 'x'", 7, "'and'"),
        ("bpm between 90 110", 16, "'110'"),
        ("genre = jazz", 9, "'jazz'"),
        ("(bpm > 3", 9, "the end of the filter"),
        ("bpm > 3 genre = 'x'", 9, "'genre'"),
        ("title = 'open", 9, "unterminated string"),
        ("bpm ~ 3", 5, "'~'"),
        ("bpm in 1, 2", 8, "'1'"),
        ("bpm", 4, "the end of the filter"),
        ("", 1, "empty"),
    ],
)
def test_syntax_errors_point_at_the_token(text, pos, token):
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"position {pos}" in msg and token in msg
    assert info.value.position == pos
    assert isinstance(info.value, UserError)
    # the marker sits right before the offending token
    assert msg.endswith(text[: pos - 1] + "»" + text[pos - 1 :])


def test_order_by():
    c = compile_order("bpm desc, title")
    assert c.sql == "t.bpm IS NULL, t.bpm DESC, t.title IS NULL, t.title ASC"
    with pytest.raises(FilterError):
        compile_order("bpm sideways")


# -- a real library --------------------------------------------------------------------------------

SR = 16000
N_TRACKS = 40
ALBUMS = {"a": range(0, 5), "b": range(5, 10)}  # tagged albums; the rest sit in folders f0..f3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from mutagen.flac import FLAC

    root = tmp_path_factory.mktemp("filters")
    music = root / "music"
    signals = {}
    for i in range(N_TRACKS):
        folder = music / f"f{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        x = render_track(300 + i, seconds=12, sample_rate=SR)
        signals[i] = x
        path = folder / f"t{i:02d}.flac"
        encode(x, SR, path)
        for album, ids in ALBUMS.items():
            if i in ids:
                f = FLAC(path)
                f["album"] = f"Album {album.upper()}"
                f["genre"] = "jazz" if album == "a" else "rock"
                f.save()
    lib = soundalike.open(root / "lib", model=FakeModel(), hop=2.0)
    assert list(lib.index([music]))[-1].errors == 0
    csv_path = root / "buckets.csv"
    by_name = {Path(t.path).stem: t for t in lib.tracks()}
    rows = ["path,bucket,mood"] + [f"{by_name[f't{i:02d}'].path},{i % 10},{'calm' if i % 3 == 0 else 'tense'}"
                                   for i in range(N_TRACKS)]
    csv_path.write_text("\n".join(rows) + "\n")
    assert lib.import_labels(csv_path).matched == N_TRACKS
    ids = {i: by_name[f"t{i:02d}"].id for i in range(N_TRACKS)}
    lib.close()
    return root, music, signals, ids


@pytest.fixture
def lib(built):
    root = built[0]
    lib = soundalike.open(root / "lib", model=FakeModel())
    yield lib
    lib.close()


def test_filters_return_exactly_the_expected_subset(lib, built):
    _, _, _, ids = built
    rows = lib.tracks()
    labels = {r.id: lib.labels(r.id) for r in rows}
    cases = {
        "bucket < 3": lambda r: labels[r.id]["bucket"] < 3,
        "bucket in (1, 4) and mood = 'Calm'": lambda r: labels[r.id]["bucket"] in (1, 4) and labels[r.id]["mood"] == "calm",
        "genre = 'jazz' or album = 'album b'": lambda r: r.genre == "jazz" or r.album == "Album B",
        "genre != 'jazz'": lambda r: r.genre != "jazz",  # includes tracks with no genre
        "not (genre = 'jazz')": lambda r: r.genre != "jazz",
        "album is null and path like '%/f1/%'": lambda r: r.album is None and "/f1/" in r.path,
        "bpm > 100 and key contains 'minor'": lambda r: r.bpm > 100 and "minor" in r.key,
        f"duration between 11.9 and 12.1 and id >= {ids[20]}": lambda r: 11.9 <= r.duration <= 12.1 and r.id >= ids[20],
        "loudness < -15 or true_peak > -2": lambda r: r.loudness < -15 or r.true_peak > -2,
        "channels = 1 and sample_rate = 16000 and codec = 'flac'": lambda r: True,
    }
    for where, pred in cases.items():
        expected = {r.id for r in rows if pred(r)}
        assert {r.id for r in lib.tracks(where=where)} == expected, where
        assert lib.count_tracks(where) == len(expected), where
        assert lib.allowed_tracks(where) == frozenset(expected), where
    assert lib.allowed_tracks(None) is None
    page = lib.tracks(where="bucket < 5", order_by="bpm desc", limit=3, offset=2)
    ordered = sorted((r for r in rows if labels[r.id]["bucket"] < 5), key=lambda r: (-r.bpm, r.path))
    assert [r.id for r in page] == [r.id for r in ordered[2:5]]


def test_exclude_album_of_uses_the_album_tag_else_the_folder(lib, built):
    _, _, _, ids = built
    everything = {r.id for r in lib.tracks()}
    album_a = {ids[i] for i in ALBUMS["a"]}
    assert lib.allowed_tracks(exclude_album_of=ids[2]) == frozenset(everything - album_a)
    folder_f3 = {r.id for r in lib.tracks(where="path like '%/f3/%'")}  # t11 has no album tag
    assert lib.allowed_tracks(exclude_album_of=ids[11]) == frozenset(everything - folder_f3)
    got = lib.allowed_tracks("bucket < 5", exclude_album_of=ids[2])
    assert got == frozenset({t for t in lib.allowed_tracks("bucket < 5")} - album_a)


def _query(built, i, tmp_path, start=2.0, seconds=6.0):
    _, _, signals, _ = built
    path = tmp_path / f"q{i}.wav"
    encode(excerpt(signals[i], SR, start, seconds), SR, path)
    return path


@pytest.mark.parametrize("where", ["bucket = 3", "bucket < 4", "mood = 'tense'"])
def test_filtered_search_gives_exactly_the_top_n_allowed(built, tmp_path, where):
    """The embedded store on its HNSW path (planner thresholds at 0) with a small k: a filtered
    search must equal the exact store's answer, with exactly min(top, allowed) results."""
    root = built[0]
    q = _query(built, 7, tmp_path)
    answers = {}
    for kind in ("embedded", "exact"):
        folder = tmp_path / kind
        shutil.copytree(root / "lib", folder)
        shutil.rmtree(folder / "index", ignore_errors=True)
        lib = soundalike.open(folder, model=FakeModel())
        list(lib.rebuild_index(store=kind))  # a library's store is recorded: moving it is a rebuild
        if kind == "embedded":
            lib.store.exact_below, lib.store.exact_factor = 0, 0.0
        allowed = lib.allowed_tracks(where)
        res = lib.search(q, where=where, top=8, k=5)
        assert all(h.track_id in allowed for h in res.hits)
        assert len(res.hits) == min(8, len(allowed))
        answers[kind] = [(h.track_id, h.score) for h in res.hits]
        lib.close()
    assert [t for t, _ in answers["embedded"]] == [t for t, _ in answers["exact"]]
    np.testing.assert_allclose([s for _, s in answers["embedded"]], [s for _, s in answers["exact"]], atol=2e-3)


def test_filtered_search_with_more_room_than_matches(lib, built, tmp_path):
    _, _, _, ids = built
    q = _query(built, 3, tmp_path)
    res = lib.search(q, where="bucket = 3", top=50)
    assert {h.track_id for h in res.hits} == lib.allowed_tracks("bucket = 3")  # all 4, none dropped
    assert res.hits[0].track_id == ids[3]
    assert lib.search(q, where="bucket = 3 and bucket = 4").hits == []


def test_similar_with_where_and_exclude_album_of(lib, built):
    _, _, _, ids = built
    res = lib.similar(ids[1], top=5, exclude_album_of=ids[1], where="mood = 'tense'")
    allowed = lib.allowed_tracks("mood = 'tense'", exclude_album_of=ids[1])
    assert len(res.hits) == 5 and all(h.track_id in allowed for h in res.hits)
    assert not {ids[i] for i in ALBUMS["a"]} & {h.track_id for h in res.hits}


def test_several_seeds_and_negatives(lib, built, tmp_path):
    _, _, _, ids = built
    a, b = _query(built, 12, tmp_path), _query(built, 25, tmp_path)
    one = lib.search(a, top=5)
    assert one.hits[0].track_id == ids[12] and one.hits[0].seed is None
    both = lib.search([a, b], top=5)
    assert {h.track_id for h in both.hits[:2]} == {ids[12], ids[25]}
    for h in both.hits:
        assert h.score == pytest.approx(sum(h.seed_scores) / 2, abs=1e-3)
    assert both.query.source == f"{a} + {b}"
    with_offset = lib.search([a, b], top=5, weights="votes=0.2,similarity=0.4,offset=0.4")
    assert {h.track_id for h in with_offset.hits[:2]} == {ids[12], ids[25]}
    assert all(0 < h.seed_scores[h.seed] <= 1 for h in with_offset.hits)
    # a negative: an excerpt of the runner-up for ``a`` pushes that track to the bottom
    runner_up = one.hits[1].track_id
    c = _query(built, next(i for i, t in ids.items() if t == runner_up), tmp_path, start=5.0)
    plain = lib.search(a, top=N_TRACKS)
    neg = lib.search(a, negatives=[c], top=N_TRACKS)
    assert len(neg.hits) == len(plain.hits)  # negatives re-rank, they never drop results
    rank = {h.track_id: r for r, h in enumerate(neg.hits)}
    assert rank[runner_up] > 1
    assert max(neg.hits, key=lambda h: h.seed_scores[1]).track_id == runner_up  # closest to the negative
    for h in neg.hits:
        assert h.score == pytest.approx(h.seed_scores[0] - h.seed_scores[1], abs=1e-3)
    half = lib.search(a, negatives=[c], top=N_TRACKS, negative_weight=0.5)
    for h in half.hits:
        assert h.score == pytest.approx(h.seed_scores[0] - 0.5 * h.seed_scores[1], abs=1e-3)
    # a catalogue track as a seed: it is not returned itself
    by_id = lib.search([ids[12], b], top=5, where="bucket != 6")
    assert ids[12] not in {h.track_id for h in by_id.hits} and by_id.hits[0].track_id == ids[25]


def test_combine_arithmetic():
    def f(tid, score):
        return FusedTrack(tid, score, 1, score, 0.0, None, 0)

    out = combine([[f(1, 0.9), f(2, 0.5)], [f(2, 0.7), f(3, 0.6)]], [[f(1, 0.8)]], negative_weight=0.5)
    got = {c.track_id: round(c.score, 6) for c in out}
    assert got == {1: round(0.45 - 0.4, 6), 2: 0.6, 3: 0.3}
    assert [c.track_id for c in out] == [2, 3, 1]
    assert next(c for c in out if c.track_id == 2).seed == 1  # its best positive


def test_cli_where_not_and_errors(built, tmp_path, capsys, monkeypatch):
    from typer.testing import CliRunner

    from soundalike.cli import app, main
    from soundalike.models import register_model

    register_model("fake", FakeModel)
    root, _, _, ids = built
    a, b, c = (_query(built, i, tmp_path) for i in (12, 25, 30))
    runner = CliRunner()
    r = runner.invoke(app, ["search", str(a), str(b), "--not", str(c), "--where", "mood = 'tense' or bucket < 3",
                            "--exclude-album-of", str(ids[2]), "-n", "4", "-L", str(root / "lib"), "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["hits"]
    assert len(hits) == 4 and all(len(h["seed_scores"]) == 3 for h in hits)
    r = runner.invoke(app, ["similar", str(ids[12]), "--where", "bucket = 2", "-L", str(root / "lib"), "--json"])
    assert r.exit_code == 0, r.output
    assert {h["track_id"] for h in json.loads(r.stdout)["hits"]} == {ids[2], ids[22], ids[32]}
    monkeypatch.setattr("sys.argv", ["soundalike", "similar", str(ids[1]), "--where", "bpm > and x", "-L", str(root / "lib")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: --where: filter error at position 7") and "'and'" in err


def test_tag_fields_filter_and_sort_on_mean_tag_probabilities(lib, built):
    rows = lib.catalog.db.execute("SELECT id, tags FROM tracks").fetchall()
    names = lib.catalog.tag_names()
    assert names == ["fake:low", "fake:mid", "fake:high"]
    probs = {tid: np.frombuffer(blob, np.float16).astype(np.float32) for tid, blob in rows}
    threshold = float(np.median([p[0] for p in probs.values()]))
    expected = {tid for tid, p in probs.items() if p[0] > threshold}
    assert 0 < len(expected) < len(probs)
    assert lib.allowed_tracks(f"tag.low > {threshold}") == frozenset(expected)
    both = {tid for tid, p in probs.items() if p[0] > threshold and p[2] <= 0.5}
    assert lib.allowed_tracks(f"tag.low > {threshold} and not tag.high > 0.5") == frozenset(both)
    ordered = [r.id for r in lib.tracks(order_by="tag.mid desc", limit=5)]
    assert ordered == [tid for tid, _ in sorted(probs.items(), key=lambda kv: -kv[1][1])][:5]
    with pytest.raises(FilterError, match=r"position 1.*unknown tag 'piano'.*high, low, mid"):
        lib.tracks(where="tag.piano > 0.1")
