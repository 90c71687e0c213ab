"""One contract suite for every vector store (after qdrant-client's congruence tests).

Each test runs against every store kind and compares its answers with the
reference, ``ExactStore``, which is itself checked against a plain numpy sort.
``embedded-hnsw`` is the embedded store with its planner pushed onto the
graph (no exact shortcuts), so the HNSW and over-fetch paths run
even on small collections; its answers need only reach the recall bar.

Vectors are clustered, seeded, L2-normalised and rounded to float16, as the
catalogue stores them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import numpy as np
import pytest

from soundalike.errors import StoreError, UserError
from soundalike.stores import ExactStore, open_store
from tests.conftest import need

DIM = 32
RECALL_BAR = 0.95

# kind -> (store kind, options, traits). Traits: "approximate" (answers need only reach the recall
# bar), "folder" (files, manifest and a writer lock in a folder), "shared" (a second handle on the same
# store may read while the first is open; qdrant-client's local mode allows one handle per folder),
# "graph" (searches of large collections go through an ANN graph, so they are approximate there),
# "cosine" (scores are true cosines: the store renormalises what it is given), "slow-id-filter"
# (large id filters take minutes, so the 20k suite runs only the 1 % filter).
KINDS = {
    "exact": ("exact", {}, {"folder", "shared"}),
    "embedded": ("embedded", {}, {"folder", "shared", "graph"}),
    "embedded-hnsw": (
        "embedded",
        {"exact_below": 0, "exact_factor": 0.0, "compact_min_dead": 0},
        {"folder", "shared", "graph", "approximate"},
    ),
    "qdrant-local": ("qdrant", {}, {"cosine", "slow-id-filter"}),
    "pgvector": ("pgvector", {}, {"shared", "cosine", "graph"}),
}
FOLDER_KINDS = [k for k, (_, _, traits) in KINDS.items() if "folder" in traits]
SHARED_KINDS = [k for k, (_, _, traits) in KINDS.items() if "shared" in traits]
APPROXIMATE = {k for k, (_, _, traits) in KINDS.items() if "approximate" in traits}


def clustered(n: int, dim: int = DIM, *, seed: int = 0, noise: float = 0.6) -> np.ndarray:
    """n vectors around n/200 random centres, unit length, float16-representable."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(4, n // 200), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16).astype(np.float32)


