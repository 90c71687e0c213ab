"""Landmark postings in arrays (identify/postings.py): the same hits as a join over the catalogue's blobs,
a generation on disk plus the delta in memory, deleted tracks masked, atomic publication."""

import sqlite3

import numpy as np
import pytest

from soundalike.catalog import Catalog
from soundalike.identify import postings as P


def rows(n_tracks: int, seed: int = 0, first: int = 1):
    rng = np.random.default_rng(seed)
    out = []
    for tid in range(first, first + n_tracks):
        n = int(rng.integers(0, 400))
        hashes = rng.integers(0, 3000, size=n)  # few distinct hashes: buckets of many tracks
        out.append((tid, int(rng.integers(1, 2**40)), hashes.astype(np.int64),
                    np.sort(rng.integers(0, 20000, size=n)).astype(np.int64)))
    return out


def brute(rows, hashes, live=None) -> set[tuple[int, int, int]]:
    want = set(np.asarray(hashes).tolist())
    return {(int(h), tid, int(f)) for tid, _, hs, fs in rows if live is None or tid in live
            for h, f in zip(hs, fs) if int(h) in want}


def as_set(hits: np.ndarray) -> set[tuple[int, int, int]]:
    return set(map(tuple, hits.tolist()))


def catalog_with(tmp_path, rows) -> Catalog:
    cat = Catalog(tmp_path / "catalog.sqlite")
    cat.db.execute("PRAGMA foreign_keys = OFF")  # landmark rows without their tracks: only postings are tested
    with cat.db:
        insert(cat, rows)
    return cat


def insert(cat, rows):
    for tid, stamp, h, f in rows:
        cat.db.execute("INSERT OR REPLACE INTO track_landmarks(track_id, hashes, frames, prints, stamp) "
                       "VALUES (?, ?, ?, ?, ?)", (tid, h.astype("<u4").tobytes(), f.astype("<u4").tobytes(), b"", stamp))


def test_a_generation_gives_exactly_the_postings_of_the_hashes(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "MIN_GENERATION", 0)
    data = rows(60)
    gen = P.build(lambda: iter(data), tmp_path / "gen")
    assert len(gen) == sum(len(h) for _, _, h, _ in data)
    assert gen.included[:, 0].tolist() == list(range(1, 61))
    assert gen.included[:, 2].tolist() == [len(h) for _, _, h, _ in data]
    cat = catalog_with(tmp_path, data)
    post = P.Postings(tmp_path / "postings")
    assert post.refresh(cat)
    q = np.array([5, 17, 17, 2999, 1234, 10**7, -3])  # repeats and hashes out of range are fine
    assert as_set(post.hits(q)) == brute(data, q)
    h17 = post.hits(np.array([17]))  # in a bucket, postings come by track id
    assert np.all(np.diff(h17[:, 1]) >= 0)
    assert len(post.hits(q, max_bucket=0)) == 0


def test_generations_plus_delta_follow_the_catalogue(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "MIN_GENERATION", 1)
    first = rows(40, seed=1)
    cat = catalog_with(tmp_path, first)
    post = P.Postings(tmp_path / "postings")
    assert post.refresh(cat)  # no generation yet: one is written
    assert post.describe()["delta_postings"] == 0 and post.describe()["generations"] == 1
    q = np.arange(3000)
    assert as_set(post.hits(q)) == brute(first, q)

    more = rows(3, seed=2, first=41)  # new tracks: the delta, read once from their blobs
    rewritten = rows(1, seed=3, first=5)  # track 5's landmarks written again (a new stamp)
    with cat.db:
        insert(cat, more + rewritten)
        cat.db.execute("DELETE FROM track_landmarks WHERE track_id IN (3, 42)")
    post.sync(cat)
    assert post.describe()["delta_tracks"] == 3  # 41, 43 and the new 5
    now = [r for r in first + more if r[0] not in (3, 5, 42)] + rewritten
    assert as_set(post.hits(q)) == brute(now, q)
    other = P.Postings(tmp_path / "postings")  # another process: the same answer
    other.sync(cat)
    assert as_set(other.hits(q)) == as_set(post.hits(q))

    assert post.refresh(cat)  # the delta becomes a second, small generation
    d = post.describe()
    assert d["generations"] == 2 and d["delta_postings"] == 0 and d["masked_postings"] > 0
    assert d["generation_postings"] == sum(len(r[2]) for r in first + more + rewritten if r[0] not in (42,))
    assert as_set(post.hits(q)) == brute(now, q)
    assert post.refresh(cat, force=True)  # everything merged into one, masked postings dropped
    d = post.describe()
    assert d["generations"] == 1 and d["masked_postings"] == 0
    assert d["generation_postings"] == sum(len(r[2]) for r in now)
    assert as_set(post.hits(q)) == brute(now, q)
    assert len(list((tmp_path / "postings").glob("gen-*"))) == 1
    assert P.summary(tmp_path / "postings")["postings"] == sum(len(r[2]) for r in now)


