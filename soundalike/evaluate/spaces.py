"""Candidate representations for similarity, computed from what a library already stores.

The similarity benchmark (``simrun``) ranks each item by each space next to
``Library.similar``, so that a representation is chosen by the calibration half
and quoted on the report half (issue 20, item 2). Every statistic used here (a
mean, a covariance) is the library's own, computed without labels, as a library
could compute it for itself:

* ``track``: cosine of the stored track vectors (the L2-normalised mean of the
  raw window embeddings);
* ``centered``: the same after subtracting the library's mean track vector;
* ``whitened``: centred, then PCA-whitened with shrinkage (eigenvalues floored at
  ``shrink`` times their mean), so that the few directions every track shares
  stop dominating the cosine;
* ``stats``: mean and spread (standard deviation) of the track's window vectors,
  each block centred and scaled by the library, concatenated;
* ``tags``: the tag probabilities (both musicnn taggers), z-scored per tag over
  the library;
* ``centered+tags``: the two blocks above, each normalised, concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["vector_spaces", "center", "whiten", "SPACES"]

SPACES = ("track", "centered", "whitened", "stats", "tags", "centered+tags")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def center(x: np.ndarray) -> np.ndarray:
    return _unit(x - x.mean(axis=0))


def whiten(x: np.ndarray, *, shrink: float = 0.1) -> np.ndarray:
    """Centre and PCA-whiten ``x`` (rows), flooring eigenvalues at ``shrink`` times their mean."""
    c = x - x.mean(axis=0)
    cov = c.T @ c / max(len(c) - 1, 1)
    w, v = np.linalg.eigh(cov)
    w = np.maximum(w, shrink * float(w.mean()) + 1e-12)
    return _unit((c @ v) / np.sqrt(w))


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-3)


def _ranker(ids: list[int], mat: np.ndarray) -> Callable[[int, Sequence[int]], list[int]]:
    pos = {t: i for i, t in enumerate(ids)}

    def rank(query: int, among: Sequence[int]) -> list[int]:
        cand = [t for t in among if t != query and t in pos]
        if query not in pos or not cand:
            return []
        sims = mat[[pos[t] for t in cand]] @ mat[pos[query]]
        return [cand[i] for i in np.argsort(-sims, kind="stable")]

    return rank


def vector_spaces(lib, track_ids: Sequence[int]) -> dict[str, Callable[[int, Sequence[int]], list[int]]]:
    """name -> rank(query id, candidate ids) for each space of ``SPACES`` that the library can give.
    The library statistics are taken over ``track_ids`` (the tracks the benchmark holds)."""
    cat = lib.catalog
    ids, vecs = [], []
    for tid in track_ids:
        v = cat.track_vector(tid)
        if v is not None:
            ids.append(tid)
            vecs.append(np.asarray(v, np.float32))
    out: dict[str, Callable] = {}
    if not ids:
        return out
    X = np.stack(vecs)
    out["track"] = _ranker(ids, _unit(X))
    out["centered"] = _ranker(ids, center(X))
    out["whitened"] = _ranker(ids, whiten(X))
    segs = cat.informative_vectors_of(ids)
    have = [t for t in ids if t in segs and len(segs[t])]
    if have:
        mean = np.stack([segs[t].astype(np.float32).mean(0) for t in have])
        spread = np.stack([segs[t].astype(np.float32).std(0) for t in have])
        out["stats"] = _ranker(have, _unit(np.hstack([_unit(_zscore(mean)), _unit(_zscore(spread))])))
    tag_rows = {}
    for tid, blob in cat.db.execute(f"SELECT id, tags FROM tracks WHERE tags IS NOT NULL AND id IN "
                                    f"({','.join('?' * len(ids))})", ids):
        tag_rows[tid] = np.frombuffer(blob, np.float16).astype(np.float32)
    tagged = [t for t in ids if t in tag_rows]
    if tagged and len({len(v) for v in tag_rows.values()}) == 1:
        T = _unit(_zscore(np.stack([tag_rows[t] for t in tagged])))
        out["tags"] = _ranker(tagged, T)
        pos = {t: i for i, t in enumerate(ids)}
        C = center(X)[[pos[t] for t in tagged]]
        out["centered+tags"] = _ranker(tagged, _unit(np.hstack([C, T])))
    return out
