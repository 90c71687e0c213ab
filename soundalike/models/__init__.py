"""Model adapters behind the one ``Embedder`` interface, found by name."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UserError
from .base import Embedder

__all__ = ["Embedder", "register_model", "load_model", "model_names", "DEFAULT_MODEL"]

DEFAULT_MODEL = "musicnn"

_FACTORIES: dict[str, Callable[[], Embedder]] = {}
_LOADED: dict[str, Embedder] = {}


def _musicnn() -> Embedder:
    from .musicnn import Musicnn

    return Musicnn()


def register_model(name: str, factory: Callable[[], Embedder]) -> None:
    """Make ``factory`` available as ``name`` (tests register a fake model this way)."""
    _FACTORIES[name] = factory
    _LOADED.pop(name, None)


def model_names() -> list[str]:
    return sorted(_FACTORIES)


def load_model(name: str) -> Embedder:
    """Return the model called ``name``, loading it once per process."""
    if name not in _FACTORIES:
        raise UserError(f"model: unknown model {name!r}; available: {', '.join(model_names())}")
    if name not in _LOADED:
        _LOADED[name] = _FACTORIES[name]()
    return _LOADED[name]


register_model("musicnn", _musicnn)
