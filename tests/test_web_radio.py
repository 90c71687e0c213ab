"""The radio and sonic path page (#/radio, radio.js) in a real browser: Debian's chromium through Playwright.

The server is the real app served by uvicorn in a thread on 127.0.0.1, over a real library (synthesised music
encoded with PyAV in four album folders, and a copy of one track), with FakeModel for the network.
Screenshots are saved in tests/.artifacts/.
"""

from __future__ import annotations

import urllib.request

import pytest

from soundalike.synth import encode, render_track
from tests.web import ARTIFACTS, BROWSER, DESKTOP, PHONE, app_page, fake_app, index_fake

SR = 22050

pytestmark = BROWSER

FITS = """() => {
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth)
    out.push(`page ${document.documentElement.scrollWidth} px wide in a ${window.innerWidth} px window`);
  for (const box of document.querySelectorAll('.panel, .entry, .chip')) {
    const b = box.getBoundingClientRect();
    if (!b.width) continue;
    for (const child of box.querySelectorAll('a, input, span, button')) {
      const c = child.getBoundingClientRect();
      if (c.width && (c.right > b.right + 0.5 || c.left < b.left - 0.5))
        out.push(`${child.tagName} ${JSON.stringify((child.textContent || child.id).slice(0, 40))} sticks out`);
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Ten 12 s tracks in four album folders, and an identical copy of t1 in a folder of its own."""
    base = tmp_path_factory.mktemp("web-radio")
    music = base / "music"
    for s in range(10):
        folder = music / f"Album {s % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        encode(render_track(s, seconds=12, sample_rate=SR), SR, folder / f"Song {s}.flac")
    (music / "copies").mkdir()
    encode(render_track(1, seconds=12, sample_rate=SR), SR, music / "copies" / "Song 1 again.wav")
    return base / "lib", index_fake(music, base / "lib")


@pytest.fixture(scope="module")
def server(library):
    with fake_app(library[0]) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with app_page(server) as pg:
        yield pg


def _wait_playlist(page, first: int, count: int) -> None:
    """Wait for a playlist of ``count`` entries starting with track ``first`` (not the page before's)."""
    page.wait_for_function(f"""(() => {{ const e = [...document.querySelectorAll('.playlist .entry')];
        return e.length === {count} && e[0].dataset.trackId === '{first}'; }})()""")


def _entries(page) -> list[int]:
    return [int(li.get_attribute("data-track-id")) for li in page.query_selector_all(".playlist .entry")]


def test_start_a_radio_from_the_track_page_and_play_it(page, server, library):
    _, ids = library
    page.goto(f"{server}/#/track/{ids['Song 1']}")
    page.click("#track-radio")
    page.wait_for_selector(".playlist .entry")
    assert page.evaluate("location.hash").startswith(f"#/radio?seed={ids['Song 1']}")
    assert page.locator("nav a[data-nav=radio]").get_attribute("aria-current") == "page"
    entries = _entries(page)
    assert entries[0] == ids["Song 1"] and len(entries) == len(set(entries)) == 10  # every recording once
    assert ids["Song 1 again"] not in entries  # the copy is left out
    assert "1 copy left out" in page.inner_text("#playlist-summary")
    assert page.inner_text("#playlist-note") == "only 10 of 30 tracks: the library holds 10 besides the seeds"
    assert "null" not in page.inner_text("#playlist")
    assert page.locator("#radio-seeds .chip").count() == 1
    # play an entry: the player's clock advances on that track
    page.locator(".play-entry").nth(2).click()
    page.wait_for_function("!document.querySelector('#player').paused && document.querySelector('#player').currentTime > 0.3")
    assert page.evaluate("document.querySelector('#player').src").endswith(f"/api/tracks/{entries[2]}/audio")
    assert page.locator(".playlist .entry").nth(2).get_attribute("class").endswith("current")
    page.screenshot(path=str(ARTIFACTS / "radio.png"), full_page=True)
    # play all: starts with the first, and moves on to the second when it ends
    page.click("#play-all")
    page.wait_for_function(f"document.querySelector('#player').src.endsWith('/api/tracks/{entries[0]}/audio')"
                           " && isFinite(document.querySelector('#player').duration)"
                           " && !document.querySelector('#player').paused")
    page.evaluate("(() => { const p = document.querySelector('#player'); p.currentTime = p.duration - 1.5; })()")
    page.wait_for_function(f"document.querySelector('#player').src.endsWith('/api/tracks/{entries[1]}/audio')"
                           " && !document.querySelector('#player').paused")
    page.evaluate("document.querySelector('#player').pause()")


