"""The level step in front of musicnn: every window brought to LEVEL_DB before the log-mel.

The network itself is checked against TensorFlow in tests/test_musicnn.py
(without this step); here: the step makes the embedding level-invariant,
leaves silence silent, is the default, and is part of the model version.
"""

import numpy as np
import pytest

from soundalike.errors import UserError
from soundalike.models.musicnn import MUSICNN_VERSION, Musicnn
from soundalike.models.musicnn.frontend import LEVEL_DB, MAX_GAIN_DB, N_SAMPLES, level_gains, log_mel
from soundalike.synth import render_track
from tests.test_musicnn import requires_weights

SR = 16000


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """Three 3 s windows of a synthesised track, at about -20 dBFS and quieter."""
    x = render_track(7, seconds=9, sample_rate=SR).astype(np.float32)
    return x[: 3 * N_SAMPLES].reshape(3, N_SAMPLES)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("musicnn-cache")


@pytest.fixture(scope="module")
def model(cache) -> Musicnn:
    return Musicnn(tags=("msd",), cache_dir=cache)


def test_level_gains_bring_windows_to_the_target_and_cap_the_boost(music):
    quiet, loud = music * 0.05, music * 2.0
    for w in (music, quiet, loud):
        g = level_gains(w)
        for row, gain in zip(w, g):
            assert abs(_db(row * np.sqrt(gain)) - LEVEL_DB) < 0.01
    faint = music * 10 ** ((LEVEL_DB - MAX_GAIN_DB - 20 - _db(music)) / 20)  # 20 dB below what the cap can lift
    assert np.allclose(10 * np.log10(level_gains(faint)), MAX_GAIN_DB)
    assert np.allclose(10 * np.log10(level_gains(np.zeros((2, 100), np.float32))), MAX_GAIN_DB)


def test_log_mel_with_a_level_is_gain_invariant_and_without_is_musicnn(music):
    plain = log_mel(music)
    a = log_mel(music, level_db=-20)
    b = log_mel(music * 10 ** (-12 / 20), level_db=-20)
    c = log_mel(music * 10 ** (9 / 20), level_db=-20)
    assert np.abs(a - b).max() < 2e-3 and np.abs(a - c).max() < 2e-3  # float16 rounding of the mel
    assert np.abs(log_mel(music * 10 ** (-12 / 20)) - plain).max() > 0.1  # musicnn's own front end is not
    # the level step is the same as scaling the samples
    scaled = music * np.sqrt(level_gains(music))[:, None]
    assert np.abs(log_mel(scaled) - a).max() < 2e-3
    # silence stays silent; near-silence is lifted by MAX_GAIN_DB at most
    assert log_mel(np.zeros((1, N_SAMPLES), np.float32), level_db=-20).max() == 0
    hiss = np.random.default_rng(0).standard_normal((1, N_SAMPLES)).astype(np.float32) * 1e-4  # -80 dBFS
    lifted = log_mel(hiss, level_db=-20)
    assert lifted.max() < log_mel(hiss * 10 ** (60 / 20)).max()  # far below the same noise brought to -20 dBFS


@requires_weights
def test_the_embedder_applies_the_level_by_default(music, model, cache):
    assert model.level_db == LEVEL_DB and model.version == MUSICNN_VERSION
    np.testing.assert_array_equal(model.features(music), log_mel(music, level_db=LEVEL_DB))
    e = model.embed_only(model.features(np.concatenate([music, music * 10 ** (-12 / 20), np.clip(music * 4, -1, 1)])))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cos_quiet = (e[:3] * e[3:6]).sum(1)
    assert cos_quiet.min() > 0.999
    # without the level step a 12 dB change moves the embedding far more
    off = Musicnn(tags=("msd",), level_db=None, cache_dir=cache)
    f = off.embed_only(off.features(np.concatenate([music, music * 10 ** (-12 / 20)])))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    assert (f[:3] * f[3:]).sum(1).min() < cos_quiet.min() - 0.01


def test_level_option_is_part_of_the_version(tmp_path):
    assert Musicnn.version == MUSICNN_VERSION
    with pytest.raises(UserError, match="level_db"):
        Musicnn(tags=("msd",), level_db=12.0, cache_dir=tmp_path)


@requires_weights
def test_other_levels_get_another_version(cache):
    assert Musicnn(tags=("msd",), level_db=None, cache_dir=cache).version == f"{MUSICNN_VERSION}+level=off"
    assert Musicnn(tags=("msd",), level_db=-26, cache_dir=cache).version == f"{MUSICNN_VERSION}+level=-26"
