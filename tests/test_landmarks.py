"""Landmark hashes (identify/landmarks.py): extraction, storage in the catalogue, lookup, and the search they feed.

Real synthesised music (soundalike.synth), real encodes and decodes, a real
catalogue; FakeModel (tests/fakes.py) for the embedding, which landmarks do
not depend on.
"""

import numpy as np
import pytest

from soundalike.identify import landmarks as L
from soundalike.identify import align as R
from soundalike.identify import policy as P
from soundalike.synth import add_noise, encode, excerpt
from tests.conftest import SYNTH_SR, at
from tests.fakes import FakeModel, fake_library

SR = SYNTH_SR


def test_streamed_blocks_give_the_landmarks_of_the_whole_clip(tracks):
    """A long file pushed block by block (bounded memory) gets exactly what one push gets."""
    x = at(np.concatenate([tracks[0], tracks[1]]), 16000)  # 80 s: several CHUNKs of spectrogram
    whole = L.extract(x, 16000)
    ex = L.Extractor(16000)
    for i in range(0, len(x), 7001):
        ex.push(x[i : i + 7001])
    streamed = ex.finish()
    assert len(whole) > 80 * 10
    np.testing.assert_array_equal(whole.hashes, streamed.hashes)
    np.testing.assert_array_equal(whole.frames, streamed.frames)
    assert np.all(np.diff(whole.frames) >= 0) and whole.hashes.max() < 1 << 21
    assert len(L.extract(np.zeros(100, np.float32), 16000)) == 0


def _hits(catalogue: dict[int, L.Landmarks], query: L.Landmarks | list) -> np.ndarray:
    looks = [(L.SAME, query)] if isinstance(query, L.Landmarks) else query
    wanted = {h for _, marks in looks for h in marks.hashes}
    rows = [(h, tid, f) for tid, lm in catalogue.items() for h, f in zip(lm.hashes, lm.frames) if h in wanted]
    return np.array(rows, np.int64).reshape(-1, 3)


@pytest.mark.parametrize("snr", [10, 3])
def test_a_noisy_excerpt_points_to_its_source_and_offset(tracks, snr):
    catalogue = {tid: L.extract(at(x, 16000), 16000) for tid, x in tracks.items()}
    q = add_noise(excerpt(tracks[2], SR, 13.0, 10.0), snr, np.random.default_rng(snr))
    query = L.extract(at(q, R.SR), R.SR)  # queries come at the re-rank's 8 kHz, the catalogue at 16 kHz
    found = L.rank(query, _hits(catalogue, query))
    assert found and found[0].track_id == 2, found
    assert abs(found[0].offset - 13.0) <= 2 * L.HOP_SECONDS
    assert all(c.votes < found[0].votes / 2 for c in found[1:]), found


def warped(x: np.ndarray, warp: L.Warp) -> np.ndarray:
    from soundalike.evaluate import degrade

    return degrade.pitch(x, SR, warp.semitones) if warp.semitones else degrade.tempo(x, SR, warp.tempo)


@pytest.mark.parametrize("warp", [L.Warp(semitones=1), L.Warp(semitones=-2), L.Warp(tempo=1.1), L.Warp(tempo=0.95)],
                         ids=str)
def test_a_pitch_shifted_or_stretched_excerpt_points_to_its_source(tracks, warp):
    """Every hash of a semitone-shifted query differs from its source's; its look under that warp finds it."""
    catalogue = {tid: L.extract(at(x, 16000), 16000) for tid, x in tracks.items()}
    q = warped(excerpt(tracks[2], SR, 13.0, 10.0 * warp.tempo), warp)  # 10 s of query
    looks = L.query_looks(at(q, R.SR), R.SR)
    assert [w for w, _ in looks] == list(L.WARPS) and warp in L.WARPS
    hits = _hits(catalogue, looks)
    found = L.rank(looks, hits)
    assert found and found[0].track_id == 2 and found[0].warp == warp, found
    assert found[0].match >= P.DEFAULT.confirm and abs(found[0].offset - 13.0) <= 0.1
    # the query as it is: its source gets at most half the warped look's votes. A pitch shift changes every
    # hash; a tempo change of a few per cent leaves the pairs with short time spans as they were, so the
    # as-is look can find part of it (x0.95: 8 votes against 18 on an AVX-512 Xeon, under a third on an EPYC)
    as_is = L.rank(looks[:1], hits)
    assert all(c.votes <= found[0].votes / 2 for c in as_is), as_is
    if warp.semitones:
        assert not as_is, as_is


