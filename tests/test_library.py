"""Indexing and search mechanics, end to end through the Library API, on real encoded audio.

These use ``FakeModel`` (tests/fakes.py) for speed; tests/test_e2e.py runs the real model.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import CatalogError, QueryError, UserError
from soundalike.synth import add_noise, encode, excerpt, render_track
from tests.fakes import FakeModel

SR = 22050
FORMATS = [".flac", ".mp3", ".ogg", ".wav", ".m4a", ".opus"]


@pytest.fixture(scope="module")
def tracks():
    return {seed: render_track(seed, seconds=40, sample_rate=SR) for seed in range(6)}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, tracks):
    folder = tmp_path_factory.mktemp("encoded") / "music"
    (folder / "sub").mkdir(parents=True)
    for seed, x in tracks.items():
        sub = "sub/" if seed % 2 else ""
        encode(x, SR, folder / f"{sub}track{seed}{FORMATS[seed]}")
    (folder / "broken.mp3").write_bytes(b"ID3" + os.urandom(3000))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio, not scanned")
    return folder


@pytest.fixture
def music(tmp_path, encoded):
    """A fresh copy per test, since tests change it."""
    return Path(shutil.copytree(encoded, tmp_path / "music"))


def make_lib(path, model=None):
    return soundalike.open(path, model=model or FakeModel(), hop=2.0)


def run(lib, *paths, **kw):
    events = list(lib.index(paths, **kw))
    assert events[-1].event == "done"
    return events


def test_index_records_tracks_and_errors_and_goes_on(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    events = run(lib, music)
    done = events[-1]
    assert done.files_total == 8 and done.errors == 2
    assert sorted(os.path.basename(p) for p, _ in done.error_list) == ["broken.mp3", "empty.wav"]
    assert all(reason for _, reason in done.error_list)
    assert lib.catalog.track_count() == 6
    stats = lib.stats()
    assert stats["tracks"] == 6 and stats["errors"] == 2 and stats["model"] == "fake"
    assert lib.store.count("tracks") == 6
    assert lib.store.count("segments") == stats["informative_segments"] > 6 * 15
    assert done.audio_seconds == pytest.approx(240, abs=2)


def test_second_run_is_a_no_op_and_changes_are_incremental(tmp_path, music, tracks):
    model = FakeModel()
    lib = make_lib(tmp_path / "lib", model)
    run(lib, music)
    calls = model.calls
    again = run(lib, music)
    assert model.calls == calls, "an unchanged folder must embed nothing"
    assert again[0].files_todo == 0
    ids = {t.path: t.id for t in lib.tracks()}

    # touched (same bytes, new mtime): hashed, not embedded
    touched = music / "track0.flac"
    os.utime(touched, (1_000_000, 1_000_000))
    # changed content: re-embedded
    changed = music / "track2.ogg"
    encode(render_track(99, seconds=30, sample_rate=SR), SR, changed)
    # moved: keeps its vectors
    moved_from = music / "sub" / "track1.mp3"
    moved_to = music / "moved-track1.mp3"
    shutil.move(moved_from, moved_to)
    # deleted
    (music / "track4.m4a").unlink()

    calls = model.calls
    events = run(lib, music)
    by_path = {e.path: e.event for e in events if e.path}
    assert by_path[str(touched)] == "unchanged"
    assert by_path[str(changed)] == "indexed"
    assert by_path[str(moved_to)] == "moved"
    assert by_path[str(music / "track4.m4a")] == "removed"
    assert model.calls - calls == sum(
        1 for s in lib.catalog.segments_of(lib.track(str(changed)).id) if s[3]
    ), "only the changed file is embedded"
    assert lib.track(str(moved_to)).id == ids[str(moved_from)]
    assert lib.catalog.track_count() == 5
    assert lib.store.count("tracks") == 5
    with pytest.raises(QueryError):
        lib.track(str(music / "track4.m4a"))


def degraded_query(tmp_path, x, *, start, seconds=10.0, snr=20.0):
    clip = add_noise(excerpt(x, SR, start, seconds), snr, np.random.default_rng(1))
    path = tmp_path / "query.mp3"
    encode(clip, SR, path, bitrate=64000)
    return path


def test_search_finds_the_source_of_a_degraded_excerpt(tmp_path, music, tracks):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    query = degraded_query(tmp_path, tracks[3], start=17.3)
    result = lib.search(query, top=3, rerank=0)  # the fusion alone (landmarks may place the offset elsewhere)
    best = result.hits[0]
    assert os.path.basename(best.path).startswith("track3.")
    # synthesised loops repeat every bar, so with the fake model the offset may land on a repeat;
    # here it must agree with the matched pairs, and tests/test_e2e.py checks its accuracy on real music
    agreeing = [m for m in best.matches if abs(m.track_start - m.query_start - best.offset) <= 1.5]
    assert len(agreeing) == best.offset_votes >= len(best.matches) // 2
    # with the re-rank, the landmarks give the offset; offset_votes counts the windows whose best segments agree
    # with it, and the pairs shown for a copy are all at it (query t <-> track t + offset: what is played)
    reranked = lib.search(query, top=3).hits[0]
    assert reranked.track_id == best.track_id and reranked.audio_match > 0 and reranked.copy
    assert 0 <= reranked.offset_votes <= result.query.informative_windows
    assert reranked.matches and all(abs(m.track_start - m.query_start - reranked.offset) <= 0.01
                                    for m in reranked.matches)
    assert best.votes >= result.query.informative_windows - 1
    assert 0 < best.score <= 1 and best.score > result.hits[1].score
    for m in best.matches:
        assert m.query_end > m.query_start and m.track_end > m.track_start and -1 <= m.similarity <= 1
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["hits"][0]["track_id"] == best.track_id


def test_search_a_time_range_of_a_catalogue_file(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    src = music / "track0.flac"
    result = lib.search(src, start=20, end=30)
    assert result.query.start == 20
    assert "track0" in result.hits[0].path
    assert abs(result.hits[0].offset) <= 1.0  # track time = query time + offset, in the file's own timeline
    assert all(20 <= m.query_start < 30 for m in result.hits[0].matches)
    with pytest.raises(QueryError):
        lib.search(src, start=500)
    with pytest.raises(QueryError):
        lib.search(src, start=10, end=5)


def test_similar_excludes_the_track_itself(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    tid = lib.track(str(music / "track0.flac")).id
    result = lib.similar(tid, top=10)
    assert tid not in [h.track_id for h in result.hits]
    assert len(result.hits) == 5
    assert lib.similar(str(music / "track0.flac")).hits[0].track_id == result.hits[0].track_id
    with pytest.raises(QueryError):
        lib.similar(12345)


def test_similar_to_a_range_of_a_track(tmp_path, music, tracks):
    # another file holds 12 s of track0 from 16 s on: a range query of track0 finds it there
    encode(excerpt(tracks[0], SR, 16.0, 12.0), SR, music / "reuse.flac")
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    tid = lib.track(str(music / "track0.flac")).id
    result = lib.similar(tid, start=16, end=28, top=3)
    assert (result.query.start, result.query.end) == (16, 28)
    assert tid not in [h.track_id for h in result.hits]  # the track itself is left out
    best = result.hits[0]
    assert os.path.basename(best.path) == "reuse.flac"
    assert all(16 <= (m.query_start + m.query_end) / 2 <= 28 for m in best.matches)
    assert best.offset == pytest.approx(-16, abs=1.5)  # track time = query time + offset
    # the same through search() with a track seed
    assert lib.search(tid, start=16, end=28, top=3).hits[0].track_id == best.track_id
    with pytest.raises(QueryError, match="beyond the end"):
        lib.similar(tid, start=500)
    with pytest.raises(QueryError, match="after --start"):
        lib.similar(tid, start=20, end=10)


def test_rebuild_index_gives_the_same_answers(tmp_path, music, tracks):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    query = degraded_query(tmp_path, tracks[5], start=5.0)
    before = [(h.track_id, h.score) for h in lib.search(query).hits]
    progress = list(lib.rebuild_index())
    assert progress[-1][0] == progress[-1][1] > 0
    after = [(h.track_id, h.score) for h in lib.search(query).hits]
    assert before == after


def test_an_interrupted_run_resumes_and_rebuilds_the_index(tmp_path, music, tracks):
    model = FakeModel()
    lib = make_lib(tmp_path / "lib", model)
    it = lib.index([music])
    for event in it:
        if event.event == "indexed":
            break
    it.close()  # as if killed after the first track
    assert lib.catalog.track_count() >= 1
    lib.catalog.set_meta("index_dirty", "1")  # a real kill leaves the flag set
    lib.store.clear()  # and the index possibly behind the catalogue
    run(lib, music)
    assert lib.catalog.track_count() == 6
    assert lib.store.count("tracks") == 6
    assert "track2" in lib.search(degraded_query(tmp_path, tracks[2], start=3.0)).hits[0].path


class SlowRecordingModel(FakeModel):
    """FakeModel whose network takes 200 ms a call and records each call's window count (long enough that
    the decode workers queue several short files' windows behind it even on a loaded machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def embed_batch(self, features):
        import time

        time.sleep(0.2)
        self.sizes.append(len(features))
        return super().embed_batch(features)


