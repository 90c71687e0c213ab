"""Classification into the user's own categories: predict a label field for the tracks that lack it.

``classify``: weighted kNN votes. The examples are the tracks whose value of the field is the user's
(imported with ``soundalike labels import``, set by hand, or accepted on the review page; for ``genre``, the
file's genre tag where the user gave none). Every other track with a track vector gets a prediction: the
cosines of its vector with every example's (an exact scan, in chunks: a 10,000-track library costs well under
a second), its ``k`` most similar examples vote with weight ``exp((cos - best) / temperature)``, and the
value with the largest share of the votes wins. ``confidence`` is that share (0-1); ``margin`` is its lead
over the runner-up's share. ``k`` defaults to the square root of the number of examples, from 5 to 25.

``classify_by_words``: zero-shot classes defined by words ("calm=calm ambient piano"), through the text
search's tag space (soundalike/text.py): each description becomes weights over the model's tags, a track's
score for a class is the weighted sum of its standardised tag probabilities, and a softmax at
``ClassifyOptions.words_temperature`` over the classes gives its confidence and margin.

Predictions are stored in the ``labels`` table with ``source = 'predicted'``, their confidence, margin and
method (migration 7): a prediction never replaces a user value, and a user value (an import, ``accept``)
replaces a prediction. Filters (``--where``) see predicted values like user values: a track predicted
``mood = 'calm'`` passes ``mood = 'calm'``; ``clear_predictions`` removes them, and ``export_labels``
leaves them out.

``evaluate``: stratified k-fold cross-validation over the labelled tracks: accuracy, balanced accuracy, the
confusion table, and the share of the errors that the least certain 10 % of predictions hold; optionally the
same kNN over MFCC statistics (``soundalike.evaluate.peers.MfccBaseline``, the evaluate extra) on the same
folds, as a baseline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from ..errors import QueryError, UserError

__all__ = ["ClassifyOptions", "Prediction", "Classification", "SystemScore", "Evaluation", "classify",
           "classify_by_words", "parse_classes", "evaluate", "review", "accept", "clear", "field_values", "knn_scores",
           "fold_ids", "cross_validate", "score", "mfcc_vectors",
           "default_k", "MAX_K"]

MAX_K = 200
#: the share of the least certain predictions whose errors ``evaluate`` counts
UNCERTAIN_SHARE = 0.10


@dataclass(frozen=True)
class ClassifyOptions:
    """Every tunable of the two classifiers. ``temperature`` was chosen on one half of the GM instrument set
    of bench/classify.py and checked on the other (docs/benchmarks.md)."""

    k: int | None = None  # neighbours that vote; None: sqrt(examples), from 5 to 25
    temperature: float = 0.05  # vote weight exp((cos - best cos) / temperature); large: plain counts
    folds: int = 5  # evaluate: stratified folds (fewer when the smallest class is smaller)
    seed: int = 0  # evaluate: the folds' shuffle
    words_temperature: float = 0.5  # classes by words: softmax over the classes' tag scores (z units)
    centre: bool = True  # subtract the library's mean track vector before the cosines (bench/classify.py: GM
    # instrument families, half A: accuracy 0.885 -> 0.923; the small corpus's sets: unchanged)


def default_k(n_examples: int) -> int:
    return int(min(25, max(5, round(math.sqrt(max(n_examples, 1))))))


@dataclass
class Prediction:
    track_id: int
    path: str
    title: str | None
    artist: str | None
    value: object  # the predicted value
    confidence: float  # the winner's share of the votes (kNN) or of the softmax (words), 0-1
    margin: float  # the winner's share minus the runner-up's
    runner_up: object = None
    method: str | None = None

    @property
    def name(self) -> str:
        return self.title or Path(self.path).stem

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}


@dataclass
class Classification:
    field: str
    method: str  # "knn" | "words"
    classes: dict[str, int]  # value -> examples (kNN) or value -> description's top tags (words)
    examples: int
    predictions: list[Prediction]
    k: int | None = None
    without_vector: int = 0  # tracks lacking the field that have no track vector (no informative audio)
    written: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["predictions"] = [p.to_dict() for p in self.predictions]
        return d


# -- reading the catalogue ----------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _field_name(catalog: Catalog, name: str) -> str:
    """The label name as stored (case-insensitive match), or a ``UserError`` naming the known ones."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("field: give the name of a label field (genre, mood, ...)")
    names = catalog.label_names()
    if name in names:
        return name
    low = {n.lower(): n for n in names}
    if name.lower() in low:
        return low[name.lower()]
    if name.lower() == "genre":
        return "genre"
    known = ", ".join(names) if names else "none yet; import some with `soundalike labels import`"
    raise UserError(f"field: no label field {name!r} in this library (label fields: {known})")


