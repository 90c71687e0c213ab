"""The web app in a real browser: Debian's chromium driven by Playwright, against `soundalike serve`.

The server runs as a subprocess on 127.0.0.1 (a free port), with an API key, over
a small library of real music indexed with the real model (three short tracks
from scripts/demo_library.py, or synthesised music where apt is unavailable).
Screenshots are saved in tests/.artifacts/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.decode import decode
from soundalike.synth import add_noise, encode, excerpt
from tests.conftest import browser_page, chromium, data_lock, serve_process
from tests.web import ARTIFACTS, BROWSER, CHROMIUM, DESKTOP, PHONE, ROOT, TIMEOUT

KEY = "web-test-key"
LONG_NAME = "ZOOM0004_field_recorder_take_with_a_long_unbroken_file_name_2024-03-17.wav"

pytestmark = BROWSER


def _get(url: str):
    req = urllib.request.Request(url, headers={"X-API-Key": KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def web_library(tmp_path_factory):
    """Three short real tracks, an untagged copy of one, and a corrupt file, indexed with the real model."""
    music = ROOT / "tests" / ".data" / "music"
    with data_lock():
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
    # an untagged copy of the shortest track, under a long name with no break in it (a field recorder's)
    shortest = decode(folder / chosen[0]["file"], sample_rate=44100)
    encode(shortest.samples, 44100, folder / LONG_NAME)
    lib = soundalike.open(base / "lib")
    events = list(lib.index([folder]))
    assert events[-1].event == "done"
    ids = {Path(t.path).name: t.id for t in lib.tracks()}
    lib.set_labels(ids[LONG_NAME], category="field recording")  # as `soundalike labels import` would
    lib.close()
    return base, folder, ids, manifest["kind"]


@pytest.fixture(scope="module")
def server(web_library):
    base, _, _, _ = web_library
    with serve_process(base / "lib", base / "serve.log", "--api-key", KEY, headers={"X-API-Key": KEY}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium(CHROMIUM) as b:
        yield b


@pytest.fixture(scope="module")
def page(browser, server):
    """One browser context for the whole module: the API key is asked for once."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser_page(browser, viewport=DESKTOP, timeout=TIMEOUT) as pg:
        _sign_in(pg, server)
        yield pg


def _sign_in(page, server: str) -> None:
    """Open the app on ``server`` and give it the key it asks for."""
    page.goto(server + "/")
    page.wait_for_selector("#keydialog[open]")
    page.fill("#keyinput", KEY)
    page.click("#keydialog button[type=submit]")
    page.wait_for_function("document.querySelector('#status').textContent.includes('tracks')")


@pytest.fixture(params=[DESKTOP, PHONE], ids=["1280px", "390px"])
def width(page, request):
    """Runs the test at 1280 px and at 390 px (a phone) in the module's page, which is 1280 px again afterwards;
    the window's width."""
    page.set_viewport_size(request.param)
    yield request.param["width"]
    page.set_viewport_size(DESKTOP)


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


def _label_start(label: str) -> float:
    """Where a play button's passage starts, in seconds: "Play 1:35.0 to 1:38.0 of ..." -> 95.0."""
    m, s = label.split()[1].split(":")
    return int(m) * 60 + float(s)


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

    # the clip is the track from `start`: each listed pair's ▶ Result plays what its ▶ Reference plays, `start` s
    # later in the track, and the highlights on the track's waveform are there (Searcher.pairs_at: for a copy, the
    # pairs at the offset identification found, not the windows' guesses, which can be another passage)
    rows = page.locator(".card.result").first.locator("ul.matches li")
    pairs = [(_label_start(rows.nth(i).locator(".play-ref").get_attribute("aria-label")),
              _label_start(rows.nth(i).locator(".play-result").get_attribute("aria-label"))) for i in range(rows.count())]
    assert pairs and all(abs(result - ref - start) <= 0.6 for ref, result in pairs), (start, pairs)
    regions = json.loads(page.locator(".card.result").first.locator("canvas.wave").get_attribute("data-regions"))
    clip_end = start + decode(path, sample_rate=44100).duration
    assert regions and all(start - 0.6 <= a < b <= clip_end + 0.6 for a, b, _ in regions), (start, regions)

    # play the matched segment of the result: the media element's clock advances inside the match
    button = page.locator(".card.result").first.locator(".play-result").first
    label = button.get_attribute("aria-label")  # "Play 0:21.0 to 0:24.0 of ..."
    button.click()
    page.wait_for_function("document.querySelector('#player').currentTime > 0 && !document.querySelector('#player').paused")
    t0 = _current_time(page, "#player")
    page.wait_for_function(f"document.querySelector('#player').currentTime > {t0 + 0.5}")
    match_start = _label_start(label)
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