def near(x: np.ndarray, count: int, *, seed: int = 1) -> np.ndarray:
    """Queries: perturbed copies of some of the stored vectors."""
    rng = np.random.default_rng(seed)
    q = x[rng.choice(len(x), count, replace=False)] + 0.1 * rng.standard_normal((count, x.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def brute(ids, x, queries, k, allowed=None):
    """The answer by full sort, independent of every store."""
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, x = ids[keep], x[keep]
    scores = queries @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(scores, order, axis=1)


def recall(got: np.ndarray, want: np.ndarray) -> float:
    hits = sum(len(set(g[g >= 0]) & set(w[w >= 0])) for g, w in zip(got, want))
    return hits / max(1, int((want >= 0).sum()))


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param


@pytest.fixture(params=FOLDER_KINDS)
def folder_kind(request):
    return request.param


@pytest.fixture(params=SHARED_KINDS)
def shared_kind(request):
    return request.param


def opener(kind, request):
    """open(path=None, dim=DIM, **options) for ``kind``: a folder store in ``path``, qdrant-client's local
    mode in ``path`` (in memory when None), or pgvector tables in the session's PostgreSQL whose prefix
    is named after ``path`` (fresh tables when None)."""
    store_kind, defaults, _ = KINDS[kind]
    server = {}
    if store_kind == "qdrant":
        need("qdrant_client", "qdrant")
    if store_kind == "pgvector":
        server["url"] = request.getfixturevalue("pg_url")

    def _open(path=None, dim=DIM, **options):
        if store_kind == "pgvector":
            name = uuid.uuid4().hex if path is None else hashlib.sha1(str(path).encode()).hexdigest()
            return open_store(store_kind, None, dim, prefix="t" + name[:16], **server, **{**defaults, **options})
        return open_store(store_kind, path, dim, **{**defaults, **options})

    return _open


@pytest.fixture
def make(kind, request):
    """make(path=None, **options) opens a store of the kind under test."""
    return opener(kind, request)


@pytest.fixture
def make_folder(folder_kind, request):
    return opener(folder_kind, request)


@pytest.fixture
def make_shared(shared_kind, request):
    return opener(shared_kind, request)


def reopen(kind, make, store, path, **options):
    """A new handle on ``store``'s data; a kind without "shared" closes the old handle first."""
    if "shared" not in KINDS[kind][2]:
        store.close()
    return make(path, **options)


def check_against(kind, store, reference, queries, k, allowed=None, collection="segments", approximate=None):
    """Compare one search with the reference store: exactly, or by recall."""
    got_ids, got_scores = store.search(collection, queries, k, allowed)
    if "cosine" in KINDS[kind][2]:  # the cosine of the queries too, whatever their length
        reference = cosine_reference(reference)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    want_ids, want_scores = reference.search(collection, queries, k, allowed)
    assert got_ids.shape == got_scores.shape == (len(queries), k)
    assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32
    assert np.all(np.diff(got_scores, axis=1) <= 1e-6), "scores must be best first"
    assert np.array_equal(got_ids < 0, np.isneginf(got_scores)), "padding is id -1 with score -inf"
    if allowed is not None:
        assert np.isin(got_ids[got_ids >= 0], allowed).all(), "only allowed ids may be returned"
    if approximate is None:
        approximate = kind in APPROXIMATE
    if approximate:
        assert (got_ids >= 0).sum() == (want_ids >= 0).sum()
        assert recall(got_ids, want_ids) >= RECALL_BAR
    else:
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)


def reference_of(ids, x, collection="segments"):
    ref = ExactStore(None, x.shape[1])
    ref.upsert(collection, ids, x)
    ref.source = (collection, ids, x)
    return ref


def cosine_reference(reference):
    """The reference over the same vectors scaled to unit length: what a store that computes true
    cosines (qdrant, pgvector) must answer. The suite's float16-rounded vectors are unit length only
    to about 1e-4, which moves their inner products that much."""
    collection, ids, x = reference.source
    unit = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return reference_of(ids, unit, collection)


# --- the reference itself -------------------------------------------------------------


def test_reference_matches_full_sort():
    x = clustered(3000)
    ids = np.arange(1000, 4000, dtype=np.int64)
    q = near(x, 25)
    ref = reference_of(ids, x)
    rng = np.random.default_rng(2)
    for allowed in (None, rng.choice(ids, 30, replace=False), rng.choice(ids, 300, replace=False)):
        got_ids, got_scores = ref.search("segments", q, 10, allowed)
        want_ids, want_scores = brute(ids, x, q, 10, allowed)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)


# --- congruence with the reference ----------------------------------------------------


def test_small_collection_matches_reference(kind, make):
    x = clustered(1500, seed=3)
    ids = np.random.default_rng(3).permutation(10**6)[:1500].astype(np.int64)
    store = make()
    for start in range(0, len(ids), 400):  # several batches: growth and resize
        store.upsert("segments", ids[start : start + 400], x[start : start + 400])
    assert store.count("segments") == 1500 and store.count("tracks") == 0
    ref = reference_of(ids, x)
    q = near(x, 20, seed=4)
    rng = np.random.default_rng(5)
    for k in (1, 10, 50):
        check_against(kind, store, ref, q, k)
    for fraction in (0.01, 0.1, 1.0):
        allowed = rng.choice(ids, int(len(ids) * fraction), replace=False)
        check_against(kind, store, ref, q, 10, allowed)


