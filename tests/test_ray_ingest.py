"""Ingest on Ray (soundalike/ray_ingest.py) on a real two-node Ray cluster started on this machine.

The catalogue a Ray run writes is compared, row by row and bit by bit, with a local run's on the same files:
files, tracks (vectors, tags, descriptors), segments (vectors, tags), landmarks and scan prints. The real
musicnn runs in the first test; the killed run uses FakeModel (tests/fakes.py), slowed down.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import UserError
from soundalike.synth import encode, render_track
from tests.conftest import need
from tests.fakes import FakeModel, SlowFakeModel
from tests.ray_cluster import REPO, local_cluster

SR = 16000


@pytest.fixture(scope="module")
def cluster():
    need("ray", "ray")
    with local_cluster(nodes=2, cpus=1) as address:
        yield address


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    """Five short synthesised tracks (one silent stretch, so some windows are not informative) and a copy."""
    folder = tmp_path_factory.mktemp("music")
    for seed in range(5):
        x = render_track(seed, seconds=8 + 2 * seed, sample_rate=SR)
        if seed == 1:
            x[: 3 * SR] = 0.0
        encode(x, SR, folder / f"t{seed}.flac")
    (folder / "copy.flac").write_bytes((folder / "t2.flac").read_bytes())
    return folder


def content(path: Path) -> dict:
    """Everything a run wrote, by file path, without row ids or times."""
    db = sqlite3.connect(path / "catalog.sqlite")
    db.row_factory = sqlite3.Row

    def rows(sql: str) -> list[dict]:
        return [dict(r) for r in db.execute(sql)]

    out = {
        "files": rows("SELECT path, size, mtime, sha256, status, error FROM files ORDER BY path"),
        "tracks": [{k: v for k, v in r.items() if k not in ("id", "file_id")} for r in rows(
            "SELECT f.path, t.* FROM tracks t JOIN files f ON f.id = t.file_id ORDER BY f.path")],
        "segments": rows("SELECT f.path, s.start, s.end, s.informative, s.level_db, s.vector, s.tags FROM segments s "
                         "JOIN tracks t ON t.id = s.track_id JOIN files f ON f.id = t.file_id ORDER BY f.path, s.start"),
        "track_landmarks": rows("SELECT f.path, l.hashes, l.frames, l.prints FROM track_landmarks l "
                                "JOIN tracks t ON t.id = l.track_id JOIN files f ON f.id = t.file_id ORDER BY f.path"),
    }
    db.close()
    return out


def test_the_fake_models_vectors_do_not_depend_on_the_batch():
    """The comparisons here are bit for bit, and a Ray or resumed run batches windows differently from a local run:
    a window's vector must be the same in any batch (a batched BLAS product is not)."""
    model = FakeModel()
    features = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    whole = model.embed_batch(features).embeddings
    for n in range(1, 16):
        assert np.array_equal(model.embed_batch(features[:n]).embeddings, whole[:n]), n


def test_ray_auto_without_a_cluster_starts_a_local_one_for_the_run(tmp_path, music, monkeypatch):
    """``--ray auto`` joins the cluster this machine belongs to, else starts a local Ray for the run and stops
    it after. (First in this file: the two-node cluster below would otherwise be the one it joins.)"""
    ray = need("ray", "ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    logs = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", logs)  # the local instance's session folder, removed after (not /tmp/ray)
    lib = soundalike.open(tmp_path / "lib", model=FakeModel(), hop=2.0)
    try:
        events = list(lib.index([music], ray="auto"))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    assert events[-1].event == "done" and not events[-1].error_list
    assert sum(e.event == "indexed" for e in events) == 6 and lib.store.count("tracks") == 6
    assert not ray.is_initialized()  # the run's Ray was shut down with it
    lib.close()


