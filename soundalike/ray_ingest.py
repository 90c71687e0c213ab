"""Ingest on a Ray cluster: files are hashed, decoded and embedded on the cluster's nodes, the catalogue written here.

``soundalike index DIR -L LIB --ray ADDRESS`` runs ``Indexer.run`` with a ``RayExecutor``. The scan, the
decisions (which files are new, changed, moved or unchanged) and every catalogue and vector-store write stay
in this process, exactly as in a local run; what moves to the cluster is the work per file, as two Ray Data
stages:

1. **decode** (tasks, ``DECODE_CPUS`` each): ``ingest.file_events`` on one file, the same function a local
   run's worker threads call: hash, decode, windows, the model's front end (features; ``Embedder.front_end``,
   no weights), landmarks, scan print, descriptors. One row per file: its events, pickled.
2. **network** (actors, one model each, ``ACTOR_CPUS`` each, or one GPU each where the cluster has GPUs): the
   model's ``embed_batch`` over the chunks of a few files at a time, up to the model's batch size per call;
   each chunk's features are replaced by the network's output, as ``Indexer._embedded`` does locally.

The rows stream back as they finish and go through the same consumer loop as a local run's events, so the
catalogue gets the same rows (the model gives a window the same bits whatever its batch: musicnn's fast path
is batch-invariant), the same progress events, and the same resumability: every track is committed when it
arrives, and a run killed midway is picked up by the next one like a local run (the Ray job ends with the
process that started it).

Every node needs the same soundalike (and model weights) installed and the files at the same paths (a shared
or replicated file system). Ray is an extra: ``pip install 'soundalike[ray]'``, imported only here.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from .errors import ModelError, SoundalikeError, UserError
from .ingest import FileWork, file_events, new_stage_seconds
from .models.base import Embedder
from .types import ModelOutput

log = logging.getLogger("soundalike")

INSTALL = "pip install 'soundalike[ray]'"
#: logical CPUs of one model actor and of one decode task: each CPU of the cluster holds a model actor and up
#: to two decode tasks, as a local run's network and its two decode threads share the cores (docs/ray.md).
#: (Unequal, so that Ray Data keeps them two stages instead of fusing the decoding into the actors.)
ACTOR_CPUS = 0.5
DECODE_CPUS = 0.25
#: files per network call on an actor (their windows go through the model in batches of its batch_size): one,
#: so that each track streams back as soon as it is embedded (Ray Data waits for this many before a call)
FILES_PER_CALL = 1


def import_ray():
    """The ``ray`` module, or a UserError saying which install adds it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(f"--ray: Ray is not installed here; {INSTALL}") from None
    return ray


# -- the model on the workers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelRecipe:
    """How a worker gets the driver's model: the instance pickled, or (when it does not pickle: musicnn holds
    threads) the registered name, loaded there. ``model_id`` and ``version`` are checked on arrival."""

    model_id: str
    version: str
    name: str | None = None
    blob: bytes | None = None

    @classmethod
    def of(cls, model: Embedder) -> ModelRecipe:
        from ray import cloudpickle

        try:
            return cls(model.model_id, model.version, blob=cloudpickle.dumps(model))
        except Exception as exc:
            from .models import model_names

            if model.model_id not in model_names():
                raise UserError(f"--ray: model {model.model_id!r} can be neither pickled ({exc}) nor loaded by "
                                "name on the workers; register it with soundalike.models.register_model") from None
            return cls(model.model_id, model.version, name=model.model_id)

    @property
    def key(self) -> str:
        return hashlib.sha1(self.blob).hexdigest() if self.blob is not None else f"name:{self.name}"

    def build(self) -> Embedder:
        """The model, once per worker process."""
        with _MODELS_LOCK:
            model = _MODELS.get(self.key)
            if model is None:
                if self.blob is not None:
                    model = pickle.loads(self.blob)
                else:
                    from .models import load_model

                    model = load_model(self.name)
                if (model.model_id, model.version) != (self.model_id, self.version):
                    raise ModelError(
                        f"ray node {socket.gethostname()}: model {model.model_id} {model.version}, but the catalogue's "
                        f"process runs {self.model_id} {self.version}; install the same soundalike on every node")
                _MODELS[self.key] = model
            return model


