"""What only the server stores have: prefixes, quantisation, unreachable servers, the URL in messages.

The shared behaviour (answers, writes, persistence) is in the contract suite, test_stores.py.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from soundalike.errors import StoreError
from soundalike.stores import open_store
from soundalike.stores.remote import redact
from tests.conftest import need


@pytest.fixture(autouse=True)
def qdrant_client():
    need("qdrant_client", "qdrant")

DIM = 16


def unit(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_qdrant_prefixes_keep_libraries_apart(tmp_path):
    x = unit(20)
    a = open_store("qdrant", tmp_path / "q", DIM, prefix="lib_a")
    a.upsert("segments", np.arange(20), x)
    a.close()
    b = open_store("qdrant", tmp_path / "q", DIM, prefix="lib_b")
    assert b.count("segments") == 0
    b.upsert("segments", np.arange(5), x[:5])
    b.clear()  # clears lib_b only
    b.close()
    a = open_store("qdrant", tmp_path / "q", None, prefix="lib_a")
    assert a.count("segments") == 20 and a.dim == DIM
    a.close()
    with pytest.raises(StoreError, match="prefix"):
        open_store("qdrant", None, DIM, prefix="no spaces")


def test_qdrant_int8_quantisation_answers_exactly_in_local_mode():
    x = unit(300, seed=1)
    store = open_store("qdrant", None, DIM, quantization="int8")
    store.upsert("tracks", np.arange(300), x)
    ids, scores = store.search("tracks", x[:5], 3)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    with pytest.raises(StoreError, match="quantization"):
        open_store("qdrant", None, DIM, quantization="binary4")


def test_qdrant_local_folder_is_held_by_one_handle(tmp_path):
    first = open_store("qdrant", tmp_path / "q", DIM)
    with pytest.raises(StoreError, match="already accessed"):
        open_store("qdrant", tmp_path / "q", DIM)
    first.close()
    open_store("qdrant", tmp_path / "q", DIM).close()


def test_unreachable_qdrant_server_is_a_store_error_after_retries(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match=rf"cannot reach the qdrant store at {url} .*3 attempts"):
        open_store("qdrant", None, DIM, url=url, retries=3, retry_wait=0.01)
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


def test_redact_hides_passwords():
    assert redact("postgresql://me:secret@db.example:5432/music") == "postgresql://me:***@db.example:5432/music"
    assert redact("postgresql://me@db/music") == "postgresql://me@db/music"
    assert redact("http://localhost:6333") == "http://localhost:6333"


# --- pgvector: the planner's paths on a real server ------------------------------------


@pytest.fixture(scope="module")
def pg_loaded(pg_url):
    """5,000 vectors in pgvector tables with their HNSW index; the exact reference over them."""
    from soundalike.stores import ExactStore

    x = unit(5000, seed=3)
    ids = np.arange(5000, dtype=np.int64) * 2 + 1
    store = open_store("pgvector", None, DIM, url=pg_url, prefix="planner")
    store.clear()
    store.upsert("segments", ids, x)
    store.flush()  # builds the index
    ref = ExactStore(None, DIM)
    ref.upsert("segments", ids, x)
    yield store, ref, ids, x
    store.close()


@pytest.mark.parametrize(
    "options, fraction, path",
    [
        ({}, None, "hnsw"),
        ({}, 0.01, "_exact"),  # 50 ids <= 4 * sqrt(10 * 5000)
        ({}, 0.3, "_filtered_hnsw"),
        ({"iterative": False}, 0.3, "_filtered_hnsw"),  # pgvector < 0.8: over-fetch
        ({"iterative": False, "overfetch_factor": 0.05}, 0.3, "_filtered_hnsw"),  # too little: exact top-up
        ({"exact_below": 10_000}, None, "_exact"),
    ],
)
def test_pgvector_planner(pg_url, pg_loaded, monkeypatch, options, fraction, path):
    _, ref, ids, x = pg_loaded
    store = open_store("pgvector", None, DIM, url=pg_url, prefix="planner", **options)
    assert store.version >= (0, 8) and store.iterative == options.get("iterative", True)
    calls = []
    if path != "hnsw":
        real = getattr(store, path)
        monkeypatch.setattr(store, path, lambda *a, **kw: calls.append(path) or real(*a, **kw))
    allowed = None
    if fraction is not None:
        allowed = np.random.default_rng(4).choice(ids, int(len(ids) * fraction), replace=False)
    q = x[:30] + 0.05 * unit(30, seed=5)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    got, scores = store.search("segments", q, 10, allowed)
    want, _ = ref.search("segments", q, 10, allowed)
    if allowed is not None:
        assert np.isin(got, allowed).all()
    hits = sum(len(set(g) & set(w)) for g, w in zip(got, want))
    assert hits / want.size >= (1.0 if path == "_exact" or "overfetch_factor" in options else 0.95)
    assert (path == "hnsw" and not calls) or calls[0] == path
    store.close()


def test_pgvector_errors(pg_url):
    with pytest.raises(StoreError, match="needs a PostgreSQL URL"):
        open_store("pgvector", None, DIM)
    with pytest.raises(StoreError, match="prefix"):
        open_store("pgvector", None, DIM, url=pg_url, prefix="Bad-Name")
    bad = f"postgresql://someone:hunter2@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StoreError, match=r"cannot reach the pgvector store at postgresql://someone:\*\*\*@") as err:
        open_store("pgvector", None, DIM, url=bad, retries=2, retry_wait=0.01, connect_timeout=2)
    assert "hunter2" not in str(err.value)


def test_pgvector_writes_are_one_transaction_until_flush(pg_url):
    x = unit(10, seed=6)
    writer = open_store("pgvector", None, DIM, url=pg_url, prefix="txn")
    reader = open_store("pgvector", None, DIM, url=pg_url, prefix="txn")
    writer.upsert("tracks", np.arange(10), x)
    assert writer.count("tracks") == 10 and reader.count("tracks") == 0
    writer.flush()
    assert reader.count("tracks") == 10
    writer.clear()
    assert reader.search("tracks", x[:1], 1)[0][0, 0] == 0  # the reader still sees the last flush
    writer.close()  # close flushes
    assert reader.count("tracks") == 0
    reader.close()


def test_a_missing_extra_skips_but_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"soundalike\[pgvector\]"):
        need("soundalike_no_such_module", "pgvector")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"soundalike\[pgvector\]"):
        need("soundalike_no_such_module", "pgvector")


def test_pgvector_analyses_only_new_or_cleared_tables(pg_url):
    """flush runs ANALYZE when it builds the index or after clear, not at every flush of an indexing run."""
    import psycopg

    def analyses():
        with psycopg.connect(pg_url) as conn:
            sql = "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'an_segments'"  # not autoanalyze
            row = conn.execute(sql).fetchone()
        return row[0]

    x = unit(3000, seed=7)
    store = open_store("pgvector", None, DIM, url=pg_url, prefix="an")
    store.upsert("segments", np.arange(1000), x[:1000])
    store.flush()  # builds the index: analyses
    first = analyses()
    assert first >= 1
    store.upsert("segments", np.arange(1000, 2000), x[1000:2000])
    store.flush()
    assert analyses() == first
    store.clear()
    store.upsert("segments", np.arange(2000, 3000), x[2000:])
    store.flush()
    assert analyses() == first + 1
    assert store.count("segments") == 1000
    store.close()


def test_pgvector_searches_run_at_once(pg_url, monkeypatch):
    """Threads sharing one handle (soundalike serve) search in parallel, each on a pooled connection."""
    import threading
    import time

    from soundalike.stores.pgvector import PgvectorStore

    x = unit(50, seed=8)
    store = open_store("pgvector", None, DIM, url=pg_url, prefix="par")
    store.upsert("tracks", np.arange(50), x)
    store.flush()
    real = PgvectorStore._rows

    def slow(conn, sql, params):
        conn.execute("SELECT pg_sleep(0.5)")
        return real(conn, sql, params)

    monkeypatch.setattr(PgvectorStore, "_rows", staticmethod(slow))
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(store.search("tracks", x[i : i + 1], 1)[0][0, 0]))
               for i in range(3)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2]
    assert time.perf_counter() - t0 < 1.2  # three 0.5 s searches, not one after another
    store.close()
