"""Test doubles. ``FakeModel`` is a deterministic stand-in for a real network.

It is used where a test is about indexing or search mechanics rather than the
model, to keep those tests fast. It is a real function of the audio (pooled
log-spectrum statistics through a fixed random projection), so that different
sounds get different vectors and the same sound the same vector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundalike.models.base import Embedder
from soundalike.types import ModelOutput


class FakeModel(Embedder):
    model_id = "fake"
    version = "1"
    sample_rate = 8000
    window_seconds = 2.0
    dim = 48
    tag_names = ("fake:low", "fake:mid", "fake:high")
    batch_size = 16

    def __init__(self) -> None:
        rng = np.random.default_rng(1234)
        self.proj = rng.standard_normal((64, self.dim)).astype(np.float32)
        self.calls = 0

    def features(self, windows: np.ndarray) -> np.ndarray:
        n = windows.shape[0]
        frames = windows[:, : windows.shape[1] // 256 * 256].reshape(n, -1, 256)
        spec = np.abs(np.fft.rfft(frames * np.hanning(256), axis=-1))[..., :128]
        bands = np.log1p(spec.reshape(n, frames.shape[1], 32, 4).sum(-1))
        return np.concatenate([bands.mean(1), bands.std(1)], axis=1).astype(np.float32)

    def embed_batch(self, features: np.ndarray) -> ModelOutput:
        self.calls += len(features)
        centred = features - features.mean(axis=1, keepdims=True)
        # row by row: a batched matrix product rounds a row differently by the rows beside it (BLAS blocking), and
        # a window's vector must not depend on its batch (a resumed or Ray run batches differently)
        emb = np.tanh(np.stack([row @ self.proj for row in centred]) / 4.0).astype(np.float32)
        thirds = np.array_split(features[:, :32], 3, axis=1)
        energy = np.stack([t.mean(1) for t in thirds], axis=1)
        tags = 1 / (1 + np.exp(-(energy - energy.mean(1, keepdims=True))))
        return ModelOutput(emb, tags.astype(np.float32))


def fake_library(root: Path, tracks: dict[int, np.ndarray], sample_rate: int, *, model: Embedder | None = None):
    """``tracks`` (seed -> samples) encoded as ``root/music/t{seed}.flac`` and indexed into ``root/lib``
    with ``model`` (a new FakeModel by default) at a 2 s hop; the open library."""
    import soundalike
    from soundalike.synth import encode

    (root / "music").mkdir(exist_ok=True)
    for seed, x in tracks.items():
        encode(x, sample_rate, root / "music" / f"t{seed}.flac")
    lib = soundalike.open(root / "lib", model=model or FakeModel(), hop=2.0)
    assert list(lib.index([root / "music"]))[-1].event == "done"
    return lib


class SlowFakeModel(FakeModel):
    """FakeModel whose network takes ``delay`` seconds a call: a run long enough to be killed midway."""

    def __init__(self, delay: float = 0.4) -> None:
        super().__init__()
        self.delay = delay

    def embed_batch(self, features: np.ndarray):
        import time

        time.sleep(self.delay)
        return super().embed_batch(features)
