"""Catalogues that move and merge (catalog_roots.py, catalog_merge.py, soundalike relocate / merge / roots).

Real libraries: synthesised music encoded to FLAC, indexed with ``FakeModel`` (tests/fakes.py) into real SQLite
catalogues and the real embedded vector store; "machine A" and "machine B" are two folders, each with its own
music and library.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import soundalike  # noqa: E402
from soundalike.catalog import MIGRATIONS  # noqa: E402
from soundalike.models import register_model  # noqa: E402
from soundalike.serve import create_app  # noqa: E402
from soundalike.synth import encode, render_track  # noqa: E402
from tests.conftest import cli  # noqa: E402
from tests.fakes import FakeModel, fake_library  # noqa: E402

SR = 22050


@pytest.fixture(autouse=True)
def fake_model():
    register_model("fake", FakeModel)


@pytest.fixture(scope="module")
def signals():
    return {seed: render_track(seed, seconds=16, sample_rate=SR) for seed in range(5)}


def machine(root: Path, signals, seeds, *, model=None):
    """A machine's music folder ``root/music`` with these tracks, indexed into ``root/lib`` (closed)."""
    root.mkdir(parents=True, exist_ok=True)
    lib = fake_library(root, {s: signals[s] for s in seeds}, SR, model=model)
    lib.close()
    return root / "lib"


def top_path(lib, source, **kw) -> str:
    return lib.search(str(source), start=2.0, end=10.0, top=3, **kw).hits[0].path


def served(lib_path: Path, ids) -> dict[int, bytes]:
    """track id -> the bytes ``serve`` streams for it."""
    out = {}
    with TestClient(create_app(lib_path, model=FakeModel())) as c:
        for tid in ids:
            r = c.get(f"/api/tracks/{tid}/audio")
            assert r.status_code == 200, r.text
            out[tid] = r.content
    return out


# -- moving -------------------------------------------------------------------------------


def test_a_library_moved_with_its_music_keeps_working_without_reindexing(tmp_path, signals):
    lib_path = machine(tmp_path / "a", signals, [0, 1, 2])
    shutil.copy2(tmp_path / "a" / "music" / "t1.flac", tmp_path / "a" / "music" / "t1-copy.flac")
    lib = soundalike.open(lib_path, model=FakeModel())
    list(lib.index([tmp_path / "a" / "music"]))
    t1 = lib.track(str(tmp_path / "a" / "music" / "t1.flac"))
    lib.set_labels(t1.id, mood="calm")
    lib.close()

    os.rename(tmp_path / "a", tmp_path / "moved")  # library folder and music, together
    new_music = tmp_path / "moved" / "music"
    model = FakeModel()
    lib = soundalike.open(tmp_path / "moved" / "lib", model=model)
    assert [str(p) for p in lib.roots()] == [str(new_music)]
    assert all(t.path.startswith(str(new_music) + "/") for t in lib.tracks())
    assert top_path(lib, new_music / "t2.flac") == str(new_music / "t2.flac")
    assert lib.similar(t1.id, top=2).hits[0].path.startswith(str(new_music))
    assert lib.labels(t1.id) == {"mood": "calm"}
    assert lib.tracks(where="mood = 'calm'")[0].id == t1.id
    assert [e.path for e in lib.radio([t1.id], n=3).entries][0] == str(new_music / "t1.flac")
    pairs = [(p.a, p.b) for p in lib.duplicates()]
    assert pairs == [tuple(sorted((t1.id, lib.track(str(new_music / "t1-copy.flac")).id)))]
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    model.calls = 0  # the searches above embedded their queries
    events = list(lib.index([new_music]))
    assert {e.event for e in events} <= {"scan", "unchanged", "done"} and model.calls == 0
    assert {Path(t.path).name: t.id for t in lib.tracks()} == ids  # same tracks, same ids
    lib.close()
    audio = served(tmp_path / "moved" / "lib", ids.values())
    assert {name: audio[tid] for name, tid in ids.items()} == {n: (new_music / n).read_bytes() for n in ids}


