#!/usr/bin/env python3
"""Reliability matrix: bad input, faults and server abuse, each with its outcome (docs/reliability.md).

Everything runs on this machine in a temporary folder; the server listens on
127.0.0.1 only. ``FakeModel`` (tests/fakes.py, a deterministic function of the
audio) stands in for the network, so the run takes about a minute and tests
the machinery rather than the model.

0. Fuzzing: ``--fuzz`` mutants (bytes flipped, cut, repeated, dropped or zeroed) of real MP3, FLAC,
   Ogg Vorbis, Opus, M4A, WAV (16-bit and float) and AIFF files, each decoded in a worker process with a
   time limit: no crash, no hang, no exception other than the decoder's one-line refusal, no NaN decoded.
1. Bad input: a folder of good and damaged files (NaN/inf float WAVs, empty,
   random bytes, text, truncated FLAC and MP3, header-only WAV, a folder named
   x.wav, a FLAC whose header hides its length, symbolic links out of it) is
   indexed twice; every file must end indexed, failed with a one-line reason,
   or skipped, and nothing may stop the run.
2. Faults: SIGKILL of an indexing process at random moments (then a resume
   must complete and the catalogue pass ``PRAGMA integrity_check``); a full
   disk while the index is saved (a 16 kB tmpfs when this runs as root, else
   a writer that raises ENOSPC); search after an interrupted run; limits.
3. Server abuse: one keep-alive connection sends out-of-range ids and numbers,
   deep filters, traversal URLs, bad ranges, unauthenticated calls, a large
   and a long upload; every answer must be a 4xx with a JSON message and the
   connection must survive. Then a stalled upload (time to 408), and the memory
   of drawing 7 hours of silence, streaming and (as before) keeping every sample.

    .venv/bin/python bench/reliability.py [--kills 3] [--fuzz 400] [--out bench/results/reliability.json]
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import logging
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import soundalike  # noqa: E402
from soundalike.errors import SoundalikeError  # noqa: E402
from soundalike.synth import encode, render_track  # noqa: E402
from tests.fakes import FakeModel  # noqa: E402

SR = 22050


def lib_at(path: Path):
    return soundalike.open(path, model=FakeModel(), hop=2.0)


def run_index(lib, folder, **kw):
    events = list(lib.index([folder], **kw))
    return events[-1]


# -- 1. bad input ---------------------------------------------------------------------------------


def float_wav(path: Path, value: float, seconds: float = 6.0, channels: int = 1) -> None:
    x = render_track(5, seconds=seconds, sample_rate=8000) * np.float32(0.5)
    encode(x, 8000, path, codec="pcm_f32le", channels=channels)
    data = bytearray(path.read_bytes())
    i = data.index(b"data") + 8 + int(2.0 * 8000) * 4 * channels
    data[i : i + 4] = np.float32(value).tobytes()
    path.write_bytes(bytes(data))


def bad_input_folder(base: Path) -> tuple[Path, dict[str, str]]:
    """The matrix folder, and what each entry should come to: indexed, error or skipped."""
    music, outside = base / "music", base / "outside"
    music.mkdir()
    outside.mkdir()
    expect = {}
    for seed, ext in enumerate([".flac", ".mp3", ".wav"]):
        encode(render_track(seed, seconds=15, sample_rate=SR), SR, music / f"good{seed}{ext}")
        expect[f"good{seed}{ext}"] = "indexed"
    for name, value, ch in [("nan.wav", np.nan, 1), ("inf.wav", np.inf, 2), ("minus-inf.wav", -np.inf, 1)]:
        float_wav(music / name, value, channels=ch)
        expect[name] = "error"
    (music / "empty.wav").write_bytes(b"")
    (music / "random.mp3").write_bytes(os.urandom(20000))
    (music / "text.flac").write_text("not audio at all\n" * 100)
    good = (music / "good0.flac").read_bytes()
    (music / "truncated.flac").write_bytes(good[: len(good) * 6 // 10])  # decodes what is there: indexed
    (music / "cut.mp3").write_bytes((music / "good1.mp3").read_bytes()[:1000])
    encode(np.zeros(0, np.float32), 16000, music / "header-only.wav")
    (music / "folder.wav").mkdir()
    data = bytearray(good)
    data[8 + 13] &= 0xF0
    data[8 + 14 : 8 + 18] = bytes(4)
    (music / "no-length.flac").write_bytes(bytes(data))
    expect.update({"empty.wav": "error", "random.mp3": "error", "text.flac": "error", "truncated.flac": "indexed",
                   "cut.mp3": "error-or-indexed", "header-only.wav": "error", "no-length.flac": "indexed"})
    encode(render_track(9, seconds=10, sample_rate=SR), SR, outside / "secret.flac")
    (music / "link-out.flac").symlink_to(outside / "secret.flac")
    (music / "dir-out").symlink_to(outside)
    (music / "link-in.flac").symlink_to(music / "good0.flac")
    expect.update({"link-out.flac": "skipped", "dir-out": "skipped", "link-in.flac": "indexed"})
    return music, expect


def bad_input(base: Path) -> dict:
    music, expect = bad_input_folder(base)
    lib = lib_at(base / "lib")
    runs = []
    for attempt in range(2):
        t = time.perf_counter()
        try:
            done = run_index(lib, music)
            stopped = None
        except Exception as exc:  # must not happen: one bad file must never stop a run
            done, stopped = None, f"{type(exc).__name__}: {exc}"
        runs.append({"seconds": round(time.perf_counter() - t, 2), "stopped": stopped,
                     "errors": done.errors if done else None})
    outcome = {os.path.basename(t.path): "indexed" for t in lib.tracks()}
    reasons = {}
    for row in lib.catalog.errors():
        outcome[os.path.basename(row.path)] = "error"
        reasons[os.path.basename(row.path)] = row.error
    for path, reason in (done.skipped if done else []):
        outcome[os.path.basename(path)] = "skipped"
        reasons[os.path.basename(path)] = reason
    lib.close()
    rows, wrong = [], 0
    for name, want in sorted(expect.items()):
        got = outcome.get(name, "missing")
        ok = got == want or (want == "error-or-indexed" and got in ("error", "indexed"))
        one_line = "\n" not in reasons.get(name, "")
        wrong += not (ok and one_line)
        rows.append({"file": name, "expected": want, "got": got, "reason": reasons.get(name), "ok": ok and one_line})
    return {"files": rows, "runs": runs, "unexpected": wrong + sum(r["stopped"] is not None for r in runs)}


# -- 2. faults ------------------------------------------------------------------------------------

_KILLED_INDEXER = """
import sys
sys.path.insert(0, {root!r})
import soundalike
from tests.fakes import SlowFakeModel
lib = soundalike.open({lib!r}, model=SlowFakeModel(delay=0.5), hop=2.0)  # slowed, so that kills land midway
print("opened", flush=True)
for event in lib.index([{music!r}], workers=1):
    if event.event == "indexed":
        print(event.path, flush=True)
