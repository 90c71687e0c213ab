"""The CLI in-process: exit codes, one-line errors, --json output."""

import json

import numpy as np
import pytest

from soundalike.models import register_model
from soundalike.synth import add_noise, encode, excerpt, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 22050


@pytest.fixture(autouse=True)
def fake_model():
    register_model("fake", FakeModel)


@pytest.fixture
def indexed(tmp_path, capsys):
    music = tmp_path / "music"
    music.mkdir()
    for seed in range(3):
        encode(render_track(seed, seconds=30, sample_rate=SR), SR, music / f"t{seed}.flac")
    (music / "bad.ogg").write_bytes(b"OggS" + bytes(500))
    lib = tmp_path / "lib"
    code, out, err = cli(capsys, "index", music, "-L", lib, "--model", "fake", "--hop", 2, "--json")
    assert code == 0, err
    return music, lib, json.loads(out)


def test_index_json_reports_tracks_and_errors(indexed):
    _, _, summary = indexed
    assert summary["tracks"] == 3
    assert [e["path"].rsplit("/", 1)[-1] for e in summary["errors"]] == ["bad.ogg"]
    assert summary["realtime"] > 0 and set(summary["stage_seconds"]) >= {"network", "store"}


def test_search_and_similar_json(indexed, tmp_path, capsys):
    music, lib, _ = indexed
    clip = add_noise(excerpt(render_track(1, seconds=30, sample_rate=SR), SR, 8.0, 10.0), 20, np.random.default_rng(0))
    encode(clip, SR, tmp_path / "q.mp3", bitrate=64000)
    code, out, err = cli(capsys, "search", tmp_path / "q.mp3", "-L", lib, "--json", "--top", 2)
    assert code == 0, err
    data = json.loads(out)
    assert data["hits"][0]["path"].endswith("t1.flac") and len(data["hits"]) == 2
    assert {"score", "votes", "offset", "matches", "track_cosine"} <= data["hits"][0].keys()
    code, out, _ = cli(capsys, "search", tmp_path / "q.mp3", "-L", lib)
    assert code == 0 and "t1.flac" in out and "%" in out
    code, out, _ = cli(capsys, "similar", str(music / "t0.flac"), "-L", lib, "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 2
    code, out, _ = cli(capsys, "similar", str(music / "t0.flac"), "--start", 6, "--end", 15, "-L", lib, "--json")
    query = json.loads(out)["query"]
    assert code == 0 and (query["start"], query["end"]) == (6, 15)
    code, _, err = cli(capsys, "similar", str(music / "t0.flac"), "--start", 999, "-L", lib)
    assert code != 0 and "beyond the end" in err


def test_info_export_and_rebuild(indexed, tmp_path, capsys):
    _, lib, _ = indexed
    code, out, _ = cli(capsys, "info", "-L", lib, "--json")
    info = json.loads(out)
    assert code == 0 and info["tracks"] == 3 and info["errors"] == 1
    code, out, _ = cli(capsys, "info", "1", "-L", lib, "--json")
    assert code == 0 and json.loads(out)["id"] == 1
    code, out, _ = cli(capsys, "rebuild-index", "-L", lib, "--json")
    assert code == 0 and json.loads(out)["tracks"] == 3
    code, out, _ = cli(capsys, "export", tmp_path / "av", "-L", lib, "--json")
    assert code == 0 and json.loads(out)["files"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["index", "{tmp}/nope", "-L", "{lib}"], "no such file or folder"),
        (["index", "{tmp}/emptydir", "-L", "{lib}"], "no audio files"),
        (["search", "{tmp}/nope.mp3", "-L", "{lib}"], "no such file"),
        (["search", "{tmp}/garbage.mp3", "-L", "{lib}"], "garbage.mp3"),
        (["search", "{music}/t0.flac", "--start", "400", "-L", "{lib}"], "400"),
        (["index", "{music}", "-L", "{lib}", "--model", "musicnn"], "built with model 'fake'"),
        (["similar", "999", "-L", "{lib}"], "no track 999"),
        (["search", "{music}/t0.flac", "-L", "{tmp}/nolib"], "no library"),
        (["search", "{music}/t0.flac", "-L", "{lib}", "--weights", "votes=x"], "weights"),
    ],
)
def test_bad_input_is_one_line_and_nonzero_and_loses_nothing(indexed, tmp_path, capsys, args, message):
    music, lib, _ = indexed
    (tmp_path / "emptydir").mkdir(exist_ok=True)
    (tmp_path / "garbage.mp3").write_bytes(b"definitely not audio")
    args = [a.format(tmp=tmp_path, lib=lib, music=music) for a in args]
    code, out, err = cli(capsys, *args)
    assert code != 0
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err
    code, out, _ = cli(capsys, "info", "-L", lib, "--json")
    assert json.loads(out)["tracks"] == 3


