"""Faults: a full disk while the vector index is saved, a damaged index folder, an interrupted run (issue 19).

The disk fills up in two ways here: a monkeypatched writer that writes part of
a file and raises ``OSError(ENOSPC)`` (as ``np.save`` does), or hnswlib, which
ignores write errors and leaves a short file silently; and, where this
process may mount one, a real 16 kB tmpfs under the index folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import StoreError
from soundalike.stores import open_store
from soundalike.stores import exact as exact_mod
from soundalike.synth import encode, excerpt, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 22050
DIM = 16


def vectors(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def leftovers(folder: Path, generation: int) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-") or f".{generation}." in p.name)


@pytest.fixture
def short_hnsw(monkeypatch):
    """hnswlib's save_index as on a disk that fills up (once ``state["on"]``): the file is cut short and
    no error is raised."""
    import hnswlib

    state = {"on": False}

    class Index(hnswlib.Index):
        def save_index(self, path):
            super().save_index(path)
            if state["on"]:
                with open(path, "r+b") as fh:
                    fh.truncate(os.path.getsize(path) // 3)

    monkeypatch.setattr(hnswlib, "Index", Index)
    return state


@pytest.fixture
def enospc_npy(monkeypatch):
    """Folder.save_npy as on a full disk (once ``state["on"]``): part of the file reaches its temporary
    name, then ENOSPC."""
    state = {"on": False}
    real = exact_mod.Folder.save_npy

    def save_npy(self, name, array):
        if not state["on"]:
            return real(self, name, array)
        tmp = self.tmp(name)
        tmp.write_bytes(b"\x93NUMPY" + bytes(100))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(exact_mod.Folder, "save_npy", save_npy)
    return state


@pytest.mark.parametrize("kind, fault", [("embedded", "short_hnsw"), ("embedded", "enospc_npy"), ("exact", "enospc_npy")])
def test_a_failed_flush_keeps_the_previous_generation(tmp_path, kind, fault, request):
    state = request.getfixturevalue(fault)
    folder = tmp_path / "index"
    store = open_store(kind, folder, DIM)
    store.upsert("segments", np.arange(1, 301), vectors(300, 1))
    store.flush()
    state["on"] = True
    store.upsert("segments", np.arange(301, 601), vectors(300, 2))
    with pytest.raises(StoreError, match=r"No space left on device; generation 1 is still the current one"):
        store.flush()
    assert leftovers(folder, 2) == []  # the failed generation gave its space back
    reader = open_store(kind, folder)  # the previous generation opens and answers
    assert reader.count("segments") == 300
    ids, _ = reader.search("segments", vectors(300, 1)[:5], 1)
    assert ids[:, 0].tolist() == [1, 2, 3, 4, 5]
    state["on"] = False  # space again: the changes kept in memory are saved by the next flush
    store.flush()
    assert open_store(kind, folder).count("segments") == 600


@pytest.mark.parametrize("fault", ["short_hnsw", "enospc_npy"])
def test_a_failed_first_flush_leaves_an_empty_store_not_a_stuck_one(tmp_path, fault, request):
    request.getfixturevalue(fault)["on"] = True
    folder = tmp_path / "index"
    store = open_store("embedded", folder, DIM)
    store.upsert("segments", np.arange(1, 301), vectors(300, 1))
    with pytest.raises(StoreError, match="No space left on device; it is still empty"):
        store.flush()
    assert [p.name for p in folder.iterdir() if p.name != "write.lock"] == []
    assert open_store("embedded", folder, DIM).count("segments") == 0


# --------------------------------------------------------------------------
# the library on a full disk
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracks():
    return {seed: render_track(seed, seconds=20, sample_rate=SR) for seed in range(4)}


@pytest.fixture
def music(tmp_path, tracks):
    folder = tmp_path / "music"
    folder.mkdir()
    for seed in range(3):
        encode(tracks[seed], SR, folder / f"t{seed}.flac")
    return folder


def make_lib(path):
    return soundalike.open(path, model=FakeModel(), hop=2.0)


def query_file(tmp_path, tracks, seed):
    path = tmp_path / f"q{seed}.flac"
    encode(excerpt(tracks[seed], SR, 4.0, 10.0), SR, path)
    return path


def index_all(lib, folder):
    events = list(lib.index([folder]))
    assert events[-1].event == "done"
    return events[-1]


def test_index_search_and_rebuild_work_after_a_full_disk(tmp_path, music, tracks, enospc_npy):
    lib = make_lib(tmp_path / "lib")
    index_all(lib, music)
    encode(tracks[3], SR, music / "t3.flac")
    enospc_npy["on"] = True
    with pytest.raises(StoreError, match="No space left on device; generation 1 is still the current one"):
        index_all(lib, music)
    with pytest.raises(StoreError, match="No space left"):  # its last flush fails the same way
        lib.close()
    assert leftovers(tmp_path / "lib" / "index", 2) == []
    enospc_npy["on"] = False
    lib = make_lib(tmp_path / "lib")  # a new process: the catalogue has 4 tracks, the index 3
    assert lib.catalog.track_count() == 4 and lib.store.count("tracks") == 3
    assert list(lib.rebuild_index())[-1][0] > 0
    assert lib.store.count("tracks") == 4
    assert "t3" in lib.search(query_file(tmp_path, tracks, 3)).hits[0].path
    assert index_all(lib, music).files_done == 4


def test_rebuild_index_mends_the_folder_a_full_disk_left(tmp_path, music, tracks, capsys):
    """The audit's state: zero-byte .hnsw and .tmp-* files and no manifest.json. `rebuild-index` rebuilds."""
    lib = make_lib(tmp_path / "lib")
    index_all(lib, music)
    lib.close()
    index = tmp_path / "lib" / "index"
    for p in index.iterdir():
        if p.name != "write.lock":
            p.unlink()
    (index / "segments.3.hnsw").write_bytes(b"")
    (index / "tracks.3.hnsw").write_bytes(b"")
    (index / ".tmp-4242-segments.3.ids.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(StoreError, match="no manifest.json"):
        make_lib(tmp_path / "lib").store.count("tracks")
    code, out, err = cli(capsys, "rebuild-index", "-L", tmp_path / "lib")
    assert code == 0, err
    lib = make_lib(tmp_path / "lib")
    assert lib.store.count("tracks") == 3
    assert "t1" in lib.search(query_file(tmp_path, tracks, 1)).hits[0].path
    assert [p.name for p in index.iterdir() if p.name.startswith(".tmp-") or (p.stat().st_size == 0 and p.name != "write.lock")] == []


@pytest.mark.parametrize("damage", ["garbage manifest", "truncated hnsw", "other dimension"])
def test_rebuild_index_replaces_a_damaged_index(tmp_path, music, damage):
    lib = make_lib(tmp_path / "lib")
    index_all(lib, music)
    lib.close()
    index = tmp_path / "lib" / "index"
    if damage == "garbage manifest":
        (index / "manifest.json").write_text("{not json")
    elif damage == "truncated hnsw":
        hnsw = next(index.glob("segments.*.hnsw"))
        hnsw.write_bytes(hnsw.read_bytes()[:100])
    else:
        shutil.rmtree(index)
        open_store("embedded", index, 7).upsert("tracks", np.array([1]), vectors(1, 0)[:, :7])
        open_store("embedded", index, 7).close()
    lib = make_lib(tmp_path / "lib")
    list(lib.rebuild_index())
    assert lib.store.count("tracks") == 3


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_really_full_disk(tmp_path, music, tracks):
    """The same on a real filesystem that fills up: a 16 kB tmpfs mounted as the index folder."""
    index = tmp_path / "lib" / "index"
    if not _mount_tmpfs(index, "16k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        lib = make_lib(tmp_path / "lib")
        with pytest.raises(StoreError, match="No space left on device; it is still empty"):
            index_all(lib, music)
        with pytest.raises(StoreError, match="No space left"):
            lib.close()
        assert [p.name for p in index.iterdir() if p.name not in ("write.lock",)] == []
        subprocess.run(["mount", "-o", "remount,size=8m", str(index)], check=True)
        lib = make_lib(tmp_path / "lib")
        assert lib.catalog.track_count() == 3
        list(lib.rebuild_index())
        assert lib.store.count("tracks") == 3
        assert "t2" in lib.search(query_file(tmp_path, tracks, 2)).hits[0].path
        lib.close()
    finally:
        subprocess.run(["umount", str(index)], check=False)


# --------------------------------------------------------------------------
# limits (finding 4): each a one-line error naming the option, in the API and the CLI
# --------------------------------------------------------------------------


@pytest.fixture
def small_lib(tmp_path, music):
    lib = make_lib(tmp_path / "lib")
    index_all(lib, music)
    lib.set_labels(lib.catalog.track_count(), genre="jazz")  # a label column that overrides a catalogue field
    return lib


def nested(depth: int) -> str:
    return "(" * depth + "bpm > 1" + ")" * depth


def ors(n: int) -> str:
    return " or ".join(f"bpm={i}" for i in range(n))


@pytest.mark.parametrize("where, message", [
    (nested(1000), "nested too deeply (at most 24 levels"),
    ("not " * 1000 + "bpm > 1", "nested too deeply"),
    (ors(5000), "characters long; at most 20000 are accepted"),
    (ors(300), "too many comparisons (at most 256"),
    ("genre in (" + ",".join("1" * 1500) + ")", "too many values in one 'in' list"),
    ("bpm > 1 or " * 3000 + "bpm > 2", "at most 20000 are accepted"),
])
def test_filter_limits_are_one_line_errors(small_lib, where, message):
    from soundalike.errors import FilterError

    with pytest.raises(FilterError, match="filter error") as err:
        small_lib.allowed_tracks(where)
    assert message in str(err.value) and "\n" not in str(err.value) and len(str(err.value)) < 300


def test_filters_at_the_limits_run_in_sqlite(small_lib):
    """The worst shapes the bounds allow stay inside SQLite's parser stack and expression depth: label-overridden
    fields (a subquery each), parentheses alternating 'and' and 'or', 'not' chains, the most comparisons."""
    from soundalike.filters import MAX_COMPARISONS, MAX_DEPTH, MAX_IN_VALUES

    p = "genre between 'a' and 'z'"
    alternating, nots, not_groups = p, p, p
    for i in range(MAX_DEPTH):
        alternating = f"({p} {'or' if i % 2 else 'and'} {alternating})"
        nots = "not " + nots
    for i in range(MAX_DEPTH // 2):
        not_groups = f"not ({p} {'or' if i % 2 else 'and'} {not_groups})"
    for where in (alternating, nots, not_groups):
        small_lib.allowed_tracks(where)
    widest = "not " * (MAX_DEPTH - 1) + "(" + " or ".join(f"genre != 'g{i}'" for i in range(MAX_COMPARISONS)) + ")"
    small_lib.allowed_tracks(widest)
    inlist = "genre not in (" + ",".join(map(str, range(MAX_IN_VALUES))) + ")"
    assert len(small_lib.allowed_tracks(" and ".join([inlist] * 4))) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"top": 100_000_000_000}, "top: must be from 1 to 100000, got 100000000000"),
    ({"top": 0}, "top: must be from 1 to 100000"),
    ({"k": 10**12}, "k: must be from 1 to 1000"),
    ({"weights": "votes=nan"}, "weights: votes must be a number from 0 to 1e+06, got nan"),
    ({"weights": "similarity=inf"}, "weights: similarity must be a number"),
    ({"weights": "votes=1e308,similarity=1e308"}, "weights: votes must be a number"),
])
def test_search_limits_are_one_line_errors(small_lib, kwargs, message):
    from soundalike.errors import UserError

    with pytest.raises(UserError) as err:
        small_lib.similar(1, **kwargs)
    assert message in str(err.value)
    if "top" in kwargs:
        with pytest.raises(UserError, match="top: must be from 1"):
            small_lib.text_search("piano", top=kwargs["top"])