@pytest.mark.usefixtures("width")
def test_track_page_shows_the_similar_shelf(page, server, web_library, query):
    _, _, ids, _ = web_library
    _, source_id, _ = query
    page.goto(f"{server}/#/track/{source_id}")
    page.wait_for_selector("#similar .card")
    shelf = page.query_selector_all("#similar .card")
    shown = {int(c.get_attribute("data-track-id")) for c in shelf}
    # every other track, at most 8; the shortest track and its untagged copy are one card, "+1 copy"
    copies = {int(a.get_attribute("href").rsplit("/", 1)[1]) for a in page.query_selector_all("#similar .copies a")}
    assert len(copies) == 1 and not shown & copies
    assert shown | copies == set(ids.values()) - {source_id}
    assert "+1 copy" in page.inner_text("#similar")
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
    folded = {int(a.get_attribute("href").rsplit("/", 1)[1]) for a in page.query_selector_all(".card.result .copies a")}
    assert set(got) | folded == set(ids.values()) - {source_id} and len(folded) == 1


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


# -------------------------------------------------------------------------- layout at 1280 and 390 px

FITS = """() => {
  // what sticks out: the page wider than the window, or a box whose content is wider than the box
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth)
    out.push(`page ${document.documentElement.scrollWidth} px wide in a ${window.innerWidth} px window`);
  for (const box of document.querySelectorAll('.card, fieldset, .panel')) {
    const b = box.getBoundingClientRect();
    if (!b.width) continue;
    for (const child of box.querySelectorAll('a, input, h3, span, button')) {
      const c = child.getBoundingClientRect();
      if (c.width && (c.right > b.right + 0.5 || c.left < b.left - 0.5))
        out.push(`${child.tagName} ${JSON.stringify((child.textContent || child.id).slice(0, 40))} sticks out of `
                 + `its ${box.tagName.toLowerCase()} (${Math.round(c.left)}-${Math.round(c.right)} `
                 + `in ${Math.round(b.left)}-${Math.round(b.right)})`);
    }
  }
  const sets = [...document.querySelectorAll('#filters fieldset')].map((f) => f.getBoundingClientRect());
  sets.forEach((a, i) => sets.slice(i + 1).forEach((b, j) => {
    if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
      out.push(`filter boxes ${i} and ${i + j + 1} overlap`);
  }));
  return out;
}"""


def test_every_page_fits_its_window(page, server, web_library, width):
    _, _, ids, _ = web_library
    page.goto(server + "/#/library")
    page.goto(server + "/#/")
    page.click("#filters summary")
    page.wait_for_selector("#f-where", state="visible")
    assert page.evaluate(FITS) == []
    page.screenshot(path=str(ARTIFACTS / f"search-{width}.png"), full_page=True)
    page.goto(server + "/#/library")
    page.wait_for_selector(f"table tbody tr >> text={LONG_NAME[:20]}")
    assert page.evaluate(FITS) == []
    page.screenshot(path=str(ARTIFACTS / f"library-{width}.png"), full_page=True)
    page.goto(f"{server}/#/track/{ids[LONG_NAME]}")
    page.wait_for_selector("#similar .card")
    assert page.evaluate(FITS) == []
    page.screenshot(path=str(ARTIFACTS / f"track-{width}.png"), full_page=True)


# -------------------------------------------------------------------------- errors, references and focus

ALERT_SHOWN = ("(() => { const a = document.querySelector('[role=alert]:not([hidden])');"
               " return a && a.offsetParent !== null && a.textContent.trim() ? a.textContent : null; })()")


