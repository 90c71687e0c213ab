"""The aisfx port against the ORIGINAL aisfx 0.1.2 code, run here in-process.

The reference is the original's own pipeline as its ``inference.main`` runs it: Essentia's spectrogram
(``aisfx.spectrogram.spectrogram_essentia.compute_spectrogram``, the one the paper used), its
``spectrogram_normalize``, and ``model_get_embedding`` through its ``CrossNet(EmbeddingNet(...))`` with the
checkpoint's weights. Essentia (AGPL) is a test-only dependency for this comparison (the ``test`` extra);
soundalike itself never imports it nor aisfx. Audio: synthesised music and noise bursts written as 44.1 kHz
16-bit WAV, so that no resampler stands between the two.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from soundalike.errors import ModelError
from soundalike.models.aisfx import INSTALL_COMMAND, Aisfx
from soundalike.models.aisfx import weights as W
from soundalike.models.aisfx.frontend import HOP, N_SAMPLES, SR, log_mel, mel_filterbank
from soundalike.models.aisfx.net import AisfxNet, FastAisfxNet


def _installed() -> bool:
    try:
        return W.locate_checkpoint().is_file()
    except ModelError:
        return False


requires_weights = pytest.mark.skipif(not _installed() and not os.environ.get("CI"),
                                      reason=f"aisfx weights not installed ({INSTALL_COMMAND})")


def _write_wav(path: Path, x: np.ndarray) -> np.ndarray:
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
    return pcm.astype(np.float32) / 32768


def _signals() -> list[np.ndarray]:
    from soundalike.synth import render_track

    rng = np.random.default_rng(7)
    music = render_track(3, seconds=6.0, sample_rate=SR) * 0.8
    t = np.arange(int(5.0 * SR)) / SR
    bursts = rng.standard_normal(len(t)) * np.exp(-((t % 1.3) * 6)) * 0.3  # repeated decaying noise hits
    sweep = 0.4 * np.sin(2 * np.pi * (200 + 900 * t) * t) * (t < 4)
    return [music.astype(np.float32), (bursts + sweep).astype(np.float32)]


def _our_blocks(x: np.ndarray, n_blocks: int) -> np.ndarray:
    """The windows the original's blocking reads: 100 frames every 50, the first frame centred on sample 0."""
    pad = np.concatenate([np.zeros(HOP, np.float32), x, np.zeros(N_SAMPLES, np.float32)])
    return np.stack([pad[i * 50 * HOP: i * 50 * HOP + N_SAMPLES] for i in range(n_blocks)])


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(our audio, the original's embeddings) per signal, from aisfx 0.1.2's own code."""
    pytest.importorskip("essentia", reason="the parity test runs the original's Essentia front end (test extra)")
    from aisfx import inference, preprocessing
    from aisfx.spectrogram import spectrogram_essentia

    weights, ds = torch.load(inference.get_path_modelWeights(), map_location="cpu", weights_only=False)
    model = inference.load_bestModel(weights, ds, "cpu")
    out = []
    d = tmp_path_factory.mktemp("aisfx-ref")
    for i, x in enumerate(_signals()):
        path = d / f"{i}.wav"
        audio = _write_wav(path, x)
        spec = spectrogram_essentia.compute_spectrogram(
            str(path), sr=inference.SAMPLE_RATE, block_size=inference.SPEC_BLOCK_LENGTH,
            hop_size=inference.SPEC_HOP_LENGTH, n_mels=inference.MEL_BINS, f_min=inference.F_MIN,
            f_max=inference.F_MAX)
        spec = preprocessing.spectrogram_normalize(spec, spec_norm="original")
        emb = inference.model_get_embedding(spec, 0.5, True, model, "cpu").numpy()
        out.append((audio, spec, emb))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Aisfx:
    return Aisfx(cache_dir=tmp_path_factory.mktemp("aisfx-cache"))


def _cos(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@requires_weights
def test_front_end_matches_essentia(original):
    for audio, spec, _ in original:
        n = (len(spec) - 100) // 50 + 1
        ours = log_mel(_our_blocks(audio, n))
        ref = np.stack([spec[i * 50: i * 50 + 100] for i in range(n)])
        assert np.abs(ours - ref).max() < 1e-4  # float32 rounding of near-empty bands (measured 1.5e-5)


@requires_weights
def test_embeddings_match_the_original(original, model):
    """Every block of the original's output, from our front end and network: cosine 1 to float32 rounding."""
    for audio, _, emb in original:
        ours = model.embed_windows(_our_blocks(audio, len(emb))).embeddings
        assert ours.shape == emb.shape and ours.shape[1] == 512
        assert _cos(ours, emb).min() > 0.99999
        assert np.abs(ours - emb).max() < 1e-3 * np.abs(emb).max()


@requires_weights
def test_fast_path_matches_reference_port(model):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((5, 100, 96), dtype=np.float32) * 0.6)
    with torch.inference_mode():
        ref = model.net(x).numpy()
    for parts in (1, 2, 3):
        fast = FastAisfxNet(model.net, parts=parts)(x).numpy()
        np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_filterbank_is_essentias_unit_sum_htk():
    fb = mel_filterbank()
    assert fb.shape == (1025, 96)
    np.testing.assert_allclose(fb.sum(0), 1.0, rtol=1e-5)
    # Essentia's first band reaches two bins (j <= jend), which a half-open loop misses
    assert np.count_nonzero(fb[:, 0]) == 2


def test_short_clip_is_repeat_padded():
    clip = np.sin(np.arange(20000) / 7).astype(np.float32)
    np.testing.assert_array_equal(log_mel([clip]), log_mel(np.resize(clip, N_SAMPLES)[None]))


@requires_weights
def test_weights_cache_and_checksums(tmp_path):
    t = W.load_weights(cache_dir=tmp_path)
    assert len(t) == 40 and W.cache_path(cache_dir=tmp_path).is_file()
    AisfxNet.from_tensors(W.load_weights(cache_dir=tmp_path))  # from the cache
    W.cache_path(cache_dir=tmp_path).write_bytes(b"damaged")
    assert W.tensor_digest(W.load_weights(cache_dir=tmp_path)) == W.TENSOR_SHA256  # converted again


def test_missing_or_damaged_checkpoint_names_the_install_command(tmp_path):
    with pytest.raises(ModelError, match="pip install --no-deps aisfx==0.1.2"):
        W.load_weights(checkpoint=tmp_path / "nope.pth", cache_dir=tmp_path)
    bad = tmp_path / "checkpoint.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="sha256"):
        W.load_weights(checkpoint=bad, cache_dir=tmp_path)
