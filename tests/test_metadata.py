"""Embedded tags (mutagen) from files that PyAV encoded with metadata, and user metadata from CSV."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import soundalike
from soundalike.errors import UserError
from soundalike.metadata import read_tags
from soundalike.synth import _to_format, encode, render_track
from tests.fakes import FakeModel

TAGS = {
    "title": "Night Drive", "artist": "The Testers", "album": "Fixtures Vol. 1", "genre": "Jazz",
    "date": "2019-05-01", "comment": "made by PyAV", "TBPM": "121", "TKEY": "Am", "bpm": "121", "initialkey": "Am",
}
# (extension, codec, container format, container options, rate, tags this container carries through FFmpeg)
CASES = [
    (".mp3", "libmp3lame", None, {}, 44100, "all"),
    (".flac", "flac", None, {}, 44100, "all"),
    (".ogg", "vorbis", None, {}, 44100, "all"),
    (".opus", "libopus", None, {}, 48000, "all"),
    (".m4a", "aac", "ipod", {}, 44100, "no-bpm-key"),  # FFmpeg's MP4 muxer writes no tmpo / initialkey
    (".aiff", "pcm_s16be", "aiff", {"write_id3v2": "1"}, 44100, "all"),  # an ID3 chunk
]


def encode_tagged(path: Path, codec: str, fmt: str | None, options: dict, rate: int, tags: dict) -> Path:
    """Two seconds of a stereo tone, written by PyAV with ``tags`` as container metadata."""
    import av

    container = av.open(str(path), "w", format=fmt, options=options)
    container.metadata.update(tags)
    stream = container.add_stream(codec, rate=rate, options={"strict": "experimental"} if codec == "vorbis" else {})
    stream.layout = "stereo"
    sample_fmt = stream.codec_context.codec.audio_formats[0].name
    x = (np.sin(np.arange(2 * rate) * 2 * np.pi * 440 / rate) * 0.3).astype(np.float32)
    frame_size = stream.codec_context.frame_size or 1024
    pts = 0
    for i in range(0, len(x), frame_size):
        block = np.stack([x[i : i + frame_size]] * 2)
        frame = av.AudioFrame.from_ndarray(_to_format(block, sample_fmt), format=sample_fmt, layout="stereo")
        frame.sample_rate, frame.pts = rate, pts
        pts += block.shape[1]
        for p in stream.encode(frame):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)
    container.close()
    return path


@pytest.mark.parametrize("ext,codec,fmt,options,rate,carries", CASES, ids=[c[0][1:] for c in CASES])
def test_read_tags_from_pyav_encoded_files(tmp_path, ext, codec, fmt, options, rate, carries):
    path = encode_tagged(tmp_path / f"tagged{ext}", codec, fmt, options, rate, TAGS)
    tags = read_tags(path)
    expected = {"title": "Night Drive", "artist": "The Testers", "album": "Fixtures Vol. 1", "genre": "Jazz",
                "year": 2019, "comment": "made by PyAV", "tag_bpm": 121.0, "tag_key": "Am"}
    if carries == "no-bpm-key":
        del expected["tag_bpm"], expected["tag_key"]
    assert tags == expected


def test_mp4_bpm_and_key_atoms(tmp_path):
    """The MP4 atoms FFmpeg does not write (tmpo, iTunes initialkey), set with mutagen."""
    from mutagen.mp4 import MP4, MP4FreeForm

    path = encode_tagged(tmp_path / "a.m4a", "aac", "ipod", {}, 44100, {"title": "x"})
    f = MP4(path)
    f["tmpo"] = [97]
    f["----:com.apple.iTunes:initialkey"] = [MP4FreeForm(b"F#m")]
    f.save()
    assert read_tags(path) == {"title": "x", "tag_bpm": 97.0, "tag_key": "F#m"}


def test_untagged_damaged_and_non_audio_files_give_no_tags(tmp_path):
    plain = tmp_path / "plain.wav"
    encode(np.zeros(8000, np.float32), 8000, plain)
    assert read_tags(plain) == {}
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\x00" * 50)
    assert read_tags(junk) == {}
    assert read_tags(tmp_path / "missing.flac") == {}


# -- through the indexer, and user metadata ------------------------------------------------------


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    music = root / "music"
    music.mkdir()
    encode_tagged(music / "tagged.flac", "flac", None, {}, 44100, TAGS)
    for i in range(3):
        encode(render_track(20 + i, seconds=8, sample_rate=22050), 22050, music / f"plain{i}.wav")
    lib = soundalike.open(root / "lib", model=FakeModel(), hop=2.0)
    assert list(lib.index([music]))[-1].errors == 0
    yield lib, music
    lib.close()


def test_indexed_tracks_carry_their_tags_and_descriptors(tagged_library):
    lib, music = tagged_library
    row = lib.track(str(music / "tagged.flac"))
    assert (row.title, row.artist, row.album, row.genre, row.year) == ("Night Drive", "The Testers", "Fixtures Vol. 1", "Jazz", 2019)
    assert (row.tag_bpm, row.tag_key, row.comment) == (121.0, "Am", "made by PyAV")
    assert (row.sample_rate, row.channels) == (44100, 2)
    assert row.duration == pytest.approx(2.0, abs=0.05)
    assert row.loudness is not None and row.true_peak is not None
    # a 0.3-amplitude sine: true peak -10.5 dBFS; loudness of a 440 Hz sine at that level ~ -13.5 LUFS + 3 (stereo)
    assert row.true_peak == pytest.approx(20 * np.log10(0.3), abs=0.2)
    plain = lib.track(str(music / "plain0.wav"))
    assert plain.title is None and plain.bpm is not None and plain.key is not None


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_labels_import_merges_by_path_and_id_and_reports_unmatched(tmp_path, tagged_library):
    lib, music = tagged_library
    t0 = lib.track(str(music / "plain0.wav"))
    t1 = lib.track(str(music / "plain1.wav"))
    by_path = _write_csv(music / "moods.csv", [
        ["path", "Mood", "BPM", "licence"],
        ["plain0.wav", "calm", "92", "CC-BY"],        # relative to the CSV's folder
        [str(music / "plain1.wav"), "tense", "128.5", ""],
        ["nowhere.wav", "sad", "60", "x"],
    ])
    report = lib.import_labels(by_path)
    assert (report.rows, report.matched, report.key) == (3, 2, "path")
    assert report.unmatched == [(4, "nowhere.wav")]
    assert report.columns == ["mood", "bpm", "licence"]
    assert lib.labels(t0.id) == {"mood": "calm", "bpm": 92, "licence": "CC-BY"}
    assert lib.labels(t1.id) == {"mood": "tense", "bpm": 128.5}
    by_id = _write_csv(tmp_path / "ids.csv", [["track_id", "licence", "mood"], [str(t1.id), "CC0", ""], ["999999", "x", "y"],
                                              [str(t0.id), "-", ""]])
    report = lib.import_labels(by_id)
    assert report.key == "track_id" and report.unmatched == [(3, "999999")]
    assert lib.labels(t1.id) == {"mood": "tense", "bpm": 128.5, "licence": "CC0"}  # merged, empty cell kept
    assert lib.labels(t0.id) == {"mood": "calm", "bpm": 92}  # "-" removed the licence

    out = io.StringIO()
    assert lib.export_labels(out) == 2
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["path", "track_id", "bpm", "licence", "mood"]
    assert [t0.path, str(t0.id), "92", "", "calm"] in rows and [t1.path, str(t1.id), "128.5", "CC0", "tense"] in rows

    # user metadata is filterable, numerically, and overrides the measured bpm where set
    assert {r.id for r in lib.tracks(where="mood = 'CALM' or licence like 'cc%'")} == {t0.id, t1.id}
    assert [r.id for r in lib.tracks(where="label.bpm > 100")] == [t1.id]
    assert [r.id for r in lib.tracks(where="bpm between 91 and 93")] == [t0.id]
    assert lib.count_tracks("mood is null") == 2


def test_labels_import_errors(tmp_path, tagged_library):
    lib, _ = tagged_library
    with pytest.raises(UserError, match="needs a 'path' or 'track_id' column"):
        lib.import_labels(_write_csv(tmp_path / "a.csv", [["file", "mood"], ["x", "y"]]))
    with pytest.raises(UserError, match="no such file"):
        lib.import_labels(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="empty"):
        lib.import_labels(_write_csv(tmp_path / "b.csv", []))


def test_labels_cli_import_and_export(tmp_path, tagged_library):
    from typer.testing import CliRunner

    from soundalike.cli import app

    lib, music = tagged_library
    copy = Path(shutil.copytree(lib.path, tmp_path / "lib"))
    csv_path = _write_csv(tmp_path / "l.csv", [["path", "energy"], [str(music / "plain2.wav"), "0.8"], ["gone.wav", "1"]])
    runner = CliRunner()
    r = runner.invoke(app, ["labels", "import", str(csv_path), "-L", str(copy), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["matched"] == 1 and data["unmatched"] == [{"line": 3, "key": "gone.wav"}]
    out = tmp_path / "out.csv"
    r = runner.invoke(app, ["labels", "export", str(out), "-L", str(copy)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert [r["energy"] for r in rows if r["path"] == str(music / "plain2.wav")] == ["0.8"]
    r = runner.invoke(app, ["tracks", "-L", str(copy), "--where", "energy > 0.5", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["count"] == 1 and got["tracks"][0]["labels"]["energy"] == 0.8
    r = runner.invoke(app, ["info", str(music / "tagged.flac"), "-L", str(copy)])
    assert r.exit_code == 0, r.output
    assert "genre: Jazz" in r.stdout and "LUFS" in r.stdout and "dBTP" in r.stdout


def test_labels_survive_reindexing_and_follow_a_moved_file(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    encode(render_track(40, seconds=6, sample_rate=22050), 22050, music / "a.wav")
    encode(render_track(41, seconds=6, sample_rate=22050), 22050, music / "b.wav")
    lib = soundalike.open(tmp_path / "lib", model=FakeModel(), hop=2.0)
    list(lib.index([music]))
    lib.set_labels(str(music / "a.wav"), mood="calm", rating=4)
    (music / "a.wav").rename(music / "renamed.wav")
    encode(render_track(42, seconds=6, sample_rate=22050), 22050, music / "b.wav")  # changed: re-embedded
    lib.set_labels(str(music / "b.wav"), mood="tense")
    list(lib.index([music]))
    assert lib.labels(str(music / "renamed.wav")) == {"mood": "calm", "rating": 4}
    assert lib.labels(str(music / "b.wav")) == {"mood": "tense"}
    with pytest.raises(UserError):
        lib.set_labels(str(music / "b.wav"), **{"bad name": 1})
    lib.close()
