"""Make ``tests/fixtures/musicnn_reference.npz`` from the ORIGINAL musicnn graph.

Why: the PyTorch port in ``soundalike.models.musicnn`` is only trustworthy if
it is compared with what Pons & Serra's TensorFlow code computes from the same
checkpoint. This script runs that code (``musicnn/models.py`` from the
``musicnn==0.1.0`` wheel, under ``tf.compat.v1`` graph mode) on a few fixed,
deterministic signals and saves inputs and outputs for the tests.

It needs TensorFlow and librosa, which the project must never depend on, so it
runs in a throw-away venv OUTSIDE the repository::

    python3 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu librosa
    /tmp/tfref/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfref/bin/pip install tf-keras
    /tmp/tfref/bin/python scripts/make_musicnn_reference.py

(The script sets ``TF_USE_LEGACY_KERAS=1`` itself: under Keras 3,
``tf.compat.v1.layers`` needs the legacy ``tf-keras``.)

Faithfulness notes:

* The log-mel is musicnn's ``batch_data``: ``librosa.feature.melspectrogram``
  (sr 16000, n_fft 512, hop 256, 96 Slaney mels, power 2, centred), then
  ``astype(float16)`` and ``log10(10000 x + 1)``. musicnn 0.1.0 ran on
  librosa 0.6/0.7, whose STFT padded with ``reflect``; librosa >= 0.10 pads
  with zeros by default, so ``pad_mode="reflect"`` is passed explicitly. The
  log is taken in float32 because numpy 2 keeps float16 and overflows.
* musicnn 0.1.0's ``extractor`` returns patch 1's penultimate features for
  every patch (it concatenates the first batch's tensors again); here all
  patches go through the graph in one ``sess.run``, so every row is its own.
* The original crashes on clips shorter than 3 s; the short clip here is
  repeat-padded in the audio domain exactly like soundalike does
  (``np.resize``: the clip tiled and cut at 48000 samples).
* Audio is stored as int16 and both sides use ``int16 / 32768`` in float32, so
  the stored input is exactly what was analysed, and the file stays < 1 MB.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_v2_behavior()

from musicnn import configuration as config  # noqa: E402
from musicnn import models  # noqa: E402

SR = 16000
N_SAMPLES = 48000
N_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "musicnn_reference.npz"


def _signals() -> tuple[np.ndarray, np.ndarray]:
    """Three 3 s signals and one 1.3 s clip, int16, from fixed seeds and formulas."""
    rng = np.random.default_rng(20240607)
    t = np.arange(N_SAMPLES) / SR

    # 1. harmonic notes with decaying envelopes (a tonal, "musical" patch)
    tones = np.zeros(N_SAMPLES)
    for i, f0 in enumerate([220.0, 277.18, 329.63, 440.0, 392.0, 329.63]):
        start = i * 0.5
        env = np.where(t >= start, np.exp(-(t - start) * 3.0), 0.0)
        for h in range(1, 6):
            tones += env * np.sin(2 * np.pi * f0 * h * t) / h
    tones = 0.25 * tones / np.abs(tones).max() + 0.005 * rng.standard_normal(N_SAMPLES)

    # 2. a beat: decaying low sines (kicks) and noise bursts (hi-hats)
    beat = np.zeros(N_SAMPLES)
    for k in np.arange(0, 3.0, 0.5):
        m = t >= k
        beat += m * np.exp(-(t - k) * 25) * np.sin(2 * np.pi * 60 * (t - k))
    for k in np.arange(0.25, 3.0, 0.25):
        m = (t >= k) & (t < k + 0.05)
        beat[m] += 0.3 * rng.standard_normal(m.sum()) * np.exp(-(t[m] - k) * 80)
    beat = 0.5 * beat / np.abs(beat).max()

    # 3. a log chirp over coloured noise
    phase = 2 * np.pi * 100 * 3.0 / np.log(60) * (np.exp(np.log(60) * t / 3.0) - 1)
    noise = np.convolve(rng.standard_normal(N_SAMPLES), np.ones(8) / 8, mode="same")
    chirp = 0.3 * np.sin(phase) + 0.2 * noise

    # 4. a short clip (1.3 s): a vibrato tone plus noise
    ts = np.arange(int(1.3 * SR)) / SR
    short = 0.3 * np.sin(2 * np.pi * 523.25 * ts + 3 * np.sin(2 * np.pi * 5 * ts))
    short += 0.02 * rng.standard_normal(len(ts))

    full = np.stack([tones, beat, chirp])
    q = lambda x: np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)  # noqa: E731
    return q(full), q(short)


def _log_mel(audio: np.ndarray) -> np.ndarray:
    """musicnn's batch_data front end on one window, first 187 frames."""
    rep = librosa.feature.melspectrogram(
        y=audio, sr=config.SR, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE,
        n_mels=config.N_MELS, pad_mode="reflect",
    ).T
    rep = rep.astype(np.float16).astype(np.float32)
    rep = np.log10(10000 * rep + 1)
    return rep[:N_FRAMES]


def _run_graph(model: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The original graph code, restored from the wheel's checkpoint."""
    pkg = Path(importlib.util.find_spec("musicnn").submodule_search_locations[0])
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        y, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate = models.define_model(
            x, is_training, model, 50
        )
        probs = tf.nn.sigmoid(y)
    with tf.compat.v1.Session() as sess:
        # No try/except here (the original swallows restore errors).
        tf.compat.v1.train.Saver().restore(sess, str(pkg / model) + "/")
        p, pen, lg, mp, xp = sess.run(
            [probs, penultimate, y, mean_pool, max_pool], feed_dict={x: batch, is_training: False}
        )
    return {"tags": p, "penultimate": pen, "logits": lg, "mean_pool": mp, "max_pool": xp}


def main() -> None:
    full_i16, short_i16 = _signals()
    short_padded = np.resize(short_i16, N_SAMPLES)  # repeat-pad: tile and cut
    audio_i16 = np.concatenate([full_i16, short_padded[None]], axis=0)
    audio = audio_i16.astype(np.float32) / 32768.0
    mel = np.stack([_log_mel(a) for a in audio]).astype(np.float32)

    out: dict[str, np.ndarray] = {
        "audio_i16": full_i16,
        "short_i16": short_i16,
        "mel": mel,
        "versions": np.array(
            [f"tensorflow {tf.__version__}", f"librosa {librosa.__version__}", f"numpy {np.__version__}"]
        ),
    }
    for model, prefix in (("MSD_musicnn", "msd"), ("MTT_musicnn", "mtt")):
        res = _run_graph(model, mel)
        out[f"{prefix}_tags"] = res["tags"].astype(np.float32)
        out[f"{prefix}_penultimate"] = res["penultimate"].astype(np.float32)
        out[f"{prefix}_logits"] = res["logits"].astype(np.float32)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    for k, v in out.items():
        print(f"  {k}: {v.shape} {v.dtype}")


if __name__ == "__main__":
    main()
