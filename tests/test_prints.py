"""Scan prints (identify/prints.py): extraction, the sweep, storage in the catalogue, and the search they feed.

Real synthesised music (soundalike.synth), real encodes and decodes, a real
catalogue; FakeModel (tests/fakes.py) for the embedding, which prints do not
depend on.
"""

import numpy as np
import pytest

from soundalike.identify import prints as P
from soundalike.identify import align as R
from soundalike.identify import policy as judging
from soundalike.synth import add_noise, encode, excerpt
from tests.conftest import SYNTH_SR, at
from tests.fakes import fake_library

SR = SYNTH_SR


def test_streamed_blocks_give_the_print_of_the_whole_clip(tracks):
    x = at(tracks[0], 16000)
    whole = P.compute(x, 16000)
    printer = P.Printer(16000)
    for i in range(0, len(x), 3001):
        printer.push(x[i : i + 3001])
    np.testing.assert_array_equal(whole, printer.finish())
    assert len(whole) == pytest.approx(40 / P.HOP_SECONDS, abs=3)
    assert whole.max() < 1 << P.BITS and len(np.unique(whole)) > len(whole) / 2  # bits that vary
    assert len(P.compute(np.zeros(100, np.float32), 16000)) == 0


def _index(tracks, sr=16000):
    return P.PrintIndex([(tid, P.compute(at(x, sr), sr)) for tid, x in tracks.items()])


@pytest.mark.parametrize("snr", [0, -3])
def test_the_sweep_finds_the_source_of_an_excerpt_under_noise_as_loud_as_the_music(tracks, snr):
    """Catalogue at 16 kHz, query at the re-rank's 8 kHz, as in a search; landmarks see little at these SNRs."""
    index = _index(tracks)
    q = add_noise(excerpt(tracks[2], SR, 13.0, 10.0), snr, np.random.default_rng(7))
    found = index.search(P.compute(at(q, R.SR), R.SR))
    assert [f.track_id for f in found][:1] == [2], found
    assert abs(found[0].offset - 13.0) <= P.HOP_SECONDS
    assert found[0].score > 1.3 * max(f.score for f in found[1:]), found
    # the same query, its source excluded or filtered out: another track, at a score near chance
    others = index.search(P.compute(at(q, R.SR), R.SR), exclude=frozenset({2}))
    assert 2 not in {f.track_id for f in others} and others[0].score < found[0].score / 1.3
    only = index.search(P.compute(at(q, R.SR), R.SR), allowed=frozenset({0, 1}))
    assert {f.track_id for f in only} == {0, 1}


def test_the_sweep_counts_a_track_shorter_than_the_query_by_the_query_s_length(tracks):
    """A 2 s clip inside a 10 s query is found, but scores below a whole 10 s stretch that matches."""
    short = {9: excerpt(tracks[1], SR, 20.0, 2.0)}
    index = _index({**tracks, **short})
    q = excerpt(tracks[1], SR, 19.0, 10.0)
    found = index.search(P.compute(at(q, R.SR), R.SR), top=6)
    ids = [f.track_id for f in found]
    assert ids[0] == 1 and 9 not in ids[:1]
    lone = index.search(P.compute(at(q, R.SR), R.SR), exclude=frozenset({1}), top=6)
    clip = next(f for f in lone if f.track_id == 9)
    assert clip.offset == 0 and clip.score < found[0].score


