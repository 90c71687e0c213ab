"""The classify page (#/classify, classify.js) in a real browser: Debian's chromium through Playwright.

The server is the real app served by uvicorn in a thread on 127.0.0.1, over a real library (synthesised music
encoded with PyAV, FakeModel for the network) where half the tracks have a user value of ``style``.
Screenshots are saved in tests/.artifacts/.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import soundalike
from soundalike.synth import encode, render_track
from tests.fakes import FakeModel
from tests.test_web_radio import FITS, SR
from tests.web import ARTIFACTS, BROWSER, DESKTOP, PHONE, app_page, fake_app, index_fake

pytestmark = BROWSER

N = 12


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Twelve 8 s tracks; the even ones have a user value of ``style`` (two categories)."""
    base = tmp_path_factory.mktemp("web-classify")
    music = base / "music"
    music.mkdir()
    for s in range(N):
        encode(render_track(s, seconds=8, sample_rate=SR), SR, music / f"Song {s}.flac")
    ids = index_fake(music, base / "lib")
    lib = soundalike.open(base / "lib", model=FakeModel())
    lib.catalog.set_labels((t.path, {"style": "calm" if int(Path(t.path).stem.split()[1]) % 4 == 0 else "busy"})
                           for t in lib.tracks() if int(Path(t.path).stem.split()[1]) % 2 == 0)
    lib.close()
    return base / "lib", ids


@pytest.fixture(scope="module")
def server(library):
    with fake_app(library[0]) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with app_page(server) as pg:
        yield pg


def _review(server: str) -> dict:
    q = urllib.parse.urlencode({"field": "style", "limit": 100})
    with urllib.request.urlopen(f"{server}/api/classify/review?{q}", timeout=10) as r:
        return json.loads(r.read())


def _labels(server: str, track_id: int) -> dict:
    with urllib.request.urlopen(f"{server}/api/tracks/{track_id}", timeout=10) as r:
        return json.loads(r.read())["labels"]


def test_predict_play_accept_and_correct(page, server, library):
    _, ids = library
    page.goto(f"{server}/#/classify")
    page.wait_for_selector("#cls-field option[value=style]", state="attached")
    assert page.locator("nav a[data-nav=classify]").get_attribute("aria-current") == "page"
    assert "style (6 yours)" in page.inner_text("#cls-field")
    page.select_option("#cls-field", "style")
    page.wait_for_selector("#cls-empty")  # nothing predicted yet
    page.click("#cls-run")
    page.wait_for_selector("#cls-list .cls-entry")
    assert "Predicted style for 6 tracks from 6 of your labels in 2 categories" in page.inner_text("#cls-summary")
    entries = page.locator("#cls-list .cls-entry")
    assert entries.count() == 6
    shown = [int(e.get_attribute("data-track-id")) for e in entries.element_handles()]
    assert shown == [p["track_id"] for p in _review(server)["predictions"]]  # least certain first, as the API says
    assert set(shown) == {ids[f"Song {s}"] for s in range(1, N, 2)}
    assert "confidence" in entries.nth(0).inner_text() and "margin" in entries.nth(0).inner_text()
    # play one
    page.locator("#cls-list .play-entry").nth(1).click()
    page.wait_for_function("!document.querySelector('#player').paused && document.querySelector('#player').currentTime > 0.2")
    assert page.evaluate("document.querySelector('#player').src").endswith(f"/api/tracks/{shown[1]}/audio")
    page.evaluate("document.querySelector('#player').pause()")
    page.screenshot(path=str(ARTIFACTS / "classify.png"), full_page=True)
    # accept the least certain: it becomes a user label
    predicted = _review(server)["predictions"][0]["value"]
    entries.nth(0).locator(".cls-accept").click()
    page.wait_for_selector("#cls-list .cls-entry.done")
    assert "(accepted)" in entries.nth(0).inner_text()
    assert _labels(server, shown[0]) == {"style": predicted}
    # correct the next one, with a value the field does not hold yet
    entries.nth(1).locator("input").fill("ambient")
    entries.nth(1).locator(".cls-set").click()
    page.wait_for_function("document.querySelectorAll('#cls-list .cls-entry.done').length === 2")
    assert "your label: ambient (corrected)" in entries.nth(1).inner_text()
    assert entries.nth(1).locator(".cls-accept").is_disabled()
    review = _review(server)
    assert review["count"] == 4 and shown[0] not in {p["track_id"] for p in review["predictions"]}
    assert _labels(server, shown[1]) == {"style": "ambient"}
    # drawn again: the four left, and the new value offered for corrections
    page.reload()
    page.wait_for_function("document.querySelectorAll('#cls-list .cls-entry').length === 4")
    assert "ambient" in [o.get_attribute("value") for o in page.query_selector_all("#cls-values option")]


def test_errors_are_shown_as_an_alert(page, server):
    page.goto(f"{server}/#/classify")
    page.wait_for_selector("#cls-field option[value=style]", state="attached")
    page.click("#cls-run")
    assert "Choose a label field" in page.inner_text("#cls-error")
    page.fill("#cls-words-field", "energy")
    page.fill("#cls-words", "calm=calm ambient piano")
    page.click("#cls-words-run")
    assert "at least two classes" in page.inner_text("#cls-error")
    page.fill("#cls-words", "calm=calm ambient piano\nenergetic=fast loud drums")
    page.click("#cls-words-run")
    page.wait_for_function("document.querySelector('#cls-error').textContent.includes('no tag means')")  # FakeModel's 3 tags
    page.goto(f"{server}/#/classify?field=nope")
    page.wait_for_selector("#cls-error:not([hidden])")
    assert "no label field 'nope'" in page.inner_text("#cls-error")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_the_page_fits_its_window(page, server, viewport):
    page.set_viewport_size(viewport)
    try:
        page.goto(f"{server}/#/classify?field=style")
        page.wait_for_selector("#cls-list .cls-entry")
        assert page.evaluate(FITS) == []
        assert page.evaluate("""[...document.querySelectorAll('.cls-entry .cls-actions')].every((a) =>
            a.getBoundingClientRect().right <= a.closest('.cls-entry').getBoundingClientRect().right + 0.5)""")
        page.screenshot(path=str(ARTIFACTS / f"classify-{viewport['width']}.png"), full_page=True)
    finally:
        page.set_viewport_size(DESKTOP)