@pytest.mark.usefixtures("width")
def test_a_bad_upload_after_a_good_one_clears_the_reference_and_raises_an_alert(page, server, query, tmp_path):
    path, _, _ = query
    page.goto(server + "/#/library")
    page.goto(server + "/#/")
    page.set_input_files("#file", str(path))
    page.wait_for_function("!document.querySelector('#go').disabled")
    bad = tmp_path / "notes.mp3"
    bad.write_text("just some notes, not audio\n")
    page.set_input_files("#file", str(bad))
    page.wait_for_function(ALERT_SHOWN)
    alert = page.locator("#search-error")
    assert "notes.mp3" in alert.inner_text() and "not an audio file" in alert.inner_text()
    # the error style: the theme's error colour on a tinted box, not the grey hint
    style = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('#search-error'));"
                          " return [s.color, s.borderTopStyle]; })()")
    assert style == ["rgb(176, 0, 32)", "solid"]
    # nothing of the previous file is left to play or search with
    assert page.is_hidden("#ref")
    assert page.is_disabled("#go")
    assert page.get_attribute("#refwave", "data-ready") == ""
    assert page.evaluate("document.querySelector('#refplayer').getAttribute('src')") is None
    assert page.inner_text("#ref-range") == "" or page.is_hidden("#ref-range")
    # a good file again: the alert goes
    page.set_input_files("#file", str(path))
    page.wait_for_function("!document.querySelector('#go').disabled")
    assert page.is_hidden("#search-error")


@pytest.mark.usefixtures("width")
def test_an_empty_text_search_says_what_to_do(page, server):
    page.goto(server + "/#/library")
    page.goto(server + "/#/")
    page.fill("#text", "   ")
    page.press("#text", "Enter")
    page.wait_for_function(ALERT_SHOWN)
    assert "Type a few words" in page.inner_text("#search-error")
    assert page.evaluate("document.activeElement.id") == "text"


@pytest.mark.usefixtures("width")
def test_find_similar_to_a_track_replaces_the_uploaded_reference(page, server, web_library, query):
    _, _, ids, _ = web_library
    path, source_id, _ = query
    page.goto(server + "/#/")
    page.set_input_files("#file", str(path))
    page.wait_for_function("!document.querySelector('#go').disabled")
    page.fill("#sel-start", "1")
    page.fill("#sel-end", "7")
    page.press("#sel-end", "Tab")
    assert "searching" in page.inner_text("#ref-range")
    page.goto(f"{server}/#/track/{source_id}")
    page.wait_for_selector("#track-search")
    title = page.inner_text("h1")
    page.click("#track-search")
    page.wait_for_function("document.querySelector('#search-status') && "
                           "document.querySelector('#search-status').textContent.includes('tracks like')")
    assert page.evaluate("document.activeElement.tagName") == "H1"  # the search page's heading, not <body>
    assert page.is_hidden("#ref")  # not the uploaded file's waveform and "searching 0:01.0–0:07.0"
    assert page.is_visible("#track-ref") and title in page.inner_text("#track-ref")
    assert page.query_selector_all(".card.result .play-ref") == []


@pytest.mark.usefixtures("width")
def test_focus_goes_to_the_heading_and_stays_on_find_similar(page, server, web_library, query):
    _, _, ids, _ = web_library
    path, source_id, _ = query
    focus = "(() => { const a = document.activeElement; return [a.tagName, a.id, a.textContent.slice(0, 40)]; })()"
    outline = "getComputedStyle(document.querySelector('main')).outlineStyle"
    page.goto(server + "/#/library")
    page.wait_for_selector("table tbody tr")
    assert page.evaluate(focus)[0] == "H1" and page.evaluate(outline) == "none"
    page.click(f"table tbody a[href='#/track/{source_id}']")
    page.wait_for_selector("#track-search")
    page.wait_for_function("document.activeElement.tagName === 'H1'")
    assert page.evaluate("document.activeElement.textContent") == page.inner_text("h1")
    assert page.evaluate(outline) == "none"
    page.goto(server + "/#/")
    page.set_input_files("#file", str(path))
    page.wait_for_function("!document.querySelector('#go').disabled")
    page.click("#go")
    page.wait_for_function("document.querySelector('#search-status').textContent.includes('results in')")
    assert page.evaluate(focus)[:2] == ["BUTTON", "go"]  # not <body>


@pytest.mark.usefixtures("width")
def test_titles_fall_back_to_file_names_and_labels_are_shown(page, server, web_library):
    _, _, ids, _ = web_library
    page.goto(server + "/#/library?sort=name&order=desc")
    page.wait_for_selector("th[aria-sort='descending']")
    names = [page.inner_text(f"table tbody tr >> nth={i} >> td >> nth=0") for i in range(len(ids))]
    assert names[0] == LONG_NAME  # "ZOOM…": untagged, sorted by its file name, not after every titled track
    assert names == sorted(names, key=str.lower, reverse=True)
    page.goto(f"{server}/#/track/{ids[LONG_NAME]}")
    page.wait_for_selector("#labels")
    assert "category" in page.inner_text("#labels") and "field recording" in page.inner_text("#labels")


