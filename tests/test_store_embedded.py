"""The embedded store's delta: recent writes go to a small second graph, so a flush writes what changed.

A flush writes the whole base graph only when it changes (the first flush, a merge, a compaction); other
flushes write the delta graph and the list of base ids deleted or replaced since (tombstones). Readers
keep the base they hold when only the delta changed. Every answer stays congruent with the exact store.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundalike.stores import open_store
from tests.test_stores import DIM, check_against, clustered, near, reference_of

KINDS = {
    "planner": {},  # small parts are scanned exactly: answers must be exact
    "graph": {"exact_below": 0, "exact_factor": 0.0},  # every part searched through its graph
}


@pytest.fixture(params=list(KINDS))
def mode(request):
    return request.param


def _open(folder, mode, **options):
    return open_store("embedded", folder, DIM, **{**KINDS[mode], **options})


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())["collections"]["segments"]


def _top1(store, vectors):
    return store.search("segments", vectors, 1)[0][:, 0]


def _never_returned(store, ids, queries):
    got = store.search("segments", queries, 50)[0]
    return not np.isin(got, ids).any()


def test_delta_flush_keeps_the_base_and_merges(mode, tmp_path):
    folder = tmp_path / "idx"
    x = clustered(4000, seed=30)
    ids = np.arange(4000, dtype=np.int64)
    writer = _open(folder, mode)
    writer.upsert("segments", ids[:3000], x[:3000])
    writer.flush()  # the first flush writes the base
    base_files = dict(_manifest(folder)["files"])
    assert "delta" not in _manifest(folder)
    base_stat = (folder / base_files["index"]).stat()

    reader = _open(folder, mode)
    assert reader.count("segments") == 3000
    held = reader._cols["segments"].base

    # One "track" added, one base vector replaced, one base vector and one new vector deleted.
    writer.upsert("segments", ids[3000:3080], x[3000:3080])
    writer.upsert("segments", ids[:1], x[3500:3501])  # id 0 now holds vector 3500
    writer.delete("segments", np.array([5, 3079]))
    writer.flush()
    entry = _manifest(folder)
    assert {k: entry["files"][k] for k in ("index", "ids", "vectors")} == base_files  # base files kept ...
    after = (folder / base_files["index"]).stat()
    assert (after.st_ino, after.st_mtime_ns) == (base_stat.st_ino, base_stat.st_mtime_ns)  # ... untouched
    assert entry["delta"]["count"] == 80 and entry["delta"]["tombstones"] == 2  # ids 0 and 5
    assert entry["count"] == 3000 + 80 - 2

    live = np.setdiff1d(ids[:3080], [5, 3079])
    vecs = x[live].copy()
    vecs[0] = x[3500]
    ref = reference_of(live, vecs)
    q = near(vecs, 40, seed=31)
    for store in (writer, reader, _open(folder, mode)):
        assert store.count("segments") == len(live)
        np.testing.assert_array_equal(store.ids("segments"), live)
        assert np.array_equal(_top1(store, x[3000:3079]), ids[3000:3079])  # the added track is found
        assert _top1(store, x[3500:3501])[0] in (0, 3500)  # the replaced vector is found under both ids
        assert _never_returned(store, [5, 3079], np.concatenate([x[[5, 3079]], x[[0]]]))
        check_against("exact" if mode == "planner" else "embedded-hnsw", store, ref, q, 10)
    assert reader._cols["segments"].base is held  # the reader kept its base graph: no reload

    # The delta grows past its share: the next flush merges it into the base.
    writer.delta_min, writer.delta_fraction = 0, 0.0
    writer.upsert("segments", ids[3080:3100], x[3080:3100])
    writer.flush()
    entry = _manifest(folder)
    assert "delta" not in entry and "tombstones" not in entry["files"]
    assert entry["files"]["index"] != base_files["index"]
    live = np.concatenate([live, ids[3080:3100]])
    vecs = np.concatenate([vecs, x[3080:3100]])
    ref = reference_of(live, vecs)
    for store in (writer, reader, _open(folder, mode)):
        assert store.count("segments") == len(live)
        assert np.array_equal(_top1(store, x[3000:3079]), ids[3000:3079])  # found after the merge too
        assert _never_returned(store, [5, 3079], x[[5, 3079]])
        check_against("exact" if mode == "planner" else "embedded-hnsw", store, ref, q, 10)


def test_deleted_base_vector_stays_deleted_across_generations(tmp_path):
    """A tombstone survives later delta flushes and a reopen; re-adding the id brings it back."""
    folder = tmp_path / "idx"
    x = clustered(2500, seed=32)
    ids = np.arange(2500, dtype=np.int64)
    writer = _open(folder, "graph")
    writer.upsert("segments", ids[:2000], x[:2000])
    writer.flush()
    writer.delete("segments", ids[10:20])
    writer.flush()
    for start in range(2000, 2500, 100):  # several delta generations
        writer.upsert("segments", ids[start : start + 100], x[start : start + 100])
        writer.flush()
        reopened = _open(folder, "graph")
        assert _never_returned(reopened, ids[10:20], x[10:20])
        assert reopened.count("segments") == start + 100 - 10
    writer.upsert("segments", ids[12:13], x[12:13])
    writer.flush()
    assert _top1(_open(folder, "graph"), x[12:13])[0] == 12
    assert _manifest(folder)["delta"]["tombstones"] == 10  # still deleted from the base, now live in the delta


def test_merge_of_a_large_delta_into_a_small_base(tmp_path):
    """When the delta outgrows the base, the base's vectors are inserted into the delta's graph instead."""
    folder = tmp_path / "idx"
    x = clustered(3000, seed=33)
    ids = np.arange(3000, dtype=np.int64)
    writer = _open(folder, "graph", delta_min=100, delta_fraction=0.5)
    writer.upsert("segments", ids[:200], x[:200])
    writer.flush()
    writer.upsert("segments", ids[200:], x[200:])
    delta = writer._cols["segments"].delta
    writer.flush()
    assert writer._cols["segments"].base is delta and "delta" not in _manifest(folder)
    check_against("embedded-hnsw", _open(folder, "graph"), reference_of(ids, x), near(x, 30, seed=34), 10)


# --- search parameters that depend on the collection's size -----------------------------------------


def test_ef_grows_with_the_collection():
    """ef = 128 * (n / 100k) ** 0.83: recall@10 0.9995 at 1M (ef 768-1024) and 0.989 at 2M (ef 1536), where
    the old sqrt rule gave 0.969 at 1M (ef 405) and less than 0.904 at 2M (ef 572; 0.904 at ef 640)."""
    store = open_store("embedded", None, DIM)
    sizes = (1_000, 100_000, 1_000_000, 2_000_000, 3_000_000)
    assert [store._ef(n) for n in sizes] == [128, 128, 865, 1538, 2154]


def test_each_part_is_searched_with_the_ef_of_its_size(tmp_path, monkeypatch):
    folder = tmp_path / "idx"
    x = clustered(5200, seed=35)
    ids = np.arange(5200, dtype=np.int64)
    store = _open(folder, "graph", ef_reference_n=500)  # 5,000 vectors stand for 1M
    store.upsert("segments", ids[:5000], x[:5000])
    store.flush()
    store.upsert("segments", ids[5000:], x[5000:])  # a delta of 200
    seen = []
    real = store._knn

    def spy(part, queries, k, ef):
        seen.append((len(part.table), ef))
        return real(part, queries, k, ef)

    monkeypatch.setattr(store, "_knn", spy)
    check_against("embedded-hnsw", store, reference_of(ids, x), near(x, 20, seed=36), 10)
    assert sorted(seen) == [(200, 128), (5000, 865)]


def test_a_failed_merge_is_written_again_by_the_next_flush(tmp_path, monkeypatch):
    """A merge whose files could not be written leaves the previous generation current; the merged base
    stays in memory and the next flush writes it (it must not name the deleted files)."""
    import errno
    import os

    from soundalike.errors import StoreError
    from soundalike.stores import exact as exact_mod

    folder = tmp_path / "idx"
    x = clustered(900, seed=37)
    ids = np.arange(900, dtype=np.int64)
    store = _open(folder, "graph", delta_min=0, delta_fraction=0.0)  # every flush merges
    store.upsert("segments", ids[:600], x[:600])
    store.flush()
    real = exact_mod.Folder.write_manifest
    full = {"on": True}

    def write_manifest(self, manifest, previous):  # the base files were written, the manifest is not
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, manifest, previous)

    monkeypatch.setattr(exact_mod.Folder, "write_manifest", write_manifest)
    store.upsert("segments", ids[600:], x[600:])
    with pytest.raises(StoreError, match="generation 1 is still the current one"):
        store.flush()
    assert _open(folder, "graph").count("segments") == 600
    full["on"] = False
    store.flush()
    again = _open(folder, "graph")
    assert again.count("segments") == 900 and "delta" not in _manifest(folder)
    check_against("embedded-hnsw", again, reference_of(ids, x), near(x, 20, seed=38), 10)