def test_a_ray_run_writes_what_a_local_run_writes(tmp_path, cluster, music):
    """The real musicnn, two nodes: the same catalogue bit for bit, the same events, the same store."""
    local = soundalike.open(tmp_path / "local", hop=3.0)
    local_events = list(local.index([music]))
    on_ray = soundalike.open(tmp_path / "ray", hop=3.0)
    ray_events = list(on_ray.index([music], ray=cluster))
    assert ray_events[-1].event == "done" and not ray_events[-1].error_list
    assert sorted(e.event for e in ray_events if e.event != "progress") == \
        sorted(e.event for e in local_events if e.event != "progress")
    assert ray_events[-1].stage_seconds["network"] > 0 and ray_events[-1].stage_seconds["decode"] > 0
    for lib in (local, on_ray):
        lib.close()
    a, b = content(tmp_path / "local"), content(tmp_path / "ray")
    assert len(a["tracks"]) == 6 and len(a["segments"]) > 20 and all(t["hashes"] for t in a["track_landmarks"])
    assert sum(not s["informative"] for s in a["segments"]) >= 1  # t1's silence
    assert all(t["vector"] and t["tags"] for t in a["tracks"])
    assert {t["loudness"] is not None for t in a["tracks"]} == {True}  # the descriptors were measured
    for table in a:
        assert a[table] == b[table], table
    local, on_ray = soundalike.open(tmp_path / "local"), soundalike.open(tmp_path / "ray")
    assert on_ray.store.count("segments") == local.store.count("segments")
    assert on_ray.store.count("tracks") == 6
    query = music / "t3.flac"
    # t2 and its copy have the same vectors: which of them comes first (or alone) follows the row ids
    same = lambda path: path.replace("copy.flac", "t2.flac")  # noqa: E731
    ranked = [sorted((-h.score, same(h.path)) for h in lib.search(query).hits) for lib in (on_ray, local)]
    assert ranked[0] == ranked[1] and ranked[0][0] == (-1.0, str(query))
    # an unchanged second run does nothing on the cluster either
    again = list(on_ray.index([music], ray=cluster))
    assert again[0].files_todo == 0 and again[-1].event == "done"
    local.close()
    on_ray.close()


def test_a_killed_ray_run_resumes(tmp_path, cluster, music):
    """The CLI on Ray, killed (SIGKILL) once some tracks are written; the next Ray run finishes the rest and
    the catalogue is what a local run writes."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.fakes import SlowFakeModel; "
            "from soundalike.models import register_model; register_model('fake', lambda: SlowFakeModel(delay=2.0)); "
            "from soundalike.cli import main; sys.argv = ['soundalike', *sys.argv[2:]]; main()")
    lib = tmp_path / "ray"
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(REPO), "index", str(music), "-L", str(lib), "--model", "fake",
         "--hop", "2", "--ray", cluster, "--ray-actors", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    written = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        if (lib / "catalog.sqlite").exists():
            try:
                db = sqlite3.connect(f"file:{lib / 'catalog.sqlite'}?mode=ro", uri=True, timeout=0.1)
                written = db.execute("SELECT count(*) FROM tracks").fetchone()[0]
                db.close()
            except sqlite3.OperationalError:  # the schema is still being created
                written = 0
            if written >= 1:
                break
        time.sleep(0.05)
    assert child.poll() is None, child.stderr.read().decode()[-3000:]
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()
    db = sqlite3.connect(lib / "catalog.sqlite")
    killed_at = db.execute("SELECT count(*) FROM tracks").fetchone()[0]
    db.close()
    assert 1 <= killed_at < 6, killed_at  # midway

    resumed = soundalike.open(lib, model=SlowFakeModel())
    events = list(resumed.index([music], ray=cluster))
    assert events[0].files_todo == 6 - killed_at
    assert sum(e.event == "indexed" for e in events) == 6 - killed_at
    assert resumed.store.count("tracks") == 6
    resumed.close()
    local = soundalike.open(tmp_path / "local", model=SlowFakeModel(), hop=2.0)
    list(local.index([music]))
    local.close()
    a, b = content(tmp_path / "local"), content(lib)
    for table in a:
        assert a[table] == b[table], table


def test_unreachable_cluster_is_one_clear_line(tmp_path, music, capsys):
    need("ray", "ray")
    from tests.conftest import cli
    from soundalike.models import register_model

    register_model("fake", FakeModel)
    code, out, err = cli(capsys, "index", music, "-L", tmp_path / "lib", "--model", "fake", "--ray", "127.0.0.1:9")
    assert code != 0
    assert err.strip() == "error: --ray: cannot reach a Ray cluster at 127.0.0.1:9: Connection refused", err
    lib = soundalike.open(tmp_path / "lib2", model=FakeModel())
    with pytest.raises(UserError, match="not a Ray address"):
        list(lib.index([music], ray="nohost"))
    with pytest.raises(UserError, match="ray-actors"):
        list(lib.index([music], ray="127.0.0.1:9", ray_actors=0))
    with pytest.raises(UserError, match="only with --ray"):
        list(lib.index([music], ray_actors=2))
    lib.close()


def test_missing_ray_says_which_install_adds_it(tmp_path, music, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    lib = soundalike.open(tmp_path / "lib", model=FakeModel())
    with pytest.raises(UserError, match=r"Ray is not installed here; pip install 'soundalike\[ray\]'"):
        list(lib.index([music], ray="auto"))
    lib.close()
