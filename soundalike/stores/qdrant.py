"""A Qdrant server (or qdrant-client's local mode) as the vector store.

    open_store("qdrant", None, dim, url="http://host:6333", prefix="lib1")   a server
    open_store("qdrant", "/path/to/folder", dim)                            local mode, saved to a folder
    open_store("qdrant", None, dim)                                         local mode, in memory

Each library has two Qdrant collections, ``{prefix}_segments`` and
``{prefix}_tracks`` (cosine distance, one unnamed dense vector, the
catalogue row id as point id), so several libraries can share one server.

Filters: ``allowed`` becomes a ``HasIdCondition`` inside the query, so Qdrant
applies it while it searches (its planner scans the matching points exactly
when they are few, and walks its filterable HNSW graph otherwise). The ids
travel with the request: about 8 bytes each as JSON digits, 10,000 ids (a 10 %
filter at 100k) is about 70 KB per request batch, sent once per batch of
queries. When ``m`` allowed ids are at most ``exact_factor * sqrt(k * n)``
(the embedded store's rule), the query asks Qdrant for an exact search, so
selective filters give exact answers on a server too; qdrant-client's local
mode always searches exactly.

Options: ``quantization="int8"`` keeps an int8 copy of the vectors in RAM
(scalar quantisation) and rescores the candidates with the original vectors
(oversampling 2); ``hnsw_ef`` sets the search's ef (None: the server's
default); ``batch_size`` is the number of points per upsert request;
``retries`` and ``retry_wait`` how long an unreachable server is retried;
``api_key`` (default: the ``QDRANT_API_KEY`` environment variable); ``timeout``
seconds per request.

qdrant-client is an optional dependency: ``pip install 'soundalike[qdrant]'``.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from soundalike.errors import StoreError
from soundalike.stores.base import COLLECTIONS
from soundalike.stores.exact import REBUILD_HINT
from soundalike.stores.remote import RemoteStore, fill, redact

__all__ = ["QdrantStore"]

_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
QUERY_BATCH = 64  # queries per query_batch_points request


def _client_module():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError as exc:
        raise StoreError("the qdrant store needs qdrant-client: pip install 'soundalike[qdrant]'") from exc
    return qdrant_client, models


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


class QdrantStore(RemoteStore):
    """Segment and track vectors in two Qdrant collections."""

    name = "qdrant"
    kind = "qdrant"

    batch_size = 512
    exact_factor = 4.0

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        dim: int | None = None,
        *,
        url: str | None = None,
        prefix: str = "soundalike",
        quantization: str | None = None,
        hnsw_ef: int | None = None,
        batch_size: int | None = None,
        exact_factor: float | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int | None = None,
        retry_wait: float | None = None,
    ) -> None:
        super().__init__(retries=retries, retry_wait=retry_wait)
        qdrant_client, self._models = _client_module()
        if not _PREFIX.match(prefix):
            raise StoreError(f"qdrant prefix {prefix!r}: use letters, digits, '_' and '-' only")
        if quantization not in (None, "int8"):
            raise StoreError(f"qdrant quantization {quantization!r}: expected int8 or none")
        self.prefix = prefix
        self.quantization = quantization
        self.hnsw_ef = hnsw_ef
        if batch_size is not None:
            self.batch_size = max(1, int(batch_size))
        if exact_factor is not None:
            self.exact_factor = float(exact_factor)
        location = str(url) if url else (str(path) if path is not None else ":memory:")
        self.local = not is_url(location)
        self.where = redact(location) if not self.local else f"local mode {location}"
        self.location = location
        try:
            if not self.local:
                key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY") or None
                self._client = qdrant_client.QdrantClient(
                    url=location, api_key=key, timeout=int(timeout), check_compatibility=False
                )
            elif location == ":memory:":
                self._client = qdrant_client.QdrantClient(location=":memory:")
            else:
                os.makedirs(location, exist_ok=True)
                self._client = qdrant_client.QdrantClient(path=location)
        except (RuntimeError, ValueError, OSError) as exc:  # local mode: folder held by another client
            raise StoreError(f"cannot open the qdrant store ({self.where}): {exc}") from exc
        self.dim = self._setup(dim)

    def collection_name(self, collection: str) -> str:
        return f"{self.prefix}_{collection}"

    def _transient(self, exc: BaseException) -> bool:
        from qdrant_client.http.exceptions import ResponseHandlingException

        if isinstance(exc, (ResponseHandlingException, ConnectionError, TimeoutError)):
            return True
        try:
            import httpx

            if isinstance(exc, httpx.TransportError):
                return True
        except ImportError:  # pragma: no cover - httpx comes with qdrant-client
            pass
        return False

    def _client_error(self, exc: BaseException) -> bool:
        from qdrant_client.http.exceptions import ApiException

        if isinstance(exc, ApiException) or self._transient(exc):
            return True
        try:
            import grpc

            if isinstance(exc, grpc.RpcError):
                return True
        except ImportError:  # pragma: no cover - grpcio comes with qdrant-client
            pass
        # local mode reports a bad request (unknown collection, bad vector) as ValueError
        return self.local and isinstance(exc, (ValueError, RuntimeError))

    # collections

    def _setup(self, dim: int | None) -> int:
        client = self._client
        names = [self.collection_name(c) for c in COLLECTIONS]
        existing = {n for n in names if self.call("check collections", lambda n=n: client.collection_exists(n))}
        found = None
        for name in sorted(existing):
            info = self.call("read collection", lambda name=name: client.get_collection(name))
            size = info.config.params.vectors.size
            if dim is not None and size != dim:
                raise StoreError(
                    f"qdrant collection {name} ({self.where}) holds {size}-d vectors, not {dim}-d; {REBUILD_HINT}"
                )
            found = size
        dim = dim if dim is not None else found
        if dim is None or int(dim) <= 0:
            raise StoreError("a new vector store needs its dimension (dim)")
        for name in names:
            if name not in existing:
                self._create(name, int(dim))
        return int(dim)

    def _create(self, name: str, dim: int) -> None:
        m = self._models
        quant = None
        if self.quantization == "int8":
            quant = m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
        self.call(
            f"create collection {name}",
            lambda: self._client.create_collection(
                name, vectors_config=m.VectorParams(size=dim, distance=m.Distance.COSINE), quantization_config=quant
            ),
        )

    # VectorStore hooks

    def _upsert(self, collection: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        m, name = self._models, self.collection_name(collection)
        for i in range(0, len(ids), self.batch_size):
            j = i + self.batch_size
            batch = m.Batch(ids=ids[i:j].tolist(), vectors=vectors[i:j].tolist())
            self.call(f"upsert into {name}", lambda b=batch: self._client.upsert(name, points=b, wait=True))

    def _delete(self, collection: str, ids: np.ndarray) -> None:
        m, name = self._models, self.collection_name(collection)
        for i in range(0, len(ids), 10 * self.batch_size):
            sel = m.PointIdsList(points=ids[i : i + 10 * self.batch_size].tolist())
            self.call(f"delete from {name}", lambda s=sel: self._client.delete(name, points_selector=s, wait=True))

    def _count(self, collection: str) -> int:
        name = self.collection_name(collection)
        return int(self.call(f"count {name}", lambda: self._client.count(name, exact=True)).count)

    def _clear(self) -> None:
        for collection in COLLECTIONS:
            name = self.collection_name(collection)
            self.call(f"drop {name}", lambda name=name: self._client.delete_collection(name))
            self._create(name, self.dim)

    def _close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a client that lost its server
            pass

    def exact_for(self, collection: str, k: int, m: int) -> bool:
        """The planner: an exact search when ``m`` allowed ids are few for the collection's size."""
        if self.local:
            return False  # local mode is always exact
        n = int(
            self.call("count", lambda: self._client.count(self.collection_name(collection), exact=False)).count
        )
        return m <= self.exact_factor * math.sqrt(max(1, k) * max(1, n))

    def _search(self, collection: str, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        m, name = self._models, self.collection_name(collection)
        flt = None
        exact = False
        if allowed is not None:
            flt = m.Filter(must=[m.HasIdCondition(has_id=allowed.tolist())])
            exact = self.exact_for(collection, k, len(allowed))
        quant = None
        if self.quantization == "int8":
            quant = m.QuantizationSearchParams(rescore=True, oversampling=2.0)
        # local mode always searches exactly and warns about search parameters
        params = None if self.local else m.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact, quantization=quant)
        rows: list[list[tuple[int, float]]] = []
        for i in range(0, len(queries), QUERY_BATCH):
            requests = [
                m.QueryRequest(query=q.tolist(), filter=flt, limit=k, params=params, with_payload=False)
                for q in queries[i : i + QUERY_BATCH]
            ]
            answers = self.call(f"search {name}", lambda r=requests: self._client.query_batch_points(name, requests=r))
            rows.extend([(int(p.id), float(p.score)) for p in a.points] for a in answers)
        return fill(rows, k)
