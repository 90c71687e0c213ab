"""Clusters: the library grouped by sound, each group named, stored as a label field.

``find_clusters`` groups every track that has a track vector with k-means (scikit-learn) on the unit
track vectors. Unless ``k`` is given, the number of clusters is the one with the best silhouette (cosine)
among 2 to ``k_max``, each tried on a sample of at most ``ClusterOptions.sample`` tracks; the chosen k is
then fitted on every track. Clusters are numbered by size, largest first.

Each cluster is named by what sets it apart (``_name``):
- its distinctive tags: the model's tag probabilities (the track's mean over its segments, as stored in the
  catalogue; a tag both taggers have counts once, ``tags.tag_concepts``) whose mean in the cluster exceeds
  the library's mean by the most (at least ``min_lift``);
- the metadata where it concentrates: genre, artist, album, folder, or a user label field (not one that
  ``store_clusters`` wrote), whose most common
  value covers at least ``min_share`` of the cluster and at least ``min_concentration`` times its share of
  the library.

``store_clusters`` writes each track's cluster ("3: piano, ambient · Chopin") into a label field (default
``cluster``) through the labels table, so that filters, the library page and the map can use it
(``--where "cluster like '3:%'"``). It replaces the field on every track, and refuses a field that holds
values it did not write (a user's labels) unless told to replace them. What it wrote (names, sizes, tags,
metadata) is kept in the catalogue's meta table as ``clusters:<field>`` (``stored_clusters``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from dataclasses import field as _field
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from ..errors import UserError
from ..tags import tag_concepts

__all__ = ["ClusterOptions", "Cluster", "Clustering", "find_clusters", "store_clusters", "stored_clusters",
           "MAX_K", "DEFAULT_FIELD"]

MAX_K = 200
DEFAULT_FIELD = "cluster"
_META = "clusters:"


@dataclass(frozen=True)
class ClusterOptions:
    """Every tunable of the clustering and its names."""

    k_max: int = 40  # the most clusters tried when k is chosen from the data
    sample: int = 2000  # tracks the choice of k tries each k on (silhouette costs the square of it)
    n_init: int = 2  # k-means restarts of the final fit (the best kept)
    tags: int = 2  # distinctive tags in a name
    min_lift: float = 0.02  # a tag names a cluster when its mean probability there exceeds the library's by this
    min_share: float = 0.4  # metadata names a cluster when its most common value covers this share of it
    min_concentration: float = 1.5  # ... and at least this many times its share of the whole library


@dataclass
class Cluster:
    number: int  # 1 = the largest
    name: str  # "piano, ambient · Chopin"
    size: int
    tags: list[dict]  # [{"tag", "mean", "lift"}] best first
    metadata: list[dict]  # [{"field", "value", "share", "library_share"}] best first
    examples: list[int]  # the track ids nearest its centre
    cohesion: float  # the mean cosine of its tracks to their centre

    @property
    def label(self) -> str:
        """The value stored in the label field."""
        return f"{self.number}: {self.name}"


@dataclass
class Clustering:
    k: int
    chosen_by: str  # "silhouette" | "given"
    silhouette: float | None  # of the chosen k, on the sample (cosine)
    tried: dict[int, float]  # k -> silhouette, when chosen from the data
    clusters: list[Cluster]
    assignments: dict[int, int]  # track id -> cluster number
    tracks: int
    field: str | None = None  # where it was stored (None: not stored)
    stored: int = 0  # label values written
    elapsed_ms: float = 0.0
    options: dict = _field(default_factory=dict)

    def to_dict(self, *, assignments: bool = True) -> dict:
        d = asdict(self)
        for c, src in zip(d["clusters"], self.clusters):
            c["label"] = src.label
        d["tried"] = {str(k): v for k, v in self.tried.items()}
        if assignments:
            d["assignments"] = [{"track_id": t, "cluster": c} for t, c in sorted(self.assignments.items())]
        else:
            del d["assignments"]
        return d


def _need_sklearn():
    try:
        import sklearn.cluster  # noqa: F401
        import sklearn.metrics  # noqa: F401
    except ImportError:
        raise UserError("clusters need the organise extra: pip install 'soundalike[organise]'") from None
    return sklearn


def _kmeans(x: np.ndarray, k: int, *, seed: int, n_init: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
    return km.labels_, km.cluster_centers_


def _grid(k_max: int) -> list[int]:
    """The ks tried first: every k to 6, then steps of about 15 % (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, ...)."""
    ks, k = [], 2
    while k <= k_max:
        ks.append(k)
        k = max(k + 1, round(k * 1.15))
    if ks and ks[-1] != k_max:
        ks.append(k_max)
    return ks


def _choose_k(x: np.ndarray, *, k_max: int, sample: int, seed: int) -> tuple[int, dict[int, float]]:
    """The k of the best silhouette (cosine, on the sampled tracks' vectors): k-means (one k-means++ start) on
    the sample's first 32 principal components, for each k of ``_grid``, then for the ks between the best
    one's neighbours on the grid."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    xs = x[np.sort(rng.choice(len(x), sample, replace=False))] if len(x) > sample else x
    xc = xs - xs.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    reduced = xc @ vt[: min(32, vt.shape[0])].T
    k_max = min(k_max, len(xs) - 1)
    tried: dict[int, float] = {}

    def score(k: int) -> None:
        if k in tried or not 2 <= k <= k_max:
            return
        labels, _ = _kmeans(reduced, k, seed=seed, n_init=1)
        if len(set(labels.tolist())) > 1:
            tried[k] = round(float(silhouette_score(xs, labels, metric="cosine")), 4)

    grid = _grid(k_max)
    for k in grid:
        score(k)
    if not tried:
        return 1, tried
    best = max(tried, key=lambda k: (tried[k], -k))
    i = grid.index(best)
    for k in range(grid[max(i - 1, 0)] + 1, grid[min(i + 1, len(grid) - 1)]):
        score(k)
    return max(tried, key=lambda k: (tried[k], -k)), dict(sorted(tried.items()))


def _check_options(k, options: ClusterOptions) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K):
        raise UserError(f"k: expected a whole number from 1 to {MAX_K}, got {k!r}")
    if not 2 <= options.k_max <= MAX_K:
        raise UserError(f"k_max: must be from 2 to {MAX_K}, got {options.k_max}")


