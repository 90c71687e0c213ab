"""Choosing a library's vector store from the CLI: recorded at creation, filled by rebuild-index, shown by info.

In-process CLI runs with the fake model, on qdrant-client's local mode and on a real PostgreSQL + pgvector
(the session's ``pg_url`` server). Each search must give the same ranking as the same library on the
embedded store.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from soundalike.models import register_model
from soundalike.synth import encode, excerpt, render_track
from tests.conftest import cli, need
from tests.fakes import FakeModel

SR = 22050


@pytest.fixture(autouse=True)
def fake_model():
    register_model("fake", FakeModel)


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    folder = tmp_path_factory.mktemp("music")
    for seed in range(3):
        encode(render_track(seed, seconds=20, sample_rate=SR), SR, folder / f"t{seed}.flac")
    encode(excerpt(render_track(2, seconds=20, sample_rate=SR), SR, 5.0, 12.0), SR, folder.parent / "query.flac")
    return folder


def meta(lib, key):
    db = sqlite3.connect(lib / "catalog.sqlite")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return row and row[0]


def index(capsys, music, lib, *extra):
    code, out, err = cli(capsys, "index", music, "-L", lib, "--model", "fake", "--hop", 2, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def ranking(capsys, music, lib):
    code, out, err = cli(capsys, "search", music.parent / "query.flac", "-L", lib, "--json", "--top", 3)
    assert code == 0, err
    return [h["path"].rsplit("/", 1)[-1] for h in json.loads(out)["hits"]]


def info(capsys, lib):
    code, out, err = cli(capsys, "info", "-L", lib, "--json")
    assert code == 0, err
    return json.loads(out)


def test_qdrant_local_mode_library(music, tmp_path, capsys):
    need("qdrant_client", "qdrant")
    base = tmp_path / "embedded"
    index(capsys, music, base)
    want = ranking(capsys, music, base)
    assert want[0] == "t2.flac"

    lib = tmp_path / "lib"
    folder = tmp_path / "qdrant-data"
    index(capsys, music, lib, "--store", "qdrant", "--store-url", folder)
    assert meta(lib, "store") == "qdrant" and meta(lib, "store_url") == str(folder)
    assert meta(lib, "store_prefix").startswith("sl_lib_")
    assert ranking(capsys, music, lib) == want
    data = info(capsys, lib)
    health = data["store_health"]
    assert data["store"] == "qdrant" and health["reachable"] is True
    assert health["segments"] == data["informative_segments"] and health["tracks"] == 3
    code, out, _ = cli(capsys, "info", "-L", lib)
    assert code == 0 and "reachable: " in out

    # another store on an existing library is refused, with the way to move it
    code, _, err = cli(capsys, "index", music, "-L", lib, "--store", "embedded")
    assert code != 0 and "rebuild-index" in err and "qdrant" in err

    # rebuild-index moves the library to the embedded store and back, filled from the catalogue
    code, out, err = cli(capsys, "rebuild-index", "-L", lib, "--store", "embedded", "--json")
    assert code == 0, err
    assert meta(lib, "store") == "embedded" and not meta(lib, "store_url")
    assert ranking(capsys, music, lib) == want
    code, out, err = cli(capsys, "rebuild-index", "-L", lib, "--store", "qdrant", "--json")  # local mode, own folder
    assert code == 0, err
    assert json.loads(out)["vectors"] == health["segments"] + health["tracks"]
    assert (lib / "index-qdrant").is_dir() and ranking(capsys, music, lib) == want


def test_pgvector_library_url_from_the_environment(music, tmp_path, capsys, monkeypatch, pg_url):
    base = tmp_path / "embedded"
    index(capsys, music, base)
    want = ranking(capsys, music, base)

    # a password in the URL: the catalogue records the URL without it
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # as an administrator would, once per database
        conn.execute("DROP ROLE IF EXISTS lib_user")
        conn.execute("CREATE ROLE lib_user LOGIN PASSWORD 'hunter2'")
        conn.execute("GRANT CREATE ON SCHEMA public TO lib_user")
    url = pg_url.replace("postgresql://postgres:@", "postgresql://lib_user:hunter2@")
    monkeypatch.setenv("SOUNDALIKE_STORE_URL", url)
    lib = tmp_path / "lib"
    index(capsys, music, lib, "--store", "pgvector")
    recorded = meta(lib, "store_url")
    assert meta(lib, "store") == "pgvector" and "hunter2" not in recorded and "lib_user@" in recorded
    assert ranking(capsys, music, lib) == want
    data = info(capsys, lib)
    assert "hunter2" not in json.dumps(data)
    assert data["store_health"]["reachable"] and data["store_health"]["tracks"] == 3
    assert data["store_health"]["pgvector"].startswith("0.8")

    code, out, err = cli(capsys, "rebuild-index", "-L", lib, "--json")
    assert code == 0, err
    assert ranking(capsys, music, lib) == want

    # without the environment variable the recorded URL has no password: the server refuses, info says so
    monkeypatch.delenv("SOUNDALIKE_STORE_URL")
    with psycopg.connect(pg_url, autocommit=True) as conn:  # trust auth would let lib_user in without one
        conn.execute("ALTER ROLE lib_user NOLOGIN")
    data = info(capsys, lib)
    assert data["store_health"]["reachable"] is False and "pgvector" in data["store_health"]["error"]
    code, _, err = cli(capsys, "search", music.parent / "query.flac", "-L", lib)
    assert code != 0 and "pgvector" in err and "hunter2" not in err


def test_pgvector_needs_a_url(music, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SOUNDALIKE_STORE_URL", raising=False)
    code, _, err = cli(capsys, "index", music, "-L", tmp_path / "lib", "--model", "fake", "--store", "pgvector")
    assert code != 0 and "SOUNDALIKE_STORE_URL" in err
    code, _, err = cli(capsys, "index", music, "-L", tmp_path / "lib2", "--model", "fake", "--store", "faiss")
    assert code != 0 and "unknown vector store kind" in err