def test_rerank_and_settings_limits(small_lib, tmp_path, tracks, monkeypatch):
    from soundalike.errors import UserError

    with pytest.raises(UserError, match="rerank: must be from 0 to 1000"):
        small_lib.search(query_file(tmp_path, tracks, 1), rerank=10**9)
    monkeypatch.setenv("SOUNDALIKE_SILENCE_DB", "nan")
    from soundalike import settings

    with pytest.raises(UserError, match="SOUNDALIKE_SILENCE_DB: expected a finite number, got 'nan'"):
        settings.get("silence_db")


@pytest.mark.parametrize("args, message", [
    (["--top", "100000000000"], "top: must be from 1 to 100000"),
    (["--where", nested(1000)], "nested too deeply"),
    (["--where", ors(5000)], "at most 20000 are accepted"),
    (["--where", ors(300)], "too many comparisons"),
    (["--weights", "votes=nan"], "weights: votes must be a number"),
])
def test_cli_limits_are_one_line_errors(small_lib, capsys, args, message):
    from soundalike.models import register_model

    register_model("fake", FakeModel)
    small_lib.close()
    code, out, err = cli(capsys, "similar", "1", *args, "-L", small_lib.path)
    assert code == 2, err
    assert message in err and err.count("\n") == 1


# --------------------------------------------------------------------------
# an interrupted run (finding 3): search the catalogue's truth, and say so
# --------------------------------------------------------------------------