@pytest.fixture
def library(tmp_path, tracks):
    return fake_library(tmp_path, tracks, SR), tmp_path


def _rows(lib) -> int:
    """The landmark postings a search can look up (identify/postings.py)."""
    lib.postings.sync(lib.catalog)
    return lib.postings.generation_postings() + lib.postings.delta_postings()


def _posting_tracks(lib) -> set[int]:
    lib.postings.sync(lib.catalog)
    return set(lib.postings.hits(np.arange(1 << 21))[:, 1].tolist())


def test_the_catalogue_keeps_each_tracks_landmarks_and_drops_them_with_the_track(library, tracks):
    lib, root = library
    assert lib.catalog.landmark_track_count() == 4
    stored = {tid: (np.frombuffer(h, "<u4"), np.frombuffer(f, "<u4"))
              for tid, h, f in lib.catalog.db.execute("SELECT track_id, hashes, frames FROM track_landmarks")}
    before = _rows(lib)
    assert before == sum(len(set(zip(h, f))) for h, f in stored.values())
    for t in lib.catalog.tracks():  # what indexing stored is the landmarks of the decoded audio
        own = L.extract(at(tracks[int(t.path[-6])], FakeModel.sample_rate), FakeModel.sample_rate)
        common = set(zip(own.hashes, own.frames)) & set(zip(*stored[t.id]))
        assert len(common) >= 0.6 * len(own), (len(common), len(own))  # another track shares ~none
    gone = lib.catalog.track_by_path(str(root / "music" / "t1.flac")).id
    (root / "music" / "t1.flac").unlink()
    encode(tracks[1][: SR * 20], SR, root / "music" / "t0.flac")  # t0 changes: re-indexed
    assert list(lib.index([root / "music"]))[-1].event == "done"
    assert lib.catalog.landmark_track_count() == 3
    left = _posting_tracks(lib)
    assert gone not in left and len(left) == 3
    assert _rows(lib) < before


def test_search_reports_a_pitch_shifted_copy(library, tracks, capsys):
    import json

    from soundalike.models import register_model
    from tests.conftest import cli

    lib, root = library
    q = root / "shifted.wav"
    encode(warped(excerpt(tracks[2], SR, 13.0, 10.0), L.Warp(semitones=-1)), SR, q)
    res = lib.search(q, top=3, rerank=3)
    top = res.hits[0]
    assert top.path.endswith("t2.flac") and top.audio_match >= P.DEFAULT.confirm
    assert (top.semitones, top.tempo) == (-1, 1.0) and top.offset is not None  # (the synth loops: on a repeat)
    register_model("fake", FakeModel)
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", "2")
    assert code == 0 and "copy, -1" in out and "sure" in out, out + err  # "copy, -1 st, 100% sure", wrapped
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", "2", "--json")
    assert json.loads(out)["hits"][0]["semitones"] == -1


