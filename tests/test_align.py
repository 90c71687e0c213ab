"""The identification re-rank (identify/align.py): fingerprint alignment of the query's audio with candidates' audio.

Real synthesised music (soundalike.synth), real encodes and decodes; the
library tests use FakeModel (tests/fakes.py) for the embedding, since the
re-rank does not depend on the model.
"""

import numpy as np
import pytest
import soxr
from scipy.signal import butter, sosfilt

import soundalike
from soundalike.identify import align as R
from soundalike.identify import policy as P
from soundalike.synth import add_noise, encode, excerpt, fluidsynth_missing, gm_phrase, render_gm, render_track
from tests.conftest import SYNTH_SR, needs_tool
from tests.fakes import FakeModel, fake_library

SR = SYNTH_SR


def at_8k(x):
    return soxr.resample(x.astype(np.float32), SR, R.SR).astype(np.float32)


def _filtered(x, kind):
    if kind == "lowpass-3k":
        return sosfilt(butter(8, 3000, "lowpass", fs=SR, output="sos"), x)
    if kind == "phone":
        return sosfilt(butter(4, [300, 3400], "bandpass", fs=SR, output="sos"), x)
    return add_noise(x, 10, np.random.default_rng(3))


@pytest.mark.parametrize("kind", ["white-10dB", "lowpass-3k", "phone"])
def test_a_degraded_excerpt_aligns_with_its_source_at_the_right_lag(tracks, kind):
    src = tracks[1]
    q = at_8k(_filtered(excerpt(src, SR, 14.0, 10.0), kind) * 0.2)  # and 14 dB quieter
    stretch = at_8k(excerpt(src, SR, 10.0, 18.0))  # the query starts 4 s into it
    other = at_8k(excerpt(tracks[2], SR, 10.0, 18.0))
    hit = R.align(R.fingerprint(q), R.fingerprint(stretch))
    miss = R.align(R.fingerprint(q), R.fingerprint(other))
    assert abs(hit.lag - 4.0) <= 2 * R.HOP / R.SR
    assert hit.match > P.DEFAULT.floor and hit.match > miss.match + 0.1, (hit, miss)
    assert miss.match < P.DEFAULT.floor, miss
    assert P.boost(miss.match) == 0 and P.boost(hit.match) > 0


def test_short_or_empty_audio_does_not_align():
    assert R.fingerprint(np.zeros(100, np.float32)).shape[0] == 0
    assert R.align(np.zeros((0, 15), np.int8), np.ones((50, 15), np.int8)) is None
    assert P.boost(None) == 0


@pytest.fixture(scope="module")
def library(tmp_path_factory, tracks):
    root = tmp_path_factory.mktemp("rerank")
    return fake_library(root, tracks, SR), root


def test_search_reports_the_audio_match_of_the_leading_candidates(library, tracks, tmp_path):
    lib, _ = library
    q = tmp_path / "q.mp3"
    encode(add_noise(excerpt(tracks[3], SR, 20.0, 10.0), 10, np.random.default_rng(0)), SR, q, bitrate=64000)
    res = lib.search(q, top=4, rerank=4)
    assert res.hits[0].path.endswith("t3.flac")
    assert res.hits[0].audio_match > P.DEFAULT.floor
    assert all(h.audio_match is None or h.audio_match < P.DEFAULT.floor for h in res.hits[1:])
    assert "rerank_ms" in res.timings_ms and res.hits[0].score <= 1.0
    scores = [h.score for h in res.hits if not h.copy and h.identified_by is None]  # the hits ranked by score
    assert scores == sorted(scores, reverse=True)
    assert res.hits[0].identified_by == "aligned" and res.hits[0].copy_confidence > 0.9
    off = lib.search(q, top=4, rerank=0)
    assert all(h.audio_match is None for h in off.hits) and "rerank_ms" not in off.timings_ms
    # the score shown is the same fused evidence plus what the match adds (its rank comes from being a copy)
    fused = {h.track_id: h.score for h in off.hits}
    top = res.hits[0]
    assert top.score == pytest.approx(min(1.0, fused[top.track_id] + P.boost(top.audio_match)), abs=2e-4)


