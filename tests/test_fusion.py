import numpy as np
import pytest

from soundalike.errors import UserError
from soundalike.fusion import SegmentTable, Weights, fuse

# three tracks with segments every 3 s
IDS = np.arange(1, 31, dtype=np.int64)
TABLE = SegmentTable(IDS, np.repeat([1, 2, 3], 10), np.tile(np.arange(10) * 3.0, 3), np.tile(np.arange(10) * 3.0 + 3, 3))


def seg(track, start):
    return int(IDS[(track - 1) * 10 + int(start // 3)])


def test_votes_similarity_offset_and_pairs():
    # query windows at 0, 1.5, 3, 4.5 s; the query is track 2 from 9.0 s
    qs = np.array([0.0, 1.5, 3.0, 4.5])
    hits = np.array([
        [seg(2, 9), seg(1, 0), -1],
        [seg(2, 9), seg(2, 12), seg(3, 27)],
        [seg(2, 12), seg(1, 3), -1],
        [seg(2, 12), seg(2, 15), -1],
    ])
    scores = np.array([[0.95, 0.5, -np.inf], [0.8, 0.79, 0.4], [0.97, 0.3, -np.inf], [0.85, 0.8, -np.inf]], np.float32)
    out = fuse(query_starts=qs, query_ends=qs + 3, hit_ids=hits, hit_scores=scores, segments=TABLE, track_cosines={})
    assert [f.track_id for f in out] == [2, 1, 3]
    best = out[0]
    assert best.votes == 4
    assert best.similarity == pytest.approx((0.95 + 0.8 + 0.97 + 0.85) / 4)
    assert best.score == pytest.approx(0.2 * 1 + 0.8 * best.similarity)
    assert best.offset == pytest.approx(9.0, abs=0.8)
    assert best.offset_votes == 4
    assert [(m.query_start, m.track_start) for m in best.matches] == [(0.0, 9.0), (1.5, 9.0), (3.0, 12.0), (4.5, 12.0)]
    assert out[1].votes == 2 and out[2].votes == 1


def test_exclude_and_track_only_candidates():
    qs = np.array([0.0])
    out = fuse(query_starts=qs, query_ends=qs + 3, hit_ids=np.array([[seg(1, 0), seg(2, 0)]]),
               hit_scores=np.array([[0.9, 0.8]], np.float32), segments=TABLE,
               track_cosines={3: 0.7, 1: 0.99}, exclude={1}, weights=Weights(votes=0, similarity=1, track=1))
    assert [f.track_id for f in out] == [2, 3]
    assert out[1].votes == 0 and out[1].offset is None and out[1].score == pytest.approx(0.35)


def test_unknown_segment_ids_are_ignored():
    out = fuse(query_starts=np.array([0.0]), query_ends=np.array([3.0]), hit_ids=np.array([[999, -1]]),
               hit_scores=np.array([[0.9, 0.1]], np.float32), segments=TABLE, track_cosines={})
    assert out == []


def test_weights_parse_and_validate():
    assert Weights.parse("votes=0.5, track=0.1") == Weights(votes=0.5, similarity=0.8, track=0.1)
    with pytest.raises(UserError, match="votes"):
        Weights.parse("votes=abc")
    with pytest.raises(UserError, match="names"):
        Weights.parse("loudness=1")
    with pytest.raises(UserError):
        Weights(votes=0, similarity=0, track=0)


def test_offset_weight_scores_only_windows_at_the_consistent_offset():
    # track 1: four windows hit at one offset (9 s); track 2: as similar, but each at a different offset
    qs = np.array([0.0, 3.0, 6.0, 9.0])
    hits = np.array([[seg(1, 9), seg(2, 0)], [seg(1, 12), seg(2, 27)], [seg(1, 15), seg(2, 3)], [seg(1, 18), seg(2, 21)]])
    scores = np.array([[0.8, 0.85]] * 4, np.float32)
    plain = fuse(query_starts=qs, query_ends=qs + 3, hit_ids=hits, hit_scores=scores, segments=TABLE, track_cosines={})
    assert plain[0].track_id == 2  # the higher raw similarity wins without temporal consistency
    w = Weights.parse("votes=0,similarity=0,offset=1")
    out = fuse(query_starts=qs, query_ends=qs + 3, hit_ids=hits, hit_scores=scores, segments=TABLE, track_cosines={},
               weights=w)
    assert out[0].track_id == 1 and out[0].offset_similarity == pytest.approx(0.8)
    assert out[1].offset_similarity == pytest.approx(0.85 / 4)
    assert out[0].score == pytest.approx(out[0].offset_similarity)
