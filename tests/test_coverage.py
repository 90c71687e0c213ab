"""``--coverage N``: embed at most N evenly spaced windows per track, and what follows from it.

Window selection is tested on numpy signals (segment.py); indexing, search,
stats and the dense fill-in run through the Library API and the CLI on real
encoded audio with ``FakeModel`` (tests/fakes.py), as tests/test_library.py does.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import UserError
from soundalike.ingest import FileWork, Indexer
from soundalike.models import register_model
from soundalike.segment import coverage_indices, window_starts, windows
from soundalike.synth import add_noise, encode, excerpt
from tests.conftest import SYNTH_SR, cli
from tests.fakes import FakeModel

SR = SYNTH_SR
HOP = 2.0


# --- which windows ------------------------------------------------------------------


def _starts(x, sr, keep=None, hop=1.0, window=2.0):
    blocks = np.array_split(x, 7)  # streamed in uneven blocks, as the decoder does
    out = [b.starts for b in windows(blocks, sample_rate=sr, window_seconds=window, hop_seconds=hop, keep=keep, max_windows=5)]
    return np.concatenate(out) if out else np.zeros(0)


@pytest.mark.parametrize("seconds, coverage", [(60.3, 5), (60.3, 1), (61.0, 59), (30.0, 100), (1.2, 3)])
def test_coverage_keeps_at_most_n_evenly_spaced_dense_windows(seconds, coverage):
    sr = 1000
    x = np.random.default_rng(0).standard_normal(int(seconds * sr)).astype(np.float32)
    dense = _starts(x, sr)
    keep = coverage_indices(len(x), window=2 * sr, hop=sr, coverage=coverage)
    got = _starts(x, sr, keep)
    assert len(dense) == len(window_starts(len(x), window=2 * sr, hop=sr))
    assert len(got) == min(coverage, len(dense))
    np.testing.assert_array_equal(got, dense[sorted(keep)])  # a subset of the dense windows, same times
    if coverage == 1:
        assert got[0] == dense[(len(dense) - 1) // 2]  # the middle one
    else:
        assert got[0] == 0 and got[-1] == dense[-1]  # the first and the end-aligned last window
    if len(got) > 2:
        gaps = np.diff(got)
        assert gaps.max() - gaps.min() <= 1.0 + 1e-9  # evenly spaced, to one hop


@pytest.mark.parametrize("error_seconds", [-1.7, -0.3, 0.4, 2.5])
def test_a_wrong_length_estimate_still_gives_at_most_n_ending_at_the_end(error_seconds):
    sr = 1000
    x = np.random.default_rng(1).standard_normal(40_500).astype(np.float32)
    keep = coverage_indices(len(x) + int(error_seconds * sr), window=2 * sr, hop=sr, coverage=6)
    got = _starts(x, sr, keep)
    assert 4 <= len(got) <= 6
    # the last kept window reaches the end of the track, or of a too short estimate
    assert got[-1] + 2.0 >= len(x) / sr - max(0.0, -error_seconds) - 1.0
    assert np.all(np.diff(got) > 0)


def test_coverage_must_be_positive():
    with pytest.raises(UserError, match="coverage"):
        coverage_indices(10_000, window=2000, hop=1000, coverage=0)


# --- indexing, search, stats --------------------------------------------------------


@pytest.fixture
def music(tmp_path, tracks):
    folder = tmp_path / "music"
    folder.mkdir()
    for seed, x in tracks.items():
        encode(x, SR, folder / f"track{seed}{['.flac', '.mp3', '.ogg', '.wav'][seed]}")
    return folder


def _index(lib, *paths, **kw):
    events = list(lib.index(paths, **kw))
    assert events[-1].event == "done" and events[-1].errors == 0
    return events[-1]


def _segments(lib):
    return {Path(t.path).name: lib.catalog.segments_of(t.id) for t in lib.tracks()}


def test_coverage_run_is_searchable_and_stats_show_it(tmp_path, music, tracks):
    model = FakeModel()
    lib = soundalike.open(tmp_path / "lib", model=model, hop=HOP)
    done = _index(lib, music, coverage=4)
    segs = _segments(lib)
    assert len(segs) == 4 and all(len(s) == 4 for s in segs.values())
    assert model.calls == 16, "only the sampled windows are embedded"
    assert done.audio_seconds == pytest.approx(160, abs=2)  # the whole audio counts as indexed
    for s in segs.values():  # spread over the whole track, first and last included
        starts = [row[1] for row in s]
        assert starts[0] == 0 and starts[-1] + model.window_seconds == pytest.approx(40, abs=0.1)
    stats = lib.stats()
    assert stats["sampled_tracks"] == 4 and stats["segments"] == 16
    assert lib.store.count("segments") == stats["informative_segments"] == 16

    # still searchable: an excerpt around a sampled window finds its track; similar() works
    clip = add_noise(excerpt(tracks[2], SR, 11.0, 8.0), 25.0, np.random.default_rng(2))
    encode(clip, SR, tmp_path / "query.mp3", bitrate=96000)
    hits = lib.search(tmp_path / "query.mp3", top=3).hits
    assert os.path.basename(hits[0].path) == "track2.ogg"
    assert len(lib.similar(str(music / "track0.flac"), top=3).hits) == 3


def test_a_dense_run_fills_in_sampled_tracks_and_a_coverage_run_keeps_dense_ones(tmp_path, music):
    model = FakeModel()
    lib = soundalike.open(tmp_path / "lib", model=model, hop=HOP)
    _index(lib, music, coverage=3)
    assert model.calls == 12 and lib.stats()["sampled_tracks"] == 4
    _index(lib, music)  # dense: the sampled tracks are stale and re-embedded
    dense = _segments(lib)
    assert lib.stats()["sampled_tracks"] == 0
    assert all(len(s) == 20 for s in dense.values())  # 40 s at a 2 s hop, 2 s windows
    assert model.calls == 12 + 80
    _index(lib, music, coverage=3)  # a later coverage run leaves dense tracks alone
    assert model.calls == 92 and _segments(lib).keys() == dense.keys()
    assert all(len(s) == 20 for s in _segments(lib).values())
    _index(lib, music)  # and a dense run on a dense library embeds nothing
    assert model.calls == 92


def test_unknown_duration_is_counted_by_decoding(tmp_path, music):
    model = FakeModel()
    lib = soundalike.open(tmp_path / "lib", model=model, hop=HOP)
    work = FileWork(hop=HOP, coverage=5)
    path = music / "track3.wav"
    assert work.keep(model, path, None) == work.keep(model, path, 40.0) == coverage_indices(
        40 * model.sample_rate, window=model.window_samples, hop=int(HOP * model.sample_rate), coverage=5
    )
    assert FileWork(hop=HOP).keep(model, path, 40.0) is None
    with pytest.raises(UserError, match="coverage"):
        Indexer(lib.catalog, lib.store, model, hop=HOP, coverage=0)


# --- the CLI -----------------------------------------------------------------------


def test_cli_index_coverage_and_info(tmp_path, music, capsys):
    register_model("fake", FakeModel)
    lib = tmp_path / "lib"
    code, out, err = cli(capsys, "index", music, "-L", lib, "--model", "fake", "--hop", HOP, "--coverage", 2, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["coverage"] == 2 and summary["tracks"] == 4
    code, out, err = cli(capsys, "info", "-L", lib, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["sampled_tracks"] == 4 and info["segments"] == 8
    code, out, err = cli(capsys, "index", music, "-L", lib, "--coverage", 0)
    assert code != 0 and "coverage" in (out + err).lower()
