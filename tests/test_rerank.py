"""The identification re-rank (rerank.py): fingerprint alignment of the query's audio with candidates' audio.

Real synthesised music (soundalike.synth), real encodes and decodes; the
library tests use FakeModel (tests/fakes.py) for the embedding, since the
re-rank does not depend on the model.
"""

import numpy as np
import pytest
import soxr
from scipy.signal import butter, sosfilt

import soundalike
from soundalike import rerank as R
from soundalike.synth import add_noise, encode, excerpt, fluidsynth_missing, gm_phrase, render_gm, render_track
from tests.conftest import SYNTH_SR
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
    assert hit.match > R.FLOOR and hit.match > miss.match + 0.1, (hit, miss)
    assert miss.match < R.FLOOR, miss
    assert R.boost(miss.match) == 0 and R.boost(hit.match) > 0


def test_short_or_empty_audio_does_not_align():
    assert R.fingerprint(np.zeros(100, np.float32)).shape[0] == 0
    assert R.align(np.zeros((0, 15), np.int8), np.ones((50, 15), np.int8)) is None
    assert R.boost(None) == 0


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
    assert res.hits[0].audio_match > R.FLOOR
    assert all(h.audio_match is None or h.audio_match < R.FLOOR for h in res.hits[1:])
    assert "rerank_ms" in res.timings_ms and res.hits[0].score <= 1.0
    scores = [h.score for h in res.hits]
    assert scores == sorted(scores, reverse=True)
    off = lib.search(q, top=4, rerank=0)
    assert all(h.audio_match is None for h in off.hits) and "rerank_ms" not in off.timings_ms
    # the match is what moved the score: the same fused evidence, rescored by the match
    fused = {h.track_id: h.score for h in off.hits}
    top = res.hits[0]
    assert top.score == pytest.approx(min(1.0, R.rescored(fused[top.track_id], top.audio_match)), abs=2e-4)


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
    assert out[0].match > R.FLOOR and out[0].score <= 1.0
    assert {c.track_id: c.match for c in out}[rows["t2.flac"].id] < R.FLOOR


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
    assert set(every) == {0, 1, 2, 3} and every[0].match > R.CONFIRM
    assert abs(every[0].lag - 10.0) <= 2 * R.HOP / R.SR
    early = R.match_candidates(query, 10.0, cands, confirm=R.CONFIRM, workers=2)
    assert set(early) == {0, 1}  # the first pair held the copy: the rest are not decoded
    late = R.match_candidates(query, 10.0, cands[::-1], confirm=R.CONFIRM, workers=2)
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
    assert hits[0]["path"].endswith("t3.flac") and hits[0]["audio_match"] > R.FLOOR
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", "2", "--rerank", "0", "--json")
    assert code == 0, err
    assert all(h["audio_match"] is None for h in json.loads(out)["hits"])


def found(*matches):
    """One query's aligned candidates: track id i aligned at ``matches[i]``."""
    return {tid: R.Alignment(m, 0.0, 4) for tid, m in enumerate(matches)}


def test_a_copy_ranks_above_every_candidate_that_is_not_one():
    assert R.rescored(0.2, R.CONFIRM) > R.rescored(0.99, R.CONFIRM - 0.01) > R.rescored(0.99, None) == 0.99
    assert R.rescored(0.1, 0.9) > R.rescored(0.9, 0.7)  # copies by their match
    assert R.rescored(0.5, 0.3) == pytest.approx(0.5 + R.boost(0.3))
    assert R.rescored(0.0, R.FLOOR + 0.01, copy=True) > R.rescored(1.0, R.CONFIRM - 1e-6)  # even a weak copy


