"""The web app in a real browser: Debian's chromium driven by Playwright, against `soundalike serve`.

The server runs as a subprocess on 127.0.0.1 (a free port), with an API key, over
a small library of real music indexed with the real model (three short tracks
from scripts/demo_library.py, or synthesised music where apt is unavailable).
Screenshots are saved in tests/.artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

import soundalike  # noqa: E402
from soundalike.decode import decode  # noqa: E402
from soundalike.synth import add_noise, encode, excerpt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / ".artifacts"
CHROMIUM = "/usr/bin/chromium"
KEY = "web-test-key"
TIMEOUT = 180_000  # ms; the machine may be shared and slow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    req = urllib.request.Request(url, headers={"X-API-Key": KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def web_library(tmp_path_factory):
    """Three short real tracks (plus a corrupt file) indexed with the real model."""
    music = ROOT / "tests" / ".data" / "music"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_library.py"), "--dir", str(music),
                    "--max-tracks", "6", "--max-seconds", "150"], check=True)
    manifest = json.loads((music / "manifest.json").read_text())
    base = tmp_path_factory.mktemp("web")
    folder = base / "music"
    folder.mkdir()
    chosen = sorted(manifest["tracks"], key=lambda t: t["seconds"])[:3]
    for t in chosen:
        shutil.copy2(music / t["file"], folder / t["file"])
    (folder / "broken.ogg").write_bytes(b"OggS" + bytes(range(256)) * 4)
    lib = soundalike.open(base / "lib")
    events = list(lib.index([folder]))
    assert events[-1].event == "done"
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    lib.close()
    return base, folder, ids, manifest["kind"]


@pytest.fixture(scope="module")
def server(web_library):
    base, _, _, _ = web_library
    port = _free_port()
    log = open(base / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", "from soundalike.cli import main; main()", "serve", "-L", str(base / "lib"),
         "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SOUNDALIKE_DEBUG": ""},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"soundalike serve exited: {(base / 'serve.log').read_text()}")
            try:
                if _get(url + "/api/health")["status"] == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("soundalike serve did not start in 240 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    """One browser context for the whole module: the API key is asked for once."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server + "/")
    pg.wait_for_selector("#keydialog[open]")
    pg.fill("#keyinput", KEY)
    pg.click("#keydialog button[type=submit]")
    pg.wait_for_function("document.querySelector('#status').textContent.includes('tracks')")
    pg.errors = errors
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def query(web_library, tmp_path_factory):
    """A degraded excerpt of the second-shortest track: 10 s with noise at 20 dB SNR, as 64 kbit/s MP3."""
    _, folder, ids, _ = web_library
    name = sorted((p for p in folder.iterdir() if p.name != "broken.ogg"), key=lambda p: p.stat().st_size)[1].name
    audio = decode(folder / name, sample_rate=44100)
    start = min(12.0, audio.duration / 3)
    clip = add_noise(excerpt(audio.samples, 44100, start, 10.0), 20.0, np.random.default_rng(3))
    path = tmp_path_factory.mktemp("query") / "degraded clip.mp3"
    encode(clip, 44100, path, bitrate=64000)
    return path, ids[name], start


def _current_time(page, player: str) -> float:
    return page.evaluate(f"document.querySelector('{player}').currentTime")


def _text_search(page, words: str) -> set[int]:
    """Type a text query, press Enter, wait for the results: the track ids of the result cards."""
    page.fill("#text", words)
    page.press("#text", "Enter")
    page.wait_for_function("document.querySelector('#search-status').textContent.includes('results for')")
    return {int(c.get_attribute("data-track-id")) for c in page.query_selector_all(".card.result")}


def test_the_ui_asks_for_the_key_once_and_the_api_needs_it(page, server):
    assert page.evaluate("localStorage.getItem('soundalike_key')") == KEY
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server + "/api/stats", timeout=10)
    assert err.value.code == 401