def find_clusters(catalog: Catalog, *, k: int | None = None, seed: int = 0,
                  options: ClusterOptions = ClusterOptions()) -> Clustering:
    """Group every track with a vector into ``k`` clusters (chosen from the data when None) and name them;
    nothing is stored (``store_clusters``). See the module docstring."""
    t0 = time.perf_counter()
    _check_options(k, options)
    _need_sklearn()
    rows = catalog.db.execute("SELECT id, vector, tags FROM tracks WHERE vector IS NOT NULL ORDER BY id").fetchall()
    n = len(rows)
    if n < 2:
        raise UserError(f"clusters: the library has {n} {'track' if n == 1 else 'tracks'} with a vector; "
                        "at least 2 are needed (run `soundalike index FOLDER`)")
    if k is not None and k > n:
        raise UserError(f"k: the library has {n} tracks with a vector; ask for at most {n} clusters")
    if len({len(r[1]) for r in rows}) > 1:
        raise UserError(f"library {catalog.path.parent}: its tracks' vectors differ in size (embedded by two "
                        "models); run `soundalike index` to finish embedding them again, then cluster")
    ids = np.fromiter((r[0] for r in rows), np.int64, n)
    x = np.frombuffer(b"".join(r[1] for r in rows), np.float16).astype(np.float32).reshape(n, -1)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    tried: dict[int, float] = {}
    if k is None:
        k, tried = _choose_k(x, k_max=options.k_max, sample=options.sample, seed=seed)
        chosen_by = "silhouette"
    else:
        chosen_by = "given"
    if k == 1:
        labels, centres = np.zeros(n, np.int64), x.mean(axis=0, keepdims=True)
    else:
        labels, centres = _kmeans(x, int(k), seed=seed, n_init=options.n_init)
    # number by size, largest first (ties: the lower k-means label)
    sizes = np.bincount(labels, minlength=len(centres))
    order = sorted(range(len(centres)), key=lambda c: (-sizes[c], c))
    number = {c: i + 1 for i, c in enumerate(order)}
    tags = _tag_matrix(catalog, rows)
    meta = _metadata(catalog, ids)
    unit_centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    clusters = []
    for c in order:
        members = np.flatnonzero(labels == c)
        if not len(members):
            continue
        cos = x[members] @ unit_centres[c]
        examples = [int(ids[members[j]]) for j in np.argsort(-cos, kind="stable")[:3]]
        top_tags, top_meta = _describe(members, tags, meta, options)
        parts = [", ".join(t["tag"] for t in top_tags)] if top_tags else []
        if top_meta:
            parts.append(str(top_meta[0]["value"]))
        clusters.append(Cluster(number[c], " · ".join(parts) or f"cluster {number[c]}", len(members), top_tags,
                                top_meta, examples, round(float(cos.mean()), 4)))
    sil = tried.get(int(k)) if tried else None
    return Clustering(
        k=len(clusters), chosen_by=chosen_by, silhouette=sil, tried=tried, clusters=clusters,
        assignments={int(t): number[int(c)] for t, c in zip(ids, labels)}, tracks=n,
        elapsed_ms=round((time.perf_counter() - t0) * 1000, 1), options={"seed": seed, **asdict(options)})


