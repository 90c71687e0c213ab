"""The degradations do what their names say, measured on real synthesised music."""

import numpy as np
import pytest

from soundalike.decode import decode
from soundalike.evaluate import degrade
from soundalike.evaluate.degrade import DEGRADATIONS, by_name, snr_db, write_query
from soundalike.errors import UserError
from soundalike.synth import render_track

SR = 22050


@pytest.fixture(scope="module")
def music():
    return render_track(3, seconds=11.5, sample_rate=SR) * np.float32(0.5)


def band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return spec[(f >= lo) & (f < hi)].sum() / spec.sum()


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("snr", [20, 10, 0])
def test_noise_has_the_asked_snr(music, color, snr):
    y = degrade.add_noise(music, snr, np.random.default_rng(1), color=color)
    assert snr_db(music, y) == pytest.approx(snr, abs=0.05)


def test_pink_noise_falls_3db_per_octave():
    n = degrade.pink_noise(1 << 18, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(len(n), 1 / SR)
    low = spec[(f >= 500) & (f < 1000)].mean()
    high = spec[(f >= 1000) & (f < 2000)].mean()
    assert 10 * np.log10(low / high) == pytest.approx(3.0, abs=0.5)


def test_gain_scales_and_clips(music):
    down = degrade.gain(music, -12)
    assert 20 * np.log10(np.std(down) / np.std(music)) == pytest.approx(-12, abs=0.01)
    up = degrade.gain(music, 12)
    assert np.max(np.abs(up)) <= 1.0 and np.mean(np.abs(up) == 1.0) > 0.001  # clipped, as a file would be


def test_filters_remove_their_stop_bands(music):
    lp = degrade.lowpass(music, SR, 3000)
    assert band_energy(music, 4000, SR / 2) > 0.01
    assert band_energy(lp, 4000, SR / 2) < 1e-4
    phone = degrade.bandpass(music, SR, 300, 3400)
    assert band_energy(phone, 0, 150) < 1e-3 and band_energy(phone, 5000, SR / 2) < 1e-3


def test_reverb_keeps_level_and_length_and_smears(music):
    y = degrade.reverb(music, SR, np.random.default_rng(0))
    assert len(y) == len(music)
    assert np.std(y) == pytest.approx(np.std(music), rel=0.01)
    assert np.corrcoef(y, music)[0, 1] < 0.95


@pytest.mark.parametrize("factor", [1.05, 0.95, 1.1, 0.9])
def test_tempo_changes_duration_by_the_factor(music, factor):
    y = degrade.tempo(music, SR, factor)
    assert len(y) / len(music) == pytest.approx(1 / factor, abs=0.01)


@pytest.mark.parametrize("semitones", [1, -2])
def test_pitch_shifts_the_spectrum_and_keeps_duration(semitones):
    t = np.arange(int(2 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = degrade.pitch(tone, SR, semitones)
    assert len(y) == len(tone)
    f = np.fft.rfftfreq(len(y), 1 / SR)
    peak = f[np.argmax(np.abs(np.fft.rfft(y[SR // 4 : -SR // 4], n=len(y))))]
    assert peak == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)


def test_mp3_degradations_write_mp3s_at_their_bitrate(music, tmp_path):
    import av

    for deg in by_name("mp3-64k,mp3-32k"):
        path = write_query(deg, music, SR, tmp_path / deg.name, np.random.default_rng(0))
        assert path.suffix == ".mp3"
        with av.open(str(path)) as c:
            assert c.format.name == "mp3" and c.streams.audio[0].codec_context.name.startswith("mp3")
            assert abs(c.bit_rate - deg.bitrate) < 0.1 * deg.bitrate
        y = decode(path, sample_rate=SR).samples
        assert abs(len(y) - len(music)) < 0.1 * SR


def test_every_degradation_runs_and_names_are_checked(music, tmp_path):
    assert len({d.name for d in DEGRADATIONS}) == len(DEGRADATIONS) == 24
    for deg in DEGRADATIONS:
        clip = music[: int(deg.seconds * deg.tempo * SR)]
        path = write_query(deg, clip, SR, tmp_path / deg.name, np.random.default_rng(0))
        y = decode(path, sample_rate=SR).samples
        assert len(y) / SR == pytest.approx(deg.seconds, abs=0.15), deg.name
        assert np.max(np.abs(y)) <= 1.0
    with pytest.raises(UserError, match="unknown nope"):
        by_name("clean,nope")
