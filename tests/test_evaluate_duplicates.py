"""Library.duplicates on real files (FakeModel for speed), and pair_score on hand-made windows."""

import numpy as np
import pytest

import soundalike
from soundalike.duplicates import pair_score
from soundalike.errors import UserError
from soundalike.synth import encode, render_track
from tests.fakes import FakeModel

SR = 22050


@pytest.fixture(scope="module")
def dup_lib(tmp_path_factory):
    base = tmp_path_factory.mktemp("dups")
    music = base / "music"
    music.mkdir()
    originals = {}
    for i in range(4):
        x = render_track(40 + i, seconds=24, sample_rate=SR) * np.float32(0.5)
        originals[i] = x
        encode(x, SR, music / f"t{i}.flac")
    encode(originals[0], SR, music / "t0-copy.mp3", bitrate=128000)  # re-encode
    encode(originals[1][int(2.5 * SR) : -int(2 * SR)] * np.float32(0.5), SR, music / "t1-trim-quiet.flac")  # trim + level
    lib = soundalike.open(base / "lib", model=FakeModel(), hop=2.0)
    list(lib.index([music]))
    yield lib
    lib.close()


def test_duplicates_finds_reencodes_and_trims_only(dup_lib):
    names = {t.id: t.path.rsplit("/", 1)[-1] for t in dup_lib.tracks()}
    # FakeModel's scores are not musicnn's: DEFAULT_THRESHOLD is calibrated on musicnn (the quality
    # test checks it there); FakeModel, without musicnn's level step, scores the quieter trim 0.94
    # and the other pairs at most 0.73
    pairs = {frozenset((names[p.a], names[p.b])): p for p in dup_lib.duplicates(threshold=0.9)}
    assert set(pairs) == {frozenset({"t0.flac", "t0-copy.mp3"}), frozenset({"t1.flac", "t1-trim-quiet.flac"})}
    trim = pairs[frozenset({"t1.flac", "t1-trim-quiet.flac"})]
    assert trim.offset == pytest.approx(2.5, abs=1.0)  # the trimmed copy starts 2.5 s into the original
    assert all(0 < p.score <= 1 for p in pairs.values())
    with pytest.raises(UserError, match="threshold"):
        dup_lib.duplicates(threshold=1.5)


def test_pair_score_aligns_on_the_best_offset():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((10, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    starts = np.arange(10) * 2.0
    score, offset = pair_score(starts[:6], v[3:9], starts, v, hop=2.0)  # a copy of windows 3..8
    assert score == pytest.approx(1.0, abs=1e-5) and offset == pytest.approx(6.0)
    other = rng.standard_normal((6, 8)).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    assert pair_score(starts[:6], other, starts, v, hop=2.0)[0] < 0.7