_MODELS: dict[str, Embedder] = {}
_MODELS_LOCK = threading.Lock()


# -- the two stages ---------------------------------------------------------------------------------------

def _decode(row: dict, *, recipe: ModelRecipe, work: FileWork, missing_by_sha: dict) -> dict:
    """Stage 1, a Ray task: one file's events (chunks with their features), pickled with its stage seconds.
    ``recipe`` gives the model's front end (``Embedder.front_end``: musicnn's log-mel without its weights)."""
    from .blas import one_thread

    job = pickle.loads(row["job"])
    model = recipe.build()
    stage = new_stage_seconds()
    with one_thread():  # as a local run's worker threads (blas.py)
        events = list(file_events(job, model=model, work=work, missing_by_sha=dict(missing_by_sha), stage=stage))
    return {"out": pickle.dumps((events, stage), protocol=5)}


class _Network:
    """Stage 2, a Ray actor holding one model: the network over the chunks of a few files."""

    def __init__(self, recipe: ModelRecipe) -> None:
        self.model = recipe.build()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [pickle.loads(b) for b in batch["out"]]
        # (file, event) of every chunk with features, in order
        places = [(f, k) for f, (events, _) in enumerate(items) for k, e in enumerate(events)
                  if e[0] == "chunk" and e[3] is not None]
        t = time.perf_counter()
        i = 0
        while i < len(places):  # up to batch_size windows per call, as Indexer._embedded groups them
            group, n = [places[i]], len(self._feats(items, places[i]))
            i += 1
            while i < len(places) and n + len(self._feats(items, places[i])) <= self.model.batch_size:
                n += len(self._feats(items, places[i]))
                group.append(places[i])
                i += 1
            feats = [self._feats(items, at) for at in group]
            out = self.model.embed_batch(np.concatenate(feats) if len(feats) > 1 else feats[0])
            j = 0
            for (f, k), x in zip(group, feats):
                kind, job, light, _ = items[f][0][k]
                items[f][0][k] = (kind, job, light, ModelOutput(out.embeddings[j : j + len(x)], out.tags[j : j + len(x)]))
                j += len(x)
        if items:
            items[0][1]["network"] += time.perf_counter() - t
        return {"out": np.array([pickle.dumps(it, protocol=5) for it in items], dtype=object)}

    @staticmethod
    def _feats(items: list, at: tuple[int, int]) -> np.ndarray:
        f, k = at
        return items[f][0][k][3]


# -- the driver -------------------------------------------------------------------------------------------

