"""decode.py on real files of every supported format, and synth.py's music."""

from __future__ import annotations

import logging
import time
import tracemalloc

import numpy as np
import pytest
import soxr

from soundalike.decode import AudioInfo, decode, probe, stream
from soundalike.errors import DecodeError, QueryError, UserError
from soundalike.synth import add_noise, encode, excerpt, render_track
from tests.conftest import CLIP_SECONDS, FORMAT_CASES, make_png, make_video_only

TARGET = 22050
IDS = [c.id for c in FORMAT_CASES]
LOSSLESS = [c.id for c in FORMAT_CASES if c.lossless]


def reference(clip, rate=TARGET):
    return soxr.resample(clip.signal, clip.sample_rate, rate, quality="HQ").astype(np.float32)


def best_corr(a: np.ndarray, b: np.ndarray, max_lag: int = 2048) -> float:
    """Peak normalised cross-correlation over small lags (codecs may shift by a frame)."""
    n = min(len(a), len(b))
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    spec = np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n))
    xc = np.fft.irfft(spec, 2 * n)
    lags = np.r_[xc[: max_lag + 1], xc[-max_lag:]]
    return float(lags.max() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# --------------------------------------------------------------------------
# every format x every source kind
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", IDS)
def test_decodes_every_format_from_every_source(case_id, encoded_audio, source_kind):
    clip = encoded_audio(case_id)
    audio = decode(source_kind(clip.path), sample_rate=TARGET)

    assert audio.sample_rate == TARGET
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.source == {"path": str(clip.path), "bytes": "<bytes>", "file": "<file>"}[source_kind.kind]
    ref = reference(clip)
    if clip.case.lossless:
        assert len(audio.samples) == len(ref)
        assert np.abs(audio.samples - ref).max() < 2e-3
    else:
        assert audio.duration == pytest.approx(CLIP_SECONDS, abs=0.08)
        assert best_corr(audio.samples, ref) > 0.95
        assert rms(audio.samples) == pytest.approx(rms(ref), rel=0.15)


@pytest.mark.parametrize("case_id", IDS)
def test_probe_describes_the_stream(case_id, encoded_audio, source_kind):
    clip = encoded_audio(case_id)
    info = probe(source_kind(clip.path))
    assert isinstance(info, AudioInfo)
    assert info.duration == pytest.approx(CLIP_SECONDS, abs=0.1)
    # the Opus decoder always runs at 48 kHz; FFmpeg's Vorbis encoder writes stereo
    assert info.sample_rate == (48000 if "opus" in case_id else clip.sample_rate)
    assert info.channels == (2 if "vorbis" in case_id else clip.case.channels)
    assert info.codec and info.format
    assert info.bit_rate is None or info.bit_rate > 0


# --------------------------------------------------------------------------
# ranges
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["wav-s16-44k-stereo", "wav-s24-96k-mono", "flac-48k-6ch", "aiff-22k-stereo"])
def test_lossless_range_is_exact_to_the_sample(case_id, encoded_audio):
    clip = encoded_audio(case_id)
    sr = clip.sample_rate
    full = decode(clip.path, sample_rate=sr).samples
    for start, end in [(0.5, 1.75), (1.2345, 2.0), (0.0001, 0.01), (2.5, None), (None, 0.3)]:
        part = decode(clip.path, sample_rate=sr, start=start, end=end).samples
        a = int(round((start or 0) * sr))
        b = int(round(end * sr)) if end is not None else len(full)
        np.testing.assert_array_equal(part, full[a:b])


@pytest.mark.parametrize("case_id", IDS)
def test_range_matches_the_same_slice_of_the_whole(case_id, encoded_audio):
    clip = encoded_audio(case_id)
    full = decode(clip.path, sample_rate=TARGET).samples
    part = decode(clip.path, sample_rate=TARGET, start=1.0, end=2.5).samples
    ref = full[TARGET : int(2.5 * TARGET)]
    assert abs(len(part) - len(ref)) <= 2
    n = min(len(part), len(ref))
    # after a seek a lossy decoder restarts; pre-roll makes it converge almost exactly
    assert np.corrcoef(part[:n], ref[:n])[0, 1] > (0.999 if clip.case.lossless else 0.98)


