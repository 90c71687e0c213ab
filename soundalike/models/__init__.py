"""Model adapters behind the one ``Embedder`` interface, found by name in one explicit registry.

A model is a ``ModelSpec``: its name, a factory that builds the ``Embedder`` (lazily: the heavy imports and the
weights load on first use), the kind of audio it is for (``"music"`` or ``"effect"``), and what a user needs to
know about it (a summary, its weights' licence and credit, the command that installs them). A third model is
one adapter package under ``soundalike/models/`` (``features`` + ``embed_batch``, see base.py) and one
``register_model`` line below; a library then chooses it by name (setting ``model`` for music, ``effect_model``
for sound effects: docs/models.md). Tests register a deterministic fake model the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UserError
from .base import Embedder

__all__ = ["Embedder", "ModelSpec", "KINDS", "register_model", "load_model", "model_names", "model_spec",
           "DEFAULT_MODEL", "DEFAULT_EFFECT_MODEL"]

DEFAULT_MODEL = "musicnn"
DEFAULT_EFFECT_MODEL = "aisfx"
#: the kinds of audio a library tells apart; each track is embedded by its kind's model
KINDS = ("music", "effect")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[[], Embedder]
    kind: str = "music"
    summary: str = ""
    licence: str = ""
    credit: str = ""
    install: str = ""


_SPECS: dict[str, ModelSpec] = {}
_LOADED: dict[str, Embedder] = {}


def register_model(name: str, factory: Callable[[], Embedder], *, kind: str = "music", summary: str = "",
                   licence: str = "", credit: str = "", install: str = "") -> ModelSpec:
    """Make ``factory`` available as ``name``, for audio of ``kind`` (tests register a fake model this way)."""
    if kind not in KINDS:
        raise UserError(f"model {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    spec = ModelSpec(name, factory, kind, summary, licence, credit, install)
    _SPECS[name] = spec
    _LOADED.pop(name, None)
    return spec


def model_names(kind: str | None = None) -> list[str]:
    """Registered model names, all or those for ``kind``."""
    return sorted(n for n, s in _SPECS.items() if kind is None or s.kind == kind)


def model_spec(name: str) -> ModelSpec:
    if name not in _SPECS:
        raise UserError(f"model: unknown model {name!r}; available: {', '.join(model_names())}")
    return _SPECS[name]


def load_model(name: str) -> Embedder:
    """Return the model called ``name``, loading it once per process."""
    spec = model_spec(name)
    if name not in _LOADED:
        _LOADED[name] = spec.factory()
    return _LOADED[name]


def _musicnn() -> Embedder:
    from .musicnn import Musicnn

    return Musicnn()


def _aisfx() -> Embedder:
    from .aisfx import Aisfx

    return Aisfx()


register_model(
    "musicnn", _musicnn, kind="music",
    summary="musicnn (Pons & Serra, 2019), MSD + MTT: 200-d per 3 s window at 16 kHz, 100 music tags",
    licence="ISC (code and weights)",
    credit="musicnn by Jordi Pons and Xavier Serra, https://github.com/jordipons/musicnn",
    install="pip install --no-deps musicnn==0.1.0",
)
register_model(
    "aisfx", _aisfx, kind="effect",
    summary="aisfx (A. B. Ma & A. Lerch, ISMIR 2022), X-Sequential-CE: 512-d per 2.32 s block at 44.1 kHz, trained on "
            "sound-effect library categories; no tags",
    licence="weights CC BY 4.0",
    credit="aisfx pre-trained model (c) 2022 A. B. Ma and A. Lerch, CC BY 4.0 "
           "(https://creativecommons.org/licenses/by/4.0/): Alison Bernice Ma and Alexander Lerch, "
           "\"Representation Learning for the Automatic Indexing of Sound Effects Libraries\", ISMIR 2022; "
           "https://github.com/alisonbma/aisfx. soundalike reads the weights unchanged and does not modify them",
    install="pip install --no-deps aisfx==0.1.2",
)
