"""Retrieval metrics on plain Python data. Pure functions, no I/O; each is tested on hand-made rankings.

A *rank* is 1-based, or ``None`` when the right answer was not returned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

__all__ = ["rank_of", "identification", "pair_scores", "best_threshold", "precision_at_k", "knn_accuracy", "percentile"]


def rank_of(ranking: Sequence[Hashable], target: Hashable) -> int | None:
    """1-based position of ``target`` in ``ranking``, None when absent."""
    for i, item in enumerate(ranking, 1):
        if item == target:
            return i
    return None


def identification(ranks: Sequence[int | None]) -> dict[str, float]:
    """top-1, top-5 and mean reciprocal rank (a miss counts 0) over queries."""
    n = len(ranks)
    if n == 0:
        return {"n": 0, "top1": float("nan"), "top5": float("nan"), "mrr": float("nan")}
    return {
        "n": n,
        "top1": sum(1 for r in ranks if r == 1) / n,
        "top5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr": sum(1.0 / r for r in ranks if r) / n,
    }


def _pair(a, b) -> tuple:
    return (a, b) if a <= b else (b, a)


def pair_scores(predicted: Iterable[tuple], truth: Iterable[tuple]) -> dict[str, float]:
    """Precision, recall and F1 of predicted unordered pairs against the true pairs."""
    pred = {_pair(a, b) for a, b in predicted if a != b}
    true = {_pair(a, b) for a, b in truth if a != b}
    tp = len(pred & true)
    precision = tp / len(pred) if pred else (1.0 if not true else 0.0)
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": len(pred) - tp, "fn": len(true) - tp}


def best_threshold(scored: dict[tuple, float], truth: Iterable[tuple]) -> tuple[float, dict[str, float]]:
    """The score threshold (pairs with score >= it are predicted) that maximises F1, and the scores there."""
    truth = list(truth)
    true = {_pair(a, b) for a, b in truth if a != b}
    best = (float("inf"), pair_scores([], truth))
    pairs = {_pair(*p): v for p, v in scored.items() if p[0] != p[1]}
    ranked = sorted(((v, p in true) for p, v in pairs.items()), key=lambda x: -x[0])
    tp = n = 0
    for i, (v, hit) in enumerate(ranked):  # one pass down the scores: O(n log n) for 250,000 pairs
        tp, n = tp + hit, n + 1
        if i + 1 < len(ranked) and ranked[i + 1][0] == v:
            continue  # a threshold takes every pair with this score
        precision, recall = tp / n, tp / len(true) if true else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[1]["f1"]:
            best = (v, {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": n - tp,
                        "fn": len(true) - tp})
    return best


def precision_at_k(ranking: Sequence[Hashable], labels: dict[Hashable, str], query: Hashable, k: int = 10) -> float | None:
    """Share of the first k items (among those with a label, excluding the query) that share its label.

    k shrinks to the number of other items with the query's label, so that a
    perfect ranking scores 1.0 even in a class smaller than k + 1. None when
    the query has no label or no other item shares it.
    """
    label = labels.get(query)
    same = sum(1 for item, lab in labels.items() if lab == label and item != query)
    if label is None or same == 0:
        return None
    k = min(k, same)
    ranked = [item for item in ranking if item in labels and item != query][:k]
    return sum(1 for item in ranked if labels[item] == label) / k


def knn_accuracy(rankings: dict[Hashable, Sequence[Hashable]], labels: dict[Hashable, str], k: int = 5) -> float:
    """Leave-one-out kNN: each labelled query takes the majority label of its k nearest labelled others.

    Ties go to the label of the nearest neighbour among the tied labels.
    """
    correct = total = 0
    for query, ranking in rankings.items():
        if query not in labels:
            continue
        neigh = [item for item in ranking if item in labels and item != query][:k]
        if not neigh:
            continue
        counts = Counter(labels[n] for n in neigh)
        top = max(counts.values())
        guess = next(labels[n] for n in neigh if counts[labels[n]] == top)
        correct += guess == labels[query]
        total += 1
    return correct / total if total else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.percentile(vals, q)) if vals else float("nan")