@pytest.fixture(scope="module")
def large():
    """20k vectors, and a reference over them, built once for the module."""
    x = clustered(20_000, seed=6)
    ids = np.arange(20_000, dtype=np.int64) * 3 + 7
    return ids, x, reference_of(ids, x), near(x, 50, seed=7)


@pytest.fixture(scope="module")
def large_stores(large, request):
    """One store per store class, built on first use; the graph is shared by both embedded kinds."""
    ids, x, _, _ = large
    built = {}

    def get(kind):
        store_kind = KINDS[kind][0]
        if store_kind not in built:
            store = opener(kind, request)()
            store.upsert("segments", ids, x)
            store.flush()
            built[store_kind] = store
        return built[store_kind]

    return get


@pytest.mark.parametrize("fraction", [None, 0.01, 0.1, 1.0])
def test_large_collection_recall(kind, large, large_stores, fraction, monkeypatch):
    ids, _, ref, q = large
    store_kind, options, traits = KINDS[kind]
    if "slow-id-filter" in traits and fraction is not None and fraction > 0.01:
        pytest.skip("qdrant-client's local mode checks every point against the id list in Python: "
                    "O(n * m) per query, 21 s at 10 % and 250 s at 100 % of 20k for 50 queries")
    store = large_stores(kind)
    for name, value in options.items():  # planner thresholds are plain attributes
        monkeypatch.setattr(store, name, value)
    allowed = None
    if fraction is not None:
        allowed = np.random.default_rng(8).choice(ids, int(len(ids) * fraction), replace=False)
    check_against(kind, store, ref, q, 10, allowed, approximate="graph" in traits)


@pytest.mark.parametrize(
    "options, fraction, path",
    [
        ({}, None, "_hnsw"),
        ({}, 0.01, "_exact"),  # 200 candidates <= 4 * sqrt(10 * 20k) = 1789 < 2000
        ({}, 0.1, "_overfetch"),
        ({}, 1.0, "_overfetch"),
        ({"exact_factor": 0}, 0.01, "_overfetch"),
        ({"exact_factor": 100}, 0.1, "_exact"),
        ({"exact_below": 30_000}, None, "_exact"),
    ],
)
def test_planner_paths(large, large_stores, monkeypatch, options, fraction, path):
    """The embedded planner picks the path its thresholds say, and the answer holds."""
    ids, _, ref, q = large
    store = large_stores("embedded")
    for name, value in options.items():
        monkeypatch.setattr(store, name, value)
    calls = []
    real = getattr(store, path)
    monkeypatch.setattr(store, path, lambda *a: calls.append(path) or real(*a))
    allowed = None
    if fraction is not None:
        allowed = np.random.default_rng(9).choice(ids, int(len(ids) * fraction), replace=False)
    check_against("embedded", store, ref, q, 10, allowed, approximate=path != "_exact")
    assert calls and calls[0] == path


def test_overfetch_tops_up_exactly(large, large_stores, monkeypatch):
    """Queries that over-fetch leaves short of k allowed ids are answered by an exact scan."""
    ids, _, ref, q = large
    store = large_stores("embedded")
    monkeypatch.setattr(store, "exact_factor", 0.0)
    monkeypatch.setattr(store, "overfetch_factor", 0.05)  # fetch far too few
    allowed = np.random.default_rng(10).choice(ids, 200, replace=False)
    check_against("embedded", store, ref, q, 10, allowed, approximate=False)


# --- writes ---------------------------------------------------------------------------


def test_upsert_replaces(kind, make):
    x = clustered(600, seed=9)
    ids = np.arange(600, dtype=np.int64)
    store = make()
    store.upsert("tracks", ids, x)
    store.upsert("tracks", ids[:5], x[100:105])  # ids 0..4 now hold copies of 100..104
    assert store.count("tracks") == 600
    got, scores = store.search("tracks", x[100:105], 2)
    for i in range(5):
        assert set(got[i]) == {i, 100 + i}
        np.testing.assert_allclose(scores[i], 1.0, atol=1e-3)
    ref_x = x.copy()
    ref_x[:5] = x[100:105]
    if kind not in APPROXIMATE:
        check_against(kind, store, reference_of(ids, ref_x, "tracks"), near(x, 10), 10, collection="tracks")