def test_tracks_with_nothing_that_matched_are_not_shown_as_results(page, server, web_library, query):
    """The API lists a filter's top N even where nothing matched (score 0, no votes: Hit.evidence false);
    the app shows no "0.0 % · 0 votes" card for them, and says how many it left out."""
    _, _, ids, _ = web_library
    _, source_id, _ = query
    filler_id = next(i for i in ids.values() if i != source_id)

    def with_filler(route):
        data = route.fetch().json()
        data["hits"] = [h for h in data["hits"] if h["track_id"] != filler_id]
        data["hits"].append({**data["hits"][0], "track_id": filler_id, "score": 0.0, "votes": 0, "similarity": 0.0,
                             "matches": [], "copy": None, "copies": [], "offset": None})
        route.fulfill(json=data)

    page.route("**/api/tracks/*/similar*", with_filler)
    page.route("**/api/search", with_filler)
    try:
        page.goto(f"{server}/#/track/{source_id}")
        page.wait_for_selector("#similar .card")
        shelf = page.query_selector_all("#similar .card")
        assert str(filler_id) not in [c.get_attribute("data-track-id") for c in shelf]
        page.click("#track-search")
        page.wait_for_selector(".hidden-note")
        assert "1 more track filled the list with nothing that matched" in page.inner_text(".hidden-note")
        cards = page.query_selector_all(".card.result")
        assert cards and str(filler_id) not in [c.get_attribute("data-track-id") for c in cards]
        assert "0.0 %" not in page.inner_text("#results")
    finally:
        page.unroute("**/api/tracks/*/similar*")
        page.unroute("**/api/search")


def test_a_results_warnings_are_shown(page, server, web_library, query):
    """A search result's ``warnings`` (an indexing run under way: what the vector index lacked was scanned
    exactly) are shown above the results. The response is altered in the browser (a mock of the server's
    answer; tests/test_faults.py makes the server give such a warning for real)."""
    _, source_id, _ = query
    text = "the vector index lacks 3 segment and 1 track vectors of the catalogue"

    def warned(route):
        data = route.fetch().json()
        data["warnings"] = [text]
        route.fulfill(json=data)

    page.route("**/api/search", warned)
    try:
        page.goto(f"{server}/#/track/{source_id}")
        page.click("#track-search")
        page.wait_for_selector("#results .warning")
        assert text in page.inner_text("#results .warning")
        assert page.query_selector_all(".card.result")
    finally:
        page.unroute("**/api/search")


# -------------------------------------------------------------------------- startup

TIMED_TEXT_SEARCH = """() => new Promise((resolve) => {
  // seconds from the click on "Search words" to the result cards shown (null after 120 s)
  const shown = () => document.querySelector('#search-status').textContent.includes('results for')
    && document.querySelector('.card.result');
  const t0 = performance.now();
  const watch = new MutationObserver(() => {
    if (shown()) { watch.disconnect(); resolve((performance.now() - t0) / 1000); }
  });
  watch.observe(document.querySelector('#view'), { childList: true, subtree: true, characterData: true });
  setTimeout(() => { watch.disconnect(); resolve(null); }, 120000);
  document.querySelector('#text-go').click();
})"""


def test_the_first_text_search_is_quick_once_the_server_has_loaded_the_text_model(browser, web_library, tmp_path):
    """`soundalike serve` loads MiniLM in the background at startup and /api/health says when it is ready; from
    then on the first text search does not wait for it (the audit of issue 19: 8.4 s when it loaded on demand).
    A server of its own: the module's server has answered text searches already."""
    import time

    base, _, _, _ = web_library
    with serve_process(base / "lib", tmp_path / "serve.log", "--api-key", KEY, headers={"X-API-Key": KEY}) as url:
        deadline = time.monotonic() + 120
        while not _get(url + "/api/health")["text_model_loaded"]:
            assert time.monotonic() < deadline, "the server did not load the text model in the background"
            time.sleep(0.2)
        with browser_page(browser, viewport=DESKTOP, timeout=TIMEOUT) as pg:
            _sign_in(pg, url)
            pg.fill("#text", "slow strings")
            seconds = pg.evaluate(TIMED_TEXT_SEARCH)
    assert seconds is not None and seconds < 3.0, seconds
