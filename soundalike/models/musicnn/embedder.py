"""``Musicnn``: the default embedder (musicnn MSD + MTT, ported to PyTorch).

One 3 s window at 16 kHz becomes one 187x96 log-mel patch (numpy, in the
decode workers), then one 200-d embedding and up to 100 tag probabilities
(torch). The embedding is the MSD model's penultimate layer, raw: the catalogue
averages raw vectors and normalises only the track mean. The MTT tagger is a
second network of the same shape; search queries that need no MTT tags can
skip it (``tags=("msd",)``) and run about twice as fast.

By default the networks run through ``FastMusicnn`` (fast.py): the same
weights with the front-end convolutions of MSD and MTT fused into shared
products (the timbral ones in a DFT basis over mel); ``fast=False`` runs the
readable reference port (net.py) instead. Both agree to float32 rounding.

Where CUDA is available (``device="auto"``, the default) the reference port
runs on the GPU instead, in batches of ``GPU_BATCH`` windows: cuDNN does the
convolutions well, and the CPU tricks of fast.py would only get in its way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch

from ...errors import UserError
from ...types import ModelOutput
from ..base import Embedder
from .frontend import LEVEL_DB, MAX_GAIN_DB, N_FRAMES, N_MELS, SR, MusicnnFrontEnd, log_mel
from .labels import LABELS
from .fast import TIMBRAL_METHODS, FastMusicnn
from .net import MusicnnNet
from .weights import MODELS, load_weights

__all__ = ["Musicnn", "MUSICNN_VERSION", "GPU_BATCH", "select_device"]

log = logging.getLogger("soundalike")

#: musicnn 0.1.0 weights, port revision 2. Bump the revision whenever the
#: front end or the network would change any output (not for speed-ups that
#: keep parity with tests/fixtures/musicnn_reference.npz).
#: port.2: every window is brought to LEVEL_DB before the log-mel (port.1 had no level step).
MUSICNN_VERSION = "0.1.0-port.2"

#: windows per batch on a GPU (the CPU default is 32)
GPU_BATCH = 128
DEVICES = ("auto", "cpu", "cuda")


def select_device(device: str | None = "auto") -> torch.device:
    """``"auto"``: CUDA where ``torch.cuda.is_available()``, else the CPU; or ``"cpu"`` / ``"cuda[:n]"``."""
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.split(":")[0] == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"musicnn: device {device!r} asked for, but this torch sees no CUDA GPU")
        return torch.device(name)
    raise UserError(f"musicnn: unknown device {device!r}; choose from {', '.join(DEVICES)}")


class Musicnn(Embedder):
    """musicnn (Pons & Serra, ISMIR 2019 LBD) MSD embeddings with MSD and MTT tags.

    Keyword-only options:

    * ``tags``: which taggers' probabilities to return, a subset of
      ``("msd", "mtt")``, always in that order. The MSD network always runs
      (it gives the embedding); leaving out "mtt" skips the second network.
    * ``weights_dir``: directory holding ``MSD_musicnn/`` and ``MTT_musicnn/``
      (default: ``$SOUNDALIKE_MUSICNN_DIR``, else the installed ``musicnn``
      package).
    * ``cache_dir``: where converted weights are kept (default:
      ``$SOUNDALIKE_CACHE``, else the user cache directory).
    * ``batch_size``: windows per ``embed_batch`` call in ``embed_windows``
      and per ingest chunk (default 32 on the CPU, ``GPU_BATCH`` on a GPU).
    * ``fast``: run the fused fast path (default) or the reference port.
    * ``timbral``: how the fast path runs the timbral convs, ``"dft"``
      (default: windows split over ``torch.get_num_threads()`` threads) or
      ``"im2col"`` (the previous fast path as it was, kept for benchmarks).
    * ``device``: ``"auto"`` (default: CUDA if available, else CPU),
      ``"cpu"`` or ``"cuda"``. On CUDA the reference port runs on the GPU.
    * ``level_db``: ``features`` brings every window to this RMS level
      (dBFS, default ``LEVEL_DB`` = -20; boosts capped at ``MAX_GAIN_DB``)
      before the log-mel, so that level changes do not change the embedding
      (docs/quality.md measures it). ``None`` gives musicnn's own front end
      (what the TensorFlow parity tests compare). Any other value changes
      ``version`` (``0.1.0-port.2+level=-26`` / ``+level=off``), so a library
      refuses to mix windows embedded at different levels.

    Raises ``ModelError`` if the weights are missing or fail their checksums.
    """

    model_id = "musicnn"
    version = MUSICNN_VERSION
    sample_rate = SR
    window_seconds = 3.0
    dim = 200

    def __init__(
        self,
        *,
        tags: Sequence[str] = ("msd", "mtt"),
        weights_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int | None = None,
        fast: bool = True,
        timbral: str = "dft",
        device: str | None = "auto",
        level_db: float | None = LEVEL_DB,
    ) -> None:
        if isinstance(tags, str):
            tags = (tags,)
        unknown = sorted(set(tags) - set(MODELS))
        if unknown:
            raise UserError(f"musicnn: unknown tagger(s) {unknown}; choose from {sorted(MODELS)}")
        if timbral not in TIMBRAL_METHODS:
            raise UserError(f"musicnn: timbral must be one of {', '.join(TIMBRAL_METHODS)}, got {timbral!r}")
        self.device = select_device(device)
        self.level_db = None if level_db is None else float(level_db)
        if self.level_db is not None and not -60.0 <= self.level_db <= 0.0:
            raise UserError(f"musicnn: level_db must be between -60 and 0 dBFS, got {level_db}")
        if self.level_db != LEVEL_DB:
            self.version = f"{MUSICNN_VERSION}+level={'off' if self.level_db is None else f'{self.level_db:g}'}"
        on_gpu = self.device.type == "cuda"
        if batch_size is None:
            batch_size = GPU_BATCH if on_gpu else 32
        if batch_size < 1:
            raise UserError(f"musicnn: batch_size must be at least 1, got {batch_size}")
        self.tags: tuple[str, ...] = tuple(k for k in MODELS if k in tags)
        self.tag_names = tuple(f"{k}:{name}" for k in self.tags for name in LABELS[k])
        self.batch_size = batch_size
        self._nets: dict[str, MusicnnNet] = {}
        for key in ("msd", *(k for k in self.tags if k != "msd")):
            self._nets[key] = MusicnnNet.from_tf(load_weights(key, weights_dir=weights_dir, cache_dir=cache_dir))
        self.fast = fast and not on_gpu
        if self.fast:
            # one fused front end for every network embed_batch runs (an MSD-only one for embed_only: _fast_msd)
            # "im2col" is the previous fast path as it was: whole batches with intra-op threads
            self._fast_opts = {"timbral": timbral, "parts": 1 if timbral == "im2col" else None}
            self._fast = FastMusicnn(list(self._nets.values()), **self._fast_opts)
        else:
            for net in self._nets.values():
                net.to(self.device)
        log.debug("musicnn: loaded networks %s on %s (%s)", list(self._nets), self.device, "fast path" if self.fast else "reference port")

    @cached_property
    def _fast_msd(self) -> FastMusicnn:
        """The MSD network's fast path alone, for ``embed_only`` (queries): built on first use, so that
        indexing, which never calls it, does not pay for folding the MSD filters a second time."""
        if len(self._nets) == 1:
            return self._fast
        return FastMusicnn([self._nets["msd"]], **self._fast_opts)

    def features(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(n, 48000) float32 audio at 16 kHz -> (n, 187, 96) float32 log-mel.

        Rows (or clips in a list) shorter than 3 s are repeat-padded; each
        window is brought to ``level_db`` first (unless it is ``None``).
        """
        return log_mel(windows, level_db=self.level_db, max_gain_db=MAX_GAIN_DB)

    def front_end(self) -> Embedder:
        """The log-mel alone (no weights, no torch): what a Ray run's decode tasks load."""
        return MusicnnFrontEnd(version=self.version, tag_names=self.tag_names, batch_size=self.batch_size,
                               level_db=self.level_db)

    def _tensor(self, features: np.ndarray) -> torch.Tensor:
        feats = np.asarray(features)
        if feats.ndim != 3 or feats.shape[1:] != (N_FRAMES, N_MELS):
            raise UserError(f"musicnn: expected features of shape (n, {N_FRAMES}, {N_MELS}), got {feats.shape}")
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))

    def embed_batch(self, features: np.ndarray) -> ModelOutput:
        """(n, 187, 96) log-mel -> embeddings (n, 200) and tags (n, len(tag_names)), float32."""
        x = self._tensor(features)
        n = x.shape[0]
        if n == 0:
            return ModelOutput(np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.tag_names)), np.float32))
        with torch.inference_mode():
            if self.fast:
                outs = dict(zip(self._nets, self._fast(x)))
            else:
                x = x.to(self.device)
                outs = {k: net(x) for k, net in self._nets.items()}
            # in float64, then rounded: torch's float32 sigmoid runs its vector loop and a scalar tail, so an
            # element's last bit would depend on its place in the batch (how many windows shared it)
            probs = {k: torch.sigmoid(outs[k][0].double()).float().cpu().numpy() for k in self.tags}
            embeddings = outs["msd"][1].cpu().numpy()
        tags = np.concatenate([probs[k] for k in self.tags], axis=1) if self.tags else np.zeros((n, 0), np.float32)
        return ModelOutput(embeddings.astype(np.float32, copy=False), tags.astype(np.float32, copy=False))

    def embed_only(self, features: np.ndarray) -> np.ndarray:
        """(n, 187, 96) log-mel -> (n, 200) float32 MSD embeddings; runs neither MTT nor a tag head."""
        x = self._tensor(features)
        if x.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            if self.fast:
                pen = self._fast_msd.penultimate(x)
            else:
                pen = self._nets["msd"](x.to(self.device))[1]
        return pen.cpu().numpy().astype(np.float32, copy=False)