class RayExecutor:
    """Runs an indexing run's per-file work on a Ray cluster (``Indexer.run(..., executor=...)``).

    ``address``: a Ray cluster (``host:port`` of its head, from a node of the cluster, or ``ray://host:10001``),
    or ``"auto"``: the cluster this machine belongs to (``RAY_ADDRESS``, or one ``ray start`` began here),
    else a new local Ray instance for the run. ``actors``: model actors (default: one per CPU of the
    cluster, or one per GPU where it has GPUs). ``startup_seconds`` is what connecting took.
    """

    def __init__(self, address: str, *, actors: int | None = None) -> None:
        if not address:
            raise UserError("--ray: give a Ray cluster's address (host:port, ray://host:port) or 'auto'")
        if actors is not None and actors < 1:
            raise UserError(f"--ray-actors: must be at least 1, got {actors}")
        self.address, self.actors = address, actors
        self.startup_seconds = 0.0
        self._ours = False  # this executor connected (and disconnects at the end)
        self._data_log: logging.Logger | None = None
        self._data_level = logging.NOTSET
        import_ray()  # a missing Ray or a wrong address is said before the run starts
        if address != "auto":
            _check_reachable(address)

    # -- connecting ------------------------------------------------------------
    def connect(self):
        """Join the cluster (unless this process already has), quietly: the library never prints."""
        ray = import_ray()
        if not ray.is_initialized():
            t = time.perf_counter()
            options = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
            if self.address == "auto":
                try:
                    ray.init(address="auto", **options)
                except ConnectionError:
                    log.info("no running Ray cluster found: starting a local Ray instance for this run")
                    ray.init(**options)
            else:
                try:
                    ray.init(address=self.address, **options)
                except Exception as exc:
                    raise UserError(f"--ray: cannot join the Ray cluster at {self.address}: {_first_line(exc)}") from None
            self._ours = True
            self.startup_seconds = time.perf_counter() - t
        # Ray Data logs each execution (and that its bars are off) to the console
        self._data_log = logging.getLogger("ray.data")
        self._data_level = self._data_log.level
        self._data_log.setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the CLI draws the progress
        ctx.enable_operator_progress_bars = False
        ctx.print_on_execution_start = False
        return ray

    def close(self) -> None:
        if self._data_log is not None:
            self._data_log.setLevel(self._data_level)
            self._data_log = None
        if self._ours:
            import ray

            ray.shutdown()  # ends the Ray job: its tasks and actors stop with it
            self._ours = False

    # -- a run --------------------------------------------------------------------
    def events(self, indexer, jobs: list, missing_by_sha: dict) -> Iterator[tuple]:
        """The events of ``jobs``, each ``chunk`` with its network output, as ``Indexer._embedded`` yields them.

        A file whose bytes match a missing (moved) file is reported as moved once; when two files match the
        same one, the second is decoded in a second pass, as a local run would decode it.
        """
        ray = self.connect()
        try:
            front, network = ModelRecipe.of(indexer.model.front_end()), ModelRecipe.of(indexer.model)
            pending, first = list(jobs), True
            while pending:
                retry = []
                for events, stage in self._rows(ray, front, network, indexer.work, pending,
                                                missing_by_sha if first else {}):
                    for key, seconds in stage.items():
                        indexer.stage[key] = indexer.stage.get(key, 0.0) + seconds
                    for event in events:
                        if event[0] == "moved" and missing_by_sha.pop(event[3].sha256, None) is None:
                            retry.append(event[1])  # another file took that row: this one is decoded
                            continue
                        yield event
                pending, first = retry, False
        finally:
            self.close()

    def _rows(self, ray, front: ModelRecipe, network: ModelRecipe, work: FileWork, jobs: list,
              missing_by_sha: dict) -> Iterator[tuple]:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = self.actors or (gpus or max(1, int(resources.get("CPU", 1))))
        resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": ACTOR_CPUS}
        rows = [{"job": pickle.dumps(job, protocol=5)} for job in jobs]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.map(_decode, fn_kwargs={"recipe": front, "work": work, "missing_by_sha": missing_by_sha},
                    num_cpus=DECODE_CPUS)
        ds = ds.map_batches(_Network, fn_constructor_kwargs={"recipe": network}, batch_size=FILES_PER_CALL,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                            **resources, **_no_restarts())
        try:
            for row in ds.iter_rows():
                yield pickle.loads(row["out"])
        except SoundalikeError:
            raise
        except Exception as exc:  # a task or an actor failed (a model that does not load on a node, a lost node)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SoundalikeError):
                raise cause from None
            raise ModelError(f"ray: the cluster's run failed: {_first_line(exc)}") from exc


def _no_restarts() -> dict:
    """``max_restarts=0`` for the model actors: a lost actor fails the run, which the next run resumes (with
    restarts, Ray warns on stderr that its constructor arguments might be gone). Passed as a remote argument,
    which Ray Data 2.60 accepts with a deprecation warning (kept quiet here)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated", module="soundalike.ray_ingest")
    return {"max_restarts": 0}


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line UserError unless something listens at the address's host and port."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise UserError(f"--ray: {address!r} is not a Ray address (host:port, ray://host:port or auto)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"--ray: cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[-1] if text.startswith("ray::") else text.splitlines()[0]