def test_the_playlist_downloads(page, server, library):
    _, ids = library
    page.goto(f"{server}/#/radio?seed={ids['Song 2']}&n=6")
    _wait_playlist(page, ids["Song 2"], 6)
    hrefs = {a.inner_text(): a.get_attribute("href") for a in page.query_selector_all("a.download")}
    assert set(hrefs) == {"M3U8", "XSPF", "CSV"}
    with urllib.request.urlopen(server + hrefs["M3U8"], timeout=10) as r:
        text = r.read().decode()
        assert r.headers["Content-Type"].startswith("audio/x-mpegurl")
    assert text.startswith("#EXTM3U") and text.count("#EXTINF:") == 6
    with page.expect_download() as dl:
        page.click("a.download >> text=XSPF")
    assert dl.value.suggested_filename == "radio.xspf"


def test_add_seeds_by_name_and_shuffle(page, server, library):
    _, ids = library
    page.goto(f"{server}/#/radio")
    page.fill("#radio-find", "Song 3")
    page.click(f".pick[data-track-id='{ids['Song 3']}']")
    page.fill("#radio-find", "Song 6")
    page.click(f".pick[data-track-id='{ids['Song 6']}']")
    assert page.locator("#radio-seeds .chip").count() == 2
    page.fill("#radio-n", "8")
    page.click("#radio-go")
    _wait_playlist(page, ids["Song 3"], 8)
    first = _entries(page)
    assert first[:2] == [ids["Song 3"], ids["Song 6"]] and len(first) == 8
    page.click("#radio-shuffle")
    page.wait_for_function("location.hash.includes('random_seed=')")
    # the page is drawn again for the new hash: wait for the playlist built with the seed, not the one before
    page.wait_for_selector("a.download[href*='random_seed=']")
    assert _entries(page)[:2] == first[:2] and len(_entries(page)) == 8


def test_a_path_between_two_tracks(page, server, library):
    _, ids = library
    page.goto(f"{server}/#/track/{ids['Song 0']}")
    page.click("#track-path")
    page.wait_for_selector("#path-a .chip")
    page.fill("#path-find", "Song 9")
    page.click(f".pick[data-track-id='{ids['Song 9']}']")
    page.fill("#path-steps", "4")
    page.click("#path-go")
    page.wait_for_selector(".playlist .entry")
    entries = _entries(page)
    assert entries[0] == ids["Song 0"] and entries[-1] == ids["Song 9"] and 3 <= len(entries) <= 6
    assert "of the way" in page.inner_text(".playlist") and "directly" in page.inner_text("#playlist-summary")


def test_errors_are_shown_as_an_alert(page, server, library):
    _, ids = library
    page.goto(f"{server}/#/radio?a={ids['Song 0']}&b={ids['Song 0']}")
    page.wait_for_selector("#radio-error:not([hidden])")
    assert "A and B are the same track" in page.inner_text("#radio-error")
    page.goto(f"{server}/#/radio")
    page.click("#radio-go")
    assert "at least one seed" in page.inner_text("#radio-error")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_the_page_fits_its_window(page, server, library, viewport):
    _, ids = library
    page.set_viewport_size(viewport)
    try:
        page.goto(f"{server}/#/radio?seed={ids['Song 1']}&n=8")
        _wait_playlist(page, ids["Song 1"], 8)
        page.fill("#path-find", "Song")
        page.wait_for_selector(".pick")
        assert page.evaluate(FITS) == []
        page.screenshot(path=str(ARTIFACTS / f"radio-{viewport['width']}.png"), full_page=True)
        page.goto(f"{server}/#/track/{ids['Song 1']}")
        page.wait_for_selector("#track-radio")
        assert page.evaluate(FITS) == []
    finally:
        page.set_viewport_size(DESKTOP)
