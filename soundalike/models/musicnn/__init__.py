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

from .embedder import MUSICNN_VERSION, Musicnn
from .labels import MSD_LABELS, MTT_LABELS
from .weights import INSTALL_COMMAND

__all__ = ["Musicnn", "MUSICNN_VERSION", "MSD_LABELS", "MTT_LABELS", "INSTALL_COMMAND"]
