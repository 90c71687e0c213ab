"""The server under hostile or careless requests (issue 19, findings 5-8): out-of-range numbers, deep
filters, keep-alive after errors, decoded-size limits, symlinks out of the library, slow uploads.

In-process through TestClient where the route is what matters; a real uvicorn on loopback (a thread,
an ephemeral port) where the connection is.
"""

from __future__ import annotations

import http.client
import socket
import time

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from soundalike.serve import create_app  # noqa: E402
from tests.conftest import cli, live_server  # noqa: E402
from tests.fakes import FakeModel  # noqa: E402
from tests.test_api import library, signals  # noqa: E402,F401 - the module-scoped library fixtures

HUGE = "99999999999999999999"
TWO63 = str(2**63)


@pytest.fixture(scope="module")
def client(library):  # noqa: F811
    base, _ = library
    with TestClient(create_app(base / "lib", model=FakeModel()), raise_server_exceptions=False) as c:
        yield c


def assert_4xx(r, *words):
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == r.status_code and "\n" not in body["error"]
    for w in words:
        assert w in body["error"], body["error"]


# -- finding 5: out-of-range input is a 4xx, never a 500 ----------------------------------------


@pytest.mark.parametrize("url", [
    f"/api/tracks/{TWO63}", f"/api/tracks/{TWO63}/audio", f"/api/tracks/{HUGE}/waveform",
    f"/api/tracks/{HUGE}/similar", "/api/tracks/0", "/api/tracks/-1",
])
def test_huge_track_ids_are_422(client, url):
    assert_4xx(client.get(url), "track_id")


def test_huge_offsets_are_422(client):
    assert_4xx(client.get(f"/api/tracks?offset={HUGE}"), "offset")


@pytest.mark.parametrize("field, value", [
    ("track", HUGE), ("exclude_album_of", HUGE), ("track", TWO63), ("start", "1e308"), ("end", "1e308"),
    ("start", "nan"), ("start", "inf"),
])
def test_huge_form_fields_are_422(client, library, field, value):  # noqa: F811
    _, ids = library
    data = {"track": str(ids["track1"]), field: value}
    assert_4xx(client.post("/api/search", data=data), field)


def test_a_huge_start_with_an_upload_is_422(client, library):  # noqa: F811
    base, _ = library
    data = (base / "music" / "track1.flac").read_bytes()
    for start in ("1e308", "1e9"):
        assert_4xx(client.post("/api/search", files={"file": ("q.flac", data, "audio/flac")}, data={"start": start}),
                   "start")
    with pytest.raises(Exception, match="start must be a number of seconds from 0 to 1e"):
        from soundalike.decode import decode

        decode(base / "music" / "track1.flac", sample_rate=8000, start=1e308)


def test_huge_text_search_fields_are_422(client):
    assert_4xx(client.post("/api/search/text", json={"query": "piano", "exclude_album_of": int(HUGE)}),
               "exclude_album_of")


@pytest.mark.parametrize("where", ["(" * 1000 + "bpm > 1" + ")" * 1000, " or ".join(["bpm = 1"] * 5000),
                                   "not " * 1000 + "bpm > 1"])
def test_deep_filters_are_400(client, library, where):  # noqa: F811
    _, ids = library
    for r in (client.get("/api/tracks", params={"where": where}),
              client.get(f"/api/tracks/{ids['track1']}/similar", params={"where": where}),
              client.post("/api/search", data={"track": str(ids["track1"]), "where": where}),
              client.post("/api/search/text", json={"query": "piano", "where": where})):
        assert_4xx(r, "where: filter error")


def test_huge_numbers_in_a_filter_compare_as_reals(client):
    r = client.get("/api/tracks", params={"where": f"id < {HUGE} and size > -{HUGE}"})
    assert r.status_code == 200 and r.json()["total"] == 5
    assert client.get("/api/tracks", params={"where": f"id = {HUGE}"}).json()["total"] == 0


def test_the_cli_refuses_the_same_numbers(library, capsys):  # noqa: F811
    from soundalike.models import register_model

    register_model("fake", FakeModel)
    base, ids = library
    code, _, err = cli(capsys, "similar", HUGE, "-L", base / "lib")
    assert code == 2 and f"no track {HUGE}" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "similar", str(ids["track1"]), "--start", "1e308", "-L", base / "lib")
    assert code == 2 and "--start: expected seconds from 0 to 1e+07" in err and err.count("\n") == 1