"""


def kill_trials(base: Path, kills: int) -> dict:
    music = base / "kill-music"
    music.mkdir()
    for seed in range(8):
        encode(render_track(seed, seconds=30, sample_rate=SR), SR, music / f"t{seed}.flac")
    rng = random.Random(19)
    trials = []
    for i in range(kills):
        lib_path = base / f"kill-lib{i}"
        script = _KILLED_INDEXER.format(root=str(ROOT), lib=str(lib_path), music=str(music))
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        # the trials spread over the run: trial i waits until the library is open and i % 8 tracks are in, then
        # for a random part of the next track
        t0 = time.perf_counter()
        for _ in range(1 + i % 8):
            if not proc.stdout.readline():
                break
        delay = rng.uniform(0.0, 0.5)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        delay = time.perf_counter() - t0
        db = sqlite3.connect(lib_path / "catalog.sqlite")
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        before = db.execute("SELECT count(*) FROM tracks").fetchone()[0]
        db.close()
        lib = lib_at(lib_path)
        events = list(lib.index([music]))
        done = events[-1]
        hit = lib.search(music / "t3.flac", rerank=0).hits[0].path
        trials.append({"killed_after_s": round(delay, 2), "integrity": integrity, "tracks_at_kill": before,
                       "resume_indexed": sum(e.event == "indexed" for e in events),
                       "tracks_after_resume": lib.catalog.track_count(), "index_tracks": lib.store.count("tracks"),
                       "resume_errors": done.errors, "search_ok": hit.endswith("t3.flac")})
        lib.close()
    ok = all(t["integrity"] == "ok" and t["tracks_after_resume"] == 8 == t["index_tracks"] and t["search_ok"]
             and t["resume_indexed"] == 8 - t["tracks_at_kill"] for t in trials)  # the resume did only what was left
    return {"trials": trials, "ok": ok}


def full_disk(base: Path) -> dict:
    from soundalike.stores import exact

    music = base / "disk-music"
    music.mkdir()
    for seed in range(3):
        encode(render_track(seed, seconds=20, sample_rate=SR), SR, music / f"t{seed}.flac")
    index = base / "disk-lib" / "index"
    index.mkdir(parents=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(index)], capture_output=True).returncode == 0
    real = exact.Folder.save_npy
    if not mounted:  # the same failure from a writer that runs out of space half way
        def save_npy(self, name, array):
            self.tmp(name).write_bytes(b"\x93NUMPY" + bytes(100))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        exact.Folder.save_npy = save_npy
    out: dict = {"method": "16 kB tmpfs" if mounted else "ENOSPC writer"}
    try:
        lib = lib_at(base / "disk-lib")
        try:
            run_index(lib, music)
            out["index_error"] = None
        except SoundalikeError as exc:
            out["index_error"] = str(exc)
        try:
            lib.close()
        except SoundalikeError:
            pass
        out["left_behind"] = sorted(p.name for p in index.iterdir() if p.name != "write.lock")
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=8m", str(index)], check=True)
        else:
            exact.Folder.save_npy = real
        lib = lib_at(base / "disk-lib")
        out["rebuild_vectors"] = list(lib.rebuild_index())[-1][0]
        out["search_after"] = os.path.basename(lib.search(music / "t1.flac", rerank=0).hits[0].path)
        out["index_after"] = run_index(lib, music).event
        lib.close()
    finally:
        exact.Folder.save_npy = real
        if mounted:
            subprocess.run(["umount", str(index)], check=False)
    out["ok"] = (out["index_error"] or "").find("No space left") >= 0 and out["left_behind"] == [] \
        and out["search_after"] == "t1.flac"
    return out


def interrupted_search(base: Path) -> dict:
    from soundalike.ingest import Indexer

    music = base / "int-music"
    music.mkdir()
    for seed in range(4):
        encode(render_track(seed, seconds=20, sample_rate=SR), SR, music / f"t{seed}.flac")
    real = Indexer._flush
    Indexer._flush = lambda self: None  # killed before any flush of the vector index
    try:
        lib = lib_at(base / "int-lib")
        it = lib.index([music])
        n = 0
        for event in it:
            n += event.event == "indexed"
            if n == 3:
                break
        it.close()
        lib.catalog.close()
    finally:
        Indexer._flush = real
    lib = lib_at(base / "int-lib")
    result = lib.search(music / "t2.flac", rerank=0)
    similar = lib.similar(result.hits[0].track_id)
    out = {"catalogue_tracks": lib.catalog.track_count(), "index_tracks": lib.store.count("tracks"),
           "search_hits": len(result.hits), "similar_hits": len(similar.hits), "warnings": result.warnings}
    lib.close()
    out["ok"] = out["search_hits"] == 3 and out["similar_hits"] == 2 and bool(out["warnings"])
    return out


def limits(base: Path) -> dict:
    lib = lib_at(base / "int-lib")
    cases = {
        "top=1e11": lambda: lib.similar(1, top=100_000_000_000),
        "where 1000 deep": lambda: lib.similar(1, where="(" * 1000 + "bpm > 1" + ")" * 1000),
        "where 5000 or": lambda: lib.similar(1, where=" or ".join(["bpm = 1"] * 5000)),
        "where 300 or": lambda: lib.similar(1, where=" or ".join(["bpm = 1"] * 300)),
        "weights votes=nan": lambda: lib.similar(1, weights="votes=nan"),
        "start=1e308": lambda: lib.similar(1, start=1e308),
        "track 2^64": lambda: lib.similar(2**64),
    }
    out = {}
    for name, call in cases.items():
        try:
            call()
            out[name] = {"ok": False, "error": None}
        except SoundalikeError as exc:
            out[name] = {"ok": "\n" not in str(exc), "error": f"{type(exc).__name__}: {exc}"[:200]}
        except Exception as exc:
            out[name] = {"ok": False, "error": f"unexpected {type(exc).__name__}: {exc}"[:200]}
    lib.close()
    return out


# -- 3. server abuse ------------------------------------------------------------------------------


def live(app):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, sock.getsockname()[1]


def multipart(name: str, data: bytes, fields: dict | None = None) -> tuple[bytes, str]:
    b = "reliabilityboundary"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in (fields or {}).items()]
    if data is not None:
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def server_abuse(base: Path) -> dict:
    from soundalike.serve import create_app

    lib_path = base / "int-lib"
    silence = base / "hour.flac"
    encode((np.zeros(4000 * 60, np.float32) for _ in range(60)), 4000, silence)
    huge, two63 = "99999999999999999999", str(2**63)
    deep = "(" * 1000 + "bpm > 1" + ")" * 1000
    key = "reliability-key"
    H = {"X-API-Key": key}
    # (method, url, body: form fields or (file name, bytes), headers); every answer should be a 4xx but
    # the one a huge number in a filter gets (it compares as a real: 200)
    requests = [
        ("GET", f"/api/tracks/{two63}", None, H), ("GET", f"/api/tracks/{two63}/audio", None, H),
        ("GET", f"/api/tracks/{huge}/waveform", None, H), ("GET", f"/api/tracks/{huge}/similar", None, H),
        ("GET", f"/api/tracks?offset={huge}", None, H), ("GET", "/api/tracks?limit=0", None, H),
        ("GET", "/api/tracks?where=" + deep.replace(" ", "%20"), None, H),
        ("GET", "/api/tracks?where=" + "%20or%20".join(["bpm=1"] * 5000), None, H),
        ("GET", "/api/tracks/1/similar?where=id%20%3D%20" + huge, None, H),
        ("POST", "/api/search", {"track": huge}, H), ("POST", "/api/search", {"track": "1", "exclude_album_of": huge}, H),
        ("POST", "/api/search", {"track": "1", "start": "1e308"}, H), ("POST", "/api/search", {"track": "1", "where": deep}, H),
        ("POST", "/api/search", {"track": "1", "weights": "votes=nan"}, H), ("POST", "/api/search", {"track": "1", "top": "100000000000"}, H),
        ("GET", "/api/../../etc/passwd", None, H), ("GET", "/api/tracks/1/audio/../../../etc/passwd", None, H),
        ("GET", "/api/tracks/%2e%2e%2fetc%2fpasswd", None, H), ("GET", "/api/nothing-here", None, H),
        ("GET", "/api/tracks/1/audio", None, {**H, "Range": "bytes=99999999999999999999-"}),
        ("GET", "/api/health", None, {}), ("GET", "/api/tracks", None, {"X-API-Key": "wrong"}),
        ("POST", "/api/waveform", ("big.wav", os.urandom(1_500_000)), H),
        ("POST", "/api/waveform", ("hour.flac", silence.read_bytes()), H),
        ("POST", "/api/search", ("hour.flac", silence.read_bytes()), H),
        ("POST", "/api/waveform", ("text.wav", b"<html>not audio</html>"), H),
    ]
    app = create_app(lib_path, model=FakeModel(), api_key=key, max_upload_mb=1.0, max_upload_seconds=600,
                     read_timeout=1.0)
    server, thread, port = live(app)
    rows, drops, fives = [], 0, 0
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for method, url, body, headers in requests:
            data, ctype = (None, None)
            if isinstance(body, dict):
                data, ctype = multipart("", None, body)
            elif isinstance(body, tuple):
                data, ctype = multipart(body[0], body[1])
            hdrs = dict(headers)
            if ctype:
                hdrs["Content-Type"] = ctype
            sock = conn.sock
            try:
                conn.request(method, url, body=data, headers=hdrs)
                r = conn.getresponse()
                payload = r.read()
                status = r.status
            except (http.client.HTTPException, OSError) as exc:
                status, payload = 0, str(exc).encode()
                conn.close()
            dropped = sock is not None and conn.sock is not sock
            drops += dropped
            fives += status >= 500 or status == 0
            try:
                message = json.loads(payload).get("error")
            except ValueError:
                message = payload[:80].decode(errors="replace")
            what = "" if not body else (" " + " ".join(f"{k}={v[:24]}" for k, v in body.items())
                                          if isinstance(body, dict) else f" file {body[0]}")
            rows.append({"request": f"{method} {url[:70]}{what}",
                         "status": status, "message": (message or "")[:120], "connection_dropped": dropped})
        # a stalled upload
        s = socket.create_connection(("127.0.0.1", port))
        t = time.monotonic()
        s.sendall(b"POST /api/waveform HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode()
                  + b"\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\n")
        answer = s.recv(4096)
        stalled = {"status": int(answer.split()[1]) if answer else 0, "seconds": round(time.monotonic() - t, 2)}
        s.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    expected_200 = {i for i, r in enumerate(requests) if "where=id" in r[1]}
    ok = fives == 0 and drops == 0 and stalled["status"] == 408 and all(
        (r["status"] == 200) if i in expected_200 else 400 <= r["status"] < 500 for i, r in enumerate(rows))
    return {"requests": rows, "server_errors": fives, "connections_dropped": drops, "stalled_upload": stalled,
            "ok": ok}


_PEAKS_RSS = """
import resource, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from soundalike.decode import stream
from soundalike.serve.media import peaks
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if {mode!r} == "streaming":
    seconds = peaks({path!r}, points=1000)["duration"]
