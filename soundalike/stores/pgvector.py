"""PostgreSQL with the pgvector extension as the vector store.

    open_store("pgvector", None, dim, url="postgresql://user@host/db", prefix="lib1")

Each library has two tables, ``{prefix}_segments`` and ``{prefix}_tracks``
(``id bigint primary key, embedding vector(dim)``), so several libraries can
share a database, and an HNSW index per table (``vector_cosine_ops``, m 16,
ef_construction 64). Scores are ``1 - (embedding <=> query)``: cosines.

Writes (``upsert``, ``delete``, ``clear``) run in one transaction on one
connection, from the first write to ``flush`` (a commit), like the folder
stores' generations: readers see a batch of tracks whole or not at all, and a
killed indexer leaves the last flushed state; readers never wait for a
writer (``clear`` is a ``DELETE``, so a search during ``rebuild-index`` sees
the old vectors until the commit). Upserts stage rows with a binary ``COPY``
and merge them with ``INSERT ... ON CONFLICT``. A new table gets its HNSW
index at the first ``flush``, built once over the first batch; later writes
update it row by row. That flush, and the first after a ``clear``, also run
``ANALYZE`` for the planner's row estimate. Reads use a ``psycopg_pool`` pool.

The planner, per ``search`` call (every query of a call shares ``allowed``):

- at most ``exact_below`` (1,000) vectors, or no HNSW index yet: exact scan;
- no filter: HNSW with ``hnsw.ef_search = max(400 * sqrt(n / 100k), 400, k)``
  (at most 1,000, pgvector's limit): the embedded store's rule, with the
  ef that gave recall@10 0.990 at 100k here (docs/stores.md);
- ``m`` allowed ids with ``m <= exact_factor * sqrt(k * n)``: an exact scan of
  those rows through the primary key (``ORDER BY`` an expression the HNSW
  index cannot serve);
- larger ``allowed``: on pgvector >= 0.8, the HNSW index with
  ``hnsw.iterative_scan = strict_order`` and ``WHERE id = ANY(...)``, which
  keeps scanning the graph until k rows pass; on older pgvector (0.6.2 in the
  ``pgserver`` wheel has no iterative scans, and post-filtering alone gave
  recall 0.06 at 1 %), HNSW over-fetch of ``2 k n / m`` rows filtered by id.
  Either way, a query left with fewer than k rows while allowed ids remain is
  answered by the exact scan.

psycopg 3, psycopg_pool and pgvector are optional dependencies:
``pip install 'soundalike[pgvector]'``.
"""

from __future__ import annotations

import logging
import math
import os
import re

import numpy as np

from soundalike.errors import StoreError
from soundalike.stores.base import COLLECTIONS
from soundalike.stores.exact import REBUILD_HINT
from soundalike.stores.remote import RemoteStore, fill, redact

__all__ = ["PgvectorStore"]

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def _modules():
    try:
        import psycopg
        import psycopg_pool
        from pgvector.psycopg import register_vector
    except ImportError as exc:
        raise StoreError("the pgvector store needs psycopg, psycopg_pool and pgvector: "
                         "pip install 'soundalike[pgvector]'") from exc
    return psycopg, psycopg_pool, register_vector