def test_a_query_too_short_for_a_print_finds_nothing(tracks):
    index = _index(tracks)
    assert index.search(P.compute(np.zeros(R.SR // 4, np.float32), R.SR)) == []
    assert P.PrintIndex([]).search(P.compute(at(tracks[0][: SR * 5], R.SR), R.SR)) == []


@pytest.fixture
def library(tmp_path, tracks):
    return fake_library(tmp_path, tracks, SR), tmp_path


def test_indexing_stores_each_tracks_print_and_fills_in_an_older_library(library, tracks):
    lib, root = library
    stored = dict(lib.catalog.all_prints())
    assert len(stored) == 4 and lib.catalog.paths_without_landmarks() == set()
    for t in lib.catalog.tracks():  # what indexing stored is the print of the decoded audio
        own = P.compute(at(tracks[int(t.path[-6])], 16000), 16000)
        n = min(len(own), len(stored[t.id]))
        assert abs(len(own) - len(stored[t.id])) <= 1
        assert np.mean(P.signs(own[:n]) == P.signs(stored[t.id][:n])) > 0.95
    assert lib.catalog.prints_hours() == pytest.approx(4 * 40 / 3600, rel=0.02)
    key = lib.catalog.prints_key()
    # a library indexed before prints existed: the next index adds them and leaves the vectors alone
    lib.catalog.db.execute("UPDATE track_landmarks SET prints = NULL")
    lib.catalog.db.commit()
    assert len(lib.catalog.paths_without_landmarks()) == 4 and lib.catalog.prints_key() != key
    events = list(lib.index([root / "music"]))
    assert sum(e.event == "landmarks" for e in events) == 4 and events[-1].event == "done"
    assert {tid: len(p) for tid, p in lib.catalog.all_prints()} == {tid: len(p) for tid, p in stored.items()}
    assert lib.catalog.prints_key() == key


def test_a_search_sweeps_the_library_for_a_noisy_query_and_aligns_what_the_sweep_found(library, tracks):
    """``Searcher.scan_candidates`` on a real library: the source of a query at -3 dB SNR comes first, at a
    place the source repeats from (the synthesised tracks loop); the cap and the filters hold."""
    from dataclasses import replace

    lib, root = library
    q = root / "noisy.wav"
    encode(add_noise(excerpt(tracks[3], SR, 21.0, 10.0), -3, np.random.default_rng(3)), SR, q)
    query = lib._seed(q, start=None, end=None, query_hop=2.0, keep_audio=True)
    t3 = lib.catalog.track_by_path(str(root / "music" / "t3.flac")).id
    found = lib.searcher.scan_candidates(query, None)
    assert found[0].track_id == t3, found
    source = P.compute(at(tracks[3], R.SR), R.SR)
    frame = round(found[0].offset / P.HOP_SECONDS)
    here = P.signs(source[frame : frame + 40]) == P.signs(P.compute(at(excerpt(tracks[3], SR, 21.0, 10.0), R.SR), R.SR)[:40])
    assert here.mean() > 0.9  # the noiseless excerpt agrees with the source where the sweep put the query
    assert t3 not in {f.track_id for f in lib.searcher.scan_candidates(replace(query, exclude=frozenset({t3})), None)}
    assert {f.track_id for f in lib.searcher.scan_candidates(query, frozenset({t3}))} == {t3}
    lib.searcher.scan_hours = lib.catalog.prints_hours() * 0.9  # a library over the cap is not swept
    assert lib.searcher.scan_candidates(query, None) == []
    lib.searcher.scan_hours = 0
    assert lib.searcher.scan_candidates(query, None) == []
    lib.searcher.scan_hours = 1.0
    res = lib.search(q, top=4, rerank=2)  # the sweep's candidates are aligned with the query's audio
    hit = next(h for h in res.hits if h.track_id == t3)
    assert hit.audio_match is not None and hit.audio_match > judging.DEFAULT.floor


def test_the_sweeps_best_track_leads_only_well_ahead_of_the_second():
    f = [P.Found(1, 0.0, 0.4), P.Found(2, 3.0, 0.2), P.Found(3, 1.0, 0.1)]
    assert P.leader(f, judging.DEFAULT.sweep_lead) == f[0]
    lead = judging.DEFAULT.sweep_lead
    assert P.leader([f[0], P.Found(2, 3.0, 0.3)], lead) is None  # 1.33x: chance leads that far (docs/quality.md)
    assert P.leader(f[:1], lead) is None and P.leader([], lead) is None