def test_windows_of_short_files_share_network_batches(tmp_path):
    """A library of short samples: windows from several files go through the network together,
    never more than ``batch_size`` at a time, and every file gets the vectors it gets alone."""
    folder = tmp_path / "samples"
    folder.mkdir()
    for seed in range(12):
        encode(render_track(seed, seconds=3, sample_rate=SR), SR, folder / f"hit{seed:02d}.flac")
    encode(render_track(99, seconds=60, sample_rate=SR), SR, folder / "long.flac")  # 30 windows: chunks of 16 + 14
    model = SlowRecordingModel()
    batched = make_lib(tmp_path / "batched", model)
    run(batched, folder)
    assert max(model.sizes) > 1 and max(model.sizes) <= model.batch_size
    assert len(model.sizes) < 12  # fewer calls than files

    alone = make_lib(tmp_path / "alone")
    for path in sorted(folder.iterdir()):
        run(alone, path, prune=False)
    assert batched.catalog.track_count() == alone.catalog.track_count() == 13
    for path in sorted(folder.iterdir()):
        a = batched.catalog.segments_of(batched.catalog.track_by_path(str(path)).id)
        b = alone.catalog.segments_of(alone.catalog.track_by_path(str(path)).id)
        assert [s[1:5] for s in a] == [s[1:5] for s in b]
        np.testing.assert_array_equal(np.stack([s[5] for s in a]), np.stack([s[5] for s in b]))