def test_too_many_generations_or_masked_postings_are_merged(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "MIN_GENERATION", 1)
    cat = catalog_with(tmp_path, rows(10, seed=6))
    post = P.Postings(tmp_path / "postings")
    post.refresh(cat)
    for k in range(1, P.MAX_GENERATIONS):
        with cat.db:
            insert(cat, rows(2, seed=10 + k, first=100 + 10 * k))
        assert post.refresh(cat) and post.describe()["generations"] == k + 1
    assert post.refresh(cat) and post.describe()["generations"] == 1  # one too many: merged
    with cat.db:  # most of the library deleted: its postings no longer count and are dropped
        cat.db.execute("DELETE FROM track_landmarks WHERE track_id < 9")
    assert post.refresh(cat) and post.describe()["masked_postings"] == 0


def test_a_big_delta_is_written_rather_than_held_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "DELTA_MAX", 500)
    data = rows(30, seed=7)
    cat = catalog_with(tmp_path, data)
    post = P.Postings(tmp_path / "postings")
    post.sync(cat)  # a reader of a library with no generation yet
    assert post.describe()["generations"] == 1 and post.describe()["delta_postings"] == 0
    assert as_set(post.hits(np.arange(3000))) == brute(data, np.arange(3000))


def test_a_failed_write_keeps_the_previous_generations(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "MIN_GENERATION", 0)
    data = rows(20, seed=4)
    cat = catalog_with(tmp_path, data)
    post = P.Postings(tmp_path / "postings")
    post.refresh(cat)
    current = (tmp_path / "postings" / "CURRENT").read_text()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", full_disk)
    with pytest.raises(OSError):
        post.refresh(cat, force=True)
    assert (tmp_path / "postings" / "CURRENT").read_text() == current
    assert not list((tmp_path / "postings").glob(".tmp-*"))
    fresh = P.Postings(tmp_path / "postings")
    fresh.sync(cat)
    q = np.arange(3000)
    assert as_set(fresh.hits(q)) == brute(data, q)


def test_a_small_catalogue_is_served_from_memory(tmp_path):
    data = rows(10, seed=5)
    cat = catalog_with(tmp_path, data)
    post = P.Postings(tmp_path / "postings")
    assert not post.refresh(cat)  # under MIN_GENERATION postings: no files, the blobs are read into memory
    assert not (tmp_path / "postings").exists()
    assert as_set(post.hits(np.arange(3000))) == brute(data, np.arange(3000))


def test_the_old_hash_table_is_dropped_by_the_migration(tmp_path):
    path = tmp_path / "old.sqlite"
    cat = Catalog(path)
    cat.close()
    con = sqlite3.connect(path)  # as catalogue schema 5 had it
    con.execute("CREATE TABLE landmarks (hash INTEGER NOT NULL, track_id INTEGER NOT NULL, frame INTEGER NOT NULL,"
                " PRIMARY KEY (hash, track_id, frame)) WITHOUT ROWID")
    con.execute("ALTER TABLE track_landmarks DROP COLUMN stamp")
    con.execute("PRAGMA user_version = 5")
    con.commit()
    con.close()
    cat = Catalog(path)
    tables = {r[0] for r in cat.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "landmarks" not in tables and "track_landmarks" in tables
    columns = {r[1] for r in cat.db.execute("PRAGMA table_info(track_landmarks)")}
    assert "stamp" in columns


def test_an_index_run_writes_a_generation_that_searches_and_info_use(tmp_path, monkeypatch):
    """End to end: index -> a generation on disk (MIN_GENERATION lowered for a small library) -> a search
    finds its source through it, in a new process's view too -> info counts it; rebuild-index rewrites it."""
    from soundalike.synth import encode, excerpt, render_track
    from tests.fakes import fake_library

    monkeypatch.setattr(P, "MIN_GENERATION", 1)
    sr = 22050
    tracks = {s: render_track(s, seconds=30, sample_rate=sr) for s in range(3)}
    lib = fake_library(tmp_path, tracks, sr)
    info = lib.stats()["landmark_postings"]
    blobs = sum(len(h) for _, _, h, _ in lib.catalog.landmark_blobs(lib.catalog.landmark_stamps()[:, 0]))
    assert info["generations"] == 1 and info["postings"] == blobs > 0 and info["bytes"] > 8 * blobs
    q = tmp_path / "q.wav"
    encode(excerpt(tracks[1], sr, 9.0, 8.0), sr, q)
    import soundalike

    again = soundalike.open(tmp_path / "lib", model=type(lib.model)())  # another process's view
    seed = again._seed(str(q), start=None, end=None, query_hop=2.0, keep_audio=True)
    found = again.searcher.landmark_candidates(seed, None)
    assert found and found[0].track_id == lib.catalog.track_by_path(str(tmp_path / "music" / "t1.flac")).id
    assert again.postings.describe()["delta_postings"] == 0  # all of it from the mapped generation
    name = P.Postings(tmp_path / "lib" / "postings")._current()
    list(lib.rebuild_index())
    assert P.Postings(tmp_path / "lib" / "postings")._current() != name
    encode(render_track(7, seconds=20, sample_rate=sr), sr, tmp_path / "music" / "t7.flac")
    events = list(lib.index([tmp_path / "music"]))  # a new track: its postings become a second generation,
    assert [e.event for e in events][-2:] == ["postings", "done"]  # announced before they are written
    assert "landmark postings" in events[-2].message and lib.stats()["landmark_postings"]["generations"] == 2