else:  # what the server did before: keep every sample, then reduce
    x = np.concatenate([np.abs(b) for b in stream({path!r}, sample_rate=4000)])
    seconds = len(x) / 4000
    np.maximum.reduceat(x, np.linspace(0, len(x), 1001).astype(np.int64)[:-1])
print(seconds, time.perf_counter() - t, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def waveform_memory(base: Path, hours: float) -> dict:
    """Peak RSS growth of drawing ``hours`` of silence (a few MB of FLAC), streaming against keeping every sample,
    each in a fresh process."""
    path = base / "long-silence.flac"
    encode((np.zeros(4000 * 60, np.float32) for _ in range(int(hours * 60))), 4000, path)
    out = {"hours": hours, "flac_mb": round(path.stat().st_size / 1e6, 2)}
    for mode in ("streaming", "every-sample"):
        script = _PEAKS_RSS.format(root=str(ROOT), mode=mode, path=str(path))
        seconds, wall, grew = map(float, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                                        check=True).stdout.split())
        out[mode] = {"audio_seconds": seconds, "seconds": round(wall, 1), "peak_rss_growth_mb": round(grew, 1)}
    return out


FUZZ_FORMATS = [(".mp3", {}), (".flac", {}), (".ogg", {}), (".opus", {}), (".m4a", {}), (".wav", {}),
                (".aiff", {}), (".wav", {"codec": "pcm_f32le"})]


