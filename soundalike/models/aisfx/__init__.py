"""aisfx (A. B. Ma & A. Lerch, ISMIR 2022), the sound-effects model: a numpy front end and a PyTorch port.

Modules, in pipeline order: ``frontend`` (audio windows -> Essentia-equal log-mel blocks, numpy), ``weights``
(locate the checkpoint in the ``aisfx`` wheel, verify it, cache it as safetensors), ``net`` (the network, the
reference port and the fast path), ``embedder`` (``Aisfx``, the ``Embedder``).

Nothing here imports the ``aisfx`` package itself (its pins are old and it would import librosa 0.9 and tqdm);
the weights are CC BY 4.0: see docs/models.md for the credit.
"""

from __future__ import annotations

from .embedder import AISFX_VERSION, Aisfx
from .weights import INSTALL_COMMAND

__all__ = ["Aisfx", "AISFX_VERSION", "INSTALL_COMMAND"]