def interrupted(tmp_path, folder, monkeypatch, *, after: int):
    """Index ``folder`` as a run killed after ``after`` tracks, before any flush of the vector index:
    the catalogue holds them, the index on disk nothing, ``index_dirty`` stays set."""
    from soundalike.ingest import Indexer

    with monkeypatch.context() as m:
        m.setattr(Indexer, "_flush", lambda self: None)
        lib = make_lib(tmp_path / "lib")
        it = lib.index([folder])
        n = 0
        for event in it:
            n += event.event == "indexed"
            if n == after:
                break
        it.close()
        lib.catalog.close()  # the process dies: nothing more reaches the disk
    lib = make_lib(tmp_path / "lib")
    assert lib.catalog.get_meta("index_dirty") == "1" and lib.catalog.track_count() == after
    return lib


def test_search_after_an_interrupted_run_is_complete_and_says_so(tmp_path, tracks, monkeypatch, capsys):
    folder = tmp_path / "music"
    folder.mkdir()
    for seed in range(4):
        encode(tracks[seed], SR, folder / f"t{seed}.flac")
    lib = interrupted(tmp_path, folder, monkeypatch, after=3)
    assert lib.store.count("tracks") == 0  # the index lags the catalogue
    # which three tracks the run finished depends on its workers: query one of those
    seed = min(int(t.path[-6]) for t in lib.catalog.tracks())
    q = query_file(tmp_path, tracks, seed)
    result = lib.search(q)
    assert f"t{seed}" in result.hits[0].path and len(result.hits) == 3
    assert len(result.warnings) == 1 and "lacks" in result.warnings[0] and "rebuild-index" in result.warnings[0]
    assert "searched exactly" in result.warnings[0]
    tid = result.hits[0].track_id
    similar = lib.similar(tid)
    assert len(similar.hits) == 2 and similar.warnings
    filtered = lib.similar(tid, where=f"id != {similar.hits[0].track_id}")
    assert [h.track_id for h in filtered.hits] == [similar.hits[1].track_id]
    # the same answers as from a complete index
    list(lib.rebuild_index())
    after = lib.search(q)
    assert after.warnings == []
    assert [h.track_id for h in after.hits] == [h.track_id for h in result.hits]
    assert [h.score for h in after.hits] == pytest.approx([h.score for h in result.hits], abs=2e-3)
    assert [h.track_id for h in lib.similar(tid).hits] == [h.track_id for h in similar.hits]
    lib.close()