def test_an_absolute_path_catalogue_is_migrated_and_then_moves(tmp_path, signals):
    """A catalogue written before paths were relative (schema 6, absolute paths, roots in ``meta``) is migrated
    on opening: its files get their root and relative path, and the library moves like a new one."""
    lib_path = machine(tmp_path / "a", signals, [0, 1])
    lib = soundalike.open(lib_path, model=FakeModel())
    lib.set_labels(lib.tracks()[0].id, mood="dark")
    lib.close()
    old_db = tmp_path / "old.sqlite"
    db = sqlite3.connect(old_db)
    for migration in MIGRATIONS[:6]:
        migration(db)
    db.execute("PRAGMA user_version = 6")
    db.execute("ATTACH ? AS new", (str(lib_path / "catalog.sqlite"),))
    db.execute("INSERT INTO files SELECT id, path, size, mtime, sha256, status, error, indexed_at FROM new.files")
    cols = [r[1] for r in db.execute("PRAGMA table_info(tracks)")]
    db.execute(f"INSERT INTO tracks SELECT {', '.join(cols)} FROM new.tracks")
    for table in ("segments", "labels", "track_landmarks"):
        cols = ", ".join(r[1] for r in db.execute(f"PRAGMA table_info({table})"))  # schema 6's columns
        db.execute(f"INSERT INTO {table} SELECT {cols} FROM new.{table}")
    db.execute("INSERT OR REPLACE INTO meta SELECT * FROM new.meta WHERE key != 'library_dir'")
    db.execute("INSERT INTO meta VALUES ('roots', ?)", (json.dumps([str(tmp_path / "a" / "music")]),))
    db.commit()
    db.close()
    for suffix in ("", "-wal", "-shm"):
        (lib_path / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copy(old_db, lib_path / "catalog.sqlite")

    lib = soundalike.open(lib_path, model=FakeModel())  # upgraded where it was indexed
    query = "SELECT f.path, r.path, f.rel FROM files f JOIN roots r ON r.id = f.root_id"
    old_music = tmp_path / "a" / "music"
    names = ("t0.flac", "t1.flac")
    assert sorted(lib.catalog.db.execute(query)) == [(str(old_music / n), str(old_music), n) for n in names]
    lib.close()

    os.rename(tmp_path / "a", tmp_path / "b")
    new_music = tmp_path / "b" / "music"
    lib = soundalike.open(tmp_path / "b" / "lib", model=FakeModel())
    assert sorted(lib.catalog.db.execute(query)) == [(str(new_music / n), str(new_music), n) for n in names]
    assert top_path(lib, new_music / "t1.flac") == str(new_music / "t1.flac")
    assert list(lib.catalog.all_labels()) == [str(new_music / "t0.flac")]
    ids = [t.id for t in lib.tracks()]
    lib.close()
    assert sorted(served(tmp_path / "b" / "lib", ids).values()) == sorted(
        (new_music / n).read_bytes() for n in ("t0.flac", "t1.flac"))


def test_relocate_re_points_music_that_moved_alone(tmp_path, signals, capsys):
    lib_path = machine(tmp_path / "a", signals, [0, 1])
    old_music, new_music = tmp_path / "a" / "music", tmp_path / "disk2" / "music"
    lib = soundalike.open(lib_path, model=FakeModel())
    lib.set_labels(lib.track(str(old_music / "t0.flac")).id, mood="dark")
    lib.catalog.set_labels([(str(old_music / "later.flac"), {"licence": "cc-by"})])  # a label of no track yet
    lib.close()
    new_music.parent.mkdir()
    shutil.move(old_music, new_music)

    code, out, _ = cli(capsys, "roots", "-L", lib_path, "--json")
    assert code == 0 and json.loads(out)["roots"][0]["exists"] is False  # the library did not move: no guessing
    code, _, err = cli(capsys, "relocate", old_music, tmp_path / "nowhere", "-L", lib_path)
    assert code == 2 and "no such folder" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "relocate", tmp_path / "other", new_music, "-L", lib_path)
    assert code == 2 and "holds nothing at or under" in err
    code, out, _ = cli(capsys, "relocate", old_music, new_music, "-L", lib_path, "--json")
    assert code == 0
    assert json.loads(out) == {"roots": [{"old": str(old_music), "new": str(new_music)}], "files": 2, "labels": 2}

    model = FakeModel()
    lib = soundalike.open(lib_path, model=model)
    assert top_path(lib, new_music / "t0.flac") == str(new_music / "t0.flac")
    assert lib.catalog.all_labels() == {str(new_music / "later.flac"): {"licence": "cc-by"},
                                        str(new_music / "t0.flac"): {"mood": "dark"}}
    model.calls = 0  # the searches above embedded their queries
    events = list(lib.index([new_music]))
    assert {e.event for e in events} <= {"scan", "unchanged", "done"} and model.calls == 0
    ids = [t.id for t in lib.tracks()]
    csv = tmp_path / "elsewhere" / "labels.csv"  # paths relative to the root, as another machine wrote them
    csv.parent.mkdir()
    csv.write_text("path,licence\nt1.flac,cc0\nnot-here.flac,cc0\n")
    report = lib.import_labels(csv)
    assert report.matched == 1 and lib.labels(str(new_music / "t1.flac")) == {"licence": "cc0"}
    lib.close()
    assert sorted(served(lib_path, ids).values()) == sorted(p.read_bytes() for p in new_music.iterdir())