def test_help_has_examples(capsys):
    for command in ("index", "search", "similar", "info", "export", "rebuild-index"):
        code, out, _ = cli(capsys, command, "--help")
        assert code == 0 and "Example" in out, command


def test_console_script_keeps_output_and_exit_codes(tmp_path):
    """The installed ``soundalike`` ends with os._exit (no interpreter teardown): what it printed and its
    exit code must survive, through pipes, with torch loaded."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "soundalike"
    music = tmp_path / "music"
    music.mkdir()
    encode(render_track(0, seconds=6, sample_rate=SR), SR, music / "t0.flac")
    ok = subprocess.run([exe, "index", music, "-L", tmp_path / "lib", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["tracks"] == 1
    bad = subprocess.run([exe, "index", tmp_path / "missing", "-L", tmp_path / "lib"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no such file or folder")
    usage = subprocess.run([exe, "index", "--no-such-option"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--no-such-option" in usage.stderr


def test_ctrl_c_exits_130_and_says_so(tmp_path, capsys, monkeypatch):
    """Ctrl-C while indexing: exit 130 and one line saying what is kept (newer typer returns 130 rather than
    raising KeyboardInterrupt, which main() once took for success)."""
    from soundalike.library import Library

    def interrupted(self, paths, **kwargs):  # the indexer's event stream, stopped by Ctrl-C at its first event
        raise KeyboardInterrupt
        yield

    music = tmp_path / "music"
    music.mkdir()
    encode(render_track(0, seconds=6, sample_rate=SR), SR, music / "t0.flac")
    monkeypatch.setattr(Library, "index", interrupted)
    code, _, err = cli(capsys, "index", music, "-L", tmp_path / "lib", "--model", "fake")
    assert code == 130 and "interrupted" in err


def test_tracker_modules_are_read_or_listed_as_skipped_with_the_reason(tmp_path, capsys):
    """FFmpeg reads .mod/.xm/.it/.s3m only through libopenmpt. Where PyAV's FFmpeg lacks it, `index` lists
    them as skipped with the reason, and one named on its own fails with that reason, not "not an audio file"."""
    import shutil
    import subprocess

    from soundalike.decode import TRACKER_REASON, tracker_support
    from tests.conftest import make_mod

    music = tmp_path / "music"
    music.mkdir()
    encode(render_track(0, seconds=12, sample_rate=SR), SR, music / "song.flac")
    mod = make_mod(music / "tune.mod")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg and "libopenmpt" in subprocess.run([ffmpeg, "-hide_banner", "-formats"], capture_output=True,
                                                 text=True).stdout:  # a real module: Debian's FFmpeg plays it
        probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(mod), "-f", "null", "-"], capture_output=True,
                               text=True)
        assert probe.returncode == 0 and "Audio:" in probe.stderr, probe.stderr
    lib = tmp_path / "lib"
    code, out, err = cli(capsys, "index", music, "-L", lib, "--model", "fake", "--hop", 2, "--json")
    assert code == 0, err
    summary = json.loads(out)
    if tracker_support():
        assert summary["tracks"] == 2 and not summary["skipped"]
        return
    assert summary["tracks"] == 1 and summary["errors"] == []
    assert summary["skipped"] == [{"path": str(mod), "reason": TRACKER_REASON}]
    code, out, err = cli(capsys, "index", music, "-L", lib, "--model", "fake", "--hop", 2)
    assert code == 0 and "1 file(s) skipped" in out and "tune.mod" in out and "libopenmpt" in out
    code, _, err = cli(capsys, "search", mod, "-L", lib)
    assert code == 1 and "tracker module" in err and "not an audio file" not in err


def test_the_index_bar_speaks_of_realtime_and_shows_an_eta(tmp_path, capsys):
    music = tmp_path / "music"
    music.mkdir()
    for seed in range(2):
        encode(render_track(seed, seconds=12, sample_rate=SR), SR, music / f"t{seed}.flac")
    code, _, err = cli(capsys, "index", music, "-L", tmp_path / "lib", "--model", "fake", "--hop", 2)
    assert code == 0, err
    bar = next(line for line in err.splitlines() if line.startswith("indexing"))
    assert "x realtime" in bar and "audio-s/s" not in bar
    assert "ETA" in bar and "0:00:00" in bar.split("ETA")[1]  # done: nothing left