def test_search_finds_a_source_the_embedding_did_not_reach(library, tracks):
    """Searcher.rerank on a ranking without the true source: the query's landmarks bring it in."""
    from soundalike.fusion import FusedTrack, Weights
    from soundalike.search import Combined

    lib, root = library
    rows = {r.path.rsplit("/", 1)[-1]: r for r in lib.catalog.tracks()}
    seed = lib._seed(str(root / "music" / "t2.flac"), start=12.0, end=20.0, query_hop=2.0)
    lib.searcher.candidates(seed, pool=4, k=5, weights=Weights())  # sets the windows' vote thresholds
    seed.audio = at(add_noise(excerpt(tracks[0], SR, 12.0, 8.0), 5, np.random.default_rng(2)), R.SR)

    def cand(name, score):
        return Combined(rows[name].id, score, 0, [score], FusedTrack(rows[name].id, score, 3, score, 0.5, 0.0, 3))

    out = lib.searcher.rerank(seed, [cand("t2.flac", 0.6), cand("t1.flac", 0.55)], 2, weights=Weights())
    assert out[0].track_id == rows["t0.flac"].id, [(c.track_id, c.score, c.match) for c in out]
    assert out[0].match > P.DEFAULT.floor and abs(out[0].best.offset - 0.0) <= 0.1
    # it joined with its fused score from all its segments, plus what its audio match adds
    fused = lib.searcher.rescore(seed, lib.catalog.informative_vectors_of([out[0].track_id]), Weights())
    assert out[0].score == pytest.approx(min(1.0, fused[out[0].track_id] + P.boost(out[0].match)))
    # the same ranking with t0 excluded (a track's own search): landmarks never bring it back
    seed.exclude = frozenset({rows["t0.flac"].id})
    out = lib.searcher.rerank(seed, [cand("t2.flac", 0.6), cand("t1.flac", 0.55)], 2, weights=Weights())
    assert rows["t0.flac"].id not in [c.track_id for c in out]