def test_upload_a_degraded_excerpt_and_play_the_match(page, server, query):
    path, source_id, start = query
    page.goto(server + "/#/")
    page.set_input_files("#file", str(path))
    page.wait_for_function("!document.querySelector('#go').disabled")
    assert page.inner_text("#ref-name") == "degraded clip.mp3"
    page.click("#go")
    page.wait_for_selector(".card.result")
    cards = page.query_selector_all(".card.result")
    assert int(cards[0].get_attribute("data-track-id")) == source_id
    assert "%" in cards[0].query_selector(".score").inner_text()
    assert "· copy" in cards[0].query_selector(".meta").inner_text()  # its audio match confirms it
    assert cards[0].query_selector_all(".tags li")
    page.wait_for_selector(".card.result >> nth=0 >> canvas[data-ready='1']")
    page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True)

    # play the matched segment of the result: the media element's clock advances inside the match
    button = page.locator(".card.result").first.locator(".play-result").first
    label = button.get_attribute("aria-label")  # "Play 0:21.0 to 0:24.0 of ..."
    button.click()
    page.wait_for_function("document.querySelector('#player').currentTime > 0 && !document.querySelector('#player').paused")
    t0 = _current_time(page, "#player")
    page.wait_for_function(f"document.querySelector('#player').currentTime > {t0 + 0.5}")
    m, s = label.split()[1].split(":")
    match_start = int(m) * 60 + float(s)
    assert match_start - 0.1 <= _current_time(page, "#player") <= match_start + 3.5
    assert button.get_attribute("aria-pressed") == "true"
    page.screenshot(path=str(ARTIFACTS / "playing.png"))

    # and the corresponding segment of the reference, from the browser's own copy of the file
    ref = page.locator(".card.result").first.locator(".play-ref").first
    ref.click()
    page.wait_for_function("!document.querySelector('#refplayer').paused")
    r0 = _current_time(page, "#refplayer")
    page.wait_for_function(f"document.querySelector('#refplayer').currentTime > {r0 + 0.5}")
    assert page.evaluate("document.querySelector('#player').paused")  # one thing plays at a time


def test_a_transposed_upload_is_marked_as_a_copy_with_its_shift(page, server, web_library, query, tmp_path):
    from soundalike.evaluate import degrade

    _, folder, ids, _ = web_library
    path, source_id, start = query
    name = next(n for n, i in ids.items() if i == source_id)
    audio = decode(folder / name, sample_rate=44100)
    shifted = tmp_path / "up a semitone.wav"
    encode(degrade.pitch(excerpt(audio.samples, 44100, start, 10.0), 44100, 1), 44100, shifted)
    page.goto(server + "/#/")
    page.set_input_files("#file", str(shifted))
    page.wait_for_function("!document.querySelector('#go').disabled")
    assert page.inner_text("#ref-name") == "up a semitone.wav"
    page.click("#go")  # the status says "searching…" until the new results are shown
    page.wait_for_function("document.querySelector('#search-status').textContent.includes('results in')")
    card = page.query_selector_all(".card.result")[0]
    assert int(card.get_attribute("data-track-id")) == source_id
    assert "copy (+1 semitone)" in card.query_selector(".meta").inner_text()


def test_select_a_range_by_keyboard(page, server, query):
    path, source_id, _ = query
    page.goto(server + "/#/")
    with page.expect_file_chooser() as chooser:  # the drop zone works from the keyboard
        page.focus("#drop")
        page.keyboard.press("Enter")
    chooser.value.set_files(str(path))
    page.wait_for_function("!document.querySelector('#go').disabled")
    page.focus("#refwave")
    page.keyboard.press("ArrowRight")  # the default 10 s selection cannot move right in a 10 s file
    page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("Shift+ArrowLeft")
    assert float(page.input_value("#sel-start")) == pytest.approx(0.0, abs=0.05)
    assert float(page.input_value("#sel-end")) == pytest.approx(8.0, abs=0.15)
    page.click("#go")
    page.wait_for_function("document.querySelector('#search-status').textContent.includes('results')")
    first = page.query_selector(".card.result")
    assert int(first.get_attribute("data-track-id")) == source_id


