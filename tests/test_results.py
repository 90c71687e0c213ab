"""What a search result lists: one hit per recording (copies folded in), and no hit without evidence.

A real library (real encodes, SQLite, the vector index, landmarks) of synthesised music with FakeModel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from soundalike.models import register_model
from soundalike.synth import add_noise, encode, excerpt, render_track
from tests.conftest import cli
from tests.fakes import FakeModel, fake_library

SR = 22050


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Eight tracks; an identical copy of t1 (another format), a re-encode of t5 at -6 dB, and the first half
    of t1 (an excerpt: not a copy to fold in)."""
    root = tmp_path_factory.mktemp("results")
    tracks = {seed: render_track(seed, seconds=40, sample_rate=SR) for seed in range(8)}
    music = root / "music"
    music.mkdir()
    encode(tracks[1], SR, music / "t1 copy.wav")
    encode(tracks[5] * 0.5, SR, music / "t5 quieter.mp3", bitrate=128000)
    encode(tracks[1][: 20 * SR], SR, music / "t1 first half.flac")
    lib = fake_library(root, tracks, SR)  # encodes t0..t7 next to them and indexes the folder
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    assert len(ids) == 11
    return lib, ids, tracks, root


def _names(hits, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[h.track_id] for h in hits], [[by_id[c.track_id] for c in h.copies] for h in hits]


def test_copies_of_one_recording_are_one_hit(library, tmp_path):
    lib, ids, tracks, _ = library
    q = tmp_path / "q.mp3"  # 16-24 s of t1: whole in t1 and its copy, half of it in the first half
    encode(add_noise(excerpt(tracks[1], SR, 16.0, 8.0), 20, np.random.default_rng(2)), SR, q, bitrate=96000)
    hits = lib.search(q, top=5).hits
    names, copies = _names(hits, ids)
    assert {names[0], *copies[0]} == {"t1.flac", "t1 copy.wav"}  # whichever scored higher stands for both
    assert hits[0].copies[0].score <= hits[0].score
    assert not {"t1.flac", "t1 copy.wav"} & set(names[1:])
    assert names[1] == "t1 first half.flac" and hits[1].score < hits[0].score  # an excerpt is a hit of its own
    assert len(hits) == 5  # the copy's place went to the next track
    as_json = lib.search(q, top=5).to_dict()["hits"][0]
    assert as_json["copies"] and set(as_json["copies"][0]) == {"track_id", "path", "title", "score"}


def test_similar_folds_copies_too(library):
    lib, ids, _, _ = library
    names, copies = _names(lib.similar(ids["t2.flac"], top=10).hits, ids)
    grouped = {n: c for n, c in zip(names, copies)}
    t1 = next(n for n in names if n in ("t1.flac", "t1 copy.wav"))
    assert set(grouped[t1]) == {"t1.flac", "t1 copy.wav"} - {t1}
    t5 = next(n for n in names if n in ("t5.flac", "t5 quieter.mp3"))  # a re-encode at another level
    assert set(grouped[t5]) == {"t5.flac", "t5 quieter.mp3"} - {t5}
    assert len(names) == len(set(names))


def test_tracks_that_only_fill_the_list_are_not_shown_as_results(library, tmp_path, capsys):
    """A track only the track-vector pool brought in (no window reached it, no audio match) scores 0 and
    filled the list as "0.0 % · 0 votes". The result keeps it (a filtered search lists the top N allowed
    tracks), marked: ``Hit.evidence`` is False, and the CLI (like the web app) says it is not shown."""
    lib, ids, tracks, root = library
    register_model("fake", FakeModel)
    q = tmp_path / "short.wav"
    encode(excerpt(tracks[3], SR, 12.0, 4.0), SR, q)
    hits = lib.search(q, top=50).hits
    empty = [h for h in hits if not h.evidence]
    assert empty and all(h.votes == 0 and not h.matches and h.score < 0.0005 for h in empty)
    assert hits[: len(hits) - len(empty)] == [h for h in hits if h.evidence]  # they come last
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", 50)
    assert code == 0, err
    assert not re.search(r"[│ ]0\.0%", out) and f"{len(empty)} more track(s) filled the list" in out


def test_cli_similar_shows_no_offsets_and_search_shows_copies(library, capsys, tmp_path):
    lib, ids, tracks, root = library
    register_model("fake", FakeModel)
    code, out, err = cli(capsys, "similar", ids["t2.flac"], "-L", root / "lib", "--top", 8)
    assert code == 0, err
    header = next(line for line in out.splitlines() if "score" in line)
    assert " at " not in header and "-0:" not in out and "-1:" not in out
    assert "+1 copy" in out
    q = tmp_path / "q.wav"
    encode(excerpt(tracks[1], SR, 8.0, 8.0), SR, q)
    code, out, err = cli(capsys, "search", q, "-L", root / "lib", "--top", 3)
    assert code == 0, err
    assert "+1 copy" in out and ("t1 copy.wav" in out or "t1.flac" in out)
