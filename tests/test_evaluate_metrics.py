"""The evaluation's metrics on hand-made rankings, and the Chromaprint matcher on hand-made fingerprints."""

import numpy as np
import pytest

from soundalike.evaluate import metrics
from soundalike.evaluate.peers import fingerprint_similarity


def test_ranks_top_k_and_mrr():
    assert metrics.rank_of(["a", "b", "c"], "c") == 3
    assert metrics.rank_of(["a"], "z") is None
    m = metrics.identification([1, 2, None, 6])
    assert m["top1"] == 0.25 and m["top5"] == 0.5
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 0 + 1 / 6) / 4)


def test_pair_precision_recall_f1_ignore_order():
    truth = [("a", "b"), ("a", "c"), ("b", "c")]
    s = metrics.pair_scores([("b", "a"), ("c", "a"), ("a", "d")], truth)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert metrics.pair_scores([], truth)["f1"] == 0.0


def test_best_threshold_picks_the_separating_score():
    scored = {("a", "b"): 0.97, ("c", "d"): 0.95, ("a", "x"): 0.9, ("c", "y"): 0.5}
    t, s = metrics.best_threshold(scored, [("a", "b"), ("c", "d")])
    assert t == 0.95 and s["f1"] == 1.0


def test_best_threshold_equals_trying_every_threshold():
    """The one-pass sweep gives what predicting at each distinct score and keeping the best F1 gives."""
    import numpy as np

    rng = np.random.default_rng(0)
    items = [f"t{i}" for i in range(30)]
    truth = [(items[i], items[i + 1]) for i in range(0, 30, 3)]
    scored = {}
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            scored[(a, b)] = round(float(rng.uniform(0.5, 1.0)) + (0.3 if (a, b) in truth else 0.0), 2)  # with ties
    brute = (float("inf"), metrics.pair_scores([], truth))
    for t in sorted(set(scored.values()), reverse=True):
        s = metrics.pair_scores([p for p, v in scored.items() if v >= t], truth)
        if s["f1"] > brute[1]["f1"]:
            brute = (t, s)
    t, s = metrics.best_threshold(scored, truth)
    assert t == brute[0] and s == pytest.approx(brute[1])
    assert 0 < s["f1"] < 1


def test_precision_at_k_shrinks_k_to_the_class_size():
    labels = {"q": "kick", "k1": "kick", "k2": "kick", "s1": "snare", "s2": "snare", "s3": "snare"}
    # two other kicks: k becomes 2; one of the first two labelled others is a kick
    assert metrics.precision_at_k(["s1", "k1", "k2"], labels, "q") == 0.5
    assert metrics.precision_at_k(["unlabelled", "k2", "q", "k1"], labels, "q") == 1.0
    assert metrics.precision_at_k(["s1"], labels, "nobody") is None
    assert metrics.precision_at_k(["s1", "s2"], labels, "s3", k=1) == 1.0


def test_knn_majority_and_nearest_tie_break():
    labels = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    rankings = {
        "a": ["c", "b", "d"],  # k=3: y, x, y -> y (wrong)
        "b": ["a", "c", "e"],  # x, y, z tie -> nearest: x (right)
        "e": ["c", "d", "a"],  # y (wrong)
    }
    assert metrics.knn_accuracy(rankings, labels, k=3) == pytest.approx(1 / 3)


def test_fingerprint_matcher_finds_the_offset_and_rejects_noise():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 2**32, 400, dtype=np.uint64).astype(np.uint32)
    q = ref[120:200].copy()
    flips = (rng.random((80, 32)) < 0.1) * (1 << np.arange(32, dtype=np.uint64))
    q ^= flips.sum(axis=1).astype(np.uint32)  # 10 % of bits flipped
    score, offset = fingerprint_similarity(q, ref)
    assert offset == 120 and score == pytest.approx(0.9, abs=0.02)
    other = rng.integers(0, 2**32, 80, dtype=np.uint64).astype(np.uint32)
    assert fingerprint_similarity(other, ref)[0] < 0.6
    # the longer one as the query: the offset is negative (the reference starts inside the query)
    assert fingerprint_similarity(ref, q, min_overlap=0.5)[1] == -120
