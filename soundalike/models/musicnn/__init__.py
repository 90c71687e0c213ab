"""musicnn (Pons & Serra), the default model: a numpy front end and a PyTorch port.

Modules, in pipeline order:

* ``frontend``: audio windows -> musicnn's log-mel patches (numpy);
* ``tfbundle``: a reader for the TF1 checkpoints in the ``musicnn`` wheel;
* ``weights``: locate, verify (sha256) and cache the weights as safetensors;
* ``net``: the network in torch, layer for layer as the original;
* ``embedder``: ``Musicnn``, the ``Embedder`` the rest of soundalike uses;
* ``labels``: the MSD and MTT tag lists, as data.

Nothing here imports the ``musicnn`` package itself: it would import TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .labels import MSD_LABELS, MTT_LABELS
from .weights import INSTALL_COMMAND

if TYPE_CHECKING:
    from .embedder import MUSICNN_VERSION, Musicnn

__all__ = ["Musicnn", "MUSICNN_VERSION", "MSD_LABELS", "MTT_LABELS", "INSTALL_COMMAND"]


def __getattr__(name: str):
    """``Musicnn`` and ``MUSICNN_VERSION`` on first use: they import torch, which the front end alone
    (``frontend.MusicnnFrontEnd``, what a Ray run's decode tasks load) does without."""
    if name in ("Musicnn", "MUSICNN_VERSION"):
        from . import embedder

        return getattr(embedder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