def test_track_page_shows_the_similar_shelf(page, server, web_library, query):
    _, _, ids, _ = web_library
    _, source_id, _ = query
    page.goto(f"{server}/#/track/{source_id}")
    page.wait_for_selector("#similar .card")
    shelf = page.query_selector_all("#similar .card")
    shown = {int(c.get_attribute("data-track-id")) for c in shelf}
    assert shown == set(ids.values()) - {source_id}  # every other track, at most 8
    assert page.query_selector_all(".kv dt") and page.query_selector("canvas.heat")
    page.locator("#similar .play-similar").first.click()
    page.wait_for_function("!document.querySelector('#player').paused")
    t0 = _current_time(page, "#player")
    page.wait_for_function(f"document.querySelector('#player').currentTime > {t0 + 0.3}")
    page.screenshot(path=str(ARTIFACTS / "track.png"), full_page=True)
    # "find similar" from the track page lists the other tracks on the search page
    page.click("#track-search")
    page.wait_for_function("document.querySelector('#search-status') && "
                           "document.querySelector('#search-status').textContent.includes('tracks like')")
    got = [int(c.get_attribute("data-track-id")) for c in page.query_selector_all(".card.result")]
    assert set(got) == set(ids.values()) - {source_id}


def test_text_query_with_a_bpm_filter(page, server):
    tracks = _get(server + "/api/tracks?limit=100")["items"]
    bpms = sorted(t["bpm"] for t in tracks if t["bpm"])
    assert len(bpms) >= 2, "tempo descriptors are missing"
    lo, hi = bpms[0] - 0.5, bpms[-2] + 0.5  # leaves out the fastest track
    allowed = {t["id"] for t in tracks if t["bpm"] and lo <= t["bpm"] <= hi}
    page.goto(server + "/#/")
    page.click("#filters summary")
    page.fill("#f-bpm-min", f"{lo:g}")
    page.fill("#f-bpm-max", f"{hi:g}")
    assert "bpm between" in page.inner_text("#filter-note")
    got = _text_search(page, "slow strings")
    assert got and got <= allowed
    page.screenshot(path=str(ARTIFACTS / "text.png"), full_page=True)


def test_library_page_sorts_and_shows_errors(page, server, web_library):
    _, _, ids, _ = web_library
    page.goto(server + "/#/library")
    page.wait_for_selector("table tbody tr")
    assert len(page.query_selector_all("table tbody tr")) == len(ids)
    assert "broken.ogg" in page.inner_text("ul.errors")
    page.click("th button:has-text('Duration')")
    page.wait_for_function("location.hash.includes('sort=duration')")
    page.wait_for_selector("th[aria-sort='ascending']")
    page.click("th button:has-text('Duration')")
    page.wait_for_selector("th[aria-sort='descending']")
    longest = max(_get(server + "/api/tracks")["items"], key=lambda t: t["duration"])
    assert page.inner_text("table tbody tr >> nth=0 >> td >> nth=0") == (longest["title"] or Path(longest["path"]).name)
    page.screenshot(path=str(ARTIFACTS / "library.png"), full_page=True)


def test_api_docs_render_offline(page, server):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "soundalike" in page.inner_text(".swagger-ui .info .title")
    assert all(u.startswith(server) for u in requests), [u for u in requests if not u.startswith(server)]


def test_readable_on_a_phone(page, server, query):
    path, _, _ = query
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(server + "/#/")
        page.set_input_files("#file", str(path))
        page.wait_for_function("!document.querySelector('#go').disabled")
        page.click("#go")
        page.wait_for_selector(".card.result")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / "phone.png"))
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_text_query_with_a_tag_filter(page, server):
    """The Tags control becomes `tag.NAME >= p` and the results respect it."""
    import urllib.parse

    def allowed(p):
        q = urllib.parse.quote(f"tag.strings >= {p}")
        return {t["id"] for t in _get(server + f"/api/tracks?limit=100&where={q}")["items"]}

    total = len(_get(server + "/api/tracks?limit=100")["items"])
    p, ids = next(((p, a) for p in (0.05, 0.1, 0.2, 0.3, 0.5, 0.02, 0.01) if 0 < len(a := allowed(p)) < total),
                  (None, None))
    if p is None:
        pytest.skip("no threshold splits this library on 'strings'")
    page.goto(server + "/#/")
    page.click("#filters summary")
    page.fill("#f-tags", "strings")
    page.fill("#f-tag-min", f"{p:g}")
    assert "tag.strings" in page.inner_text("#filter-note")
    got = _text_search(page, "slow strings")
    assert got and got <= ids