def test_repeated_id_in_one_batch_keeps_the_last(kind, make):
    x = clustered(10, seed=10)
    store = make()
    store.upsert("segments", np.array([4, 4, 4]), x[:3])
    assert store.count("segments") == 1
    _, scores = store.search("segments", x[2:3], 1)
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_delete_then_search(kind, make):
    x = clustered(800, seed=11)
    ids = np.arange(800, dtype=np.int64) + 50
    store = make()
    store.upsert("segments", ids, x)
    gone = ids[::3]
    store.delete("segments", np.concatenate([gone, [10**9, 3]]))  # unknown ids are ignored
    assert store.count("segments") == 800 - len(gone)
    keep = ~np.isin(ids, gone)
    q = x[::3][:20]  # queries sitting exactly on deleted vectors
    got, _ = store.search("segments", q, 10)
    assert not np.isin(got, gone).any()
    check_against(kind, store, reference_of(ids[keep], x[keep]), q, 10)
    got, _ = store.search("segments", q, 5, allowed=gone)  # only deleted ids allowed
    assert (got == -1).all()


def test_readd_deleted_id(kind, make):
    x = clustered(300, seed=12)
    store = make()
    store.upsert("segments", np.arange(300), x)
    store.delete("segments", np.array([7]))
    assert 7 not in store.search("segments", x[7:8], 5)[0]
    store.upsert("segments", np.array([7]), x[8:9])  # back, with another vector
    assert store.count("segments") == 300
    got, scores = store.search("segments", x[8:9], 2)
    assert set(got[0]) == {7, 8}
    np.testing.assert_allclose(scores[0], 1.0, atol=1e-3)


def test_padding_when_k_exceeds_count(kind, make):
    x = clustered(5, seed=13)
    store = make()
    assert store.search("segments", x[:2], 3)[0].tolist() == [[-1] * 3] * 2  # empty store
    store.upsert("segments", np.arange(5), x)
    got, scores = store.search("segments", x[:2], 8)
    assert got.shape == (2, 8)
    assert (got[:, :5] >= 0).all() and (got[:, 5:] == -1).all()
    assert np.isneginf(scores[:, 5:]).all() and np.isfinite(scores[:, :5]).all()
    got, scores = store.search("segments", x[:1], 4, allowed=np.array([1, 3, 99]))
    assert sorted(got[0, :2]) == [1, 3] and got[0, 2:].tolist() == [-1, -1]
    assert store.search("segments", x[:1], 0)[0].shape == (1, 0)


def test_empty_allowed(kind, make):
    x = clustered(50, seed=14)
    store = make()
    store.upsert("segments", np.arange(50), x)
    got, scores = store.search("segments", x[:3], 4, allowed=np.array([], dtype=np.int64))
    assert (got == -1).all() and np.isneginf(scores).all()


def test_collections_are_separate(kind, make):
    x = clustered(40, seed=15)
    store = make()
    store.upsert("segments", np.arange(20), x[:20])
    store.upsert("tracks", np.arange(20), x[20:])
    got, scores = store.search("tracks", x[20:21], 1)
    assert got[0, 0] == 0 and scores[0, 0] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(StoreError, match="unknown collection"):
        store.search("albums", x[:1], 1)


def test_clear(kind, make, tmp_path):
    x = clustered(100, seed=16)
    store = make(tmp_path / "idx")
    store.upsert("segments", np.arange(100), x)
    store.upsert("tracks", np.arange(3), x[:3])
    store.flush()
    store.clear()
    assert store.count("segments") == store.count("tracks") == 0
    assert (store.search("segments", x[:1], 3)[0] == -1).all()
    store.flush()
    store = reopen(kind, make, store, tmp_path / "idx")
    assert store.count("segments") == 0
    store.upsert("segments", np.array([5]), x[:1])  # usable after clear
    assert store.search("segments", x[:1], 1)[0][0, 0] == 5


