"""What the web app's browser tests share: Debian's chromium driven by Playwright, the viewports, and the real
app served over a library indexed with FakeModel. Screenshots go to tests/.artifacts/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import browser_page, chromium, live_server, needs_module, needs_tool
from tests.fakes import FakeModel

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / ".artifacts"
CHROMIUM = os.environ.get("SOUNDALIKE_CHROMIUM", "/usr/bin/chromium")  # Debian's build
TIMEOUT = int(os.environ.get("SOUNDALIKE_WEB_TIMEOUT_MS", "180000"))  # ms; the machine may be shared and slow
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

#: every browser test's marks: slow, and skipped (failed under CI) without chromium, fastapi or playwright
BROWSER = [
    pytest.mark.slow,
    needs_tool(None if Path(CHROMIUM).exists() else f"{CHROMIUM} not found (apt-get install chromium)"),
    needs_module("fastapi", "serve"),
    needs_module("playwright.sync_api", "test"),
]


def index_fake(music: Path, library: Path) -> dict[str, int]:
    """``music`` indexed into ``library`` with FakeModel at a 2 s hop; file stem -> track id."""
    import soundalike

    lib = soundalike.open(library, model=FakeModel(), hop=2.0)
    try:
        assert list(lib.index([music]))[-1].event == "done"
        return {Path(t.path).stem: t.id for t in lib.tracks()}
    finally:
        lib.close()


@contextmanager
def fake_app(library: Path) -> Iterator[str]:
    """The real app over ``library`` with FakeModel, served by uvicorn in a thread; yields its URL."""
    from soundalike.serve import create_app

    with live_server(create_app(library, model=FakeModel())) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def app_page(url: str, viewport: dict = DESKTOP) -> Iterator:
    """A chromium page on the app's home page at ``url``, once the library's status is shown."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium(CHROMIUM) as browser, browser_page(browser, viewport=viewport, timeout=TIMEOUT) as page:
        page.goto(url + "/")
        page.wait_for_function("document.querySelector('#status').textContent.includes('tracks')")
        yield page