def test_short_clips_indexed_before_centring_are_embedded_again_and_only_they(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    encode(render_track(1, seconds=1.5, sample_rate=SR)[: int(0.4 * SR)], SR, folder / "hit.flac")
    encode(render_track(2, seconds=20, sample_rate=SR), SR, folder / "long.flac")
    model = FakeModel()
    lib = make_lib(tmp_path / "lib", model)
    run(lib, folder)
    assert run(lib, folder)[-1].files_todo == 0
    hit = lib.catalog.track_by_path(str(folder / "hit.flac")).id
    before = lib.catalog.segments_of(hit)[0][5]
    # a catalogue whose short clip was embedded repeat-padded, before schema 4
    lib.catalog.db.execute("UPDATE files SET indexed_at = 0 WHERE path = ?", (str(folder / "hit.flac"),))
    lib.catalog.db.execute("UPDATE segments SET vector = ? WHERE track_id = ?",
                           (np.zeros(8, np.float16).tobytes(), hit))
    lib.catalog.db.commit()
    stale = lib.catalog.stale_track_paths(model.model_id, model.version, model.window_seconds)
    assert stale == {str(folder / "hit.flac")}
    calls = model.calls
    events = run(lib, folder)
    assert events[-1].files_todo == 1 and model.calls == calls + 1  # one window: the clip's, not the long track's
    hit = lib.catalog.track_by_path(str(folder / "hit.flac")).id
    np.testing.assert_array_equal(lib.catalog.segments_of(hit)[0][5], before)
    assert run(lib, folder)[-1].files_todo == 0


def test_a_library_refuses_another_model(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    run(lib, music / "track0.flac")
    lib.close()
    with pytest.raises(CatalogError, match="built with model 'fake'"):
        soundalike.open(tmp_path / "lib", model="musicnn")


def test_bad_paths_are_user_errors_and_lose_nothing(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    with pytest.raises(UserError, match="no such file or folder"):
        run(lib, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no audio files"):
        run(lib, tmp_path / "empty")
    assert lib.catalog.track_count() == 6
    with pytest.raises(UserError, match="no library"):
        soundalike.open(tmp_path / "missing", create=False)


def test_a_silent_query_is_refused(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    silent = tmp_path / "silent.wav"
    encode(np.zeros(SR * 5, np.float32), SR, silent)
    with pytest.raises(QueryError, match="silent"):
        lib.search(silent)


def test_export_audiovector_and_parquet(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    files = list(lib.export(tmp_path / "av", format="audiovector"))
    assert len(files) == 6
    doc = json.loads(files[0].read_text())
    assert {"filename", "duration_seconds", "embedding"} <= doc.keys()
    assert len(doc["embedding"]) == FakeModel.dim
    assert np.linalg.norm(doc["embedding"]) == pytest.approx(1, abs=1e-2)
    pq = pytest.importorskip("pyarrow.parquet")
    (out,) = lib.export(tmp_path / "lib.parquet", format="parquet")
    table = pq.read_table(out)
    assert table.num_rows == 6 and "embedding" in table.column_names
    with pytest.raises(UserError, match="format"):
        list(lib.export(tmp_path / "x", format="csv"))


def test_a_damaged_catalogue_is_a_catalog_error(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogError, match="cannot open catalogue"):
        soundalike.open(tmp_path / "lib")


def test_query_hop_comes_from_the_environment_or_the_library_hop(tmp_path, music, monkeypatch):
    lib = make_lib(tmp_path / "lib")
    run(lib, music / "track0.flac")
    assert lib.search(music / "track0.flac", end=10).query.hop == pytest.approx(2.0 * 2 / 3)
    monkeypatch.setenv("SOUNDALIKE_QUERY_HOP", "0.5")
    assert lib.search(music / "track0.flac", end=10).query.hop == 0.5
    monkeypatch.setenv("SOUNDALIKE_QUERY_HOP", "fast")
    with pytest.raises(UserError, match="SOUNDALIKE_QUERY_HOP"):
        lib.search(music / "track0.flac", end=10)


def test_non_finite_samples_fail_their_file_and_the_batch_goes_on(tmp_path, tracks):
    """Issue 19, finding 1: a float WAV holding NaN or inf stopped every run with an IntegrityError."""
    from tests.test_decode import float_wav_with

    folder = tmp_path / "music"
    folder.mkdir()
    for seed in range(3):
        encode(tracks[seed][: SR * 10], SR, folder / f"good{seed}.flac")
    float_wav_with(folder / "a-nan.wav", np.nan, at_seconds=2.0, seconds=6.0)
    float_wav_with(folder / "b-inf.wav", np.inf, at_seconds=4.0, seconds=6.0, channels=2)
    lib = make_lib(tmp_path / "lib")
    for attempt in range(2):  # and again: the failures are recorded, nothing stops a re-run
        done = run(lib, folder)[-1]
        assert lib.catalog.track_count() == 3 and lib.store.count("tracks") == 3
        assert done.errors == (2 if attempt == 0 else 0)
    errors = {row.path: row.error for row in lib.catalog.errors()}
    assert "NaN sample at 2.000 s" in errors[str(folder / "a-nan.wav")]
    assert "infinite sample at 4.000 s" in errors[str(folder / "b-inf.wav")]


def test_a_value_the_catalogue_refuses_fails_only_its_file(tmp_path, tracks, monkeypatch):
    """The second line of defence: were NaN to get past the decoder, the catalogue's NOT NULL refusal
    fails that one file (it was an IntegrityError that ended the run)."""
    from soundalike import decode as decoding
    from tests.test_decode import float_wav_with

    monkeypatch.setattr(decoding, "_check_finite", lambda *a, **k: None)
    folder = tmp_path / "music"
    folder.mkdir()
    encode(tracks[0][: SR * 10], SR, folder / "good.flac")
    float_wav_with(folder / "nan.wav", np.nan, at_seconds=2.0, seconds=6.0)
    done = run(lib := make_lib(tmp_path / "lib"), folder)[-1]
    assert lib.catalog.track_count() == 1 and done.errors == 1
    assert "cannot record it" in done.error_list[0][1] and done.error_list[0][0].endswith("nan.wav")


def test_the_name_field_is_the_title_or_else_the_file_name(tmp_path, music):
    """What the web app's Title column and the CLI show as a track's name sorts as it is shown: the title tag,
    the file name where the tags have none, regardless of case."""
    lib = make_lib(tmp_path / "lib")
    run(lib, music)
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    with lib.catalog.db:
        lib.catalog.db.execute("UPDATE tracks SET title = 'Zebra crossing' WHERE id = ?", (ids["track0.flac"],))
        lib.catalog.db.execute("UPDATE tracks SET title = 'a capella' WHERE id = ?", (ids["track2.ogg"],))
    shown = [t.title or Path(t.path).name for t in lib.tracks(order_by="name, id")]
    assert shown == sorted(shown, key=str.lower) and shown[0] == "a capella" and shown[-1] == "Zebra crossing"
    assert [t.id for t in lib.tracks(where="name contains 'zebra'")] == [ids["track0.flac"]]
    assert {t.id for t in lib.tracks(where="name = 'track1.mp3'")} == {ids["track1.mp3"]}
