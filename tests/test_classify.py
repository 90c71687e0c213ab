"""Classification into the user's own categories (soundalike/organise/classify.py), its storage (catalogue
migration 7), the CLI and the Python API.

A synthetic library (tracks whose vectors lie around a few centres, written through the real catalogue and
vector index; tests/test_radio.py's ``synthetic_library``) stands for a library whose categories sound
different; the category of a track is its cluster. The zero-shot classes use the real MiniLM text model
over a catalogue whose tag vectors are written with musicnn's tag names. The MFCC baseline decodes real
files (synthesised music encoded with PyAV).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import numpy as np
import pytest

import soundalike
from soundalike.catalog import MIGRATIONS, Catalog
from soundalike.errors import QueryError, UserError
from soundalike.organise import classify as C
from tests.conftest import cli
from tests.test_radio import synthetic_library

N_TRACKS, N_CLUSTERS, ALBUM = 240, 4, 6
STYLES = ("ambient", "techno", "folk", "metal")


def style_of(i: int) -> str:
    """The category of track i of ``synthetic_library`` (its album's cluster)."""
    return STYLES[(i // ALBUM) % N_CLUSTERS]


def _path_index(path: str) -> int:
    return int(path.rsplit("/", 1)[1].split(".")[0])


@pytest.fixture()
def lib(tmp_path):
    """A fresh synthetic library where every third track has a user value of ``style``."""
    path = synthetic_library(tmp_path / "lib", tracks=N_TRACKS, clusters=N_CLUSTERS, album_size=ALBUM)
    lib = soundalike.open(path, create=False)
    items = [(t.path, {"style": style_of(_path_index(t.path))}) for t in lib.tracks() if _path_index(t.path) % 3 == 0]
    lib.catalog.set_labels(items)
    yield lib
    lib.close()


def _rows(lib, name="style"):
    return {r[0]: r for r in lib.catalog.label_rows(name)}


# -- storage -------------------------------------------------------------------------------------------------


def test_migration_7_marks_existing_labels_as_the_users(tmp_path):
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    for n, m in enumerate(MIGRATIONS[:6], 1):
        m(db)
        db.execute(f"PRAGMA user_version = {n}")
    db.execute("INSERT INTO labels(path, name, value) VALUES ('/a.flac', 'mood', 'calm')")
    db.commit()
    db.close()
    cat = Catalog(tmp_path / "catalog.sqlite")
    assert cat.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert cat.label_rows("mood") == [("/a.flac", "calm", "user", None, None, None)]
    cat.close()


def test_a_prediction_never_replaces_a_user_value_and_a_user_value_replaces_a_prediction(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    cat.set_labels([("/a.flac", {"mood": "calm"})])
    assert cat.set_predictions("mood", [("/a.flac", "wild", 0.9, 0.8), ("/b.flac", "wild", 0.6, 0.2)], method="t") == 1
    assert cat.labels_of("/a.flac") == {"mood": "calm"}
    assert cat.label_rows("mood")[1] == ("/b.flac", "wild", "predicted", 0.6, pytest.approx(0.2), "t")
    cat.set_predictions("mood", [("/b.flac", "calm", 0.7, 0.4)], method="t2")  # a newer prediction replaces it
    assert cat.label_rows("mood")[1][1:3] == ("calm", "predicted")
    cat.set_labels([("/b.flac", {"mood": "sad"})])
    assert cat.label_rows("mood")[1] == ("/b.flac", "sad", "user", None, None, None)
    cat.close()


# -- the kNN vote ------------------------------------------------------------------------------------------------


def test_knn_votes_are_weighted_by_similarity():
    e = np.eye(3, dtype=np.float32)
    examples = np.stack([e[0], e[0] * 0.8 + e[1] * 0.6, e[0] * 0.8 + e[2] * 0.6, e[0] * 0.8 + e[2] * 0.6])
    labels = np.array([0, 1, 1, 1])
    q = e[0][None]
    plain = C.knn_scores(q, examples, labels, 2, k=4, temperature=1e6)
    assert plain[0] == pytest.approx([0.25, 0.75])  # counts
    sharp = C.knn_scores(q, examples, labels, 2, k=4, temperature=0.05)
    assert sharp[0, 0] == pytest.approx(1 / (1 + 3 * np.exp(-0.2 / 0.05)), rel=1e-4)  # one at cosine 1 outweighs three at 0.8
    nearest = C.knn_scores(q, examples, labels, 2, k=1, temperature=1.0)
    assert nearest[0] == pytest.approx([1.0, 0.0])
    rng = np.random.default_rng(2)
    many = rng.standard_normal((50, 3)).astype(np.float32)
    many /= np.linalg.norm(many, axis=1, keepdims=True)
    whole = C.knn_scores(many, examples, labels, 2, k=3, temperature=0.1)
    assert np.allclose(whole, C.knn_scores(many, examples, labels, 2, k=3, temperature=0.1, chunk=7))
    assert np.allclose(whole.sum(axis=1), 1.0)


def test_folds_are_stratified():
    y = np.array([0] * 10 + [1] * 5 + [2] * 3)
    f = C.fold_ids(y, 3, seed=1)
    for fold in range(3):
        assert set(y[f == fold]) == {0, 1, 2}
        assert abs(int((f == fold).sum()) - 6) <= 1


# -- classify ------------------------------------------------------------------------------------------------------


def test_classify_predicts_the_unlabelled_tracks_with_confidence_and_margin(lib):
    users = {p: r[1] for p, r in _rows(lib).items()}
    r = lib.classify("style")
    assert r.method == "knn" and r.examples == N_TRACKS // 3 and r.k == C.default_k(N_TRACKS // 3)
    assert sorted(r.classes) == sorted(STYLES)
    assert len(r.predictions) == N_TRACKS - N_TRACKS // 3 == r.written
    right = [p.value == style_of(_path_index(p.path)) for p in r.predictions]
    assert np.mean(right) >= 0.95
    for p in r.predictions:
        assert 0 <= p.margin <= p.confidence <= 1 and p.runner_up != p.value
    assert [p.confidence for p in r.predictions] == sorted(p.confidence for p in r.predictions)  # least certain first
    rows = _rows(lib)
    for p in r.predictions:
        assert rows[p.path][1:5] == (p.value, "predicted", p.confidence, p.margin)
        assert rows[p.path][5].startswith("knn k=")
    for path, value in users.items():  # the user's values are the user's
        assert rows[path][1:3] == (value, "user")


def test_centring_the_vectors_takes_out_what_every_track_shares(lib):
    """Track vectors that share a large component (as embedding means do) all have cosines near 1, which
    flattens the weighted votes; the classifier compares them less the library's mean."""
    rng = np.random.default_rng(5)
    common = rng.standard_normal(32) * 3
    for tid, v in list(lib.catalog.track_vectors()):
        w = v + common
        lib.catalog.db.execute("UPDATE tracks SET vector = ? WHERE id = ?",
                               ((w / np.linalg.norm(w)).astype(np.float16).tobytes(), tid))
    lib.catalog.db.commit()
    _, _, raw = C._track_vectors(lib.catalog, centre=False)
    _, _, centred = C._track_vectors(lib.catalog)
    off_diagonal = ~np.eye(len(raw), dtype=bool)
    assert (raw @ raw.T)[off_diagonal].mean() > 0.95
    assert abs((centred @ centred.T)[off_diagonal].mean()) < 0.05
    plain = C.classify(lib.catalog, "style", options=C.ClassifyOptions(centre=False), dry_run=True)
    assert plain.predictions[0].method.endswith("uncentred")
    r = C.classify(lib.catalog, "style", dry_run=True)
    assert np.mean([p.value == style_of(_path_index(p.path)) for p in r.predictions]) >= 0.95


def test_dry_run_stores_nothing_and_k_is_an_option(lib):
    before = _rows(lib)
    r = lib.classify("style", k=3, dry_run=True)
    assert r.k == 3 and r.written == 0 and r.dry_run and len(r.predictions) == 160
    assert _rows(lib) == before


def test_a_later_user_label_replaces_a_prediction_and_is_then_an_example(lib):
    r = lib.classify("style")
    p = r.predictions[0]
    lib.set_labels(p.track_id, style="polka")
    assert _rows(lib)[p.path][1:3] == ("polka", "user")
    again = lib.classify("style")
    assert p.track_id not in {q.track_id for q in again.predictions}
    assert again.examples == N_TRACKS // 3 + 1 and "polka" in again.classes
    assert _rows(lib)[p.path][1:3] == ("polka", "user")


def test_filters_see_predicted_values_and_export_leaves_them_out(lib):
    lib.classify("style")
    assert lib.count_tracks("style = 'techno'") == sum(style_of(i) == "techno" for i in range(N_TRACKS))
    out = io.StringIO()
    lib.export_labels(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == N_TRACKS // 3 and all(r["style"] == style_of(_path_index(r["path"])) for r in rows)
    assert C.clear(lib.catalog, "style") == N_TRACKS - N_TRACKS // 3
    assert lib.count_tracks("style is not null") == N_TRACKS // 3


def test_bad_fields_are_one_line_errors(lib):
    with pytest.raises(UserError, match="no label field 'mood'.*style"):
        lib.classify("mood")
    lib.catalog.set_labels([(t.path, {"one": "x"}) for t in lib.tracks()[:10]])
    with pytest.raises(UserError, match="at least two"):
        lib.classify("one")
    lib.catalog.set_labels([(t.path, {"bpm_label": float(i)}) for i, t in enumerate(lib.tracks()[:40])])
    with pytest.raises(UserError, match="does not hold categories"):
        lib.classify("bpm_label")
    with pytest.raises(UserError, match="k: expected a whole number"):
        lib.classify("style", k=0)


# -- evaluate -----------------------------------------------------------------------------------------------------------


def test_evaluate_cross_validates_with_a_confusion_table(lib):
    ev = C.evaluate(lib.catalog, "style")
    s = ev.systems["soundalike"]
    assert ev.examples == N_TRACKS // 3 and ev.folds == 5 and sorted(ev.classes) == sorted(STYLES)
    assert s.accuracy >= 0.95 and s.n == 80
    assert sum(map(sum, s.confusion)) == 80 and [sum(r) for r in s.confusion] == ev.counts
    assert sum(s.confusion[i][i] for i in range(4)) == round(s.accuracy * 80)
    assert _rows(lib) and all(r[2] == "user" for r in _rows(lib).values())  # evaluating stores nothing


def test_evaluate_on_labels_that_do_not_follow_the_sound_scores_near_chance(lib):
    rng = np.random.default_rng(3)
    lib.catalog.set_labels([(t.path, {"noise": str(rng.integers(4))}) for t in lib.tracks()])
    s = C.evaluate(lib.catalog, "noise").systems["soundalike"]
    assert s.accuracy < 0.4 and s.errors > 100
    assert s.uncertain_errors is not None and 0 < s.uncertain_errors <= 1


# -- review and accept ---------------------------------------------------------------------------------------------------


def test_review_lists_the_least_certain_first_and_accept_makes_a_user_value(lib):
    lib.classify("style")
    total, preds = C.review(lib.catalog, "style", limit=10)
    assert total == 160 and len(preds) == 10
    assert [p.confidence for p in preds] == sorted(p.confidence for p in preds)
    everything = C.review(lib.catalog, "style", limit=1000)[1]
    assert preds[0].confidence == min(p.confidence for p in everything)
    a = C.accept(lib.catalog, "style", preds[0].track_id)
    assert a["value"] == preds[0].value and a["was"]["source"] == "predicted"
    assert _rows(lib)[preds[0].path][1:4] == (preds[0].value, "user", None)
    b = C.accept(lib.catalog, "style", preds[1].track_id, "  7 ")
    assert b["value"] == 7 and _rows(lib)[preds[1].path][1:3] == (7, "user")
    assert C.review(lib.catalog, "style", limit=1000)[0] == 158
    with pytest.raises(UserError, match="no prediction to accept"):
        C.accept(lib.catalog, "style", preds[0].track_id)
    with pytest.raises(QueryError, match="no track 999999"):
        C.accept(lib.catalog, "style", 999999, "x")
    values = {d["value"]: d for d in C.field_values(lib.catalog, "style")}
    assert set(values) == {*STYLES, 7} and sum(d["user"] for d in values.values()) == 82


# -- the CLI ------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def wide(monkeypatch):
    """Rich's console as wide as a big terminal, so that the sentences asserted on are not wrapped."""
    from soundalike.cli.common import console

    monkeypatch.setattr(console, "width", 200)


def test_cli_classify_evaluate_review_and_clear(lib, capsys, wide):
    L = str(lib.path)
    code, out, err = cli(capsys, "classify", "style", "-L", L, "--dry-run", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["dry_run"] and len(data["predictions"]) == 160 and not _rows(lib).keys() - {
        p for p, r in _rows(lib).items() if r[2] == "user"}
    code, out, err = cli(capsys, "classify", "style", "-L", L, "-n", "5")
    assert code == 0, err
    assert "the 5 least certain of 160 predictions" in out and "160 stored as predictions" in out
    code, out, err = cli(capsys, "classify", "style", "-L", L, "--evaluate")
    assert code == 0, err
    assert "5-fold cross-validation over 80 labelled tracks" in out and "confusion" in out
    assert "soundalike (track vectors)" in out
    code, out, _ = cli(capsys, "classify", "style", "-L", L, "--evaluate", "--json")
    assert json.loads(out)["systems"]["soundalike"]["accuracy"] >= 0.95
    code, out, _ = cli(capsys, "classify", "style", "-L", L, "--review", "--json", "-n", "3")
    d = json.loads(out)
    assert d["count"] == 160 and len(d["predictions"]) == 3
    code, out, _ = cli(capsys, "classify", "style", "-L", L, "--review")
    assert code == 0 and "the 20 least certain of 160 predictions" in out
    code, out, _ = cli(capsys, "classify", "style", "-L", L, "--clear")
    assert code == 0 and "removed 160 predictions" in out


def test_cli_errors_and_help(lib, capsys):
    L = str(lib.path)
    code, _, err = cli(capsys, "classify", "nope", "-L", L)
    assert code == 2 and err.startswith("error: field: no label field 'nope'") and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "classify", "style", "calm=soft", "-L", L)
    assert code == 2 and "after --classes" in err
    code, _, err = cli(capsys, "classify", "style", "-L", L, "--review", "--evaluate")
    assert code == 2 and "choose one" in err
    code, _, err = cli(capsys, "classify", "mood", "--classes", "calm=calm piano", "-L", L)
    assert code == 2 and "at least two classes" in err
    code, _, err = cli(capsys, "classify", "mood", "--classes", "a=piano", "b=drums", "--k", "3", "-L", L)
    assert code == 2 and "--k: only when classifying from your labels" in err
    code, out, _ = cli(capsys, "classify", "--help")
    assert code == 0 and "--evaluate" in out and "--classes" in out and "soundalike classify genre --evaluate" in out


# -- zero-shot classes by words ----------------------------------------------------------------------------------------


def test_parse_classes():
    assert C.parse_classes(["calm=calm ambient piano", "energetic = fast loud drums", "jazz"]) == {
        "calm": "calm ambient piano", "energetic": "fast loud drums", "jazz": "jazz"}
    with pytest.raises(UserError, match="given twice"):
        C.parse_classes(["a=x", "A=y"])
    with pytest.raises(UserError, match="needs a name and words"):
        C.parse_classes(["=x", "b=y"])


@pytest.fixture()
def tagged_lib(tmp_path, monkeypatch):
    """Tracks whose tag vectors (musicnn's 100 tag names) say either calm piano or loud rock drums."""
    from soundalike.models.musicnn.labels import LABELS

    monkeypatch.setenv("SOUNDALIKE_CACHE", str(tmp_path / "cache"))
    path = synthetic_library(tmp_path / "lib", tracks=40, clusters=2, album_size=1)
    names = [f"{k}:{n}" for k in ("msd", "mtt") for n in LABELS[k]]
    cat = Catalog(path / "catalog.sqlite")
    cat.set_meta("tag_names", json.dumps(names))
    rng = np.random.default_rng(0)
    calm = [i for i, n in enumerate(names) if n.split(":")[1] in ("piano", "ambient", "chillout", "quiet", "soft", "mellow")]
    loud = [i for i, n in enumerate(names) if n.split(":")[1] in ("drums", "rock", "loud", "fast", "metal", "hard rock")]
    truth = {}
    for tid in cat.vector_ids("tracks"):
        p = rng.uniform(0.02, 0.15, len(names))
        kind = "calm" if tid % 2 else "energetic"
        p[calm if kind == "calm" else loud] += rng.uniform(0.4, 0.7)
        cat.db.execute("UPDATE tracks SET tags = ? WHERE id = ?", (p.astype(np.float16).tobytes(), int(tid)))
        truth[int(tid)] = kind
    cat.db.commit()
    cat.set_labels([(cat.track(1).path, {"energy": "energetic"})])  # a user value: left alone
    cat.close()
    lib = soundalike.open(path, create=False)
    yield lib, truth
    lib.close()


def test_classes_by_words_through_the_tag_space(tagged_lib, capsys):
    lib, truth = tagged_lib
    r = lib.classify("energy", classes={"calm": "calm ambient piano", "energetic": "fast loud drums"})
    assert r.method == "words" and len(r.predictions) == 39 and r.written == 39
    assert all(p.value == truth[p.track_id] for p in r.predictions)
    assert all(0 <= p.margin <= p.confidence <= 1 for p in r.predictions)
    assert "piano" in r.classes["calm"] and r.predictions[0].method.startswith("words: calm=calm ambient piano")
    assert _rows(lib, "energy")[lib.catalog.track(1).path][1:3] == ("energetic", "user")
    code, out, err = cli(capsys, "classify", "energy", "--classes", "calm=calm ambient piano", "x=zzqx qqvv",
                         "-L", str(lib.path))
    assert code == 2 and "no tag means 'zzqx qqvv'" in err
    code, out, err = cli(capsys, "classify", "energy", "--classes", "calm=calm ambient piano",
                         "energetic=fast loud drums", "-L", str(lib.path), "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["method"] == "words" and json.loads(out)["written"] == 0
    code, out, err = cli(capsys, "classify", "energy", "--classes", "calm=calm ambient piano",
                         "energetic=fast loud drums", "-L", str(lib.path), "--dry-run")
    assert code == 0, err
    assert "from words: calm (" in " ".join(out.split()) and "nothing stored (--dry-run)" in " ".join(out.split())


# -- the MFCC baseline on real files ---------------------------------------------------------------------------------


def test_evaluate_with_the_mfcc_baseline_on_real_files(tmp_path, capsys):
    pytest.importorskip("librosa")
    from soundalike.synth import encode
    from tests.fakes import FakeModel

    music = tmp_path / "music"
    music.mkdir()
    sr = 8000
    t = np.arange(int(6 * sr)) / sr
    rng = np.random.default_rng(0)
    for i in range(8):
        tone = np.sin(2 * np.pi * (220 + 20 * i) * t) if i % 2 else rng.standard_normal(len(t)) * 0.3
        encode((0.3 * tone).astype(np.float32), sr, music / f"c{i}.flac")
    lib = soundalike.open(tmp_path / "lib", model=FakeModel(), hop=2.0)
    for _ in lib.index([music]):
        pass
    lib.catalog.set_labels([(tr.path, {"kind": "tone" if int(tr.path[-6]) % 2 else "noise"}) for tr in lib.tracks()])
    ev = C.evaluate(lib.catalog, "kind", options=C.ClassifyOptions(k=3, folds=4), mfcc=True)
    assert set(ev.systems) == {"soundalike", "mfcc"} and ev.folds == 4
    assert ev.systems["mfcc"].accuracy == 1.0 and ev.systems["mfcc"].n == 8
    lib.close()
    from soundalike.cli.common import console

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(console, "width", 200)
        code, out, err = cli(capsys, "classify", "kind", "-L", tmp_path / "lib", "--evaluate", "--mfcc", "--k", "3",
                             "--folds", "4")
    assert code == 0, err
    assert "4-fold cross-validation over 8 labelled tracks" in out and "MFCC statistics (baseline)" in out
    assert "8/8" not in out  # errors are shown as errors/tracks
    code, _, err = cli(capsys, "classify", "kind", "-L", tmp_path / "lib", "--mfcc")
    assert code == 2 and "--mfcc: only with --evaluate" in err


# -- the REST API ----------------------------------------------------------------------------------------------------


@pytest.fixture()
def client(lib):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app
    from tests.fakes import FakeModel

    with TestClient(create_app(lib.path, model=FakeModel())) as c:
        yield c


def test_api_run_review_accept_and_evaluate(client, lib):
    r = client.get("/api/classify/fields")
    assert r.status_code == 200 and r.json()["fields"] == [{"field": "style", "user": 80, "predicted": 0}]
    r = client.post("/api/classify/run", json={"field": "style", "dry_run": True, "limit": 3})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["count"] == 160 and d["written"] == 0 and len(d["predictions"]) == 3
    assert client.get("/api/classify/fields").json()["fields"][0]["predicted"] == 0
    d = client.post("/api/classify/run", json={"field": "style", "k": 7}).json()
    assert d["k"] == 7 and d["written"] == 160
    r = client.get("/api/classify/review", params={"field": "STYLE", "limit": 5})
    assert r.status_code == 200, r.text
    rv = r.json()
    assert rv["field"] == "style" and rv["count"] == 160 and len(rv["predictions"]) == 5
    confs = [p["confidence"] for p in rv["predictions"]]
    assert confs == sorted(confs)
    first = rv["predictions"][0]
    assert first["audio"] == f"/api/tracks/{first['track_id']}/audio"
    assert {v["value"] for v in rv["values"]} == set(STYLES)
    r = client.post("/api/classify/accept", json={"field": "style", "track_id": first["track_id"]})
    assert r.status_code == 200 and r.json()["value"] == first["value"] and r.json()["source"] == "user"
    second = rv["predictions"][1]
    r = client.post("/api/classify/accept", json={"field": "style", "track_id": second["track_id"], "value": "polka"})
    assert r.status_code == 200 and r.json()["was"]["source"] == "predicted"
    assert _rows(lib)[second["path"]][1:3] == ("polka", "user")
    assert client.get("/api/classify/review", params={"field": "style"}).json()["count"] == 158
    r = client.get("/api/classify/evaluate", params={"field": "style", "folds": 3})
    assert r.status_code == 200 and r.json()["folds"] == 3 and r.json()["systems"]["soundalike"]["accuracy"] > 0.9


def test_api_errors(client):
    r = client.get("/api/classify/review", params={"field": "mood"})
    assert r.status_code == 400 and "no label field 'mood'" in r.json()["error"]
    r = client.post("/api/classify/accept", json={"field": "style", "track_id": 999999, "value": "x"})
    assert r.status_code == 404 and "no track 999999" in r.json()["error"]
    r = client.post("/api/classify/accept", json={"field": "style", "track_id": 1})
    assert r.status_code == 400 and "no prediction to accept" in r.json()["error"]
    r = client.post("/api/classify/run", json={"field": "style", "k": 0})
    assert r.status_code in (400, 422)
    r = client.post("/api/classify/run", json={"field": "energy", "classes": {"calm": "calm piano"}})
    assert r.status_code == 400 and "at least two classes" in r.json()["error"]