def test_the_re_rank_promotes_the_copy_over_a_better_fused_candidate(library, tracks):
    """Searcher.rerank on a hand-made ranking: the candidate whose audio the query is moves first."""
    from soundalike.fusion import Weights
    from soundalike.search import Combined

    lib, _ = library
    rows = {r.path.rsplit("/", 1)[-1]: r for r in lib.catalog.tracks()}
    query_audio = at_8k(add_noise(excerpt(tracks[0], SR, 12.0, 8.0), 10, np.random.default_rng(1)))
    seed = lib._seed(str(rows["t2.flac"].path), start=12.0, end=20.0, query_hop=2.0)
    seed.audio = query_audio  # the query's audio is a noisy copy of t0 at 12 s (its windows say t2)

    def cand(name, score, offset):
        from soundalike.fusion import FusedTrack

        f = FusedTrack(rows[name].id, score, 3, score, 0.5, offset, 3)
        return Combined(rows[name].id, score, 0, [score], f)

    ranked = [cand("t2.flac", 0.9, 0.0), cand("t1.flac", 0.85, 3.0), cand("t0.flac", 0.6, 0.5)]
    out = lib.searcher.rerank(seed, ranked, 3, weights=Weights())
    assert [c.track_id for c in out][0] == rows["t0.flac"].id
    assert out[0].match > P.DEFAULT.floor and out[0].score <= 1.0
    assert {c.track_id: c.match for c in out}[rows["t2.flac"].id] < P.DEFAULT.floor


def test_several_seeds_are_not_re_ranked(library, tracks, tmp_path):
    lib, root = library
    q = tmp_path / "q.wav"
    encode(excerpt(tracks[1], SR, 5.0, 8.0), SR, q)
    res = lib.search([q, q], top=3, rerank=5)
    assert all(h.audio_match is None for h in res.hits)
    with pytest.raises(soundalike.errors.UserError, match="rerank"):
        lib.search(q, rerank=-1)


def test_match_candidates_stops_once_a_leading_candidate_is_a_copy(library, tracks):
    _, root = library
    music = root / "music"
    query = at_8k(excerpt(tracks[0], SR, 10.0, 8.0))
    cands = [(i, str(music / f"t{i}.flac"), 40.0, 0.0) for i in (0, 1, 2, 3)]
    every = R.match_candidates(query, 10.0, cands)
    assert set(every) == {0, 1, 2, 3} and every[0].match > P.DEFAULT.confirm
    assert abs(every[0].lag - 10.0) <= 2 * R.HOP / R.SR
    early = R.match_candidates(query, 10.0, cands, confirm=P.DEFAULT.confirm, workers=2)
    assert set(early) == {0, 1}  # the first pair held the copy: the rest are not decoded
    late = R.match_candidates(query, 10.0, cands[::-1], confirm=P.DEFAULT.confirm, workers=2)
    assert set(late) == {0, 1, 2, 3}
    gone = R.match_candidates(query, 10.0, [(9, str(music / "nope.flac"), 40.0, 0.0)] + cands[:1])
    assert set(gone) == {0}  # a file that no longer decodes is left out


def test_cli_search_rerank_option(library, tracks, tmp_path, capsys):
    import json

    from soundalike.models import register_model
    from tests.conftest import cli

    _, root = library
    register_model("fake", FakeModel)
    q = tmp_path / "q.wav"
    encode(add_noise(excerpt(tracks[3], SR, 20.0, 10.0), 10, np.random.default_rng(0)), SR, q)
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", "2", "--json")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    assert hits[0]["path"].endswith("t3.flac") and hits[0]["audio_match"] > P.DEFAULT.floor
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", "2", "--rerank", "0", "--json")
    assert code == 0, err
    assert all(h["audio_match"] is None for h in json.loads(out)["hits"])