def test_the_cli_warns_after_an_interrupted_run(tmp_path, tracks, monkeypatch, capsys):
    from soundalike.models import register_model

    register_model("fake", FakeModel)
    folder = tmp_path / "music"
    folder.mkdir()
    for seed in range(3):
        encode(tracks[seed], SR, folder / f"t{seed}.flac")
    interrupted(tmp_path, folder, monkeypatch, after=2).close()
    code, out, err = cli(capsys, "similar", "1", "-L", tmp_path / "lib", "--json")
    assert code == 0, err
    import json

    data = json.loads(out)
    assert len(data["hits"]) == 1 and data["warnings"] and "warning: the vector index lacks" in err


# --------------------------------------------------------------------------
# symbolic links out of the indexed folders (finding 7)
# --------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path, tracks):
    """music/ with a real file, a link to it, a link to a file outside, a link to a folder outside and a
    link cycle back to music/ itself; outside/ holds two files."""
    music, outside = tmp_path / "music", tmp_path / "outside"
    music.mkdir()
    outside.mkdir()
    encode(tracks[0], SR, music / "real.flac")
    encode(tracks[1], SR, outside / "secret.flac")
    encode(tracks[2], SR, outside / "other.flac")
    (music / "inside-link.flac").symlink_to(music / "real.flac")
    (music / "secret-link.flac").symlink_to(outside / "secret.flac")
    (music / "outside-dir").symlink_to(outside)
    (music / "loop").symlink_to(music)
    return music