class PgvectorStore(RemoteStore):
    """Segment and track vectors in two PostgreSQL tables with HNSW indexes."""

    name = "pgvector"
    kind = "pgvector"
    concurrent_reads = True  # each search takes its own pooled connection (or waits for the writer's)

    M = 16
    ef_construction = 64
    ef_search = 400  # recall@10 at 100k (ef_construction 64): 0.960 at 128, 0.980 at 256, 0.990 at 400, 1.0 at 600
    ef_reference_n = 100_000
    exact_below = 1_000
    exact_factor = 4.0
    overfetch_factor = 2.0

    _OPTIONS = ("ef_search", "ef_reference_n", "exact_below", "exact_factor", "overfetch_factor")

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        dim: int | None = None,
        *,
        url: str | None = None,
        prefix: str = "soundalike",
        iterative: bool | None = None,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        retries: int | None = None,
        retry_wait: float | None = None,
        **options,
    ) -> None:
        super().__init__(retries=retries, retry_wait=retry_wait)
        for name in self._OPTIONS:
            if name in options:
                setattr(self, name, options.pop(name))
        if options:
            raise StoreError(f"unknown pgvector store option(s): {', '.join(sorted(options))}")
        if not url:
            raise StoreError("the pgvector store needs a PostgreSQL URL (--store-url or SOUNDALIKE_STORE_URL)")
        if not _PREFIX.match(prefix):
            raise StoreError(f"pgvector prefix {prefix!r}: use lower-case letters, digits and '_' (at most 41)")
        psycopg, psycopg_pool, register_vector = _modules()
        self._psycopg = psycopg
        self.url = url
        self.where = redact(url)
        self.prefix = prefix
        self._writer = None  # the write transaction's connection, from the first write to flush
        self._cleared = False  # clear() since the last flush: analyse the tables again

        self._ensure_extension(connect_timeout)

        def configure(conn) -> None:
            register_vector(conn)
            conn.autocommit = False

        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), open=False, timeout=connect_timeout,
            configure=configure, kwargs={"connect_timeout": max(1, int(connect_timeout))},
        )
        self.call("connect", lambda: self._pool.open(wait=True, timeout=connect_timeout))
        try:
            self.version = self._extversion()
            self.iterative = self.version >= (0, 8) if iterative is None else bool(iterative)
            self.dim = self._setup(dim)
        except BaseException:
            self._pool.close()
            raise

    # setup

    def _transient(self, exc: BaseException) -> bool:
        from psycopg_pool import PoolTimeout

        return isinstance(exc, (self._psycopg.OperationalError, PoolTimeout))

    def _client_error(self, exc: BaseException) -> bool:
        from psycopg_pool import PoolTimeout

        return isinstance(exc, (self._psycopg.Error, PoolTimeout))

    def _ensure_extension(self, timeout: float) -> None:
        psycopg = self._psycopg

        def create() -> None:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
                if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                    try:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    except psycopg.errors.InsufficientPrivilege as exc:
                        raise StoreError(f"pgvector store at {self.where}: the vector extension is not installed "
                                         "and this user may not create it (ask for CREATE EXTENSION vector)") from exc
                    except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported) as exc:
                        raise StoreError(f"pgvector store at {self.where}: the server has no pgvector "
                                         "extension installed") from exc

        self.call("connect", create)

    def _extversion(self) -> tuple[int, ...]:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        return tuple(int(p) for p in re.findall(r"\d+", row[0])[:3])

    def table(self, collection: str) -> str:
        return f"{self.prefix}_{collection}"

    def _setup(self, dim: int | None) -> int:
        found = None
        with self._pool.connection() as conn:
            for collection in COLLECTIONS:
                row = conn.execute(
                    "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
                    "AND a.attname = 'embedding'", (self.table(collection),),
                ).fetchone()
                if row is None:
                    continue
                if dim is not None and row[0] != dim:
                    raise StoreError(f"pgvector table {self.table(collection)} ({self.where}) holds {row[0]}-d "
                                     f"vectors, not {dim}-d; {REBUILD_HINT}")
                found = row[0]
            dim = dim if dim is not None else found
            if dim is None or int(dim) <= 0:
                raise StoreError("a new vector store needs its dimension (dim)")
            for collection in COLLECTIONS:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table(collection)} "
                             f"(id bigint PRIMARY KEY, embedding vector({int(dim)}) NOT NULL)")
        return int(dim)

    def _index_sql(self, collection: str) -> str:
        t = self.table(collection)
        return (f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {self.M}, ef_construction = {self.ef_construction})")

    # writes: one transaction until flush

    def _write(self, what: str, fn) -> None:
        psycopg = self._psycopg
        try:
            if self._writer is None:
                self._writer = self.call("connect", lambda: self._pool.getconn())
            fn(self._writer)
        except psycopg.Error as exc:
            self._abort()
            raise StoreError(f"pgvector store at {self.where}: {what} failed, the writes since the last flush "
                             f"are lost: {' '.join(str(exc).split())}") from exc

    def _abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.rollback()
            except self._psycopg.Error:
                pass
            self._pool.putconn(self._writer)
            self._writer = None

    def _upsert(self, collection: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        t = self.table(collection)

        def run(conn) -> None:
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS soundalike_stage (id bigint, embedding vector({self.dim})) "
                         "ON COMMIT DELETE ROWS")
            conn.execute("TRUNCATE soundalike_stage")
            copy_sql = "COPY soundalike_stage (id, embedding) FROM STDIN WITH (FORMAT BINARY)"
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types(["int8", "vector"])
                for i, v in zip(ids.tolist(), vectors):
                    copy.write_row((i, v))
            conn.execute(f"INSERT INTO {t} (id, embedding) SELECT id, embedding FROM soundalike_stage "
                         "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding")

        self._write(f"upsert into {t}", run)

    def _delete(self, collection: str, ids: np.ndarray) -> None:
        t = self.table(collection)
        sql = f"DELETE FROM {t} WHERE id = ANY(%s)"
        self._write(f"delete from {t}", lambda conn: conn.execute(sql, (ids.tolist(),)))

    def _clear(self) -> None:
        def run(conn) -> None:
            for collection in COLLECTIONS:
                # DELETE, not TRUNCATE or DROP INDEX: those lock readers out until the flush
                conn.execute(f"DELETE FROM {self.table(collection)}")
            self._cleared = True

        self._write("clear", run)

    def flush(self) -> None:
        with self._mutex:
            if self._closed:
                return
            if self._writer is not None:
                self._write("building the HNSW index", self._index_all)
                try:
                    self._writer.commit()
                except self._psycopg.Error as exc:
                    self._abort()
                    raise StoreError(f"pgvector store at {self.where}: commit failed: {exc}") from exc
                self._pool.putconn(self._writer)
                self._writer = None

    def _index_all(self, conn) -> None:
        """Build a missing HNSW index, and refresh the row estimate ``_size`` plans with when the table was
        just cleared or indexed; later growth is left to autovacuum's auto-analyze (an ANALYZE samples
        30,000 rows, too much to repeat at every flush of an indexing run)."""
        for collection in COLLECTIONS:
            fresh = self._cleared or not self._has_index(conn, collection)
            conn.execute(self._index_sql(collection))
            if fresh:
                conn.execute(f"ANALYZE {self.table(collection)}")
        self._cleared = False

    def _close(self) -> None:
        try:
            if self._writer is not None:
                self._closed = False
                try:
                    self.flush()
                finally:
                    self._closed = True
        finally:
            self._pool.close()

    # reads

    def _read(self, what: str, fn):
        writer = self._writer
        if writer is not None:  # see this handle's own uncommitted writes (psycopg serialises its use)
            return fn(writer)

        def run():
            with self._pool.connection() as conn:
                return fn(conn)

        return self.call(what, run)

    def _count(self, collection: str) -> int:
        t = self.table(collection)
        return int(self._read(f"count {t}", lambda conn: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]))

    def _has_index(self, conn, collection: str) -> bool:
        return conn.execute("SELECT to_regclass(%s)", (f"{self.table(collection)}_hnsw",)).fetchone()[0] is not None

    def _ef(self, n: int, k: int) -> int:
        ef = max(self.ef_search, round(self.ef_search * math.sqrt(n / self.ef_reference_n)), k)
        return min(ef, 1000)

    def _search(self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        t = self.table(collection)

        def run(conn):
            n = self._size(conn, t)
            if n == 0:
                return [[] for _ in queries]
            with conn.transaction():  # SET LOCAL lasts until this block ends
                if n <= self.exact_below or not self._has_index(conn, collection):
                    return self._exact(conn, t, queries, k, allowed)
                if allowed is None:
                    conn.execute(f"SET LOCAL hnsw.ef_search = {self._ef(n, k)}")
                    return [self._rows(conn, f"SELECT id, 1 - (embedding <=> %s) FROM {t} "
                                             "ORDER BY embedding <=> %s LIMIT %s", (q, q, k)) for q in queries]
                if len(allowed) <= self.exact_factor * math.sqrt(k * n):
                    return self._exact(conn, t, queries, k, allowed)
                return self._filtered_hnsw(conn, t, queries, k, allowed, n)

        return fill(self._read(f"search {t}", run), k)

    @staticmethod
    def _size(conn, t: str) -> int:
        """The table's row count for planning: the statistics' estimate (``flush`` runs ANALYZE), counted
        only when the table was never analysed or looks empty (a count(*) scans the whole table)."""
        est = conn.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (t,)).fetchone()
        if est is not None and est[0] > 0:
            return int(est[0])
        return int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])

    @staticmethod
    def _rows(conn, sql: str, params) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in conn.execute(sql, params).fetchall()]

    def _exact(self, conn, t: str, queries: np.ndarray, k: int, allowed: np.ndarray | None, only=None):
        """Exact top-k: ``ORDER BY`` an expression no index can serve, so every candidate row is scored."""
        where, extra = ("", ()) if allowed is None else ("WHERE id = ANY(%s)", (allowed.tolist(),))
        sql = (f"SELECT id, 1 - (embedding <=> %s) AS s FROM {t} {where} "
               "ORDER BY (embedding <=> %s) + 0, id LIMIT %s")
        return [self._rows(conn, sql, (q, *extra, q, k)) for q in (queries if only is None else queries[only])]

    def _filtered_hnsw(self, conn, t: str, queries: np.ndarray, k: int, allowed: np.ndarray, n: int):
        if self.iterative:
            conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            conn.execute(f"SET LOCAL hnsw.ef_search = {self._ef(n, k)}")
            sql = (f"SELECT id, 1 - (embedding <=> %s) FROM {t} WHERE id = ANY(%s) "
                   "ORDER BY embedding <=> %s LIMIT %s")
            rows = [self._rows(conn, sql, (q, allowed.tolist(), q, k)) for q in queries]
        else:
            fetch = min(n, math.ceil(self.overfetch_factor * k * n / len(allowed)))
            conn.execute(f"SET LOCAL hnsw.ef_search = {min(1000, max(self._ef(n, k), fetch))}")
            sql = (f"SELECT id, s FROM (SELECT id, 1 - (embedding <=> %s) AS s, embedding <=> %s AS d FROM {t} "
                   "ORDER BY embedding <=> %s LIMIT %s) near WHERE id = ANY(%s) ORDER BY d LIMIT %s")
            rows = [self._rows(conn, sql, (q, q, q, fetch, allowed.tolist(), k)) for q in queries]
        short = [i for i, r in enumerate(rows) if len(r) < k]
        if short:  # the graph walk stopped early (hnsw.max_scan_tuples, too little over-fetch) or < k rows exist
            log.debug("pgvector: %d of %d queries short of %d rows; scanning exactly", len(short), len(rows), k)
            for i, r in zip(short, self._exact(conn, t, queries, k, allowed, only=short)):
                rows[i] = r
        return rows

    def health(self) -> dict:
        return {"server": self.where, "pgvector": ".".join(map(str, self.version)), "iterative_scan": self.iterative}