def test_a_copy_test_knows_copies_of_one_recording(tracks, tmp_path):
    """duplicates.CopyTest, which both the re-rank's rules and the grouping of results use: a level-changed
    re-encode is a copy, another track is not, and a byte-identical file is one without further tests."""
    import shutil

    from soundalike.duplicates import CopyTest

    root = tmp_path
    lib = fake_library(root, {s: tracks[s] for s in range(3)}, SR)
    encode(tracks[1] * 0.7, SYNTH_SR, root / "music" / "t1-quieter.ogg")
    shutil.copy(root / "music" / "t2.flac", root / "music" / "t2-again.flac")
    assert list(lib.index([root / "music"]))[-1].event == "done"
    ids = {r.path.rsplit("/", 1)[-1]: r.id for r in lib.catalog.tracks()}
    same = CopyTest(lib.catalog, hop=lib.hop)
    assert same(ids["t1.flac"], ids["t1-quieter.ogg"]) and same(ids["t1-quieter.ogg"], ids["t1.flac"])
    assert same(ids["t2.flac"], ids["t2-again.flac"])
    assert not same(ids["t1.flac"], ids["t2.flac"]) and not same(ids["t0.flac"], ids["t1-quieter.ogg"])


@needs_tool(fluidsynth_missing() and f"GM renders: {fluidsynth_missing()}")
def test_a_source_that_aligns_below_the_floor_is_a_copy_when_the_sweep_and_the_alignment_both_lead_it(tmp_path):
    """0 dB SNR: the source's alignment stays below FLOOR, but it is twice every other candidate's and the
    sweep of scan prints leads with it clearly: two of the three votes (``copy_below_confirm``). Another
    phrase on the same piano and two synthesised tracks are the rest of the library."""
    import soundfile as sf

    tracks = {}
    for i, seed in enumerate((3, 4)):
        path = render_gm(gm_phrase(seconds=30, seed=seed), 0, tmp_path / f"gm{seed}.wav", seconds=30)
        x, sr = sf.read(path, dtype="float32")
        assert sr == SR
        tracks[i] = x.mean(axis=1)
    tracks |= {seed: render_track(seed, seconds=30, sample_rate=SR) for seed in (7, 8)}
    lib = fake_library(tmp_path, tracks, SR)
    q = tmp_path / "q.flac"
    encode(add_noise(excerpt(tracks[0], SR, 8.0, 10.0), 0, np.random.default_rng(0)), SR, q)
    hits = lib.search(q, top=4).hits
    assert hits[0].path.endswith("t0.flac") and hits[0].copy, hits[0]
    assert hits[0].audio_match <= P.DEFAULT.floor  # the alignment alone is not above the floor


@pytest.mark.parametrize("snr", [5.0, 0.0])
def test_a_copys_matched_pairs_are_at_its_offset(library, tracks, tmp_path, snr):
    """Under noise the windows' best segments scatter over the track, but the hit's offset comes from
    identification: every pair shown (and played) is query t <-> track t + offset."""
    lib, _ = library
    q = tmp_path / "noisy.wav"
    encode(add_noise(excerpt(tracks[2], SR, 17.0, 10.0), snr, np.random.default_rng(5)), SR, q)
    hit = lib.search(q, top=4, rerank=4).hits[0]
    assert hit.path.endswith("t2.flac") and hit.copy
    assert hit.offset == pytest.approx(17.0, abs=0.1)
    assert len(hit.matches) >= 3
    for m in hit.matches:
        assert m.track_start - m.query_start == pytest.approx(hit.offset, abs=0.01)
        assert m.track_end - m.track_start == pytest.approx(m.query_end - m.query_start, abs=0.01)
        assert -1.0 <= m.similarity <= 1.0


# -- the rules' wiring in Searcher.rerank: each test fails when search.py stops applying its rule --------------


