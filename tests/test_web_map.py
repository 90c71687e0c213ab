"""The map page (#/map, map.js) in a real browser: Debian's chromium through Playwright, at 1280 and 390 px.

The server is the real app served by uvicorn in a thread on 127.0.0.1, over a real library (16 synthesised
tracks encoded with PyAV in four album folders, FakeModel for the network), clustered with
``Library.clusters(k=4)`` before it starts. Screenshots are saved in tests/.artifacts/.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import soundalike
from soundalike.synth import encode, render_track
from tests.conftest import chromium, need
from tests.web import ARTIFACTS, BROWSER, CHROMIUM, DESKTOP, PHONE, TIMEOUT, fake_app
from tests.fakes import FakeModel

SR = 22050
TRACKS = 16

pytestmark = BROWSER


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    need("sklearn", "organise")  # skipped without the organise extra, failed in CI
    need("openTSNE", "organise")
    base = tmp_path_factory.mktemp("web-map")
    music = base / "music"
    for s in range(TRACKS):
        folder = music / f"Album {s % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        encode(render_track(s, seconds=8, sample_rate=SR), SR, folder / f"Song {s}.flac")
    lib = soundalike.open(base / "lib", model=FakeModel(), hop=2.0)
    assert list(lib.index([music]))[-1].event == "done"
    clustering = lib.clusters(k=4)
    ids = {Path(t.path).stem: t.id for t in lib.tracks()}
    lib.close()
    return base / "lib", ids, clustering


@pytest.fixture(scope="module")
def server(library):
    with fake_app(library[0]) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium(CHROMIUM) as b:
        yield b


def _page(browser, server, viewport):
    context = browser.new_context(viewport=viewport)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server + "/#/map")
    pg.wait_for_function(f"document.querySelector('#map-status')?.textContent.startsWith('{TRACKS} tracks')")
    return context, pg, errors


def _at(page, track_id: int) -> tuple[float, float]:
    p = page.evaluate(f"window.soundalikeMap.at({track_id})")
    return p["x"], p["y"]


def _around(box) -> list[tuple[float, float]]:
    """The corners of a rectangle just inside the canvas (its rounded corners are not the canvas's to click)."""
    left, top, right, bottom = box["x"] + 12, box["y"] + 12, box["x"] + box["width"] - 12, box["y"] + box["height"] - 12
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


def _lasso(page, corners) -> None:
    page.mouse.move(*corners[0])
    page.mouse.down()
    for c in corners[1:] + corners[:1]:
        page.mouse.move(*c, steps=6)
    page.mouse.up()


def test_map_hover_click_lasso_playlist_and_label(browser, server, library):
    lib_path, ids, clustering = library
    context, page, errors = _page(browser, server, DESKTOP)
    assert page.locator("nav a[data-nav=map]").get_attribute("aria-current") == "page"
    assert page.input_value("#map-colour") == "cluster"
    legend = [b.get_attribute("data-value") for b in page.query_selector_all("#map-legend .legend-item")]
    assert sorted(legend) == sorted(c.label for c in clustering.clusters)
    # hover: the tooltip names the track under the pointer and its cluster
    song = ids["Song 5"]
    x, y = _at(page, song)
    page.mouse.move(x + 1, y + 1)
    page.wait_for_selector("#map-tip:not([hidden])")
    assert page.get_attribute("#map-tip", "data-track-id") == str(song)
    tip = page.inner_text("#map-tip")
    assert "Song 5" in tip and f"cluster: {clustering.assignments[song]}:" in tip
    # click: plays it, and offers to open it
    page.mouse.click(x, y)
    page.wait_for_function("!document.querySelector('#player').paused"
                           " && document.querySelector('#player').currentTime > 0.2")
    assert page.evaluate("document.querySelector('#player').src").endswith(f"/api/tracks/{song}/audio")
    assert page.get_attribute("#map-open", "href") == f"#/track/{song}"
    page.evaluate("document.querySelector('#player').pause()")
    page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)
    # lasso around the whole map: every track selected
    _lasso(page, _around(page.locator("#map-canvas").bounding_box()))
    page.wait_for_selector("#map-selection:not([hidden])")
    assert page.inner_text("#map-sel-h") == f"{TRACKS} tracks selected"
    # a lasso around one dot only: just that track
    _lasso(page, [(x - 4, y - 4), (x + 4, y - 4), (x + 4, y + 4), (x - 4, y + 4)])
    page.wait_for_function("document.querySelector('#map-sel-h').textContent === '1 track selected'")
    assert page.evaluate("window.soundalikeMap.selected()") == [song]
    # a legend entry selects its cluster, which becomes a playlist (radio's list, with its downloads)
    number = clustering.assignments[song]
    members = sorted(t for t, c in clustering.assignments.items() if c == number)
    label = next(c.label for c in clustering.clusters if c.number == number)
    page.click(f"#map-legend .legend-item[data-value='{label}']")
    assert sorted(page.evaluate("window.soundalikeMap.selected()")) == members
    page.click("#map-playlist")
    page.wait_for_selector(".playlist .entry")
    entries = [int(li.get_attribute("data-track-id")) for li in page.query_selector_all(".playlist .entry")]
    assert sorted(entries) == members
    href = page.get_attribute("a.download >> text=M3U8", "href")
    with urllib.request.urlopen(server + href, timeout=10) as r:
        assert r.read().decode().count("#EXTINF:") == len(members)
    # set a label on the selection: stored for every selected track
    page.fill("#map-label-name", "crate")
    page.fill("#map-label-value", "Friday")
    page.click("#map-label-go")
    page.wait_for_function("document.querySelector('#map-label-note').textContent"
                           f" === 'crate = Friday on {len(members)} tracks'")
    query = urllib.parse.urlencode({"where": "crate = 'Friday'", "limit": 100})
    with urllib.request.urlopen(f"{server}/api/tracks?{query}", timeout=10) as r:
        assert sorted(t["id"] for t in json.loads(r.read())["items"]) == members
    # colour by a descriptor: a ramp, no categories
    page.select_option("#map-colour", "bpm")
    page.wait_for_selector("#map-legend .map-ramp")
    assert page.evaluate("location.hash") == "#/map?colour=bpm"
    context.close()
    assert not errors, errors


def test_map_on_a_phone(browser, server, library):
    _, ids, _ = library
    context, page, errors = _page(browser, server, PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = page.locator("#map-canvas").bounding_box()
    assert box["width"] <= PHONE["width"] and box["height"] >= 300
    x, y = _at(page, ids["Song 2"])
    assert box["x"] <= x <= box["x"] + box["width"] and box["y"] <= y <= box["y"] + box["height"]
    _lasso(page, _around(box))
    page.wait_for_selector("#map-selection:not([hidden])")
    assert page.inner_text("#map-sel-h") == f"{TRACKS} tracks selected"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / "map-phone.png"), full_page=True)
    context.close()
    assert not errors, errors