def names(lib):
    return sorted(os.path.relpath(t.path, lib.path.parent) for t in lib.tracks())


def test_links_out_of_the_folder_are_skipped_and_listed_by_default(tmp_path, linked):
    lib = make_lib(tmp_path / "lib")
    done = index_all(lib, linked)
    assert names(lib) == ["music/inside-link.flac", "music/real.flac"]
    assert sorted(os.path.basename(p) for p, _ in done.skipped) == ["outside-dir", "secret-link.flac"]
    assert all("symbolic link to" in r and "outside the indexed folders" in r and "--follow-links" in r
               for _, r in done.skipped)


def test_follow_links_indexes_them_and_a_later_default_run_removes_them(tmp_path, linked):
    lib = make_lib(tmp_path / "lib")
    done = list(lib.index([linked], follow_links=True))[-1]
    assert done.skipped == []
    assert names(lib) == ["music/inside-link.flac", "music/outside-dir/other.flac",
                          "music/outside-dir/secret.flac", "music/real.flac", "music/secret-link.flac"]
    index_all(lib, linked)  # the default again: the links out are gone from the catalogue
    assert names(lib) == ["music/inside-link.flac", "music/real.flac"]


def test_the_setting_follows_links_too(tmp_path, linked, monkeypatch):
    monkeypatch.setenv("SOUNDALIKE_FOLLOW_LINKS", "1")
    lib = make_lib(tmp_path / "lib")
    index_all(lib, linked)
    assert lib.catalog.track_count() == 5


def test_the_cli_lists_skipped_links(tmp_path, linked, capsys):
    from soundalike.models import register_model

    register_model("fake", FakeModel)
    make_lib(tmp_path / "lib").close()
    code, out, err = cli(capsys, "index", linked, "-L", tmp_path / "lib")
    assert code == 0, err
    assert f"skipped {linked / 'secret-link.flac'}: symbolic link to" in " ".join(err.split())
    code, out, err = cli(capsys, "index", linked, "-L", tmp_path / "lib", "--follow-links", "--json")
    import json

    summary = json.loads(out)
    assert code == 0 and summary["skipped"] == [] and summary["tracks"] == 5


def test_the_server_streams_a_link_out_only_with_the_setting(tmp_path, linked, monkeypatch):
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app

    lib = make_lib(tmp_path / "lib")
    list(lib.index([linked], follow_links=True))
    ids = {os.path.basename(t.path): t.id for t in lib.tracks()}
    lib.close()
    secret = (linked.parent / "outside" / "secret.flac").read_bytes()
    with TestClient(create_app(tmp_path / "lib", model=FakeModel())) as c:
        r = c.get(f"/api/tracks/{ids['secret-link.flac']}/audio")
        assert r.status_code == 410 and "symbolic link out of the indexed folders" in r.json()["error"]
        assert c.get(f"/api/tracks/{ids['secret.flac']}/waveform").status_code == 410
        r = c.get(f"/api/tracks/{ids['inside-link.flac']}/audio")
        assert r.status_code == 200 and r.content == (linked / "real.flac").read_bytes()
        monkeypatch.setenv("SOUNDALIKE_FOLLOW_LINKS", "1")
        r = c.get(f"/api/tracks/{ids['secret-link.flac']}/audio")
        assert r.status_code == 200 and r.content == secret


def test_a_query_longer_than_one_network_batch_searches(tmp_path, music, tracks):
    """A query of more windows than the model's batch, with the re-rank on (its default): embed_query's
    loop rebound the name its decoding generator reads, and a later block raised ValueError (a 500
    on the server). Found while testing finding 6."""
    lib = make_lib(tmp_path / "lib")
    index_all(lib, music)
    path = tmp_path / "long-query.flac"
    # 60 s: three 20 s decoding blocks, the third read after the first batch of 16 windows was embedded
    encode(np.concatenate([tracks[1]] * 3), SR, path)
    result = lib.search(path, rerank=10)
    assert "t1" in result.hits[0].path and result.query.informative_windows > FakeModel.batch_size
