"""Find, verify and cache the musicnn weights.

Why this shape: the weights ship only inside the ``musicnn==0.1.0`` wheel as
TF1 checkpoints, and that wheel cannot be a normal dependency (it pins
numpy<1.17 and TensorFlow). Setup installs it with ``--no-deps``; we never
import it, we only locate its files. The first load reads the 64 weight
tensors of a checkpoint (the other 86 are Adam slots) with our own
TensorBundle reader and writes them once to a safetensors file in the user's
cache directory; later loads read that file (a few ms).

Checksums are recorded here for the source files and for the converted
tensors, so that a different or damaged wheel, or a damaged cache file, is
detected rather than silently producing different vectors. A damaged cache
file is converted again; a damaged source is reported. The cache file is
written to a temporary name and renamed, so parallel processes never see a
half-written file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ...errors import ModelError
from .tfbundle import read_index, read_tensors

__all__ = [
    "INSTALL_COMMAND",
    "MODELS",
    "cache_root",
    "load_weights",
    "locate_checkpoints",
    "tensor_digest",
]

log = logging.getLogger("soundalike")

INSTALL_COMMAND = "pip install --no-deps musicnn==0.1.0"
#: short model key -> checkpoint directory inside the musicnn package
MODELS: dict[str, str] = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}
_INDEX, _DATA = ".index", ".data-00000-of-00001"

#: sha256 of the checkpoint files in the musicnn 0.1.0 wheel
SOURCE_SHA256: dict[str, dict[str, str]] = {
    "msd": {
        _INDEX: "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
        _DATA: "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
    },
    "mtt": {
        _INDEX: "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
        _DATA: "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
    },
}
#: ``tensor_digest`` of the 64 converted weight tensors
TENSOR_SHA256: dict[str, str] = {
    "msd": "5994c6a94c3d7977f35b00a2cae7ba2035691344966902f52e02ae6d66b6c268",
    "mtt": "f74ced32e4c6e5b876a70dd1cbe3318bfe2e1deabf3891fa071f4879f9fbe9e5",
}
#: bump when the cache file layout changes
_CACHE_FORMAT = "1"

ENV_WEIGHTS_DIR = "SOUNDALIKE_MUSICNN_DIR"
ENV_CACHE = "SOUNDALIKE_CACHE"


def _is_weight(name: str) -> bool:
    """True for the variables inference needs (layers), not optimiser state."""
    layer = name.split("/", 1)[0]
    return "/" in name and "Adam" not in name and layer.startswith(("conv2d", "batch_normalization", "dense"))


def tensor_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and little-endian bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def locate_checkpoints(weights_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding ``MSD_musicnn/`` and ``MTT_musicnn/``.

    Order: the ``weights_dir`` argument, then ``$SOUNDALIKE_MUSICNN_DIR``, then
    the installed ``musicnn`` package (found without importing it, because its
    ``__init__`` chain imports TensorFlow).
    """
    if weights_dir is None:
        weights_dir = os.environ.get(ENV_WEIGHTS_DIR) or None
    if weights_dir is not None:
        return Path(weights_dir)
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"musicnn weights not found (package 'musicnn' is not installed); install them with: {INSTALL_COMMAND}")
    return Path(list(spec.submodule_search_locations)[0])


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$SOUNDALIKE_CACHE``, else the platform's user cache dir."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    import platformdirs

    return Path(platformdirs.user_cache_dir("soundalike"))


def cache_path(model: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted weights of ``model`` live; the name carries the digest."""
    return cache_root(cache_dir) / "musicnn" / f"{MODELS[model]}-{TENSOR_SHA256[model][:16]}.safetensors"


def _convert(model: str, weights_dir: str | os.PathLike[str] | None) -> dict[str, np.ndarray]:
    """Read and verify the TF checkpoint of ``model``; raise ModelError naming the problem."""
    ckpt = locate_checkpoints(weights_dir) / MODELS[model]
    for suffix in (_INDEX, _DATA):
        if not (ckpt / suffix).is_file():
            raise ModelError(
                f"musicnn weights not found ({ckpt / suffix} is missing); install them with: {INSTALL_COMMAND}"
            )
    for suffix, expected in SOURCE_SHA256[model].items():
        actual = _file_sha256(ckpt / suffix)
        if actual != expected:
            raise ModelError(
                f"musicnn checkpoint {ckpt / suffix} has sha256 {actual}, expected {expected} "
                f"(damaged or a different version); reinstall with: {INSTALL_COMMAND} --force-reinstall"
            )
    prefix = str(ckpt) + os.sep  # musicnn's files are named ".index", ".data-..."
    names = sorted(n for n in read_index(Path(prefix + _INDEX)) if _is_weight(n))
    tensors = read_tensors(prefix, names)
    digest = tensor_digest(tensors)
    if digest != TENSOR_SHA256[model]:
        raise ModelError(
            f"musicnn checkpoint {ckpt}: converted tensors have sha256 {digest}, expected {TENSOR_SHA256[model]}"
        )
    return tensors


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _read_cache(path: Path, model: str) -> dict[str, np.ndarray] | None:
    """The cached tensors if the file exists and verifies; None otherwise (logged)."""
    from safetensors.numpy import load_file

    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        log.warning("musicnn: cache file %s is unreadable (%s); converting again", path, exc)
        return None
    digest = tensor_digest(tensors)
    if digest != TENSOR_SHA256[model]:
        log.warning("musicnn: cache file %s has checksum %s, expected %s; converting again", path, digest[:16], TENSOR_SHA256[model][:16])
        return None
    return tensors


def load_weights(
    model: str,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """The verified weight tensors of ``model`` ("msd" or "mtt"), by TF variable name.

    Reads the safetensors cache if it verifies, else converts the checkpoint
    and writes the cache. If the cache cannot be written (read-only home), the
    converted tensors are still returned and a warning is logged.
    """
    from safetensors.numpy import save

    if model not in MODELS:
        raise ModelError(f"musicnn: unknown model {model!r}; expected one of {sorted(MODELS)}")
    path = cache_path(model, cache_dir=cache_dir)
    tensors = _read_cache(path, model)
    if tensors is not None:
        return tensors
    tensors = _convert(model, weights_dir)
    metadata = {"format": _CACHE_FORMAT, "source": f"musicnn==0.1.0 {MODELS[model]}", "sha256": TENSOR_SHA256[model]}
    try:
        _write_atomic(path, save(tensors, metadata=metadata))
        log.info("musicnn: converted %s weights to %s", MODELS[model], path)
    except OSError as exc:
        log.warning("musicnn: cannot write weight cache %s (%s); converting on every load", path, exc)
    return tensors
