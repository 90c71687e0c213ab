"""`soundalike evaluate CORPUS --store KIND`: the corpus run's libraries on a server store.

A three-track corpus in bench/corpus.py's layout, the fake model, and the same run on the embedded store,
qdrant-client's local mode in a folder of its own and a real PostgreSQL + pgvector (the session's
``pg_url`` server): the same ranks, and the duplicates library (a copy of the catalogue's) writes into
collections of its own, not into the catalogue library's.
"""

from __future__ import annotations

import csv
import json

import pytest

import soundalike
from soundalike.models import register_model
from soundalike.synth import encode, excerpt, render_track
from tests.conftest import cli, need
from tests.fakes import FakeModel

SR = 22050


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    register_model("fake", FakeModel)
    monkeypatch.setenv("SOUNDALIKE_MODEL", "fake")
    monkeypatch.setenv("SOUNDALIKE_HOP", "2")


def write(path, rows):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for sub in ("catalogue", "queries", "duplicates"):
        (root / sub).mkdir()
    tracks, queries = [], []
    for seed in range(3):
        x = render_track(seed, seconds=20, sample_rate=SR)
        encode(x, SR, root / "catalogue" / f"t{seed}.flac")
        encode(excerpt(x, SR, 6.0, 8.0), SR, root / "queries" / f"q{seed}.flac")
        tracks.append({"file": f"t{seed}.flac", "source": "synth", "label_set": "", "label": "", "seconds": 20,
                       "licence": "test"})
        queries.append({"query": f"queries/q{seed}.flac", "track": f"catalogue/t{seed}.flac",
                        "degradation": "clean", "start": 6.0, "seconds": 8.0, "tempo": 1.0})
        if seed == 0:
            encode(x, SR, root / "duplicates" / "t0-copy.mp3", bitrate=128000)
    write(root / "tracks.csv", tracks)
    write(root / "queries.csv", queries)
    write(root / "duplicates.csv", [{"file": "duplicates/t0-copy.mp3", "original": "catalogue/t0.flac",
                                     "kind": "reencode"}])
    return root


def evaluate(capsys, corpus, work, *extra):
    code, out, err = cli(capsys, "evaluate", corpus, "--work", work, "--peers", "none", "--json", *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("kind", ["qdrant", "pgvector"])
def test_corpus_run_on_a_server_store(kind, corpus, tmp_path, capsys, request):
    if kind == "qdrant":
        need("qdrant_client", "qdrant")
        url = str(tmp_path / "qdrant")  # one folder for both libraries, as one server would be
    else:
        url = request.getfixturevalue("pg_url")
    embedded = evaluate(capsys, corpus, tmp_path / "work-embedded")
    server = evaluate(capsys, corpus, tmp_path / "work-server", "--store", kind, "--store-url", url)
    assert (embedded["store"], server["store"]) == ("embedded", kind)
    assert [q["rank"] for q in server["queries"]] == [q["rank"] for q in embedded["queries"]] == [1, 1, 1]
    assert server["duplicates"]["soundalike"]["f1"] == embedded["duplicates"]["soundalike"]["f1"]

    # qdrant's local mode opens a folder once at a time: one library after the other
    counts, prefixes = {}, {}
    for name in ("lib-catalogue", "lib-duplicates"):
        lib = soundalike.open(tmp_path / "work-server" / name, store_url=url)
        try:
            assert lib.store_args()[0] == kind
            prefixes[name] = lib.store_args()[2]["prefix"]
            counts[name] = lib.store.count("segments")
            assert counts[name] == len(lib.catalog.vector_ids("segments"))  # its own vectors, no others
        finally:
            lib.close()
    assert prefixes["lib-catalogue"] != prefixes["lib-duplicates"]
    assert counts["lib-duplicates"] > counts["lib-catalogue"]  # the copy's own store holds the duplicate too


def test_store_options_belong_to_a_corpus_run(tmp_path, capsys):
    code, _, err = cli(capsys, "evaluate", "--self", tmp_path, "--store", "pgvector")
    assert code != 0 and "apply to a corpus run" in err