def _decode_one(path: str) -> str:
    """In a worker process: decode ``path`` and say how it ended ("ok", "refused: reason" or
    "unexpected: Type: message"); decoded samples must be finite."""
    from soundalike.decode import decode
    from soundalike.errors import DecodeError, QueryError, UserError

    try:
        audio = decode(path, sample_rate=16000)
    except (DecodeError, QueryError, UserError) as exc:
        return f"refused: {exc}"
    except Exception as exc:  # noqa: BLE001 - what the fuzzing is looking for
        return f"unexpected: {type(exc).__name__}: {exc}"
    if not np.isfinite(audio.samples).all():
        return "unexpected: non-finite samples decoded"
    return "ok"


def fuzz(base: Path, n: int, *, timeout: float = 20.0) -> dict:
    """``n`` mutants of real files of every format (bytes flipped, cut, repeated, dropped or zeroed), each
    decoded in a worker process with a time limit: a crash kills the worker, a hang runs out the time."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout
    from concurrent.futures.process import BrokenProcessPool

    rng = random.Random(19)
    x = render_track(23, seconds=4, sample_rate=SR) * np.float32(0.5)
    seeds = []
    for i, (ext, kw) in enumerate(FUZZ_FORMATS):
        path = base / f"seed{i}{ext}"
        encode(x, SR, path, **kw)
        seeds.append(path.read_bytes())
    outcomes = {"ok": 0, "refused": 0, "unexpected": 0, "crash": 0, "hang": 0}
    examples: list[str] = []
    pool = ProcessPoolExecutor(1)
    for k in range(n):
        i = k % len(seeds)
        data = bytearray(seeds[i])
        how = rng.choice(["flip", "cut", "repeat", "drop", "zero"])
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.randrange(1, 4096))
        if how == "flip":
            for _ in range(max(1, len(data) // rng.choice([50, 200, 1000]))):
                j = rng.randrange(len(data))
                data[j] ^= 1 << rng.randrange(8)
        elif how == "cut":
            data = data[:a]
        elif how == "repeat":
            data = data[:b] + data[a:b] + data[b:]
        elif how == "drop":
            data = data[:a] + data[b:]
        else:
            data[a:b] = bytes(b - a)
        path = base / f"fuzz{k:04d}{FUZZ_FORMATS[i][0]}"
        path.write_bytes(bytes(data))
        try:
            got = pool.submit(_decode_one, str(path)).result(timeout=timeout)
            kind = got.split(":")[0]
        except FutureTimeout:
            kind, got = "hang", f"no answer in {timeout:g} s"
        except BrokenProcessPool:
            kind, got = "crash", "the decoding process died"
        if kind in ("hang", "crash"):
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool = ProcessPoolExecutor(1)
        outcomes[kind] += 1
        if kind in ("unexpected", "crash", "hang") and len(examples) < 10:
            examples.append(f"{path.name} ({how}): {got}")
        path.unlink()
    pool.shutdown()
    return {"files": n, "formats": [e + (f" {kw['codec']}" if kw else "") for e, kw in FUZZ_FORMATS],
            "outcomes": outcomes, "examples": examples,
            "ok": outcomes["unexpected"] + outcomes["crash"] + outcomes["hang"] == 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=8,
                    help="SIGKILL trials of an indexing process (trial i once i %% 8 tracks are in)")
    ap.add_argument("--fuzz", type=int, default=400, help="mutated files decoded (crashes, hangs, unexpected errors)")
    ap.add_argument("--hours", type=float, default=7.0, help="hours of silence drawn for the waveform memory figure")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reliability.json")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the library's warnings about the damaged files are expected here
    base = Path(tempfile.mkdtemp(prefix="soundalike-reliability-"))
    t0 = time.perf_counter()
    try:
        (base / "bad").mkdir()
        report = {"bad_input": bad_input(base / "bad")}
        (base / "fuzz").mkdir()
        report["fuzz"] = fuzz(base / "fuzz", args.fuzz)
        report["kill_trials"] = kill_trials(base, args.kills)
        report["full_disk"] = full_disk(base)
        report["interrupted_search"] = interrupted_search(base)
        report["limits"] = limits(base)
        report["server"] = server_abuse(base)
        report["waveform_memory"] = waveform_memory(base, args.hours)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    bi = report["bad_input"]
    print(f"bad input: {len(bi['files'])} files, {bi['unexpected']} unexpected outcomes")
    for r in bi["files"]:
        print(f"  {'ok ' if r['ok'] else 'BAD'} {r['file']:<18} {r['got']:<8} {(r['reason'] or '')[:90]}")
    f = report["fuzz"]
    print(f"fuzzing: {f['files']} mutants of {len(f['formats'])} formats: {f['outcomes']}")
    for e in f["examples"]:
        print(f"  {e[:120]}")
    k = report["kill_trials"]
    print(f"SIGKILL trials: {len(k['trials'])}, all resumed intact: {k['ok']}")
    for t in k["trials"]:
        print(f"  killed after {t['killed_after_s']:5.2f} s with {t['tracks_at_kill']} of 8 tracks in: integrity "
              f"{t['integrity']}; the resume indexed {t['resume_indexed']}, leaving {t['tracks_after_resume']} tracks "
              f"and {t['index_tracks']} track vectors; search {'ok' if t['search_ok'] else 'WRONG'}")
    d = report["full_disk"]
    print(f"full disk ({d['method']}): {d['index_error']}; left behind {d['left_behind']}; "
          f"rebuild {d['rebuild_vectors']} vectors; search after: {d['search_after']}; ok: {d['ok']}")
    i = report["interrupted_search"]
    print(f"interrupted run: catalogue {i['catalogue_tracks']}, index {i['index_tracks']}; search {i['search_hits']} "
          f"hits, similar {i['similar_hits']}; warned: {bool(i['warnings'])}")
    for name, r in report["limits"].items():
        print(f"  limit {name:<18} {'ok ' if r['ok'] else 'BAD'} {r['error']}")
    s = report["server"]
    print(f"server: {len(s['requests'])} hostile requests, {s['server_errors']} 5xx, "
          f"{s['connections_dropped']} dropped connections; stalled upload -> {s['stalled_upload']}; ok: {s['ok']}")
    for r in s["requests"]:
        print(f"  {r['status']} {r['request'][:80]:<80} {r['message'][:60]}")
    w = report["waveform_memory"]
    print(f"waveform of {w['hours']:g} h of silence ({w['flac_mb']} MB FLAC): streaming {w['streaming']}, "
          f"keeping every sample {w['every-sample']}")
    print(f"{report['seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