def test_an_error_keeps_the_connection_alive(library, monkeypatch):  # noqa: F811
    """After a 500 (and a 4xx) the next request on the same keep-alive connection is answered."""
    from soundalike.library import Library

    def broken(self):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(Library, "errors", broken)
    base, _ = library
    with live_server(create_app(base / "lib", model=FakeModel())) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for url, status in [("/api/errors", 500), (f"/api/tracks/{TWO63}", 422), ("/api/health", 200)]:
            conn.request("GET", url)
            r = conn.getresponse()
            r.read()
            assert r.status == status
            if url == "/api/errors":
                sock = conn.sock
                assert not r.will_close
        assert conn.sock is sock  # one connection throughout
        conn.close()


# -- finding 8: the API key out of `ps`, and slow request bodies ---------------------------------


def serve_app(monkeypatch, capsys, *args, env=None):
    """Run `soundalike serve ARGS` with uvicorn.run captured: (exit code, the app, uvicorn's kwargs, stderr)."""
    import uvicorn

    from soundalike.models import register_model

    register_model("fake", FakeModel)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    code, _, err = cli(capsys, "serve", "--no-preload", *args)
    return code, seen.pop("app", None), seen, err


def key_works(app, key):
    with TestClient(app) as c:
        return (c.get("/api/health").status_code, c.get("/api/health", headers={"X-API-Key": key}).status_code)


def test_the_api_key_from_a_file_or_the_environment(library, tmp_path, monkeypatch, capsys):  # noqa: F811
    base, _ = library
    keyfile = tmp_path / "key"
    keyfile.write_text("s3cret-from-file\n")
    keyfile.chmod(0o600)
    code, app, kw, err = serve_app(monkeypatch, capsys, "-L", base / "lib", "--api-key-file", keyfile)
    assert code == 0 and err.count("warning") == 0, err
    assert key_works(app, "s3cret-from-file") == (401, 200)
    assert kw["timeout_keep_alive"] == 5
    code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", env={"SOUNDALIKE_API_KEY_FILE": str(keyfile)})
    assert code == 0 and key_works(app, "s3cret-from-file") == (401, 200)
    monkeypatch.delenv("SOUNDALIKE_API_KEY_FILE")
    code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", env={"SOUNDALIKE_API_KEY": "from-env"})
    assert code == 0 and key_works(app, "from-env") == (401, 200) and "warning" not in err
    code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", "--api-key", "on-the-command-line")
    assert code == 0 and key_works(app, "on-the-command-line") == (401, 200)
    assert "warning: --api-key is visible to other users" in " ".join(err.split())


def test_a_bad_key_file_is_a_one_line_error(library, tmp_path, monkeypatch, capsys):  # noqa: F811
    base, _ = library
    (tmp_path / "empty").write_text("\n")
    for path, message in [(tmp_path / "missing", "cannot read"), (tmp_path / "empty", "is empty")]:
        code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", "--api-key-file", path)
        assert code == 2 and app is None and f"--api-key-file: " in err and message in err and err.count("\n") == 1
    loose = tmp_path / "loose"
    loose.write_text("k")
    loose.chmod(0o644)
    code, _, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", "--api-key-file", loose)
    assert code == 0 and "can be read by other users" in " ".join(err.split())


