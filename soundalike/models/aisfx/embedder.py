"""``Aisfx``: the sound-effects embedder (aisfx, Ma & Lerch, ISMIR 2022), loaded with our own code.

One 2.345 s window at 44.1 kHz (100 frames of 2048 samples, hop 1024) becomes one 100x96 log-mel block
(numpy, frontend.py, in the decode workers), then one 512-d embedding (torch, net.py). The model was trained
on sound-effect libraries' categories (nine of them, cross-dataset); the checkpoint carries no category names,
so it gives no tags. The embedding is raw (not normalised), as the catalogue expects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

from ...errors import UserError
from ...types import ModelOutput
from ..base import Embedder
from .frontend import N_FRAMES, N_MELS, N_SAMPLES, SR, log_mel
from .net import AisfxNet, FastAisfxNet
from .weights import load_weights

__all__ = ["Aisfx", "AISFX_VERSION"]

log = logging.getLogger("soundalike")

#: aisfx 0.1.2 weights, port revision 1. Bump the revision whenever the front end or the network would change
#: any output.
AISFX_VERSION = "0.1.2-port.1"


class Aisfx(Embedder):
    """aisfx's X-Sequential-CE embedding network: 512-d per 2.32 s block, for sound effects.

    Keyword-only options: ``checkpoint`` (the ``checkpoint.pth`` file; default ``$SOUNDALIKE_AISFX_CHECKPOINT``,
    else the installed ``aisfx`` package's), ``cache_dir`` (where the converted weights are kept),
    ``batch_size`` (windows per ``embed_batch`` call, default 32), ``fast`` (the folded fast path, default, or
    the reference port). Raises ``ModelError`` if the weights are missing or fail their checksums.
    """

    model_id = "aisfx"
    version = AISFX_VERSION
    sample_rate = SR
    window_seconds = N_SAMPLES / SR
    dim = 512
    tag_names: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 32,
        fast: bool = True,
    ) -> None:
        if batch_size < 1:
            raise UserError(f"aisfx: batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.net = AisfxNet.from_tensors(load_weights(checkpoint=checkpoint, cache_dir=cache_dir))
        self.fast = fast
        self._fast = FastAisfxNet(self.net) if fast else None

    def features(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(n, 103424) float32 audio at 44.1 kHz -> (n, 100, 96) float32 normalised log-mel; shorter rows or
        clips are repeat-padded."""
        return log_mel(windows)

    def embed_only(self, features: np.ndarray) -> np.ndarray:
        feats = np.asarray(features)
        if feats.ndim != 3 or feats.shape[1:] != (N_FRAMES, N_MELS):
            raise UserError(f"aisfx: expected features of shape (n, {N_FRAMES}, {N_MELS}), got {feats.shape}")
        if len(feats) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        with torch.inference_mode():
            out = self._fast(x) if self.fast else self.net(x)
        return out.numpy().astype(np.float32, copy=False)

    def embed_batch(self, features: np.ndarray) -> ModelOutput:
        """(n, 100, 96) -> embeddings (n, 512) and an empty (n, 0) tag array (the checkpoint names no tags)."""
        emb = self.embed_only(features)
        return ModelOutput(emb, np.zeros((len(emb), 0), np.float32))