@pytest.fixture
def wired(library, tracks, monkeypatch):
    """Searcher.rerank over four catalogue tracks with its evidence set by the test: what the landmarks
    propose (``marked``), what the audio alignment measures (``aligned``), what the sweep finds (``swept``)."""
    from soundalike.identify import landmarks as L
    from soundalike.identify import prints as Prints
    from soundalike.fusion import FusedTrack, Weights
    from soundalike.search import Combined

    lib, root = library
    ids = [r.id for r in sorted(lib.catalog.tracks(), key=lambda r: r.path)][:4]
    seed = lib._seed(str(root / "music" / "t2.flac"), start=10.0, end=18.0, query_hop=2.0, keep_audio=True)
    lib.searcher.candidates(seed, pool=4, k=5, weights=Weights())
    evidence = {"marked": [], "aligned": {}, "swept": []}
    monkeypatch.setattr(type(lib.searcher), "landmark_candidates", lambda self, q, allowed: evidence["marked"])
    monkeypatch.setattr(type(lib.searcher), "scan_candidates", lambda self, q, allowed: evidence["swept"])
    monkeypatch.setattr(type(lib.searcher), "_aligned",
                        lambda self, q, order, offsets, **kw: {t: evidence["aligned"][t] for t in order
                                                         if t in evidence["aligned"]})

    def run(fused: dict[int, float]):
        ranked = [Combined(t, s, 0, [s], FusedTrack(t, s, 3, s, 0.5, 1.0, 3)) for t, s in fused.items()]
        ranked.sort(key=lambda c: -c.score)
        out = lib.searcher.rerank(seed, ranked, len(ranked), weights=Weights())
        return [c.track_id for c in out], {c.track_id: c for c in out}

    return ids, evidence, run, L, Prints


def test_wiring_landmark_votes_without_a_leading_alignment_make_no_copy(wired):
    ids, ev, run, L, _ = wired
    a, b, c, d = ids
    ev["marked"] = [L.Candidate(a, 40, 1.0, 0.9)]  # strong landmark votes for a, as the query is
    ev["aligned"] = {a: R.Alignment(0.30, 1.0, 3), b: R.Alignment(0.28, 1.0, 3), c: R.Alignment(0.1, 1.0, 3)}
    order, by = run({b: 0.9, a: 0.5, c: 0.4, d: 0.3})
    assert not by[a].copy and order[0] == b  # unbacked: a's audio does not lead b's, so its votes count 0


def test_wiring_a_candidate_that_stands_out_is_a_copy(wired):
    ids, ev, run, _, _ = wired
    a, b, c, d = ids
    ev["aligned"] = {a: R.Alignment(0.45, 1.0, 3), b: R.Alignment(0.15, 1.0, 3), c: R.Alignment(0.1, 1.0, 3)}
    order, by = run({b: 0.9, c: 0.8, a: 0.5, d: 0.3})
    assert order[0] == a and by[a].copy  # copy_below_confirm (standout)


def test_wiring_the_sweeps_best_that_also_aligns_best_ranks_first(wired):
    ids, ev, run, _, P = wired
    a, b, c, d = ids
    ev["aligned"] = {a: R.Alignment(0.16, 1.0, 3), b: R.Alignment(0.13, 1.0, 3), c: R.Alignment(0.1, 1.0, 3)}
    ev["swept"] = [P.Found(a, 3.0, 0.2), P.Found(b, 1.0, 0.19)]
    order, by = run({b: 0.9, c: 0.8, a: 0.5, d: 0.3})
    assert order[0] == a and not by[a].copy  # agreed: first among non-copies, not a copy


def test_wiring_copies_of_the_source_do_not_hide_it(wired, monkeypatch):
    ids, ev, run, _, _ = wired
    a, b, c, d = ids
    from soundalike import duplicates

    monkeypatch.setattr(duplicates.CopyTest, "__call__", lambda self, x, y: {x, y} == {a, b})
    ev["aligned"] = {a: R.Alignment(0.45, 1.0, 3), b: R.Alignment(0.44, 1.0, 3), c: R.Alignment(0.15, 1.0, 3),
                     d: R.Alignment(0.1, 1.0, 3)}
    order, by = run({c: 0.9, d: 0.8, a: 0.5, b: 0.45})
    assert set(order[:2]) == {a, b} and by[a].copy and by[b].copy  # one recording, which stands out
