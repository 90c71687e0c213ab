"""Find, verify and cache the aisfx weights.

The weights ship only inside the ``aisfx==0.1.2`` wheel (``aisfx/models/checkpoint.pth``, CC BY 4.0), and the
wheel cannot be a normal dependency (it pins numpy 1.23 and librosa 0.9.2). Setup installs it with
``--no-deps``; we never import it, we only locate its file. The checkpoint is a pickled (state_dict,
dataset dict) pair: it is read with ``torch.load(weights_only=True)`` (numpy's scalar types on the safe-globals
list, since the dataset dict holds ``np.int64`` values), its 40 embedding-network tensors are kept (the nine
per-dataset classifier heads and the batch counters are not needed for embeddings), and written once to a
safetensors file in the user's cache directory, whose tensors carry a checksum.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from ...errors import ModelError
from ..musicnn.weights import _file_sha256, _write_atomic, cache_root, tensor_digest

__all__ = ["INSTALL_COMMAND", "SOURCE_SHA256", "TENSOR_SHA256", "locate_checkpoint", "load_weights", "cache_path",
           "read_checkpoint"]

log = logging.getLogger("soundalike")

INSTALL_COMMAND = "pip install --no-deps aisfx==0.1.2"
ENV_WEIGHTS = "SOUNDALIKE_AISFX_CHECKPOINT"
#: sha256 of ``aisfx/models/checkpoint.pth`` in the aisfx 0.1.2 wheel
SOURCE_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
#: ``tensor_digest`` of the 40 embedding-network tensors (filled in from the wheel; see tests/test_aisfx.py)
TENSOR_SHA256 = "bb9ac4f84c56b96b53ecce9ddb61fbc6f2cfc822126bec2175895e66f62d639d"
_CACHE_FORMAT = "1"


def locate_checkpoint(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$SOUNDALIKE_AISFX_CHECKPOINT``, else the installed aisfx package's checkpoint (found
    without importing the package)."""
    path = path or os.environ.get(ENV_WEIGHTS) or None
    if path is not None:
        return Path(path)
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"aisfx weights not found (package 'aisfx' is not installed); "
                         f"install them with: {INSTALL_COMMAND}")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"


def cache_path(*, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return cache_root(cache_dir) / "aisfx" / f"aisfx-0.1.2-{TENSOR_SHA256[:16]}.safetensors"


def read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The embedding-network tensors of an aisfx checkpoint, by their names without ``embedding_net.``."""
    import torch

    try:  # the dataset dict's np.int64 values: numpy 2 pickles them through numpy._core
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    # the pickle names numpy.core.multiarray.scalar (the numpy 1 path), hence the (object, name) form
    safe = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))]
    try:
        with torch.serialization.safe_globals(safe):
            state, _datasets = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch raise many types for a damaged file
        raise ModelError(f"aisfx checkpoint {path} cannot be read ({exc.__class__.__name__}: {str(exc)[:200]}); "
                         f"reinstall with: {INSTALL_COMMAND} --force-reinstall") from None
    prefix = "embedding_net."
    return {k[len(prefix):]: v.numpy().copy() for k, v in state.items()
            if k.startswith(prefix) and not k.endswith("num_batches_tracked")}


def _convert(checkpoint: str | os.PathLike[str] | None) -> dict[str, np.ndarray]:
    path = locate_checkpoint(checkpoint)
    if not path.is_file():
        raise ModelError(f"aisfx weights not found ({path} is missing); install them with: {INSTALL_COMMAND}")
    actual = _file_sha256(path)
    if actual != SOURCE_SHA256:
        raise ModelError(f"aisfx checkpoint {path} has sha256 {actual}, expected {SOURCE_SHA256} (damaged or a "
                         f"different version); reinstall with: {INSTALL_COMMAND} --force-reinstall")
    tensors = read_checkpoint(path)
    digest = tensor_digest(tensors)
    if digest != TENSOR_SHA256:
        raise ModelError(f"aisfx checkpoint {path}: converted tensors have sha256 {digest}, expected {TENSOR_SHA256}")
    return tensors


def load_weights(*, checkpoint: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The verified embedding-network tensors: from the safetensors cache if it verifies, else converted from
    the checkpoint (and cached; a cache that cannot be written is logged, not fatal)."""
    from safetensors.numpy import load_file, save

    path = cache_path(cache_dir=cache_dir)
    if path.is_file():
        try:
            tensors = load_file(str(path))
            if tensor_digest(tensors) == TENSOR_SHA256:
                return tensors
            log.warning("aisfx: cache file %s fails its checksum; converting again", path)
        except Exception as exc:  # safetensors raises its own error types for damaged files
            log.warning("aisfx: cache file %s is unreadable (%s); converting again", path, exc)
    tensors = _convert(checkpoint)
    try:
        _write_atomic(path, save(tensors, metadata={"format": _CACHE_FORMAT, "source": "aisfx==0.1.2 checkpoint.pth",
                                                    "sha256": TENSOR_SHA256}))
        log.info("aisfx: converted the weights to %s", path)
    except OSError as exc:
        log.warning("aisfx: cannot write weight cache %s (%s); converting on every load", path, exc)
    return tensors