def test_a_library_indexed_without_landmarks_stores_none(tmp_path, tracks, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_LANDMARKS", "0")
    lib = fake_library(tmp_path, {0: tracks[0]}, SR)
    assert lib.catalog.track_count() == 1 and lib.catalog.landmark_track_count() == 0 and _rows(lib) == 0


def test_a_library_indexed_before_landmarks_gets_them_without_re_embedding(tmp_path, tracks, monkeypatch):
    model = FakeModel()
    monkeypatch.setenv("SOUNDALIKE_LANDMARKS", "0")
    lib = fake_library(tmp_path, {0: tracks[0], 1: tracks[1]}, SR, model=model)
    assert lib.catalog.landmark_track_count() == 0
    vectors = dict(lib.catalog.track_vectors())
    embedded = model.calls
    monkeypatch.delenv("SOUNDALIKE_LANDMARKS")
    events = list(lib.index([tmp_path / "music"]))
    assert [e.event for e in events].count("landmarks") == 2 and events[-1].files_todo == 2
    assert lib.catalog.landmark_track_count() == 2 and _rows(lib) > 0
    assert model.calls == embedded  # no window went through the network again
    assert {k: v.tobytes() for k, v in lib.catalog.track_vectors()} == {k: v.tobytes() for k, v in vectors.items()}
    again = list(lib.index([tmp_path / "music"]))
    assert again[-1].files_todo == 0  # done once


def test_rank_counts_votes_at_one_offset_and_weighs_them_against_chance_and_the_leader():
    q = L.Landmarks(np.arange(40, dtype=np.int64), np.arange(40, dtype=np.int64) * 3)
    rows = [(h, 1, f + 100) for h, f in zip(q.hashes, q.frames)]  # track 1: a copy at +100 frames
    rows += [(h, 2, f + 7) for h, f in zip(q.hashes[:12], q.frames[:12])]  # track 2: 12 hashes at one offset
    rows += [(h, 3, 5 * h) for h in q.hashes]  # track 3: 40 hits scattered over offsets
    rows += [(h, 3 + t, 1000 + t) for t, h in enumerate(q.hashes[:30], start=1)]  # 30 tracks with 1 hit
    found = L.rank(q, np.array(rows, np.int64))
    assert [c.track_id for c in found] == [1, 2]  # track 3's scattered hits never reach MIN_VOTES
    copy, other = found
    assert copy.votes == 40 and copy.offset == pytest.approx(100 * L.HOP_SECONDS)
    assert copy.match == pytest.approx((40 - 2 * 2) / 40)  # chance: the median of the rest, at least 2
    assert other.votes == 12 and other.match == pytest.approx((12 - 4) / 12 * 12 / 40)
    assert L.rank(q, np.zeros((0, 3), np.int64)) == []


def test_rank_takes_each_track_under_the_warp_that_gives_it_most_votes():
    q = L.Landmarks(np.arange(30, dtype=np.int64), np.arange(30, dtype=np.int64) * 2)
    shifted = L.Landmarks(q.hashes + 1000, q.frames)
    up = L.Warp(semitones=1)
    rows = [(h, 1, f + 20) for h, f in zip(shifted.hashes, shifted.frames)]  # track 1: a copy, a semitone off
    rows += [(h, 2, f + 9) for h, f in zip(q.hashes[:10], q.frames[:10])]  # track 2: 10 hashes as it is
    found = L.rank([(L.SAME, q), (up, shifted)], np.array(rows, np.int64))
    assert [(c.track_id, c.warp, c.votes) for c in found] == [(1, up, 30), (2, L.SAME, 10)]
    assert found[0].offset == pytest.approx(20 * L.HOP_SECONDS) and found[1].match < found[0].match


def test_agreement_tells_a_copy_from_other_music(tracks):
    x = at(tracks[0], 16000)
    copy = L.extract(0.3 * x[16000 * 5 : 16000 * 30], 16000)  # trimmed and 10 dB quieter
    assert L.agreement(L.extract(x, 16000), copy) > 0.1  # cut between frames: 0.15 (true pairs: 0.07-1.0)
    assert L.agreement(L.extract(x, 16000), L.extract(at(tracks[1], 16000), 16000)) < 0.05
    assert L.agreement(copy, L.Landmarks(np.zeros(0, np.int64), np.zeros(0, np.int64))) == 0.0


def test_duplicates_need_landmarks_that_agree(library, tracks):
    from soundalike.duplicates import MIN_LANDMARK_AGREEMENT

    lib, root = library
    encode(tracks[3], SR, root / "music" / "t3-copy.mp3", bitrate=128000)
    assert list(lib.index([root / "music"]))[-1].event == "done"
    names = {t.id: t.path.rsplit("/", 1)[-1] for t in lib.catalog.tracks()}
    pairs = lib.duplicates(threshold=0.05)  # every candidate the windows allow
    assert {frozenset((names[p.a], names[p.b])) for p in pairs} == {frozenset(("t3.flac", "t3-copy.mp3"))}
    assert pairs[0].landmarks >= MIN_LANDMARK_AGREEMENT and pairs[0].score > 0.9


class FakeModelAt(FakeModel):
    """FakeModel at another sample rate (a second embedding model at 22.05 kHz, say)."""

    model_id = "fake-22k"
    sample_rate = 22050


@pytest.mark.parametrize("model", [FakeModel, FakeModelAt], ids=["8kHz", "22.05kHz"])
def test_identification_features_do_not_depend_on_the_models_rate(tmp_path, tracks, model):
    """Landmarks and scan prints are computed at rerank.SR whatever the model's rate (identify/features.py):
    at 22.05 kHz the catalogue's landmark bins were 10.8 Hz wide against the query's 15.6 Hz, and a query
    found its own source with a vote or two."""
    lib = fake_library(tmp_path, tracks, SR, model=model())
    q = tmp_path / "q.wav"
    encode(add_noise(excerpt(tracks[2], SR, 11.0, 8.0), 10, np.random.default_rng(3)), SR, q)
    seed = lib._seed(str(q), start=None, end=None, query_hop=2.0, keep_audio=True)
    found = lib.searcher.landmark_candidates(seed, None)
    t2 = lib.catalog.track_by_path(str(tmp_path / "music" / "t2.flac")).id
    assert found and found[0].track_id == t2 and found[0].votes >= 25, found
    prints = dict(lib.catalog.all_prints())[t2]
    assert abs(len(prints) * 0.128 - 40.0) < 1.0  # scan print frames at 128 ms, whatever the rate
