"""Clusters and the map (soundalike/organise/clusters.py, map.py): the Python API, the CLI and the REST API.

The library is synthetic: 240 tracks whose 32-d vectors lie around four style centres (60 each), with tag
probabilities that say what each style is (piano, rock, ambient, drums) and genre tags on three of the four,
written through the real catalogue and vector index; no audio.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.catalog import Catalog
from soundalike.errors import UserError
from soundalike.organise.clusters import find_clusters, store_clusters, stored_clusters
from soundalike.organise.map import build_map, fit_map, map_info, map_points, place, update_map
from soundalike.stores import open_store
from tests.conftest import cli, need
from tests.fakes import FakeModel

DIM = 32
TAGS = ["msd:piano", "mtt:piano", "msd:rock", "msd:ambient", "mtt:drums", "msd:pop"]
STYLES = [("piano", "Classical"), ("rock", "Rock"), ("ambient", "Ambient"), ("drums", None)]
PER_STYLE = 60


def _tags_for(style: int, rng) -> np.ndarray:
    p = 0.1 + 0.05 * rng.random(len(TAGS))
    word = STYLES[style][0]
    for j, name in enumerate(TAGS):
        if name.split(":")[1] == word:
            p[j] = 0.7 + 0.2 * rng.random()
    return p.astype(np.float32)


def write_tracks(path: Path, count: int, *, start: int = 0, seed: int = 0, centres: np.ndarray,
                 tags: bool = True) -> list[int]:
    """Tracks ``start`` .. ``start + count - 1``: style i % 4, through the catalogue and the vector index."""
    rng = np.random.default_rng(seed)
    cat = Catalog(path / "catalog.sqlite")
    ids, vecs = [], []
    for i in range(start, start + count):
        style = i % len(STYLES)
        v = centres[style] + 0.35 * rng.standard_normal(DIM)
        v /= np.linalg.norm(v)
        genre = STYLES[style][1] if style < 3 else ["Pop", "Jazz", "Folk", "Soul"][i % 16 // 4]
        tid, _, _ = cat.replace_track(
            f"/music/style{style}/album{i // 10}/{i:05d}.flac", size=1000 + i, mtime=0.0,
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            info={"duration": 100.0 + i % 50, "title": f"Song {i}", "artist": f"Artist {i % 9}",
                  "album": f"Album {i // 10}", "genre": genre, "bpm": 70.0 + i % 90, "loudness": -20.0 + i % 12},
            model_id="fake", model_version="1", vector=v, tags=_tags_for(style, rng) if tags else None, segments=[])
        ids.append(tid)
        vecs.append(v)
    st = open_store("embedded", path / "index", DIM)
    st.upsert("tracks", np.array(ids, np.int64), np.array(vecs, np.float32))
    st.close()
    cat.close()
    return ids


def make_library(path: Path, *, tags: bool = True) -> Path:
    path.mkdir(parents=True)
    cat = Catalog(path / "catalog.sqlite")
    for k, v in (("model_id", "fake"), ("model_version", "1"), ("dim", str(DIM)), ("hop", "2.0"),
                 ("store", "embedded"), ("tag_names", json.dumps(TAGS if tags else []))):
        cat.set_meta(k, v)
    cat.close()
    write_tracks(path, len(STYLES) * PER_STYLE, centres=_centres(), tags=tags)
    return path


def _centres() -> np.ndarray:
    return np.random.default_rng(42).standard_normal((len(STYLES), DIM))


def _style(path: str) -> int:
    return int(Path(path).parts[2].removeprefix("style"))


@pytest.fixture(autouse=True)
def _organise_extra():
    """scikit-learn and openTSNE come with the organise extra: skipped without it, failed in CI."""
    need("sklearn", "organise")
    need("openTSNE", "organise")


@pytest.fixture()
def lib(tmp_path):
    lib = soundalike.open(make_library(tmp_path / "lib"), create=False)
    yield lib
    lib.close()


# -- clusters -------------------------------------------------------------------------------------------------

def test_the_number_of_clusters_is_chosen_from_the_data_and_each_is_named(lib):
    result = find_clusters(lib.catalog)
    assert result.chosen_by == "silhouette" and result.k == 4, result.tried
    assert max(result.tried, key=result.tried.get) == 4
    assert sorted(c.size for c in result.clusters) == [PER_STYLE] * 4
    paths = {r.id: r.path for r in lib.catalog.tracks()}
    names = {}
    for c in result.clusters:
        styles = {_style(paths[t]) for t, n in result.assignments.items() if n == c.number}
        assert len(styles) == 1  # every cluster is one style, whole
        names[styles.pop()] = c
    for s, (word, genre) in enumerate(STYLES):
        c = names[s]
        assert c.tags[0]["tag"] == word and c.tags[0]["lift"] > 0.4  # the distinctive tag, merged across models
        assert c.name.startswith(word)
        if genre:  # concentrated metadata names it too
            assert c.metadata[0] == {"field": "genre", "value": genre, "share": 1.0, "library_share": 0.25}
            assert c.name.endswith(f" · {genre}")
        else:  # the drums style has four genres, none over 40 %: no genre in its name
            assert all(m["field"] != "genre" for m in c.metadata)
        assert len(c.examples) == 3 and all(paths[t].startswith(f"/music/style{s}/") for t in c.examples)


def test_a_model_without_tags_names_clusters_by_metadata(tmp_path):
    with soundalike.open(make_library(tmp_path / "lib", tags=False), create=False) as lib:
        result = find_clusters(lib.catalog, k=4)
    assert all(not c.tags for c in result.clusters)
    # three styles by their genre; the fourth has none that covers 40 % of it, so it is named by its number
    named = {c.name: c.number for c in result.clusters}
    assert {"Ambient", "Classical", "Rock"} < set(named)
    (rest,) = set(named) - {"Ambient", "Classical", "Rock"}
    assert rest == f"cluster {named[rest]}"


def test_k_given_and_bad_values(lib):
    result = find_clusters(lib.catalog, k=6)
    assert result.chosen_by == "given" and result.k == 6 and result.tried == {}
    assert sum(c.size for c in result.clusters) == len(result.assignments) == 4 * PER_STYLE
    assert [c.number for c in result.clusters] == [1, 2, 3, 4, 5, 6]
    assert [c.size for c in result.clusters] == sorted((c.size for c in result.clusters), reverse=True)
    for bad in (0, -1, True, 2.5, 10_000):
        with pytest.raises(UserError, match="^k: "):
            find_clusters(lib.catalog, k=bad)


def test_clusters_are_stored_as_a_label_field_and_replace_only_their_own(lib):
    result = lib.clusters()
    assert result.field == "cluster" and result.stored == 4 * PER_STYLE
    one = result.clusters[0]
    rows = lib.tracks(where="cluster like '1:%'")
    assert len(rows) == one.size and {lib.labels(r.id)["cluster"] for r in rows} == {one.label}
    assert one.label == f"1: {one.name}"
    summary = stored_clusters(lib.catalog)
    assert summary["k"] == 4 and summary["stored"] == 4 * PER_STYLE and "assignments" not in summary
    # again with another k: the field is replaced on every track, no stale value left
    second = lib.clusters(k=2)
    assert {lib.labels(r.id)["cluster"] for r in lib.tracks()} == {c.label for c in second.clusters}
    assert len(second.clusters) == 2
    # a field the user filled by hand is not overwritten unless asked
    lib.set_labels(1, mood="calm")
    with pytest.raises(UserError, match="field 'mood': 1 tracks hold values that clusters did not write"):
        lib.clusters(field="mood")
    assert lib.labels(1)["mood"] == "calm"
    lib.clusters(field="mood", replace=True)
    assert lib.labels(1)["mood"] != "calm"
    with pytest.raises(UserError, match="metadata column 'track_id'"):
        store_clusters(lib.catalog, result, field="track_id")


def test_cli_clusters_dry_run_json_and_table(lib, capsys):
    code, out, _ = cli(capsys, "clusters", "-L", str(lib.path), "--dry-run", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["k"] == 4 and data["field"] is None and len(data["assignments"]) == 4 * PER_STYLE
    assert lib.catalog.label_names() == []  # nothing stored
    code, out, _ = cli(capsys, "clusters", "-L", str(lib.path), "--k", "3", "--field", "group")
    assert code == 0 and "3 clusters of 240 tracks" in out and "stored in the label field 'group' of 240" in out
    assert lib.catalog.label_names() == ["group"]
    code, _, err = cli(capsys, "clusters", "-L", str(lib.path), "--k", "0")
    assert code == 2 and "k: expected a whole number from 1 to 200, got 0" in err
    code, out, _ = cli(capsys, "clusters", "--help")
    assert code == 0 and "soundalike clusters --k 12 --field mood_group" in out


# -- the map --------------------------------------------------------------------------------------------------

def _neighbour_share(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    hi = np.argsort(-(x @ x.T), axis=1)[:, 1: k + 1]
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    lo = np.argsort(d, axis=1)[:, 1: k + 1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(hi, lo)]))


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_fit_map_keeps_styles_apart(method):
    need({"tsne": "openTSNE", "umap": "umap", "pca": "numpy"}[method], "organise")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, DIM))
    style = np.arange(200) % 4
    x = centres[style] + 0.35 * rng.standard_normal((200, DIM))
    y = fit_map(x, method=method, seed=0)
    assert y.shape == (200, 2) and np.abs(y).max() <= 1.0 + 1e-6
    # every point's nearest point on the map is of its own style
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (style[d.argmin(axis=1)] == style).mean() > 0.97
    with pytest.raises(UserError, match="method: expected one of tsne, umap, pca, got 'mds'"):
        fit_map(x, method="mds")


def test_place_puts_a_new_vector_among_its_neighbours():
    mapped = np.eye(4, dtype=np.float32)
    positions = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)
    got = place(np.array([[1, 0.05, 0, 0], [0, 0, 0.7, 0.7]], np.float32), mapped, positions, k=4)
    assert np.allclose(got[0], [-1, -1], atol=0.05)  # at its nearest neighbour's point
    assert np.allclose(got[1], [0, 1], atol=0.01)  # halfway between two equally near ones


def test_new_tracks_are_placed_without_moving_the_map(lib):
    info = build_map(lib.catalog, method="tsne", seed=0)
    assert info.method == "tsne" and info.fitted == 4 * PER_STYLE and info.placed == 0
    before = {p["id"]: (p["x"], p["y"]) for p in map_points(lib.catalog)}
    new_ids = write_tracks(lib.path, 20, start=4 * PER_STYLE, seed=7, centres=_centres())
    assert update_map(lib.catalog) == 20
    points = {p["id"]: p for p in map_points(lib.catalog)}
    assert {i: (points[i]["x"], points[i]["y"]) for i in before} == before  # not one old point moved
    assert all(points[i]["placed"] for i in new_ids) and not any(points[i]["placed"] for i in before)
    assert map_info(lib.catalog).placed == 20 and update_map(lib.catalog) == 0
    # each new track lands among its own style's tracks
    xy = np.array([(p["x"], p["y"]) for p in points.values()])
    styles = np.array([_style(p["path"]) for p in points.values()])
    ids = list(points)
    for i in new_ids:
        j = ids.index(i)
        d = ((xy - xy[j]) ** 2).sum(1)
        d[j] = np.inf
        near = np.argsort(d)[:5]
        assert (styles[near] == styles[j]).all()
    # a track embedded by another model (another size) cannot be placed on this map: one clear line
    cat = Catalog(lib.path / "catalog.sqlite")
    cat.replace_track("/music/other/x.flac", size=1, mtime=0.0, sha256="x" * 64, info={"duration": 1.0},
                      model_id="other", model_version="1", vector=np.ones(DIM // 2), tags=None, segments=[])
    with pytest.raises(UserError, match="vectors differ in size .* run `soundalike index` to finish"):
        update_map(cat)
    cat.delete_files([cat.file_by_path("/music/other/x.flac").id])
    cat.close()
    # a deleted track leaves the map
    gone = new_ids[0]
    fid = lib.catalog.db.execute("SELECT file_id FROM tracks WHERE id = ?", (gone,)).fetchone()[0]
    lib.catalog.delete_files([fid])
    assert gone not in {p["id"] for p in map_points(lib.catalog)}


def test_the_map_keeps_neighbours_and_carries_labels(lib):
    lib.clusters()
    points = map_points(lib.catalog)  # no map yet: laid out now
    assert map_info(lib.catalog).method == "tsne" and len(points) == 4 * PER_STYLE
    ids = [p["id"] for p in points]
    x = lib.catalog.vectors_by_id("tracks", np.array(ids))
    y = np.array([(p["x"], p["y"]) for p in points])
    assert _neighbour_share(x, y) > 0.3  # (a random layout keeps about 4 %)
    p = points[0]
    assert p["labels"]["cluster"].startswith(("1:", "2:", "3:", "4:")) and p["title"] and p["bpm"] is not None


def test_cli_map(lib, capsys, tmp_path):
    code, out, _ = cli(capsys, "map", "-L", str(lib.path), "--method", "pca")
    assert code == 0 and "240 tracks on the map (pca): 240 laid out" in out
    code, out, _ = cli(capsys, "map", "-L", str(lib.path), "--json")
    data = json.loads(out)
    assert data["method"] == "pca" and len(data["items"]) == 240 and {"id", "x", "y", "labels"} <= set(data["items"][0])
    code, out, _ = cli(capsys, "map", "-L", str(lib.path), "-o", str(tmp_path / "m.csv"))
    assert code == 0 and len((tmp_path / "m.csv").read_text().splitlines()) == 241
    code, _, err = cli(capsys, "map", "-L", str(lib.path), "--refit", "--method", "mds")
    assert code == 2 and "method: expected one of tsne, umap, pca, got 'mds'" in err


def test_library_facade(lib):
    assert lib.map(method="pca").fitted == 240
    info = lib.map(refit=True)
    assert info.method == "pca" and info.placed == 0


# -- the REST API ---------------------------------------------------------------------------------------------

@pytest.fixture()
def client(lib):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app

    with TestClient(create_app(lib.path, model=FakeModel())) as c:
        yield c


def test_api_clusters_and_map(client, lib):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/map", "/api/clusters", "/api/map/labels", "/api/map/playlist"} <= set(paths)
    assert set(paths["/api/clusters"]) == {"get", "post"}
    assert client.get("/api/clusters").status_code == 404
    r = client.post("/api/clusters", json={"k": 4})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["k"] == 4 and data["field"] == "cluster" and "assignments" not in data
    stored = client.get("/api/clusters", params={"field": "cluster"}).json()
    assert [c["label"] for c in stored["clusters"]] == [c["label"] for c in data["clusters"]]
    m = client.get("/api/map", params={"method": "pca"}).json()
    assert m["method"] == "pca" and m["points"] == 240 and len(m["items"]) == 240
    assert m["label_fields"] == ["cluster"] and m["clusters"]["cluster"]["k"] == 4
    item = m["items"][0]
    assert {"id", "x", "y", "title", "bpm", "loudness", "labels", "placed"} <= set(item)
    assert item["labels"]["cluster"] == item["cluster"] in {c["label"] for c in data["clusters"]}
    # a user label in the field: refused without replace, one line of JSON
    lib.set_labels(1, mood="calm")
    r = client.post("/api/clusters", json={"field": "mood"})
    assert r.status_code == 400 and "field 'mood'" in r.json()["error"]
    r = client.post("/api/clusters", json={"k": 0})
    assert r.status_code == 422 and r.json()["error"].startswith("k: ")


def test_api_label_and_playlist_of_a_selection(client, lib):
    ids = [p["id"] for p in client.get("/api/map", params={"method": "pca"}).json()["items"][:12]]
    r = client.post("/api/map/labels", json={"track_ids": ids, "name": "crate", "value": "Friday"})
    assert r.status_code == 200 and r.json()["tracks"] == 12
    assert {lib.labels(i).get("crate") for i in ids} == {"Friday"}
    assert len(lib.tracks(where="crate = 'Friday'")) == 12
    r = client.post("/api/map/labels", json={"track_ids": ids[:2], "name": "crate", "value": None})
    assert r.json()["value"] is None
    assert "crate" not in lib.labels(ids[0]) and lib.labels(ids[2])["crate"] == "Friday"
    r = client.post("/api/map/labels", json={"track_ids": ids, "name": "track_id", "value": "x"})
    assert r.status_code == 400 and "metadata column 'track_id'" in r.json()["error"]
    r = client.post("/api/map/labels", json={"track_ids": [ids[0], 999999], "name": "crate", "value": "x"})
    assert r.status_code == 404 and r.json()["error"] == "no track 999999 in this library"
    pl = client.get("/api/map/playlist", params=[("id", i) for i in ids]).json()
    assert pl["kind"] == "selection" and sorted(e["track_id"] for e in pl["entries"]) == sorted(ids)
    # a smooth order: each step to the most similar track left, so smoother than the order given
    vec = {i: v / np.linalg.norm(v) for i, v in zip(ids, lib.catalog.vectors_by_id("tracks", np.array(ids)))}
    given = np.mean([vec[a] @ vec[b] for a, b in zip(ids, ids[1:])])
    assert pl["smoothness"] > given
    m3u = client.get("/api/map/playlist", params=[("id", i) for i in ids] + [("format", "m3u8")])
    assert m3u.status_code == 200 and m3u.text.startswith("#EXTM3U") and m3u.text.count("/music/") == 12
    assert "selection.m3u8" in m3u.headers["content-disposition"]
    assert client.get("/api/map/playlist", params={"id": 999999}).status_code == 404