def raw_request(port, head: bytes, body_parts, *, pause: float):
    """Send ``head`` then each of ``body_parts`` ``pause`` s apart (stopping when the server answers);
    returns (response bytes, seconds from the first byte to the server closing the connection)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    t0 = time.monotonic()
    s.sendall(head)
    s.settimeout(pause)
    got = b""
    for part in body_parts:
        try:
            s.sendall(part)
            chunk = s.recv(65536)
            if chunk:
                got += chunk
                break
        except socket.timeout:
            continue
        except OSError:
            break
    s.settimeout(30)
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got, time.monotonic() - t0


HEAD = (b"POST /api/waveform HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
        b"Content-Length: 100000\r\n\r\n")


def test_a_stalled_upload_gets_408_and_its_connection_closed(library):  # noqa: F811
    base, _ = library
    with live_server(create_app(base / "lib", model=FakeModel(), read_timeout=0.5)) as port:
        got, seconds = raw_request(port, HEAD, [b"--B\r\n", *[b""] * 40], pause=0.1)
        assert got.startswith(b"HTTP/1.1 408") and b"request body too slow" in got
        assert 0.4 < seconds < 3
        # a trickle that never pauses long enough still ends at 20 read timeouts in all
        part = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        got, seconds = raw_request(port, HEAD, [part] + [b"x"] * 200, pause=0.1)
        assert got.startswith(b"HTTP/1.1 408") and 9 < seconds < 13
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # and the server still answers
        conn.request("GET", "/api/health")
        assert conn.getresponse().status == 200


# -- finding 6: uploads that decode to hours ------------------------------------------------------


@pytest.fixture(scope="module")
def silent_hour(tmp_path_factory):
    """An hour of silence as a 0.8 MB FLAC at 4 kHz, and a copy whose header does not give its length."""
    import numpy as np

    from soundalike.synth import encode

    folder = tmp_path_factory.mktemp("silence")
    path = folder / "hour.flac"
    block = np.zeros(4000 * 60, np.float32)
    encode((block for _ in range(60)), 4000, path)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[8 + 13] & 0x0F == 0  # STREAMINFO: total samples in bits 108..143
    data[8 + 13] &= 0xF0
    data[8 + 14 : 8 + 18] = bytes(4)  # 0 = unknown length
    (folder / "no-length.flac").write_bytes(bytes(data))
    return path, folder / "no-length.flac"


def test_waveform_peaks_stream_in_bounded_memory(silent_hour):
    import tracemalloc

    from soundalike.serve.media import peaks

    tracemalloc.start()
    try:
        w = peaks(silent_hour[0], points=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert w["duration"] == 3600.0 and len(w["peaks"]) == 1000
    assert peak < 16e6, f"{peak / 1e6:.0f} MB"  # every sample kept was 58 MB at 4 kHz, twice over


@pytest.mark.parametrize("which", [0, 1], ids=["header", "no-length-in-header"])
@pytest.mark.parametrize("route", ["/api/waveform", "/api/search"])
def test_uploads_that_decode_too_long_get_413(library, silent_hour, which, route):  # noqa: F811
    base, _ = library
    path = silent_hour[which]
    with TestClient(create_app(base / "lib", model=FakeModel(), max_upload_seconds=600)) as c:
        t = time.monotonic()
        r = c.post(route, files={"file": ("long.flac", path.read_bytes(), "audio/flac")})
        seconds = time.monotonic() - t
    assert r.status_code == 413, r.text
    message = r.json()["error"]
    assert message.startswith("long.flac: ") and "of audio; the limit is 10.0 min" in message
    assert seconds < 5  # refused from the header, or after decoding 10 minutes of the 60


def test_the_duration_limit_is_a_setting(library, silent_hour, monkeypatch, capsys):  # noqa: F811
    base, _ = library
    _, app, _, _ = serve_app(monkeypatch, capsys, "-L", base / "lib", env={"SOUNDALIKE_MAX_UPLOAD_SECONDS": "60"})
    assert app.state.max_upload_seconds == 60
    with TestClient(app) as c:
        r = c.post("/api/waveform", files={"file": ("h.flac", silent_hour[0].read_bytes(), "audio/flac")})
    assert r.status_code == 413 and "1.0 h of audio; the limit is 1.0 min" in r.json()["error"]


def test_an_option_overrides_the_environment_and_two_options_are_refused(library, tmp_path, monkeypatch, capsys):  # noqa: F811
    base, _ = library
    keyfile = tmp_path / "key"
    keyfile.write_text("from-file\n")
    keyfile.chmod(0o600)
    code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", "--api-key", "from-option",
                                  env={"SOUNDALIKE_API_KEY_FILE": str(keyfile), "SOUNDALIKE_API_KEY": "from-env"})
    assert code == 0 and key_works(app, "from-option") == (401, 200)
    code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", env={"SOUNDALIKE_API_KEY": "from-env"})
    assert code == 0 and key_works(app, "from-file") == (401, 200)  # the key file (from the environment) wins
    code, app, _, err = serve_app(monkeypatch, capsys, "-L", base / "lib", "--api-key", "a", "--api-key-file", keyfile)
    assert code == 2 and app is None and "give one of them" in err