def test_landmark_votes_make_a_copy_only_of_a_track_that_leads():
    # another chorale on the same hymn tune (0) beside the source (1), under pink noise at 0 dB
    f = found(0.26, 0.52, 0.11)
    assert R.unbacked(0, f) and not R.unbacked(1, f)
    assert R.unbacked(0, found(R.FLOOR, 0.1))  # at chance
    # another chorale on the same instrument, in clean audio, with its source not in the library
    assert R.unbacked(0, found(0.44, 0.33, 0.2))  # 1.33x the next: not a lead
    assert not R.unbacked(0, found(0.44, 0.2, 0.1))  # 2.2x: the source under noise
    assert not R.unbacked(0, found(R.CONFIRM, 0.5))  # a copy by its alignment alone
    assert not R.unbacked(5, found(0.3, 0.2))  # not aligned: nothing to judge by


def test_a_match_that_stands_out_from_every_other_candidate_is_a_copy():
    """Under heavy noise the source's match stays below CONFIRM; it is a copy when it stands out."""
    assert R.standout(found(0.45, 0.2, 0.15, 0.1)) == 0
    assert R.standout(found(0.1, 0.5, 0.24)) == 1
    assert R.standout(found(0.45, 0.25, 0.1)) is None  # not twice the next
    assert R.standout(found(0.35, 0.1, 0.1)) is None  # below SURE
    assert R.standout(found(0.5, 0.1)) is None  # too few candidates to judge
    assert R.rescored(0.1, 0.45, copy=True) > R.rescored(0.99, 0.45) == pytest.approx(0.99 + R.boost(0.45))


def test_the_sweeps_best_track_is_a_copy_when_its_alignment_is_also_the_best_and_well_ahead():
    assert R.copy_below_confirm(found(0.1, 0.33, 0.2, 0.15), swept=1) == 1  # 1.65x the next
    assert R.copy_below_confirm(found(0.1, 0.33, 0.25), swept=1) is None  # 1.32x: chance reaches that
    assert R.copy_below_confirm(found(0.1, 0.33, 0.25), swept=1, lead=True) == 1  # the sweep's clear leader
    assert R.copy_below_confirm(found(0.1, 0.2, 0.05), swept=1) is None  # not above FLOOR, no lead
    assert R.copy_below_confirm(found(0.1, 0.21, 0.12), swept=1, lead=True) == 1  # but ahead and the clear leader
    assert R.copy_below_confirm(found(0.1, 0.21, 0.16), swept=1, lead=True) is None  # only the lead
    assert R.copy_below_confirm(found(0.35, 0.33, 0.1), swept=1, lead=True) is None  # another aligns better
    assert R.copy_below_confirm(found(0.5, 0.2, 0.1), swept=None) == 0  # standout needs no sweep
    assert R.copy_below_confirm(found(0.1, 0.3, 0.1), swept=7) is None  # the sweep's best was not aligned


def test_the_sweeps_best_ranks_first_among_non_copies_when_it_also_aligns_best():
    """Pink noise at 0 dB (docs/quality.md, query 028): the source is the sweep's best and the best aligned,
    at 0.16 and 1.3x the next, too weak for a copy; it must still outrank what the embedding liked."""
    f = found(0.12, 0.162, 0.1)
    assert R.copy_below_confirm(f, swept=1) is None and R.agreed(f, 1)
    assert not R.agreed(f, 0)  # the sweep's best aligns worse than another candidate
    assert not R.agreed(found(0.1, 0.3), 1)  # too few aligned candidates to judge
    assert not R.agreed(f, None) and not R.agreed(f, 7)
    first = R.rescored(0.2, 0.162, first=True)
    assert first > R.rescored(0.99, R.CONFIRM - 1e-6)  # above every other non-copy
    assert R.rescored(0.0, R.FLOOR + 0.01, copy=True) > first  # below every copy
    assert R.rescored(0.99, 0.5, first=True) >= 0.99 + R.boost(0.5)  # never lowered


@pytest.mark.skipif(bool(fluidsynth_missing()), reason=f"GM renders: {fluidsynth_missing()}")
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
    assert hits[0].audio_match <= R.FLOOR  # the alignment alone is not above the floor
