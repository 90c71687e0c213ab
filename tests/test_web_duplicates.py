"""The duplicates page in Debian's chromium (Playwright) against `soundalike serve`, at 1280 and 390 px.

The library: synthesised tracks, a trimmed copy and a 3 % faster copy, indexed with FakeModel (the server
registers it by name, as the CLI tests do); the landmarks, which decide the pairs, are the real ones.
"""

from __future__ import annotations


import numpy as np
import pytest

import soundalike
from soundalike.evaluate.sets import _speed
from soundalike.synth import encode, render_track
from tests.conftest import browser_page, chromium, serve_process
from tests.fakes import FakeModel
from tests.web import ARTIFACTS, BROWSER, CHROMIUM, TIMEOUT

SR = 44100
TRIM = 4.0  # the trimmed copy starts this far into its original
LONG = "a_copy_with_a_very_long_unbroken_file_name_from_some_ripper_2019-11-02_final_FINAL.flac"

pytestmark = BROWSER

SERVE = ("import sys; from soundalike.models import register_model; from tests.fakes import FakeModel; "
         "register_model('fake', FakeModel); from soundalike.cli import main; main()")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("webdups")
    music = base / "music"
    music.mkdir()
    x = {i: render_track(80 + i, seconds=30, sample_rate=SR) * np.float32(0.5) for i in range(3)}
    for i, y in x.items():
        encode(y, SR, music / f"t{i}.flac")
    encode(x[0][int(TRIM * SR):], SR, music / "t0-trim.mp3", bitrate=128000)
    encode(_speed(x[1][None, :], SR, 1.03)[0], SR, music / LONG)
    lib = soundalike.open(base / "lib", model=FakeModel(), hop=2.0)
    assert list(lib.index([music]))[-1].event == "done"
    lib.close()
    with serve_process(base / "lib", base / "serve.log", code=SERVE, timeout=120) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium(CHROMIUM) as b, browser_page(b, viewport={"width": 1280, "height": 900}, timeout=TIMEOUT) as pg:
        yield pg


FITS = """() => {
  const w = document.documentElement.clientWidth;
  const out = [];
  if (document.documentElement.scrollWidth > w) out.push('page ' + document.documentElement.scrollWidth + ' > ' + w);
  for (const e of document.querySelectorAll('#view *')) {
    const r = e.getBoundingClientRect();
    if (r.width && r.right > w + 1 && !e.closest('.table-wrap'))
      out.push(e.tagName + '.' + e.className + ' ' + r.right);
  }
  return out;
}"""


def test_the_page_lists_groups_with_the_keeper_and_plays_both_at_the_offset(page, server):
    page.goto(server + "/")
    page.click("nav a[data-nav=duplicates]")
    page.wait_for_selector(".dup-group")
    assert page.get_attribute("nav a[data-nav=duplicates]", "aria-current") == "page"
    assert "2 groups, 2 copies that could go" in page.text_content("#view [role=status]")
    groups = page.query_selector_all(".dup-group")
    texts = [g.text_content() for g in groups]
    trim = next(g for g, t in zip(groups, texts) if "t0-trim.mp3" in t)
    assert "keep t0.flac" in trim.text_content() and "lossless (flac) over lossy (mp3)" in trim.text_content()
    speed = next(t for t in texts if LONG in t)
    # two lossless copies of one length of the recording at two speeds: which is the original cannot be told
    assert ("speed change (tempo +3." in speed or "speed change (tempo -2.9" in speed) and "first indexed" in speed
    pair = trim.query_selector(".dup-pair")
    assert float(pair.get_attribute("data-offset")) == pytest.approx(TRIM, abs=0.1)
    srcs = [a.get_attribute("src") for a in pair.query_selector_all("audio")]
    assert len(srcs) == 2 and all(s.startswith("/api/tracks/") and s.endswith("/audio") for s in srcs)
    sel = f".dup-pair[data-pair='{pair.get_attribute('data-pair')}'] audio"
    pair.query_selector(".dup-play").click()
    page.wait_for_function(f"(() => {{ const a = document.querySelector(\"{sel}\");"
                           " return a && !a.paused && a.currentTime > 0; })()")
    a_time = page.evaluate(f"document.querySelectorAll(\"{sel}\")[0].currentTime")
    assert TRIM - 0.1 <= a_time < TRIM + 3  # A plays from where B starts
    pair.query_selector(".dup-switch").click()
    page.wait_for_function(f"(() => {{ const [a, b] = document.querySelectorAll(\"{sel}\");"
                           " return a.paused && !b.paused; })()")
    a_at, b_at = page.evaluate(f"[...document.querySelectorAll(\"{sel}\")].map(x => x.currentTime)")
    assert abs((a_at - TRIM) - b_at) < 0.6  # B took over at the same moment of the music
    page.goto(server + "/#/")  # leaving the page stops its players
    assert page.evaluate("[...document.querySelectorAll('audio')].every(a => a.paused)")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_page_fits_its_window(page, server, width):
    page.set_viewport_size({"width": width, "height": 900})
    try:
        page.goto(server + "/#/duplicates")
        page.wait_for_selector(".dup-group")
        assert page.evaluate(FITS) == []
        page.screenshot(path=str(ARTIFACTS / f"duplicates-{width}.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_a_bad_minimum_score_is_an_alert(page, server):
    page.goto(server + "/#/duplicates?min_score=7")
    page.wait_for_selector("#view .alert:not([hidden])")
    assert "min_score" in page.text_content("#view .alert")