def test_end_past_the_file_stops_at_the_end(encoded_audio):
    clip = encoded_audio("flac-48k-6ch")
    audio = decode(clip.path, sample_rate=TARGET, start=2.0, end=60.0)
    assert audio.duration == pytest.approx(CLIP_SECONDS - 2.0, abs=1 / TARGET)


@pytest.mark.parametrize("case_id", ["wav-s16-44k-stereo", "mp3-44k-stereo", "m4a-44k-stereo", "ogg-vorbis-32k-stereo"])
def test_start_past_the_end_is_a_query_error(case_id, encoded_audio):
    clip = encoded_audio(case_id)
    with pytest.raises(QueryError) as err:
        decode(clip.path, sample_rate=TARGET, start=5.0)
    msg = str(err.value)
    assert str(clip.path) in msg and "5.000 s" in msg and "(3.0" in msg
    with pytest.raises(QueryError):
        list(stream(clip.path, sample_rate=TARGET, start=3.5, end=4.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 0},
        {"sample_rate": 16000, "start": -1.0},
        {"sample_rate": 16000, "start": 2.0, "end": 1.0},
        {"sample_rate": 16000, "end": float("nan")},
    ],
)
def test_bad_arguments_are_user_errors(kwargs, encoded_audio):
    with pytest.raises(UserError) as err:
        decode(encoded_audio("wav-s16-44k-stereo").path, **kwargs)
    assert not isinstance(err.value, QueryError)


def test_unknown_source_type_is_a_user_error():
    with pytest.raises(UserError):
        decode(12345, sample_rate=16000)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["wav-s16-44k-stereo", "mp3-8k-mono", "ogg-opus-48k-stereo", "m4a-48k-6ch"])
def test_stream_blocks_concatenate_to_decode(case_id, encoded_audio):
    clip = encoded_audio(case_id)
    blocks = list(stream(clip.path, sample_rate=16000, block_seconds=0.37))
    size = int(round(0.37 * 16000))
    assert all(len(b) == size for b in blocks[:-1]) and 0 < len(blocks[-1]) <= size
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), decode(clip.path, sample_rate=16000).samples)
    ranged = np.concatenate(list(stream(clip.path, sample_rate=16000, start=0.8, end=2.2, block_seconds=0.25)))
    np.testing.assert_array_equal(ranged, decode(clip.path, sample_rate=16000, start=0.8, end=2.2).samples)


def test_stream_opens_eagerly_and_decodes_lazily(tmp_path):
    with pytest.raises(DecodeError):
        stream(tmp_path / "missing.mp3", sample_rate=16000)  # no iteration needed
    with pytest.raises(UserError):
        stream(tmp_path / "missing.mp3", sample_rate=16000, block_seconds=0)