def test_relocate_a_folder_inside_a_root_and_back(tmp_path, signals):
    """A sub-folder moved out of its root becomes a root of its own; overlapping old and new places work."""
    music = tmp_path / "music"
    (music / "jazz").mkdir(parents=True)
    encode(signals[0], SR, music / "t0.flac")
    encode(signals[1], SR, music / "jazz" / "t1.flac")
    lib = soundalike.open(tmp_path / "lib", model=FakeModel(), hop=2.0)
    list(lib.index([music]))
    shutil.move(music / "jazz", tmp_path / "jazz")
    moved = lib.relocate(music / "jazz", tmp_path / "jazz")
    assert moved.files == 1 and sorted(lib.catalog.roots()) == sorted([str(music), str(tmp_path / "jazz")])
    assert lib.catalog.db.execute("SELECT rel FROM files WHERE path = ?", (str(tmp_path / "jazz" / "t1.flac"),)
                                  ).fetchone() == ("t1.flac",)
    assert top_path(lib, tmp_path / "jazz" / "t1.flac") == str(tmp_path / "jazz" / "t1.flac")
    shutil.move(music, tmp_path / "jazz" / "music")  # the old root now lies inside the new one
    lib.relocate(music, tmp_path / "jazz" / "music")
    assert sorted(t.path for t in lib.tracks()) == [str(tmp_path / "jazz" / "music" / "t0.flac"),
                                                     str(tmp_path / "jazz" / "t1.flac")]
    (tmp_path / "single").mkdir()  # a file indexed on its own has no root, and moves all the same
    encode(signals[2], SR, tmp_path / "single" / "t2.flac")
    list(lib.index([tmp_path / "single" / "t2.flac"]))
    assert lib.catalog.db.execute("SELECT root_id, rel FROM files WHERE path = ?",
                                  (str(tmp_path / "single" / "t2.flac"),)).fetchone() == (None, None)
    shutil.move(tmp_path / "single", tmp_path / "single2")
    assert lib.relocate(tmp_path / "single", tmp_path / "single2").files == 1
    assert top_path(lib, tmp_path / "single2" / "t2.flac") == str(tmp_path / "single2" / "t2.flac")
    lib.close()


# -- merging ------------------------------------------------------------------------------


