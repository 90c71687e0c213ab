"""The server's access to one library, shared by every request.

Concurrency design:

- Blocking work (decoding, the network, SQLite, the vector index) runs in a
  bounded thread pool (``Engine.run``), never on the event loop.
- SQLite connections are not shared between threads: each pool thread gets
  its own ``Library`` (so its own catalogue connection and its own cached
  segment table), created on first use and kept for the thread's life.
- The model is loaded once per process and shared by every thread (torch
  inference in ``inference_mode`` holds no per-call state in the module).
- The vector index is opened once and shared: ``FolderStore`` guards every
  call with its own lock and reloads when another process (an indexer)
  publishes a new generation, so searches see new tracks without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..library import Library
from ..models import Embedder, load_model

log = logging.getLogger("soundalike.serve")
_SIDE_LOCK = threading.Lock()


class _ThreadLibrary(Library):
    """A ``Library`` for one pool thread: its own catalogue connection, the engine's model and store."""

    def __init__(self, path: Path, *, model: Embedder, store, side_stores: dict | None = None) -> None:
        super().__init__(path, model=model, create=False)
        self._shared_store = store
        if side_stores is not None:  # the sound-effect model's store (kinds.py), shared like the main one
            self._side_stores = side_stores

    @property
    def store(self):
        return self._shared_store

    def store_of(self, model_id: str):
        with _SIDE_LOCK:  # opened once for every thread
            return super().store_of(model_id)

    def close(self) -> None:  # the shared stores belong to the engine
        self.catalog.close()


class Engine:
    """One library, a model loaded once, a thread pool, per-thread catalogue connections."""

    def __init__(self, library: str | os.PathLike, *, model: Embedder | str | None = None, threads: int = 4) -> None:
        # Opening the library here validates the folder: a missing library fails at startup, not per request.
        main = Library(library, model=model, create=False)
        try:
            self.path = main.path
            self._model_name = main._model_name
            self._store_args = main.store_args()
            recorded = main.catalog.get_meta("dim")
        finally:
            main.catalog.close()
        self._recorded_dim = int(recorded) if recorded else None
        self._model: Embedder | None = model if isinstance(model, Embedder) else None
        self._model_lock = threading.Lock()
        self._store = None
        self._store_lock = threading.Lock()
        self._local = threading.local()
        self._libraries: list[Library] = []
        self._libraries_lock = threading.Lock()
        self._side_stores: dict = {}  # model id -> store, for a library of music and sound effects (kinds.py)
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="soundalike-serve")
        self.started = time.time()
        self.waveforms: _LRU = _LRU(256)
        self.text_warm_up: threading.Thread | None = None  # loads MiniLM in the background (warm_up)

    # -- shared parts ----------------------------------------------------------
    @property
    def model(self) -> Embedder:
        """The model, loaded on first use (once per process)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    t0 = time.perf_counter()
                    self._model = load_model(self._model_name)
                    log.info("loaded model %s in %.1f s", self._model_name, time.perf_counter() - t0)
        return self._model

    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    @property
    def text_model_loaded(self) -> bool:
        """Whether MiniLM is loaded (``warm_up`` starts loading it): a text search does not wait for it."""
        from ..text import text_model_loaded

        return text_model_loaded()

    @property
    def store(self):
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    from ..stores import open_store

                    kind, folder, options = self._store_args
                    self._store = open_store(kind, folder, self._recorded_dim or self.model.dim, **options)
        return self._store

    def library(self) -> Library:
        """This thread's ``Library`` (call only from the pool, through ``run``)."""
        lib = getattr(self._local, "library", None)
        if lib is None:
            lib = _ThreadLibrary(self.path, model=self.model, store=self.store, side_stores=self._side_stores)
            self._local.library = lib
            with self._libraries_lock:
                self._libraries.append(lib)
        return lib

    # -- running blocking work ---------------------------------------------------
    async def run(self, fn, *args, **kwargs):
        """Run ``fn(library, *args, **kwargs)`` in the pool with this thread's library."""
        loop = asyncio.get_running_loop()

        def call():
            return fn(self.library(), *args, **kwargs)

        return await loop.run_in_executor(self.executor, call)

    def warm_up(self) -> None:
        """Load the model and open the index now, so that the first search is not slow; start loading the text
        model (MiniLM, several seconds) in a background thread, so that the first text search is not slow either
        and the server does not wait for it to start."""
        self.text_warm_up = threading.Thread(target=_load_text_model, name="soundalike-text-warm-up", daemon=True)
        self.text_warm_up.start()
        self.model
        self.store

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        with self._libraries_lock:
            for lib in self._libraries:
                lib.close()
            self._libraries.clear()
        if self._store is not None:
            self._store.close()
        for store in self._side_stores.values():
            store.close()


def _load_text_model() -> None:
    from ..errors import ModelError
    from ..text import load_text_model

    t0 = time.perf_counter()
    try:
        load_text_model()
    except ModelError as exc:  # text search will say so when asked; audio search is unaffected
        log.warning("text search unavailable: %s", exc)
    except Exception:  # noqa: BLE001 - a background thread: log, never crash the server
        log.exception("loading the text model failed")
    else:
        log.info("text model ready %.1f s after startup", time.perf_counter() - t0)


class _LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