def test_streaming_a_long_file_keeps_memory_bounded(tmp_path):
    """Four minutes decode through a few blocks' worth of memory, not the whole file."""
    sr, seconds = 16000, 240
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)

    def chunks():
        for i in range(seconds // 10):  # cheap signal: tone + noise, written 10 s at a time
            t = np.arange(i * 10 * sr, (i + 1) * 10 * sr) / sr
            yield (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)

    encode(chunks(), sr, path)
    whole = seconds * 22050 * 4  # bytes of the decoded file at the output rate
    tracemalloc.start()
    try:
        n = 0
        for block in stream(path, sample_rate=22050, block_seconds=2.0):
            n += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == seconds * 22050
    assert peak < whole / 10, f"peak {peak / 1e6:.1f} MB for a {whole / 1e6:.1f} MB result"


# --------------------------------------------------------------------------
# failures: always DecodeError naming the source, never a raw av exception
# --------------------------------------------------------------------------


def _decode_error(source, *, label, reason: str, probe_fails: bool = True) -> DecodeError:
    with pytest.raises(DecodeError) as err:
        decode(source, sample_rate=16000)
    assert label in str(err.value)
    assert reason in err.value.reason
    if probe_fails:  # probe reads headers only, so damage after a good header is invisible to it
        if hasattr(source, "seek"):
            source.seek(0)
        with pytest.raises(DecodeError):
            probe(source)
    return err.value


def test_missing_file_and_directory(tmp_path):
    _decode_error(str(tmp_path / "nope.mp3"), label=str(tmp_path / "nope.mp3"), reason="file not found")
    _decode_error(tmp_path, label=str(tmp_path), reason="is a directory")


def test_empty_file(tmp_path, source_kind):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    label = {"path": str(path), "bytes": "<bytes>", "file": "<file>"}[source_kind.kind]
    _decode_error(source_kind(path), label=label, reason="file is empty")


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"hello, this is not music\n" * 40),
        ("picture.png", make_png()),
        ("noise.mp3", np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()),
    ],
)
def test_not_an_audio_file(tmp_path, source_kind, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    label = {"path": str(path), "bytes": "<bytes>", "file": "<file>"}[source_kind.kind]
    _decode_error(source_kind(path), label=label, reason="not an audio file")


def test_file_without_audio_stream(tmp_path):
    path = make_video_only(tmp_path / "silent-film.mp4")
    _decode_error(str(path), label=str(path), reason="no audio stream")


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    encode(np.zeros(0, np.float32), 16000, path)
    assert path.stat().st_size > 0  # a valid header and nothing else
    _, = [probe(path)]
    with pytest.raises(DecodeError, match="no audio samples") as err:
        decode(path, sample_rate=16000)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("case_id", ["flac-48k-6ch", "mp3-44k-stereo", "ogg-vorbis-32k-stereo", "m4a-44k-stereo"])
def test_corrupt_from_the_start_raises(case_id, encoded_audio, tmp_path):
    clip = encoded_audio(case_id)
    data = clip.path.read_bytes()
    garbage = np.random.default_rng(2).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    path = tmp_path / f"bad{clip.case.ext}"
    path.write_bytes(data[:64] + garbage[64:])
    err = _decode_error(str(path), label=str(path), reason="corrupt", probe_fails=False)
    assert err.path == str(path)


def test_truncated_mp4_index_raises(encoded_audio, tmp_path):
    data = encoded_audio("m4a-44k-stereo").path.read_bytes()
    path = tmp_path / "cut.m4a"
    path.write_bytes(data[: len(data) // 2])  # FFmpeg writes the moov index at the end
    _decode_error(str(path), label=str(path), reason="corrupt or truncated MP4/M4A file")


@pytest.mark.parametrize("case_id", ["wav-s16-44k-stereo", "flac-48k-6ch", "mp3-44k-stereo", "aiff-22k-stereo"])
def test_truncated_file_returns_what_decodes_and_warns(case_id, encoded_audio, tmp_path, caplog):
    clip = encoded_audio(case_id)
    data = clip.path.read_bytes()
    path = tmp_path / f"cut{clip.case.ext}"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING, logger="soundalike.decode"):
        audio = decode(path, sample_rate=TARGET)
    assert 1.0 < audio.duration < 2.9
    if not case_id.startswith(("wav", "aiff")):  # FFmpeg sizes PCM streams by the file, so no promise is broken
        assert any("truncated" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    ref = reference(clip)[: len(audio.samples)]
    assert best_corr(audio.samples[: len(ref) - 2048], ref[: len(ref) - 2048]) > 0.95


# --------------------------------------------------------------------------
# synth: the music the tests are made of
# --------------------------------------------------------------------------


def test_render_track_is_deterministic_prefix_stable_and_fast():
    t = time.perf_counter()
    long = render_track(5, seconds=30, sample_rate=22050)
    elapsed = time.perf_counter() - t
    assert long.dtype == np.float32 and long.shape == (30 * 22050,)
    assert np.abs(long).max() <= 1.0 and rms(long) > 0.05
    np.testing.assert_array_equal(render_track(5, seconds=10, sample_rate=22050), long[: 10 * 22050])
    assert elapsed < 3.0  # >10x realtime even on a loaded CI core (typically ~150x)
    stereo = render_track(5, seconds=2, channels=2)
    assert stereo.shape == (2, 2 * 22050) and not np.allclose(stereo[0], stereo[1])


def _spectral_profile(x: np.ndarray, sr: int = 22050) -> np.ndarray:
    """Mean log-magnitude spectrum in 64 bands: a crude timbre/harmony fingerprint."""
    frames = x[: len(x) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
    mag = np.abs(np.fft.rfft(frames, axis=1))[:, :512].reshape(-1, 64, 8).mean(axis=2)
    p = np.log1p(100 * mag).mean(axis=0)
    return (p - p.mean()) / (p.std() + 1e-9)


def test_seeds_and_sections_differ():
    tracks = [render_track(s, seconds=24) for s in range(4)]
    profiles = [_spectral_profile(t) for t in tracks]
    across = [np.corrcoef(profiles[i], profiles[j])[0, 1] for i in range(4) for j in range(i + 1, 4)]
    assert max(across) < 0.99
    # different 3 s windows of one track are different signals
    w = [tracks[0][i * 3 * 22050 : (i + 1) * 3 * 22050] for i in range(8)]
    sims = [abs(np.corrcoef(w[i], w[j])[0, 1]) for i in range(8) for j in range(i + 1, 8)]
    assert max(sims) < 0.9


def test_degradations():
    x = render_track(3, seconds=4)
    rng = np.random.default_rng(0)
    y = add_noise(x, 10.0, rng)
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3) and y.dtype == np.float32
    np.testing.assert_array_equal(excerpt(x, 22050, 1.0, 2.0), x[22050 : 3 * 22050])
    with pytest.raises(UserError):
        excerpt(x, 22050, 10.0, 1.0)


@pytest.mark.parametrize("codec", ["pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"])
def test_side_signal_for_every_sample_format(tmp_path, codec):
    """Mid and side come back as float32 for every PCM format and rebuild both channels."""
    rng = np.random.default_rng(1)
    left = render_track(5, seconds=2, sample_rate=16000)
    right = 0.5 * left + 0.1 * rng.standard_normal(len(left)).astype(np.float32)
    path = tmp_path / f"{codec}.wav"
    encode(np.stack([left, right]), 16000, path, codec=codec, channels=2)
    sides: list[np.ndarray] = []
    mid = np.concatenate(list(stream(path, sample_rate=16000, side=sides.append)))
    side = np.concatenate(sides)
    assert mid.dtype == side.dtype == np.float32 and len(mid) == len(side)
    np.testing.assert_allclose(mid + side, left[: len(mid)], atol=1e-3)
    np.testing.assert_allclose(mid - side, right[: len(mid)], atol=1e-3)


# --------------------------------------------------------------------------
# non-finite samples (issue 19, finding 1)
# --------------------------------------------------------------------------


def float_wav_with(path, value, *, at_seconds, sample_rate=8000, seconds=3.0, channels=1):
    """A real float32 WAV of synthesised music with ``value`` (NaN, inf) written over the sample at ``at_seconds``."""
    x = render_track(5, seconds=seconds, sample_rate=sample_rate) * np.float32(0.5)
    encode(x, sample_rate, path, codec="pcm_f32le", channels=channels)
    data = bytearray(path.read_bytes())
    start = data.index(b"data") + 8
    i = start + int(at_seconds * sample_rate) * 4 * channels
    data[i : i + 4] = np.float32(value).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
@pytest.mark.parametrize("rate", [8000, 16000])  # without and with resampling
def test_non_finite_samples_are_a_decode_error(tmp_path, value, word, rate):
    path = float_wav_with(tmp_path / "damaged.wav", value, at_seconds=1.5)
    with pytest.raises(DecodeError, match=rf"{word} sample at 1\.\d+ s") as err:
        decode(path, sample_rate=rate)
    assert err.value.path == str(path)
    with pytest.raises(DecodeError, match=word):  # and while streaming, with the side signal asked for
        for _ in stream(path, sample_rate=rate, side=lambda s: None):
            pass


def test_non_finite_samples_in_a_stereo_side_signal_are_a_decode_error(tmp_path):
    path = float_wav_with(tmp_path / "damaged.wav", np.nan, at_seconds=1.0, channels=2)
    seen = []
    with pytest.raises(DecodeError, match="NaN"):
        for _ in stream(path, sample_rate=8000, side=seen.append):
            pass
    assert all(np.isfinite(s).all() for s in seen)