def _tag_matrix(catalog: Catalog, rows) -> tuple[tuple[str, ...], np.ndarray] | None:
    """(tag names merged across models, (n, concepts) mean tag probabilities) of the rows; None without tags."""
    names = catalog.tag_names()
    if not names:
        return None
    concepts = tag_concepts(names)
    probs = np.full((len(rows), len(names)), np.nan, np.float32)
    for i, r in enumerate(rows):
        if r[2] is not None and len(r[2]) == 2 * len(names):
            probs[i] = np.frombuffer(r[2], np.float16).astype(np.float32)
    merged = np.stack([probs[:, list(cols)].mean(axis=1) for cols in concepts.columns], axis=1)
    return concepts.names, merged


def _metadata(catalog: Catalog, ids: np.ndarray) -> dict[str, list]:
    """field -> one value per track (None when it has none): genre, artist, album, folder and label fields."""
    by_id = {r.id: r for r in catalog.tracks([int(i) for i in ids])}
    out: dict[str, list] = {"genre": [], "artist": [], "album": [], "folder": []}
    labels = catalog.all_labels()
    ours = {k.removeprefix(_META) for (k,) in catalog.db.execute("SELECT key FROM meta WHERE key LIKE 'clusters:%'")}
    label_fields = sorted({n for v in labels.values() for n in v} - set(out) - ours)  # not clusters' own fields
    for name in label_fields:
        out[name] = []
    for i in ids:
        r = by_id[int(i)]
        out["genre"].append(r.genre or None)
        out["artist"].append(r.artist or None)
        out["album"].append(r.album or None)
        out["folder"].append(Path(r.path).parent.name or None)
        mine = labels.get(r.path, {})
        for name in label_fields:
            v = mine.get(name)
            out[name].append(v if isinstance(v, str) and v.strip() else None)
    return out


def _describe(members: np.ndarray, tags, meta: dict[str, list], options: ClusterOptions) -> tuple[list, list]:
    top_tags = []
    if tags is not None:
        names, probs = tags
        have = ~np.isnan(probs).any(axis=1)
        inside = members[have[members]]
        if len(inside) and have.sum():
            mean_in = probs[inside].mean(axis=0)
            lift = mean_in - probs[have].mean(axis=0)
            for j in np.argsort(-lift, kind="stable")[: options.tags]:
                if lift[j] >= options.min_lift:
                    top_tags.append({"tag": names[j], "mean": round(float(mean_in[j]), 3),
                                     "lift": round(float(lift[j]), 3)})
    top_meta = []
    n_all = len(next(iter(meta.values()))) if meta else 0
    for name, values in meta.items():
        inside = Counter(values[i] for i in members if values[i] is not None)
        if not inside:
            continue
        value, count = inside.most_common(1)[0]
        share = count / len(members)
        library_share = sum(1 for v in values if v == value) / max(n_all, 1)
        if share >= options.min_share and share >= options.min_concentration * library_share:
            top_meta.append({"field": name, "value": value, "share": round(share, 3),
                             "library_share": round(library_share, 3)})
    top_meta.sort(key=lambda m: (-m["share"], m["library_share"]))
    return top_tags, top_meta


def stored_clusters(catalog: Catalog, field: str = DEFAULT_FIELD) -> dict | None:
    """What ``store_clusters`` last wrote into ``field`` (the clustering without its assignments, and when),
    or None."""
    raw = catalog.get_meta(_META + field)
    return json.loads(raw) if raw else None


def store_clusters(catalog: Catalog, clustering: Clustering, *, field: str = DEFAULT_FIELD,
                   replace: bool = False) -> int:
    """Write each track's cluster (``Cluster.label``) into the label ``field`` of every clustered track,
    removing the field from every other track. A field holding values that ``store_clusters`` did not write
    (a user's labels) is a ``UserError`` unless ``replace``. Returns the values written."""
    from ..metadata import check_label_name

    check_label_name(field)
    ours = stored_clusters(catalog, field) is not None
    held = catalog.db.execute("SELECT count(*) FROM labels WHERE name = ?", (field,)).fetchone()[0]
    if held and not ours and not replace:
        raise UserError(f"field {field!r}: {held} tracks hold values that clusters did not write; "
                        f"choose another field (--field) or replace them (--replace)")
    label = {c.number: c.label for c in clustering.clusters}
    paths = dict(catalog.db.execute("SELECT t.id, f.path FROM tracks t JOIN files f ON f.id = t.file_id"))
    items = [(paths[t], label[c]) for t, c in clustering.assignments.items() if t in paths]
    summary = {**clustering.to_dict(assignments=False), "field": field, "stored": len(items), "stored_at": time.time()}
    with catalog.db:
        catalog.db.execute("DELETE FROM labels WHERE name = ?", (field,))
        catalog.db.executemany("INSERT OR REPLACE INTO labels(path, name, value) VALUES (?, ?, ?)",
                               [(p, field, v) for p, v in items])
        catalog.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                           (_META + field, json.dumps(summary)))
    clustering.field, clustering.stored = field, len(items)
    return len(items)