def test_bad_input(kind, make):
    store = make()
    with pytest.raises(StoreError, match="shape"):
        store.upsert("segments", np.arange(2), np.zeros((2, DIM + 1), np.float32))
    with pytest.raises(StoreError, match="2 ids for 3 vectors"):
        store.upsert("segments", np.arange(2), np.zeros((3, DIM), np.float32))
    with pytest.raises(StoreError, match="non-negative"):
        store.upsert("segments", np.array([-1]), np.zeros((1, DIM), np.float32))
    with pytest.raises(StoreError, match="queries"):
        store.search("segments", np.zeros((1, DIM - 1), np.float32), 3)


# --- persistence and several processes ------------------------------------------------


def test_persists_across_reopen(kind, make, tmp_path):
    x = clustered(3000, seed=17)
    ids = np.arange(3000, dtype=np.int64) * 2
    store = make(tmp_path / "idx")
    store.upsert("segments", ids, x)
    store.upsert("tracks", ids[:10], x[:10])
    store.delete("segments", ids[:100])
    q = near(x, 10, seed=18)
    before = store.search("segments", q, 10)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.search("segments", q, 10)

    again = make(tmp_path / "idx", dim=None)  # dim comes from the manifest
    assert again.count("segments") == 2900 and again.count("tracks") == 10
    after = again.search("segments", q, 10)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], atol=1e-6)
    if kind not in APPROXIMATE:
        check_against(kind, again, reference_of(ids[100:], x[100:]), q, 10)
    again.upsert("segments", ids[:1], x[:1])  # a reopened store can be written
    again.flush()
    assert reopen(kind, make, again, tmp_path / "idx").count("segments") == 2901


def test_reader_sees_flushed_writes(shared_kind, make_shared, tmp_path):
    make = make_shared
    x = clustered(200, seed=19)
    writer = make(tmp_path / "idx")
    writer.upsert("segments", np.arange(100), x[:100])
    writer.flush()
    reader = make(tmp_path / "idx")
    assert reader.count("segments") == 100

    writer.upsert("segments", np.arange(100, 200), x[100:])
    writer.delete("segments", np.array([0]))
    assert reader.count("segments") == 100  # not flushed yet
    writer.flush()
    assert reader.count("segments") == 199
    got, _ = reader.search("segments", x[150:151], 1)
    assert got[0, 0] == 150
    assert 0 not in reader.search("segments", x[:1], 5)[0]

    writer.clear()
    writer.flush()
    assert reader.count("segments") == 0


def test_one_writer_at_a_time(make_folder, tmp_path):
    make = make_folder
    x = clustered(20, seed=20)
    first = make(tmp_path / "idx")
    first.upsert("segments", np.arange(10), x[:10])  # takes the writer lock
    second = make(tmp_path / "idx", lock_timeout=0.1)
    assert second.count("segments") == 0  # reading never waits
    with pytest.raises(StoreError, match="another process is writing"):
        second.upsert("segments", np.arange(10, 20), x[10:])
    first.flush()  # releases the lock
    second.upsert("segments", np.arange(10, 20), x[10:])  # sees first's writes, then adds
    second.flush()
    assert make(tmp_path / "idx").count("segments") == 20
    assert first.count("segments") == 20


def test_compaction_keeps_answers(folder_kind, make_folder, tmp_path):
    kind, make = folder_kind, make_folder
    x = clustered(1200, seed=21)
    ids = np.arange(1200, dtype=np.int64)
    store = make(tmp_path / "idx")
    store.upsert("segments", ids, x)
    store.delete("segments", ids[:900])  # embedded-hnsw compacts on flush
    store.flush()
    if kind == "embedded-hnsw":
        manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
        assert manifest["collections"]["segments"]["elements"] == 300
    again = make(tmp_path / "idx")
    check_against(kind, again, reference_of(ids[900:], x[900:]), near(x[900:], 10), 10)


