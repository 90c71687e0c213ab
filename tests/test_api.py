"""The REST API in-process (FastAPI TestClient): every route, and its error cases.

A real library on real encoded audio (synthesised music, PyAV encodes), a real
SQLite catalogue and the real embedded vector index; ``FakeModel`` stands in
for the network, so that these tests are about the server, not the model.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import soundalike  # noqa: E402
from soundalike.serve import create_app  # noqa: E402
from soundalike.synth import add_noise, encode, excerpt, render_track  # noqa: E402
from tests.fakes import FakeModel  # noqa: E402

SR = 22050
SECONDS = {0: 16.0, 1: 20.0, 2: 24.0, 3: 28.0, 4: 32.0}


@pytest.fixture(scope="module")
def signals():
    return {seed: render_track(seed, seconds=s, sample_rate=SR) for seed, s in SECONDS.items()}


@pytest.fixture(scope="module")
def library(tmp_path_factory, signals):
    base = tmp_path_factory.mktemp("api")
    music = base / "music"
    music.mkdir()
    exts = [".ogg", ".flac", ".mp3", ".wav", ".ogg"]
    for seed, x in signals.items():
        encode(x, SR, music / f"track{seed}{exts[seed]}")
    (music / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 12)
    lib = soundalike.open(base / "lib", model=FakeModel(), hop=2.0)
    events = list(lib.index([music]))
    assert events[-1].event == "done"
    ids = {Path(t.path).stem: t.id for t in lib.tracks()}
    lib.close()
    return base, ids


@pytest.fixture(scope="module")
def client(library):
    base, _ = library
    with TestClient(create_app(base / "lib", model=FakeModel())) as c:
        yield c


def upload(path_or_bytes, name="query.mp3"):
    data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    return {"file": (name, data, "application/octet-stream")}


def query_file(signals, tmp_path, seed, start, seconds=8.0, name="q.mp3"):
    clip = add_noise(excerpt(signals[seed], SR, start, seconds), 25.0, np.random.default_rng(seed))
    encode(clip, SR, tmp_path / name, bitrate=96000)
    return tmp_path / name


# -- health, stats, docs ------------------------------------------------------------


def test_health_and_stats(client, library):
    _, ids = library
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["tracks"] == len(ids)
    s = client.get("/api/stats").json()
    assert s["tracks"] == len(ids) and s["model"] == "fake" and s["errors"] == 1
    assert s["index"]["tracks"] == len(ids) and s["index"]["segments"] == s["informative_segments"]
    assert s["model_loaded"] and s["api_key_required"] is False and s["max_upload_bytes"] == 100_000_000


def test_openapi_schema_and_docs(client):
    schema = client.get("/openapi.json").json()
    for path in ["/api/search", "/api/search/text", "/api/tracks", "/api/tracks/{track_id}",
                 "/api/tracks/{track_id}/similar", "/api/tracks/{track_id}/audio",
                 "/api/tracks/{track_id}/waveform", "/api/health", "/api/stats", "/api/errors", "/api/waveform"]:
        assert path in schema["paths"], path
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert "cdn." not in docs.text  # Swagger UI from fastapi-offline's files: works offline
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in docs.text and client.get(asset).status_code == 200


def test_web_app_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<title>soundalike</title>" in r.text
    assert client.get("/app.js").status_code == 200 and client.get("/style.css").status_code == 200


# -- search -------------------------------------------------------------------------------


def test_search_upload_ranks_the_source_first(client, library, signals, tmp_path):
    _, ids = library
    q = query_file(signals, tmp_path, 3, 6.0)
    r = client.post("/api/search", files=upload(q, "my clip.mp3"), data={"top": "3"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["query"]["source"] == "my clip.mp3"
    hits = data["hits"]
    assert len(hits) == 3 and hits[0]["track_id"] == ids["track3"]
    assert hits[0]["score"] > hits[1]["score"]
    assert hits[0]["votes"] >= 1 and hits[0]["matches"]
    m = hits[0]["matches"][0]
    assert set(m) == {"query_start", "query_end", "track_start", "track_end", "similarity"}
    assert [t["name"] for t in hits[0]["tags"]] and all(t["name"].startswith(("low", "mid", "high")) for t in hits[0]["tags"])


def test_search_with_a_range_uses_only_that_range(client, library, signals, tmp_path):
    _, ids = library
    q = query_file(signals, tmp_path, 4, 0.0, seconds=20.0)
    r = client.post("/api/search", files=upload(q), data={"start": "10", "end": "16", "top": "2"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["query"]["start"] == pytest.approx(10.0) and data["query"]["end"] == pytest.approx(16.0, abs=0.05)
    assert all(10.0 - 1e-6 <= m["query_start"] and m["query_end"] <= 16.0 + 1e-6 for m in data["hits"][0]["matches"])
    assert data["hits"][0]["track_id"] == ids["track4"]


def test_search_by_catalogue_track(client, library):
    _, ids = library
    r = client.post("/api/search", data={"track": str(ids["track1"]), "top": "10"})
    assert r.status_code == 200, r.text
    got = [h["track_id"] for h in r.json()["hits"]]
    assert ids["track1"] not in got and len(got) == len(ids) - 1
    # a range of a catalogue track searches with its stored windows in that range, and leaves the track out
    r = client.post("/api/search", data={"track": str(ids["track1"]), "start": "4", "end": "12"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert ids["track1"] not in [h["track_id"] for h in data["hits"]]
    assert (data["query"]["start"], data["query"]["end"]) == (4, 12)
    assert all(4 <= (m["query_start"] + m["query_end"]) / 2 <= 12 for h in data["hits"] for m in h["matches"])
    r = client.post("/api/search", data={"track": str(ids["track1"]), "start": "900"})
    assert r.status_code == 400 and "beyond the end" in r.json()["error"]


def test_search_with_a_filter_and_weights(client, library, signals, tmp_path):
    _, ids = library
    q = query_file(signals, tmp_path, 3, 6.0)
    r = client.post("/api/search", files=upload(q), data={"where": "duration < 25", "top": "10"})
    assert r.status_code == 200, r.text
    got = {h["track_id"] for h in r.json()["hits"]}
    assert got and got <= {ids["track0"], ids["track1"], ids["track2"]}
    assert all(h["duration"] < 25 for h in r.json()["hits"])
    r = client.post("/api/search", files=upload(q), data={"weights": "votes=1,similarity=0,track=0", "top": "2"})
    assert r.status_code == 200
    assert all(h["score"] == pytest.approx(h["votes"] / r.json()["query"]["informative_windows"], abs=1e-3)
               for h in r.json()["hits"])


def test_search_errors(client, library, signals, tmp_path):
    _, ids = library
    q = query_file(signals, tmp_path, 0, 2.0)
    # a bad filter names the problem
    r = client.post("/api/search", files=upload(q), data={"where": "bpm >> 3"})
    assert r.status_code == 400 and "position" in r.json()["error"]
    r = client.post("/api/search", files=upload(q), data={"where": "colour = 'red'"})
    assert r.status_code == 400 and "colour" in r.json()["error"]
    # neither, or both, of file and track
    assert client.post("/api/search", data={"top": "3"}).status_code == 400
    assert client.post("/api/search", files=upload(q), data={"track": str(ids["track0"])}).status_code == 400
    # a file that is not audio is refused by decoding it, whatever its name says
    r = client.post("/api/search", files=upload(b"ID3" + os.urandom(4000), "song.mp3"))
    assert r.status_code == 422 and r.json()["error"].startswith("error reading song.mp3")
    r = client.post("/api/search", files=upload(b"", "empty.wav"))
    assert r.status_code in (400, 422) and "empty.wav" in r.json()["error"]
    # bad numbers
    r = client.post("/api/search", files=upload(q), data={"top": "0"})
    assert r.status_code == 422 and "top" in r.json()["error"]
    r = client.post("/api/search", files=upload(q), data={"start": "5", "end": "3"})
    assert r.status_code == 400 and "end" in r.json()["error"]
    r = client.post("/api/search", data={"track": "999999"})
    assert r.status_code == 404
    assert "Traceback" not in r.text


def test_text_search_route(client, library):
    _, ids = library
    # "track3" matches a file name as a keyword; the hit carries that explanation and its catalogue fields
    r = client.post("/api/search/text", json={"query": "track3", "top": 5})
    assert r.status_code == 200, r.text
    hits = {h["track_id"]: h for h in r.json()["hits"]}
    hit = hits[ids["track3"]]
    assert any(c["kind"] == "keyword" for c in hit["explanation"])
    assert hit["duration"] == pytest.approx(28.0, abs=0.2) and hit["name"] == "track3.wav" and hit["tags"]
    r = client.post("/api/search/text", json={"query": "track3", "where": "duration < 18"})
    assert r.status_code == 200 and [h["track_id"] for h in r.json()["hits"]] in ([ids["track0"]], [])
    r = client.post("/api/search/text", json={"query": "track3", "where": "duration <"})
    assert r.status_code == 400 and "filter" in r.json()["error"]
    r = client.post("/api/search/text", json={"query": ""})
    assert r.status_code == 422 and r.json()["error"].startswith("query:")


# -- tracks ---------------------------------------------------------------------------


def test_tracks_are_paged_sorted_and_filtered(client, library):
    _, ids = library
    first = client.get("/api/tracks", params={"limit": 2, "sort": "duration", "order": "desc"}).json()
    second = client.get("/api/tracks", params={"limit": 2, "offset": 2, "sort": "duration", "order": "desc"}).json()
    assert first["total"] == len(ids) and len(first["items"]) == 2
    durations = [t["duration"] for t in first["items"] + second["items"]]
    assert durations == sorted(durations, reverse=True) and len(set(durations)) == 4
    assert first["items"][0]["id"] == ids["track4"]
    r = client.get("/api/tracks", params={"where": "duration between 19 and 25"}).json()
    assert r["total"] == 2 and {t["id"] for t in r["items"]} == {ids["track1"], ids["track2"]}
    assert client.get("/api/tracks", params={"where": "duration <"}).status_code == 400
    assert client.get("/api/tracks", params={"sort": "nope"}).status_code == 400
    assert client.get("/api/tracks", params={"sort": "title; drop table tracks"}).status_code == 400
    assert client.get("/api/tracks", params={"limit": 0}).status_code == 422


def test_track_detail(client, library):
    _, ids = library
    t = client.get(f"/api/tracks/{ids['track2']}").json()
    assert t["id"] == ids["track2"] and t["filename"] == "track2.mp3"
    assert t["duration"] == pytest.approx(24.0, abs=0.2)
    assert t["top_tags"] and {x["name"] for x in t["top_tags"]} <= {"low", "mid", "high"}
    tot = t["tags_over_time"]
    assert len(tot["starts"]) == len(tot["ends"]) == len(tot["values"]) >= 2
    assert tot["starts"][0] == 0 and tot["ends"][-1] == pytest.approx(t["duration"], abs=0.1)
    assert tot["tags"] == [x["name"] for x in t["top_tags"]][: len(tot["tags"])]
    assert all(v is None or len(v) == len(tot["tags"]) for v in tot["values"])
    assert t["file"]["size"] > 0


def test_similar_shelf(client, library):
    _, ids = library
    r = client.get(f"/api/tracks/{ids['track0']}/similar", params={"top": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 3 and ids["track0"] not in [h["track_id"] for h in hits]
    r = client.get(f"/api/tracks/{ids['track0']}/similar", params={"where": "duration > 30"})
    assert [h["track_id"] for h in r.json()["hits"]] == [ids["track4"]]


def test_unknown_ids(client):
    for path in ["/api/tracks/424242", "/api/tracks/424242/similar", "/api/tracks/424242/audio",
                 "/api/tracks/424242/waveform"]:
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json() == {"error": "no track 424242 in this library", "status": 404}
    r = client.get("/api/tracks/abc")
    assert r.status_code == 422 and "track_id" in r.json()["error"]
    assert client.get("/api/nothing-here").status_code == 404


def test_errors_route_lists_failed_files(client):
    errs = client.get("/api/errors").json()["errors"]
    assert [Path(e["path"]).name for e in errs] == ["broken.mp3"] and errs[0]["error"]


# -- audio and waveforms -----------------------------------------------------------------


def test_audio_streams_the_catalogue_file_with_ranges(client, library):
    base, ids = library
    raw = (base / "music" / "track1.flac").read_bytes()
    url = f"/api/tracks/{ids['track1']}/audio"
    r = client.get(url)
    assert r.status_code == 200 and r.content == raw
    assert r.headers["accept-ranges"] == "bytes" and r.headers["content-type"] == "audio/flac"
    r = client.get(url, headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206 and r.content == raw[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(raw)}" and r.headers["content-length"] == "1000"
    r = client.get(url, headers={"Range": "bytes=-500"})
    assert r.status_code == 206 and r.content == raw[-500:]
    r = client.get(url, headers={"Range": f"bytes={len(raw) - 10}-"})
    assert r.status_code == 206 and r.content == raw[-10:]
    r = client.get(url, headers={"Range": f"bytes={len(raw)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(raw)}"


def test_no_client_path_reaches_the_filesystem(client):
    for path in ["/api/tracks/..%2F..%2F..%2Fetc%2Fpasswd/audio", "/api/tracks/../../etc/passwd",
                 "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/../../../../etc/passwd",
                 "/api/tracks/1%2F..%2F..%2Fetc%2Fpasswd/audio"]:
        r = client.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert b"root:" not in r.content


def test_a_catalogue_file_replaced_by_a_symlink_is_not_streamed(tmp_path, signals, monkeypatch):
    # links out of the indexed folders are indexed and served only with the follow_links setting (issue 19,
    # finding 7; tests/test_faults.py tests the default); with it, a file swapped for a link is still refused
    monkeypatch.setenv("SOUNDALIKE_FOLLOW_LINKS", "1")
    music = tmp_path / "music"
    music.mkdir()
    encode(signals[0], SR, music / "a.ogg")
    encode(signals[1], SR, music / "b.ogg")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(b"secret! " * 4000)
    # a file indexed through a symlink is a catalogue file and streams
    encode(signals[2], SR, outside / "linked.flac")
    os.symlink(outside / "linked.flac", music / "linked.flac")
    lib = soundalike.open(tmp_path / "lib", model=FakeModel(), hop=2.0)
    list(lib.index([music]))
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    lib.close()
    with TestClient(create_app(tmp_path / "lib", model=FakeModel())) as c:
        r = c.get(f"/api/tracks/{ids['linked.flac']}/audio")
        assert r.status_code == 200 and r.content == (outside / "linked.flac").read_bytes()
        # after indexing, a.ogg is swapped for a symlink to a file that was never indexed
        (music / "a.ogg").unlink()
        os.symlink(secret, music / "a.ogg")
        r = c.get(f"/api/tracks/{ids['a.ogg']}/audio")
        assert r.status_code == 410 and b"secret" not in r.content and "re-index" in r.json()["error"]
        assert c.get(f"/api/tracks/{ids['a.ogg']}/waveform").status_code == 410
        # a file changed in place is refused too
        with open(music / "b.ogg", "ab") as f:
            f.write(b"tail")
        assert c.get(f"/api/tracks/{ids['b.ogg']}/audio").status_code == 410


def test_waveforms(client, library, signals, tmp_path):
    _, ids = library
    w = client.get(f"/api/tracks/{ids['track3']}/waveform", params={"points": 200}).json()
    assert len(w["peaks"]) == 200 and w["duration"] == pytest.approx(28.0, abs=0.2)
    assert max(w["peaks"]) == 1.0 and min(w["peaks"]) >= 0
    assert client.get(f"/api/tracks/{ids['track3']}/waveform", params={"points": 3}).status_code == 422
    q = query_file(signals, tmp_path, 2, 1.0, seconds=6.0)
    r = client.post("/api/waveform", files=upload(q, "ref.mp3"), data={"points": "300"})
    assert r.status_code == 200 and r.json()["source"] == "ref.mp3"
    assert len(r.json()["peaks"]) == 300 and r.json()["duration"] == pytest.approx(6.0, abs=0.1)
    r = client.post("/api/waveform", files=upload(b"<html>not audio</html>", "ref.wav"))
    assert r.status_code == 422 and "ref.wav" in r.json()["error"]


# -- security and concurrency --------------------------------------------------------------


def test_uploads_over_the_limit_get_413(library, signals, tmp_path):
    base, _ = library
    q = query_file(signals, tmp_path, 4, 0.0, seconds=20.0)
    assert q.stat().st_size > 50_000
    with TestClient(create_app(base / "lib", model=FakeModel(), max_upload_mb=0.05)) as c:
        r = c.post("/api/search", files=upload(q))
        assert r.status_code == 413 and "limit is 0.05 MB" in r.json()["error"]
        # no Content-Length (chunked): refused while streaming

        body = (b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="q.mp3"\r\n'
                b"Content-Type: audio/mpeg\r\n\r\n" + q.read_bytes() + b"\r\n--XyZ--\r\n")

        def chunks():
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        r = c.post("/api/waveform", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
        assert "content-length" not in r.request.headers
        assert r.status_code == 413
        # under the limit is fine
        small = query_file(signals, tmp_path, 0, 0.0, seconds=3.0, name="small.mp3")
        assert small.stat().st_size < 50_000
        assert c.post("/api/search", files=upload(small)).status_code == 200


def test_api_key(library):
    base, ids = library
    with TestClient(create_app(base / "lib", model=FakeModel(), api_key="s3cret")) as c:
        for path in ["/api/health", "/api/stats", "/api/tracks", f"/api/tracks/{ids['track0']}/audio"]:
            r = c.get(path)
            assert r.status_code == 401 and "API key" in r.json()["error"], path
            assert c.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
            assert c.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/api/search", data={"track": str(ids["track0"])}).status_code == 401
        assert c.post("/api/search", data={"track": str(ids["track0"])}, headers={"X-API-Key": "s3cret"}).status_code == 200
        # the cookie the web app sets for <audio> elements
        c.cookies.set("soundalike_key", "s3cret")
        assert c.get(f"/api/tracks/{ids['track0']}/audio").status_code == 200
        c.cookies.clear()
        # the page itself and the API docs are public; they hold no library data
        assert c.get("/").status_code == 200 and c.get("/openapi.json").status_code == 200
        assert c.get("/api/stats", headers={"X-API-Key": "s3cret"}).json()["api_key_required"] is True


def test_cors_is_off_by_default_and_can_be_enabled(client, library):
    base, _ = library
    r = client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    app = create_app(base / "lib", model=FakeModel(), cors_origins=["http://studio.lan"], api_key="k")
    with TestClient(app) as c:
        r = c.options("/api/tracks", headers={"Origin": "http://studio.lan", "Access-Control-Request-Method": "GET",
                                              "Access-Control-Request-Headers": "X-API-Key"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://studio.lan"
        r = c.get("/api/health", headers={"Origin": "http://evil.example", "X-API-Key": "k"})
        assert "access-control-allow-origin" not in r.headers


def test_unexpected_errors_are_json_without_a_traceback(library, monkeypatch):
    base, _ = library
    from soundalike.library import Library

    def broken(self):
        raise RuntimeError("database on fire at /secret/path")

    monkeypatch.setattr(Library, "errors", broken)
    with TestClient(create_app(base / "lib", model=FakeModel()), raise_server_exceptions=False) as c:
        r = c.get("/api/errors")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (RuntimeError); see the server log", "status": 500}


def test_concurrent_searches_agree_with_sequential_ones(client, library, signals, tmp_path):
    _, ids = library
    queries = [query_file(signals, tmp_path, s, 3.0, name=f"c{s}.mp3").read_bytes() for s in range(5)]

    def one(i):
        r = client.post("/api/search", files=upload(queries[i % 5]), data={"top": "3"})
        assert r.status_code == 200, r.text
        return i % 5, [(h["track_id"], h["score"]) for h in r.json()["hits"]]

    sequential = dict(one(i) for i in range(5))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(20)))
    for seed, hits in results:
        assert hits == sequential[seed]
        assert hits[0][0] == ids[f"track{seed}"]
    engine = client.app.state.engine
    assert 1 < len(engine._libraries) <= engine.threads  # one catalogue connection per pool thread


def test_slow_searches_block_neither_each_other_nor_the_event_loop(library, monkeypatch):
    """Searches run in the pool: two slow ones overlap, and health answers meanwhile."""
    import time

    from soundalike.library import Library

    base, ids = library
    original = Library.similar

    def slow_similar(self, *a, **kw):
        time.sleep(1.5)
        return original(self, *a, **kw)

    monkeypatch.setattr(Library, "similar", slow_similar)
    with TestClient(create_app(base / "lib", model=FakeModel())) as c:
        c.get("/api/health")
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            searches = [pool.submit(c.post, "/api/search", data={"track": str(ids[f"track{i}"])}) for i in (0, 1)]
            time.sleep(0.3)
            h0 = time.monotonic()
            assert c.get("/api/health").status_code == 200
            health_s = time.monotonic() - h0
            assert all(f.result().status_code == 200 for f in searches)
        both_s = time.monotonic() - t0
    assert health_s < 1.0
    assert both_s < 2 * 1.5


def test_a_missing_library_fails_at_startup(tmp_path):
    from soundalike.errors import UserError

    with pytest.raises(UserError, match="no library"):
        create_app(tmp_path / "nothing", model=FakeModel())


def test_serve_command_is_registered():
    from typer.testing import CliRunner

    from soundalike.cli import app

    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "--api-key" in r.output and "--port" in r.output





def test_the_server_loads_the_text_model_in_the_background_at_startup(library, monkeypatch):
    """The first text search in the web app does not wait several seconds for MiniLM: `serve` (warm_up)
    starts loading it with the server, in a thread, and does not wait for it to start serving."""
    import soundalike.text as text

    monkeypatch.setattr(text, "_model", None)
    base, _ = library
    app = create_app(base / "lib", model=FakeModel(), warm_up=True)
    with TestClient(app) as c:
        thread = app.state.engine.text_warm_up
        assert thread is not None and thread.daemon
        assert c.get("/api/health").status_code == 200
        thread.join(timeout=240)
        assert text.text_model_loaded() and c.get("/api/health").json()["text_model_loaded"] is True


def test_a_tracks_user_labels_are_in_its_detail(client, library):
    base, ids = library
    lib = soundalike.open(base / "lib", model=FakeModel())
    lib.set_labels(ids["track1"], category="ambience")
    lib.close()
    detail = client.get(f"/api/tracks/{ids['track1']}").json()
    assert detail["labels"] == {"category": "ambience"}
    assert client.get(f"/api/tracks/{ids['track2']}").json()["labels"] == {}
    listed = client.get("/api/tracks", params={"where": "category = 'ambience'"}).json()["items"]
    assert [t["id"] for t in listed] == [ids["track1"]]
