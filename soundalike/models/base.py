"""The one interface every audio model implements.

An adapter declares what it needs (sample rate, window length) and what it
gives (embedding size, tag names), and implements two steps:

* ``features(windows)``: cheap numpy front end (for example a log-mel), run in
  the decode workers so that it overlaps with inference;
* ``embed_batch(features)``: the network, run in batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..types import ModelOutput


class Embedder(ABC):
    #: stable id stored with every vector, e.g. ``"musicnn"``
    model_id: str = ""
    #: bump when outputs change; a library records it and refuses to mix versions
    version: str = ""
    sample_rate: int = 16000
    window_seconds: float = 3.0
    dim: int = 0
    tag_names: tuple[str, ...] = ()
    batch_size: int = 32

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    def features(self, windows: np.ndarray) -> np.ndarray:
        """(n, window_samples) float32 -> model input. Default: identity."""
        return windows

    def front_end(self) -> Embedder:
        """What decoding needs of the model: ``features`` and the attributes, without the network. A Ray run
        sends it to the decode tasks on other machines, pickled. Default: the model itself; an adapter whose
        front end needs no weights returns a light object that pickles."""
        return self

    @abstractmethod
    def embed_batch(self, features: np.ndarray) -> ModelOutput:
        """Model input for n windows -> raw embeddings and tag probabilities."""

    def embed_only(self, features: np.ndarray) -> np.ndarray:
        """Embeddings without tags, for queries. Adapters override it when tags cost extra."""
        return self.embed_batch(features).embeddings

    def embed_windows(self, windows: np.ndarray) -> ModelOutput:
        """Convenience: front end and network, in batches of ``batch_size``."""
        outs = []
        for i in range(0, len(windows), self.batch_size):
            outs.append(self.embed_batch(self.features(windows[i : i + self.batch_size])))
        if not outs:
            return ModelOutput(np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.tag_names)), np.float32))
        return ModelOutput(
            np.concatenate([o.embeddings for o in outs]), np.concatenate([o.tags for o in outs])
        )