def test_libraries_of_two_machines_merge_into_one(tmp_path, signals, capsys):
    a = machine(tmp_path / "a", signals, [0, 1])
    b = machine(tmp_path / "b", signals, [2, 3])
    a_music, b_music = tmp_path / "a" / "music", tmp_path / "b" / "music"
    lib_b = soundalike.open(b, model=FakeModel())
    lib_b.set_labels(lib_b.track(str(b_music / "t3.flac")).id, mood="calm", bpm=120)
    b_ids = sorted(t.id for t in lib_b.tracks())
    b_segments = lib_b.stats()["informative_segments"]
    lib_b.close()
    lib_a = soundalike.open(a, model=FakeModel())
    assert sorted(t.id for t in lib_a.tracks()) == b_ids  # the two catalogues' ids overlap
    a_segments = lib_a.stats()["informative_segments"]
    lib_a.close()

    code, out, _ = cli(capsys, "merge", b, "-L", a, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["tracks_added"] == 2 and json.loads(out)["dry_run"]
    code, out, err = cli(capsys, "merge", b, "-L", a, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["tracks_added"], report["present"], report["labels_added"]) == (2, 0, 2)
    assert report["roots_added"] == [str(b_music)]

    lib = soundalike.open(a, model=FakeModel())
    rows = lib.tracks()
    assert len({t.id for t in rows}) == 4
    assert sorted(t.path for t in rows) == sorted([str(a_music / "t0.flac"), str(a_music / "t1.flac"),
                                                   str(b_music / "t2.flac"), str(b_music / "t3.flac")])
    seg_ids = lib.catalog.db.execute("SELECT id FROM segments").fetchall()
    assert len(set(seg_ids)) == len(seg_ids) and lib.stats()["informative_segments"] == a_segments + b_segments
    assert lib.store.count("segments") == a_segments + b_segments and lib.store.count("tracks") == 4
    for music, name in ((a_music, "t0.flac"), (b_music, "t3.flac"), (b_music, "t2.flac")):
        hit = lib.search(str(music / name), start=2.0, end=10.0, top=3).hits[0]
        assert hit.path == str(music / name) and hit.copy  # vectors, and landmarks through the postings
    t3 = lib.track(str(b_music / "t3.flac"))
    assert lib.labels(t3.id) == {"bpm": 120, "mood": "calm"}
    assert lib.similar(t3.id, top=3).hits[0].path != t3.path
    lib.close()
    ids = {Path(t.path).name: t.id for t in rows}
    audio = served(a, ids.values())
    assert audio[ids["t3.flac"]] == (b_music / "t3.flac").read_bytes()
    assert audio[ids["t0.flac"]] == (a_music / "t0.flac").read_bytes()

    code, out, _ = cli(capsys, "merge", b, "-L", a, "--json")  # again: nothing is added
    report = json.loads(out)
    assert code == 0 and (report["tracks_added"], report["present"], report["labels_added"]) == (0, 2, 0)
    lib = soundalike.open(a, model=FakeModel())
    assert lib.catalog.track_count() == 4 and lib.store.count("segments") == a_segments + b_segments
    lib.close()

    # machine B's music is not on this machine yet: found by search, not served; relocated: served
    elsewhere = tmp_path / "nas" / "b-music"
    elsewhere.parent.mkdir()
    shutil.move(b_music, elsewhere)
    with TestClient(create_app(a, model=FakeModel())) as c:
        assert c.get(f"/api/tracks/{ids['t3.flac']}/audio").status_code == 410
    lib = soundalike.open(a, model=FakeModel())
    assert top_path(lib, elsewhere / "t3.flac") == str(b_music / "t3.flac")
    lib.close()
    code, out, _ = cli(capsys, "relocate", b_music, elsewhere, "-L", a)
    assert code == 0 and "relocated 2 files and 2 labels" in out
    assert served(a, [ids["t3.flac"]])[ids["t3.flac"]] == (elsewhere / "t3.flac").read_bytes()


def test_merge_keeps_one_of_each_track_and_maps_roots(tmp_path, signals, capsys):
    """Same content elsewhere is a copy (its labels join the track here); same path with other content is a
    conflict (this library's file kept); --root says where the other machine's music is here."""
    shared = tmp_path / "shared"  # both machines indexed this very folder, at different times
    shared.mkdir()
    encode(signals[0], SR, shared / "x.flac")
    lib_a = soundalike.open(tmp_path / "a" / "lib", model=FakeModel(), hop=2.0)
    list(lib_a.index([shared]))
    lib_a.close()
    (tmp_path / "b").mkdir()
    b = machine(tmp_path / "b", signals, [1, 4])
    shutil.copy(shared / "x.flac", tmp_path / "b" / "music" / "copy-of-x.flac")
    encode(signals[2], SR, shared / "x.flac")  # the same path, other content, on machine B
    lib_b = soundalike.open(b, model=FakeModel())
    list(lib_b.index([tmp_path / "b" / "music", shared]))
    lib_b.set_labels(lib_b.track(str(tmp_path / "b" / "music" / "copy-of-x.flac")).id, mood="warm")
    lib_b.close()
    here = tmp_path / "mnt" / "b-music"
    shutil.copytree(tmp_path / "b" / "music", here)

    code, out, _ = cli(capsys, "merge", b, "-L", tmp_path / "a" / "lib", "--root",
                       f"{tmp_path / 'b' / 'music'}={here}", "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["tracks_added"], report["copies"], report["present"]) == (2, 1, 0)
    assert report["conflicts"] == [{"path": str(shared / "x.flac"),
                                    "reason": "this library holds other content at this path; its file kept"}]
    lib = soundalike.open(tmp_path / "a" / "lib", model=FakeModel())
    assert sorted(t.path for t in lib.tracks()) == [str(here / "t1.flac"), str(here / "t4.flac"),
                                                     str(shared / "x.flac")]
    assert lib.catalog.all_labels() == {str(shared / "x.flac"): {"mood": "warm"}}
    tid = lib.track(str(here / "t4.flac")).id
    lib.close()
    assert served(tmp_path / "a" / "lib", [tid])[tid] == (here / "t4.flac").read_bytes()


def test_merge_into_an_empty_library_takes_the_settings_and_refuses_incomparable_ones(tmp_path, signals, capsys):
    a = machine(tmp_path / "a", signals, [0])
    b = machine(tmp_path / "b", signals, [1])

    class NewerFake(FakeModel):
        version = "2"

    c = machine(tmp_path / "c", signals, [2], model=NewerFake())
    shutil.copytree(tmp_path / "b", tmp_path / "from-b")  # machine B's library and music, copied here together
    shutil.rmtree(tmp_path / "b")
    b, b_music = tmp_path / "from-b" / "lib", tmp_path / "from-b" / "music"
    lib = soundalike.open(tmp_path / "all")
    for other in (a, b):
        assert list(lib.merge(other))[-1].report.tracks_added == 1
    assert lib.catalog.get_meta("model_id") == "fake" and lib.hop == 2.0
    assert top_path(lib, b_music / "t1.flac") == str(b_music / "t1.flac")
    lib.close()
    code, _, err = cli(capsys, "merge", c, "-L", tmp_path / "all")
    assert code == 2 and "model version '2' there, '1' here" in err and err.count("\n") == 1
    lib_d = soundalike.open(tmp_path / "d" / "lib", model=FakeModel(), hop=3.0)
    list(lib_d.index([tmp_path / "c" / "music"]))
    lib_d.close()
    code, _, err = cli(capsys, "merge", tmp_path / "d" / "lib", "-L", tmp_path / "all")
    assert code == 2 and "hop (s) '3.0' there, '2.0' here" in err
    code, _, err = cli(capsys, "merge", tmp_path / "all", "-L", tmp_path / "all")
    assert code == 2 and "is the library itself" in err
    code, _, err = cli(capsys, "merge", tmp_path / "nothing", "-L", tmp_path / "all")
    assert code == 2 and "no library at" in err
    code, _, err = cli(capsys, "merge", b, "-L", tmp_path / "all", "--root", "nonsense")
    assert code == 2 and "--root: expected OLD=NEW" in err
    lib = soundalike.open(tmp_path / "all")
    assert lib.catalog.track_count() == 2
    lib.close()
    code, out, _ = cli(capsys, "merge", "--help")
    assert code == 0 and "soundalike merge" in out and "--dry-run" in out


@pytest.mark.parametrize("store", ["exact", "qdrant"])
def test_merge_fills_any_kind_of_vector_store(tmp_path, signals, store):
    """The merged vectors go through the store's own upsert: the exact store and qdrant-client's
    local mode (a library's store kind is its own; the other library's may differ)."""
    if store == "qdrant":
        from tests.conftest import need

        need("qdrant_client", "qdrant")
    b = machine(tmp_path / "b", signals, [2, 3])
    (tmp_path / "a" / "music").mkdir(parents=True)
    encode(signals[0], SR, tmp_path / "a" / "music" / "t0.flac")
    lib = soundalike.open(tmp_path / "a" / "lib", model=FakeModel(), hop=2.0, store=store)
    list(lib.index([tmp_path / "a" / "music"]))
    report = list(lib.merge(b))[-1].report
    assert report.tracks_added == 2 and lib.store.count("tracks") == 3
    assert lib.store.count("segments") == lib.stats()["informative_segments"]
    assert top_path(lib, tmp_path / "b" / "music" / "t3.flac") == str(tmp_path / "b" / "music" / "t3.flac")
    lib.close()


def test_an_interrupted_merge_is_finished_by_running_it_again(tmp_path, signals):
    from soundalike.catalog_merge import merge

    a = machine(tmp_path / "a", signals, [0])
    b = machine(tmp_path / "b", signals, [1, 2, 3])
    lib = soundalike.open(a, model=FakeModel())
    events = merge(lib, b, batch=1)
    assert next(events).event == "plan" and next(events).event == "tracks"
    events.close()  # stopped after one track (as by Ctrl-C): its rows are in, the vector index is marked dirty
    lib.close()
    lib = soundalike.open(a, model=FakeModel())
    assert lib.catalog.track_count() == 2 and lib.catalog.get_meta("index_dirty") == "1"
    report = list(lib.merge(b))[-1].report
    assert (report.tracks_added, report.present) == (2, 1)
    assert lib.catalog.track_count() == 4 and lib.store.count("tracks") == 4
    assert lib.store.count("segments") == lib.stats()["informative_segments"]
    assert lib.catalog.get_meta("index_dirty") == "0"
    for seed in (1, 2, 3):
        path = tmp_path / "b" / "music" / f"t{seed}.flac"
        assert top_path(lib, path) == str(path)
    lib.close()