def _data_file(folder, suffix):
    manifest = json.loads((folder / "manifest.json").read_text())
    return folder / manifest["collections"]["segments"]["files"][suffix]


@pytest.mark.parametrize(
    "damage",
    ["truncate-vectors", "truncate-ids", "missing-vectors", "manifest", "no-manifest"],
)
def test_corrupt_files_raise_store_error(make_folder, tmp_path, damage):
    make = make_folder
    folder = tmp_path / "idx"
    x = clustered(300, seed=22)
    store = make(folder)
    store.upsert("segments", np.arange(300), x)
    store.close()
    if damage == "truncate-vectors":
        path = _data_file(folder, "vectors")
        os.truncate(path, path.stat().st_size // 2)
    elif damage == "truncate-ids":
        os.truncate(_data_file(folder, "ids"), 20)
    elif damage == "missing-vectors":
        _data_file(folder, "vectors").unlink()
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "no-manifest":
        (folder / "manifest.json").unlink()
    with pytest.raises(StoreError, match="rebuild-index"):
        make(folder)


def test_a_garbage_graph_file_raises_store_error(tmp_path):
    """Only the embedded store has a graph file."""
    folder = tmp_path / "idx"
    store = open_store("embedded", folder, DIM)
    store.upsert("segments", np.arange(300), clustered(300, seed=22))
    store.close()
    path = _data_file(folder, "index")
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    with pytest.raises(StoreError, match="rebuild-index"):
        open_store("embedded", folder, DIM)


def test_reader_reports_damage_after_a_flush(make_folder, tmp_path):
    make = make_folder
    folder = tmp_path / "idx"
    x = clustered(100, seed=23)
    writer = make(folder)
    writer.upsert("segments", np.arange(50), x[:50])
    writer.flush()
    reader = make(folder)
    writer.upsert("segments", np.arange(50, 100), x[50:])
    writer.flush()
    os.truncate(_data_file(folder, "vectors"), 10)
    for _ in range(2):  # and keeps reporting it
        with pytest.raises(StoreError, match="rebuild-index"):
            reader.search("segments", x[:1], 3)


def test_another_dim(kind, make, tmp_path):
    store = make(tmp_path / "idx")
    store.upsert("segments", np.arange(3), clustered(3))
    store.flush()
    store = reopen(kind, make, store, tmp_path / "idx")  # the same dimension opens
    if "shared" not in KINDS[kind][2]:
        store.close()
    with pytest.raises(StoreError, match="32-d vectors, not 16-d"):
        make(tmp_path / "idx", dim=16)
    with pytest.raises(StoreError, match="needs its dimension"):
        make(tmp_path / "new", dim=None)


def test_folder_of_another_kind(make_folder, folder_kind, tmp_path):
    store = make_folder(tmp_path / "idx")
    store.upsert("segments", np.arange(3), clustered(3))
    store.flush()
    other = "exact" if KINDS[folder_kind][0] == "embedded" else "embedded"
    with pytest.raises(StoreError, match="written by the"):
        open_store(other, tmp_path / "idx", DIM)


def test_unknown_kind():
    with pytest.raises(UserError, match="unknown vector store kind"):
        open_store("faiss", None, 4)


def test_dropping_a_writer_releases_the_lock(make_folder, tmp_path):
    make = make_folder
    import gc

    first = make(tmp_path / "idx")
    first.upsert("segments", np.arange(2), clustered(2))
    del first  # never flushed: its writes are lost, but the lock must go
    gc.collect()
    second = make(tmp_path / "idx", lock_timeout=0.1)
    second.upsert("segments", np.arange(2), clustered(2))
    second.flush()
    assert make(tmp_path / "idx").count("segments") == 2