def _known_values(catalog: Catalog, name: str) -> dict[str, object]:
    """path -> the user's value of ``name`` (for ``genre``, the file's genre tag where the user gave none)."""
    out: dict[str, object] = {}
    if name.lower() == "genre":
        for path, g in catalog.db.execute(
                "SELECT f.path, t.genre FROM tracks t JOIN files f ON f.id = t.file_id WHERE t.genre IS NOT NULL"):
            if isinstance(g, str) and g.strip():
                out[path] = g.strip()
    for path, value, source, *_ in catalog.label_rows(name):
        if source == "user" and value is not None and str(value).strip() != "":
            out[path] = value
    return out


def _track_vectors(catalog: Catalog, *, centre: bool = True) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(ids, paths, unit vectors) of every track with a vector, by id, in one pass; ``centre``: less the mean
    of every track vector of the library first (what all tracks share says nothing about their category)."""
    rows = catalog.db.execute("SELECT t.id, f.path, t.vector FROM tracks t JOIN files f ON f.id = t.file_id "
                              "WHERE t.vector IS NOT NULL ORDER BY t.id").fetchall()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    if not rows:
        return ids, [], np.zeros((0, 1), np.float32)
    mat = _unit(np.frombuffer(b"".join(r[2] for r in rows), np.float16).astype(np.float32).reshape(len(rows), -1))
    if centre and len(rows) > 1:
        mat = _unit(mat - mat.mean(axis=0))
    return ids, [r[1] for r in rows], mat


def _class_key(value: object) -> object:
    """Values that differ only in case or surrounding space are one class (as filters compare them)."""
    return value.strip().casefold() if isinstance(value, str) else value


def _classes(values: Sequence[object]) -> tuple[list[object], np.ndarray]:
    """(class values: the most common spelling of each, sorted by count then name; each value's class index)."""
    keys = [_class_key(v) for v in values]
    spelling: dict[object, dict[object, int]] = {}
    for k, v in zip(keys, values):
        spelling.setdefault(k, {})
        spelling[k][v] = spelling[k].get(v, 0) + 1
    order = sorted(spelling, key=lambda k: (-sum(spelling[k].values()), str(k)))
    index = {k: i for i, k in enumerate(order)}
    shown = [max(spelling[k].items(), key=lambda kv: (kv[1], str(kv[0])))[0] for k in order]
    return shown, np.array([index[k] for k in keys], np.int64)


# -- the kNN vote --------------------------------------------------------------------------------------------


def knn_scores(queries: np.ndarray, examples: np.ndarray, labels: np.ndarray, n_classes: int, *, k: int,
               temperature: float, chunk: int | None = None) -> np.ndarray:
    """(len(queries), n_classes) vote shares: each query's ``k`` most similar examples (cosine of unit
    vectors) vote for their class with weight exp((cos - best cos) / temperature). The queries go in chunks
    whose cosine matrix stays near 64 MB."""
    k = max(1, min(int(k), len(examples)))
    chunk = chunk or int(min(1024, max(1, 16_000_000 // max(len(examples), 1))))
    out = np.zeros((len(queries), n_classes), np.float64)
    for s in range(0, len(queries), chunk):
        sims = queries[s: s + chunk] @ examples.T
        if k < sims.shape[1]:
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(sims.shape[1]), (len(sims), sims.shape[1]))
        ts = np.take_along_axis(sims, top, axis=1).astype(np.float64)
        w = np.exp((ts - ts.max(axis=1, keepdims=True)) / max(temperature, 1e-6))
        votes = np.zeros((len(sims), n_classes), np.float64)
        np.add.at(votes, (np.repeat(np.arange(len(sims)), top.shape[1]), labels[top].ravel()), w.ravel())
        out[s: s + chunk] = votes / votes.sum(axis=1, keepdims=True)
    return out


def _decide(shares: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(winner, runner-up, confidence, margin) per row of vote shares; ties go to the lower class index
    (the more common class)."""
    order = np.argsort(-shares, axis=1, kind="stable")
    win, second = order[:, 0], order[:, 1] if shares.shape[1] > 1 else order[:, 0]
    conf = shares[np.arange(len(shares)), win]
    margin = conf - (shares[np.arange(len(shares)), second] if shares.shape[1] > 1 else 0.0)
    return win, second, conf, margin


def _check_k(k) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise UserError(f"k: expected a whole number from 1 to {MAX_K}, got {k!r}")
    return int(k)


def _predictions(catalog: Catalog, ids, paths, values, runners, conf, margin, method: str) -> list[Prediction]:
    rows = {r.id: r for r in catalog.tracks([int(i) for i in ids])}
    out = []
    for tid, path, v, r, c, m in zip(ids, paths, values, runners, conf, margin):
        row = rows.get(int(tid))
        out.append(Prediction(int(tid), path, row.title if row else None, row.artist if row else None, v,
                              round(float(c), 4), round(float(m), 4), r, method))
    out.sort(key=lambda p: (p.confidence, p.margin, p.track_id))
    return out


def _without(catalog: Catalog, known: dict, have: Iterable[str]) -> int:
    """Tracks without a value of the field that ``have`` (the paths with a vector or tags) leaves out."""
    have = set(have)
    paths = [r[0] for r in catalog.db.execute("SELECT f.path FROM tracks t JOIN files f ON f.id = t.file_id")]
    return sum(1 for p in paths if p not in known and p not in have)


def _store(catalog: Catalog, name: str, result: Classification, method: str) -> None:
    if not result.dry_run:
        items = ((p.path, p.value, p.confidence, p.margin) for p in result.predictions)
        result.written = catalog.set_predictions(name, items, method=method)


def classify(catalog: Catalog, name: str, *, options: ClassifyOptions = ClassifyOptions(),
             dry_run: bool = False) -> Classification:
    """Predict label ``name`` for every track with a vector that has no user value of it, by weighted kNN
    votes over the tracks that have one; store the predictions unless ``dry_run``. Least certain first."""
    t0 = time.perf_counter()
    name = _field_name(catalog, name)
    k = _check_k(options.k)
    known = _known_values(catalog, name)
    ids, paths, X = _track_vectors(catalog, centre=options.centre)
    is_example = np.array([p in known for p in paths], bool)
    if not is_example.any():
        raise UserError(f"{name}: no track with a vector has a value of it yet; label a few tracks of each "
                        "category first (`soundalike labels import`)")
    ex_values = [known[p] for p, e in zip(paths, is_example) if e]
    shown, y = _classes(ex_values)
    if len(shown) < 2:
        raise UserError(f"{name}: every labelled track has the value {shown[0]!r}; label tracks of at least two "
                        "categories")
    if len(shown) > max(10, 0.5 * len(ex_values)):
        raise UserError(f"{name}: {len(shown)} different values over {len(ex_values)} labelled tracks: this field "
                        "does not hold categories")
    k = k or default_k(len(ex_values))
    targets = np.flatnonzero(~is_example)
    shares = knn_scores(X[targets], X[is_example], y, len(shown), k=k, temperature=options.temperature)
    win, second, conf, margin = _decide(shares) if len(targets) else (np.zeros(0, int),) * 4
    method = f"knn k={k} temperature={options.temperature:g}" + ("" if options.centre else " uncentred")
    preds = _predictions(catalog, ids[targets], [paths[i] for i in targets], [shown[i] for i in win],
                         [shown[i] if len(shown) > 1 else None for i in second], conf, margin, method)
    counts = np.bincount(y, minlength=len(shown))
    result = Classification(
        field=name, method="knn", classes={str(v): int(c) for v, c in zip(shown, counts)}, examples=len(ex_values),
        predictions=preds, k=k, without_vector=_without(catalog, known, paths), dry_run=dry_run)
    if min(counts) < 3:
        small = [str(v) for v, c in zip(shown, counts) if c < 3]
        result.notes.append(f"few examples of {', '.join(small)}: label a few more tracks of each for surer votes")
    _store(catalog, name, result, method)
    result.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    return result


# -- zero-shot classes by words --------------------------------------------------------------------------------


def parse_classes(specs: Iterable[str]) -> dict[str, str]:
    """``["calm=calm ambient piano", "energetic=fast loud drums", "jazz"]`` -> {class: description}; a spec
    without ``=`` is its own description."""
    out: dict[str, str] = {}
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise UserError("--classes: an empty class; write NAME=WORDS, e.g. \"calm=calm ambient piano\"")
        name, _, words = spec.partition("=")
        name, words = name.strip(), (words.strip() if _ else spec.strip())
        if not name or not words:
            raise UserError(f"--classes: {spec!r} needs a name and words, e.g. \"calm=calm ambient piano\"")
        if name.casefold() in (n.casefold() for n in out):
            raise UserError(f"--classes: class {name!r} is given twice")
        out[name] = words
    if len(out) < 2:
        raise UserError("--classes: give at least two classes, e.g. \"calm=calm ambient piano\" \"energetic=fast loud drums\"")
    return out


def classify_by_words(catalog: Catalog, name: str, classes: dict[str, str], *, cache_dir=None,
                      options: ClassifyOptions = ClassifyOptions(), dry_run: bool = False) -> Classification:
    """Predict label ``name`` (a new field or an existing one) for the tracks without a user value of it,
    choosing among ``classes`` ({value: words}) through the text search's tag space; see the module
    docstring. Stores the predictions unless ``dry_run``. Least certain first."""
    from ..text import WEAK_SIMILARITY, TextSearcher

    t0 = time.perf_counter()
    if not isinstance(name, str) or not name.strip():
        raise UserError("field: give the name of the label field to fill (mood, category, ...)")
    from ..metadata import check_label_name

    name = name.strip()
    existing = {n.lower(): n for n in catalog.label_names()}
    name = existing.get(name.lower(), name)
    check_label_name(name)
    if len(classes) < 2:
        raise UserError("--classes: give at least two classes")
    if catalog.track_count() == 0:
        raise UserError("the library is empty; run `soundalike index FOLDER` first")
    searcher = TextSearcher(catalog, cache_dir=cache_dir)
    W, described = [], {}
    for value, words in classes.items():
        _, matches, w = searcher.read_query(words)
        if not any(m.used_for_tags and m.best_similarity >= WEAK_SIMILARITY for m in matches):
            best = max(matches, key=lambda m: m.best_similarity)
            raise UserError(f"--classes: no tag means {words!r} (class {value!r}; closest tag {best.best_tag!r}, "
                            f"similarity {best.best_similarity:.2f}); describe it with other words")
        W.append(w)
        top = np.argsort(-w)[:3]
        described[value] = ", ".join(searcher.concepts().names[j] for j in top if w[j] >= 0.05)
    tids, Z, *_ = searcher._tables()
    known = _known_values(catalog, name)
    path_of = dict(catalog.db.execute("SELECT t.id, f.path FROM tracks t JOIN files f ON f.id = t.file_id"))
    # words reach a track through its tags only: tracks without them (effects of the effect model) are not guessed
    tagged = {r[0] for r in catalog.db.execute("SELECT id FROM tracks WHERE length(tags) = ?",
                                                 (2 * len(searcher._tag_names()),))}  # float16 probabilities
    keep = np.array([path_of.get(int(t)) not in known and int(t) in tagged for t in tids], bool)
    scores = Z[keep] @ np.stack(W).T  # (tracks, classes)
    z = scores / max(options.words_temperature, 1e-6)
    p = np.exp(z - z.max(axis=1, keepdims=True)) if len(z) else z
    p = p / p.sum(axis=1, keepdims=True) if len(p) else p
    win, second, conf, margin = _decide(p) if len(p) else (np.zeros(0, int),) * 4
    values = list(classes)
    method = "words: " + "; ".join(f"{v}={w}" for v, w in classes.items())
    targets = tids[keep]
    preds = _predictions(catalog, targets, [path_of[int(t)] for t in targets], [values[i] for i in win],
                         [values[i] for i in second], conf, margin, method)
    result = Classification(field=name, method="words", classes=described, examples=0, predictions=preds,
                            dry_run=dry_run)
    result.without_vector = _without(catalog, known, (path_of[int(t)] for t in tids))
    _store(catalog, name, result, method)
    result.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    return result


# -- cross-validation -----------------------------------------------------------------------------------------


@dataclass
class SystemScore:
    name: str  # "soundalike" (the track vectors) | "mfcc" (the MFCC-statistics baseline)
    accuracy: float
    balanced_accuracy: float  # the mean of the classes' recalls
    n: int
    errors: int
    uncertain_errors: float | None  # the share of the errors among the least certain 10 % (None: no errors)
    confusion: list[list[int]]  # rows: the true class, columns: the predicted one (``Evaluation.classes``)
    k: int
    temperature: float


@dataclass
class Evaluation:
    field: str
    classes: list[str]
    counts: list[int]
    folds: int
    examples: int
    systems: dict[str, SystemScore]
    left_out: list[str] = field(default_factory=list)  # classes with a single example: nothing to learn from
    notes: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def fold_ids(y: np.ndarray, folds: int, *, seed: int = 0) -> np.ndarray:
    """Stratified folds: each class's members, shuffled, dealt round the folds (each class starting where
    the last one stopped, so that small classes do not all land in fold 0)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), np.int64)
    start = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        out[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return out


def cross_validate(X: np.ndarray, y: np.ndarray, n_classes: int, folds: np.ndarray, *, k: int | None,
                   temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted class, confidence, margin) of every example, each predicted from the other folds'."""
    pred = np.zeros(len(y), np.int64)
    conf, margin = np.zeros(len(y)), np.zeros(len(y))
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        kk = k or default_k(int(train.sum()))
        shares = knn_scores(X[test], X[train], y[train], n_classes, k=kk, temperature=temperature)
        pred[test], _, conf[test], margin[test] = _decide(shares)
    return pred, conf, margin


def score(name: str, y: np.ndarray, pred: np.ndarray, conf: np.ndarray, margin: np.ndarray, n_classes: int, *,
          k: int, temperature: float) -> SystemScore:
    """Accuracy, balanced accuracy, the confusion table and where the errors fall (``UNCERTAIN_SHARE``)."""
    wrong = pred != y
    conf_m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(conf_m, (y, pred), 1)
    recalls = [conf_m[c, c] / conf_m[c].sum() for c in range(n_classes) if conf_m[c].sum()]
    order = np.lexsort((margin, conf))  # least certain first
    n_low = max(1, math.ceil(UNCERTAIN_SHARE * len(y)))
    errors = int(wrong.sum())
    return SystemScore(
        name=name, accuracy=round(float(1 - wrong.mean()), 4), balanced_accuracy=round(float(np.mean(recalls)), 4),
        n=len(y), errors=errors, uncertain_errors=round(float(wrong[order[:n_low]].sum() / errors), 4) if errors else None,
        confusion=conf_m.tolist(), k=k, temperature=temperature)


def mfcc_vectors(paths: Sequence[str]) -> np.ndarray:
    """Unit MFCC-statistics vectors (``soundalike.evaluate.peers.MfccBaseline``: 20 mean MFCCs, z-scored over
    ``paths``) of these files, decoded again; needs the evaluate extra (librosa)."""
    import importlib.util

    if importlib.util.find_spec("librosa") is None:
        raise UserError("--mfcc needs librosa: pip install 'soundalike[evaluate]'")
    from ..evaluate.peers import MfccBaseline

    base = MfccBaseline()
    base.add(paths)
    return np.stack([base.refs[p] for p in paths]).astype(np.float32)


def evaluate(catalog: Catalog, name: str, *, options: ClassifyOptions = ClassifyOptions(),
             mfcc: bool = False) -> Evaluation:
    """Stratified ``options.folds``-fold cross-validation of ``classify`` over the tracks with a user value of
    ``name``; with ``mfcc``, the same kNN over MFCC statistics on the same folds (decodes every example)."""
    t0 = time.perf_counter()
    name = _field_name(catalog, name)
    k = _check_k(options.k)
    if not isinstance(options.folds, int) or not 2 <= options.folds <= 50:
        raise UserError(f"folds: expected a whole number from 2 to 50, got {options.folds!r}")
    known = _known_values(catalog, name)
    _, paths, X = _track_vectors(catalog, centre=options.centre)
    sel = [i for i, p in enumerate(paths) if p in known]
    shown, y = _classes([known[paths[i]] for i in sel])
    counts = np.bincount(y, minlength=len(shown)) if len(y) else np.zeros(0, int)
    left_out = [str(shown[c]) for c in range(len(shown)) if counts[c] < 2]
    keep_cls = [c for c in range(len(shown)) if counts[c] >= 2]
    if len(keep_cls) < 2:
        raise UserError(f"{name}: evaluating needs at least two categories with two labelled tracks each "
                        f"(this library has {len(sel)} labelled tracks in {len(shown)} categories)")
    remap = -np.ones(len(shown), np.int64)
    remap[keep_cls] = np.arange(len(keep_cls))
    mask = remap[y] >= 0
    sel = [s for s, m in zip(sel, mask) if m]
    y = remap[y[mask]]
    shown = [shown[c] for c in keep_cls]
    counts = np.bincount(y, minlength=len(shown))
    n_folds = int(min(options.folds, counts.min()))
    folds = fold_ids(y, n_folds, seed=options.seed)
    ev = Evaluation(field=name, classes=[str(v) for v in shown], counts=counts.tolist(), folds=n_folds,
                    examples=len(y), systems={}, left_out=left_out)
    if n_folds < options.folds:
        ev.notes.append(f"{n_folds} folds, not {options.folds}: the smallest category has {counts.min()} examples")
    systems = [("soundalike", X[sel])]
    if mfcc:
        systems.append(("mfcc", mfcc_vectors([paths[i] for i in sel])))
    for sys_name, V in systems:
        pred, conf, margin = cross_validate(V, y, len(shown), folds, k=k, temperature=options.temperature)
        kk = k or default_k(int(len(y) * (n_folds - 1) / n_folds))
        ev.systems[sys_name] = score(sys_name, y, pred, conf, margin, len(shown), k=kk, temperature=options.temperature)
    ev.elapsed_ms = round((time.perf_counter() - t0) * 1000, 2)
    return ev


# -- review: the least certain predictions, accepted or corrected by the user ----------------------------------


def review(catalog: Catalog, name: str, *, limit: int = 50, offset: int = 0) -> tuple[int, list[Prediction]]:
    """(how many predictions label ``name`` holds, the ``limit`` least certain from ``offset``)."""
    name = _field_name(catalog, name)
    for what, v, hi in (("limit", limit, 10_000), ("offset", offset, 2**62)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not (0 if what == "offset" else 1) <= v <= hi:
            raise UserError(f"{what}: expected a whole number from {0 if what == 'offset' else 1} to {hi}, got {v!r}")
    base = ("FROM labels l JOIN files f ON f.path = l.path JOIN tracks t ON t.file_id = f.id "
            "WHERE l.name = ? AND l.source = 'predicted'")
    total = catalog.db.execute(f"SELECT count(*) {base}", (name,)).fetchone()[0]
    rows = catalog.db.execute(
        f"SELECT t.id, l.path, t.title, t.artist, l.value, l.confidence, l.margin, l.method {base} "
        "ORDER BY l.confidence, l.margin, t.id LIMIT ? OFFSET ?", (name, int(limit), int(offset))).fetchall()
    return total, [Prediction(r[0], r[1], r[2], r[3], r[4], round(r[5] or 0.0, 4), round(r[6] or 0.0, 4), None, r[7])
                   for r in rows]


def field_values(catalog: Catalog, name: str) -> list[dict]:
    """The values label ``name`` holds: [{value, user, predicted}] (how many tracks of each), most used first."""
    name = _field_name(catalog, name)
    counts: dict[object, dict] = {}
    for v in _known_values(catalog, name).values():
        counts.setdefault(_class_key(v), {"value": v, "user": 0, "predicted": 0})["user"] += 1
    for _, v, source, *_ in catalog.label_rows(name):
        if source == "predicted":
            counts.setdefault(_class_key(v), {"value": v, "user": 0, "predicted": 0})["predicted"] += 1
    return sorted(counts.values(), key=lambda d: (-d["user"] - d["predicted"], str(d["value"])))


def accept(catalog: Catalog, name: str, track_id: int, value: object = None) -> dict:
    """Make a track's value of ``name`` a user value: its prediction (``value`` None), or ``value`` (a
    correction; text that reads as a number is stored as one, as imports do). Returns what was written."""
    from ..metadata import parse_value

    name = _field_name(catalog, name)
    row = catalog.track(int(track_id))
    if row is None:
        raise QueryError(f"no track {track_id} in this library")
    current = {r[0]: r for r in catalog.label_rows(name)}.get(row.path)
    if value is None:
        if current is None or current[2] != "predicted":
            raise UserError(f"{name}: track {track_id} has no prediction to accept; give the value")
        value = current[1]
    elif isinstance(value, str):
        if not value.strip():
            raise UserError(f"{name}: the value is empty")
        value = parse_value(value)
    catalog.set_labels([(row.path, {name: value})])
    return {"track_id": row.id, "field": name, "value": value, "source": "user",
            "was": None if current is None else {"value": current[1], "source": current[2], "confidence": current[3]}}


def clear(catalog: Catalog, name: str) -> int:
    """Remove every predicted value of label ``name`` (user values stay); returns how many."""
    return catalog.clear_predictions(_field_name(catalog, name))
