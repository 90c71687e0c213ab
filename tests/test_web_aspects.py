"""The "alike in" control of the search page (#f-like, app.js) in a real browser: Debian's chromium through
Playwright, at 1280 px and at 390 px.

The server is the real app served by uvicorn in a thread on 127.0.0.1, over the library of tests/test_aspects.py
(tone bursts: t2 shares t1's tempo, t3 nearly its timbre), with FakeModel for the network.
Screenshots are saved in tests/.artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import browser_page, chromium
from tests.fakes import fake_library
from tests.test_aspects import SR, bursts
from tests.web import ARTIFACTS, BROWSER, CHROMIUM, DESKTOP, PHONE, TIMEOUT, fake_app

pytestmark = BROWSER


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-aspects")
    lib = fake_library(root, {1: bursts(120, 300), 2: bursts(120, 2400, noise=0.5), 3: bursts(92, 320),
                              4: bursts(150, 1200, noise=1.0), 5: bursts(75, 600, noise=0.2)}, SR)
    ids = {Path(t.path).stem: t.id for t in lib.tracks()}
    lib.close()
    return root, ids


@pytest.fixture(scope="module")
def server(library):
    with fake_app(library[0] / "lib") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium(CHROMIUM) as b:
        yield b


def _first_results(page, n: int = 2) -> list[str]:
    return [a.inner_text() for a in page.query_selector_all(".card.result h3 a")][:n]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_alike_in_rhythm_reranks_an_upload_and_a_track_search(browser, server, library, viewport):
    root, ids = library
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser_page(browser, viewport=viewport, timeout=TIMEOUT) as page:
        page.goto(server + "/")
        page.wait_for_function("document.querySelector('#status').textContent.includes('tracks')")
        page.set_input_files("#file", str(root / "music" / "t1.flac"))
        page.wait_for_function("!document.querySelector('#go').disabled")
        page.click("#go")
        page.wait_for_function("document.querySelector('#search-status').textContent.includes('results in')")
        assert "alike in" not in page.inner_text("#search-status")
        assert _first_results(page) == ["t1.flac", "t3.flac"]  # the overall sound: t3's timbre
        # choosing an aspect runs the search again, ranked by it
        page.select_option("#f-like", "rhythm")
        page.wait_for_function("document.querySelector('#search-status').textContent.includes('alike in rhythm')")
        assert _first_results(page) == ["t1.flac", "t2.flac"]  # the same tempo
        # the card says where it stands in each feature group (t1 itself shares the tempo: a tie)
        assert re.search(r"tempo \d+ %, sound \d+ %", page.inner_text(".card.result:nth-of-type(2)"))
        box = page.locator("#f-like").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=str(ARTIFACTS / f"aspects-{viewport['width']}.png"), full_page=True)
        # a library track as the reference: the choice stays, and is sent with it
        page.goto(f"{server}/#/track/{ids['t1']}")
        page.click("#track-search")
        page.wait_for_function("document.querySelector('#search-status') && "
                               "document.querySelector('#search-status').textContent.includes('alike in rhythm')")
        assert page.input_value("#f-like") == "rhythm"
        assert _first_results(page, 1) == ["t2.flac"]
