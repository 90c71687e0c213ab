"""The duplicate report on real encodes (soundalike.synth.encode): groups, relations, the keeper; the CLI and the API.

FakeModel embeds (fast); the landmarks are the real ones, so the speed change is found by the warped
landmarks exactly as on a musicnn library. ``min_score=0.5``: FakeModel's window scores are not musicnn's
(the thresholds are calibrated on musicnn, bench/duplicates.py); the landmark agreement still decides.
"""

import csv
import io
import json

import numpy as np
import pytest

import soundalike
from soundalike.duplicates import warped, warped_agreement
from soundalike.evaluate.sets import _speed
from soundalike.organise.duplicates_report import CopyInfo, choose_keeper, relation_of
from soundalike.synth import encode, render_track
from tests.conftest import cli
from tests.fakes import FakeModel

SR = 44100


@pytest.fixture(autouse=True)
def fake_model():
    from soundalike.models import register_model

    register_model("fake", FakeModel)  # the CLI opens the library by the model name it recorded


def _gain(x, db):
    return (x * np.float32(10 ** (db / 20))).astype(np.float32)


def _fade(x, seconds=3.0):
    n = int(seconds * SR)
    env = np.ones(len(x), np.float32)
    env[:n] = np.linspace(0, 1, n)
    env[-n:] = np.linspace(1, 0, n)
    return x * env


@pytest.fixture(scope="module")
def report_lib(tmp_path_factory):
    base = tmp_path_factory.mktemp("dupreport")
    music = base / "music"
    music.mkdir()
    x = {i: render_track(60 + i, seconds=30, sample_rate=SR) * np.float32(0.5) for i in range(5)}
    for i, y in x.items():
        encode(y, SR, music / f"t{i}.flac")
    encode(x[0], SR, music / "t0-64k.mp3", bitrate=64000)  # re-encode
    encode(x[1][int(4.0 * SR): -int(3.0 * SR)], SR, music / "t1-trim.flac")  # trim: starts 4 s in
    encode(_gain(x[2], -6.0), SR, music / "t2-quieter.flac")  # level change
    encode(_speed(x[3][None, :], SR, 1.03)[0], SR, music / "t3-faster.flac")  # +3 % speed (pitch and tempo)
    encode(_fade(x[4]), SR, music / "t4-fade.m4a", bitrate=96000)  # fades, re-encoded
    lib = soundalike.open(base / "lib", model=FakeModel(), hop=2.0)
    list(lib.index([music]))
    yield base, lib
    lib.close()


def _groups(lib):
    from soundalike.organise.duplicates_report import duplicate_report

    names = {t.id: t.path.rsplit("/", 1)[-1] for t in lib.tracks()}
    return names, {frozenset(names[c.track_id] for c in g.copies): g for g in duplicate_report(lib, min_score=0.5)}


def test_each_copy_is_grouped_with_its_original_and_nothing_else(report_lib):
    _, lib = report_lib
    names, groups = _groups(lib)
    copies = ["t0-64k.mp3", "t1-trim.flac", "t2-quieter.flac", "t3-faster.flac", "t4-fade.m4a"]
    assert set(groups) == {frozenset({f"t{i}.flac", other}) for i, other in enumerate(copies)}


def test_relations_are_measured(report_lib):
    _, lib = report_lib
    names, groups = _groups(lib)

    def rel(ref, copy):
        (p,) = groups[frozenset((ref, copy))].pairs
        assert (names[p.a], names[p.b]) == (ref, copy)  # the longer, or the better copy, is the reference
        return p.relation

    (p,) = groups[frozenset(("t2.flac", "t2-quieter.flac"))].pairs  # two FLACs as long: the first indexed is a
    sign = 1 if names[p.b] == "t2-quieter.flac" else -1
    assert p.relation.kinds == ("level",) and p.relation.level_db == pytest.approx(-6.0 * sign, abs=0.5)

    r = rel("t0.flac", "t0-64k.mp3")
    assert r.kinds == ("re-encode",) and "mp3" in r.encoding
    r = rel("t1.flac", "t1-trim.flac")
    assert "trim" in r.kinds and "re-encode" not in r.kinds
    assert r.offset == pytest.approx(4.0, abs=1.0) and r.trim_end == pytest.approx(3.0, abs=1.0)
    r = rel("t3.flac", "t3-faster.flac")
    assert "speed" in r.kinds and r.tempo_pct == pytest.approx(3.0, abs=0.6)
    assert r.semitones == pytest.approx(12 * np.log2(1.03), abs=0.1)
    r = rel("t4.flac", "t4-fade.m4a")
    assert "fade" in r.kinds and set(r.fades) == {"b fades in", "b fades out"} and "re-encode" in r.kinds


def test_the_keeper_is_lossless_then_higher_bitrate_then_longer(report_lib):
    _, lib = report_lib
    names, groups = _groups(lib)
    g = groups[frozenset({"t0.flac", "t0-64k.mp3"})]
    assert names[g.keep] == "t0.flac" and g.reason.startswith("lossless (flac) over lossy (mp3)")
    g = groups[frozenset({"t1.flac", "t1-trim.flac"})]
    assert names[g.keep] == "t1.flac" and g.reason.startswith("longer")

    def c(tid, codec, rate, dur):
        return CopyInfo(tid, f"/x/{tid}", None, dur, codec, codec == "flac", rate, 2, 44100, None)

    best, why = choose_keeper([c(1, "mp3", 128.0, 200.0), c(2, "mp3", 320.0, 190.0), c(3, "aac", 96.0, 210.0)])
    assert best.track_id == 2 and why == "higher bitrate (320 over 128 kbit/s)"


def test_relation_of_without_levels_and_unchanged_copy():
    a = CopyInfo(1, "/a.flac", None, 100.0, "flac", True, 900.0, 2, 44100, None)
    b = CopyInfo(2, "/b.flac", None, 100.0, "flac", True, 880.0, 2, 44100, None)
    r = relation_of(a, b, offset=0.0)
    assert r.kinds == () and r.text == "same audio in another file"


def test_warped_landmarks_find_a_speed_change_that_plain_agreement_misses():
    from soundalike.identify import landmarks
    from soundalike.identify.align import SR as ID_SR

    x = render_track(7, seconds=20, sample_rate=ID_SR).astype(np.float32)
    fast = _speed(x[None, :], ID_SR, 1.03)[0]
    a, b = landmarks.extract(fast, ID_SR), landmarks.extract(x, ID_SR)
    assert landmarks.agreement(a, b) < 0.01  # the hashes moved (different music: <= 0.0105, bench/duplicates.py)
    agree, speed, at = warped_agreement(a, b, speeds=(0.97, 0.98, 1.02, 1.03))
    assert agree > 0.05 and speed == pytest.approx(1 / 1.03, abs=0.011) and at == pytest.approx(0.0, abs=0.05)
    assert len(warped(a, 1.0)) == len(a)


def test_cli_table_json_and_csv(report_lib, capsys):
    base, _ = report_lib
    code, out, err = cli(capsys, "duplicates", "-L", base / "lib", "--min-score", 0.5, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["count"] == 5 and data["copies"] == 5
    g = next(g for g in data["groups"] if any(c["path"].endswith("t3-faster.flac") for c in g["copies"]))
    assert g["pairs"][0]["relation"]["kinds"] == ["speed"] and g["reason"], g["pairs"][0]["relation"]
    code, out, err = cli(capsys, "duplicates", "-L", base / "lib", "--min-score", 0.5, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 10 and sum(r["keep"] == "1" for r in rows) == 5
    trim = next(r for r in rows if r["path"].endswith("t1-trim.flac"))
    assert "trim" in trim["relation"] and float(trim["offset"]) == pytest.approx(4.0, abs=1.0)
    code, out, err = cli(capsys, "duplicates", "-L", base / "lib", "--min-score", 0.5)
    assert code == 0 and "5 groups, 5 copies that could go" in out and "keep" in out
    code, out, err = cli(capsys, "duplicates", "-L", base / "lib", "--json", "--csv")
    assert code == 2 and "choose one" in err
    code, out, err = cli(capsys, "duplicates", "-L", base / "lib", "--min-score", 1.5)
    assert code == 2 and "threshold" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli(capsys, "duplicates", "--help")
    assert code == 0 and "soundalike duplicates --csv" in out


def test_api_duplicates(report_lib):
    from fastapi.testclient import TestClient

    from soundalike.serve import create_app

    base, _ = report_lib
    with TestClient(create_app(base / "lib", model=FakeModel())) as client:
        r = client.get("/api/duplicates", params={"min_score": 0.5})
        assert r.status_code == 200
        data = r.json()
        assert data["count"] == 5 and all(g["keep"] == g["copies"][0]["track_id"] for g in data["groups"])
        assert client.get("/api/duplicates", params={"min_score": 2}).status_code == 422


def test_a_few_shared_bars_are_not_a_copy_but_a_sparse_low_bitrate_copy_is():
    """Two tracks of one synthesiser can share bars note for note: their landmarks agree at one offset, but only
    there (``coverage``); a copy agrees all along, however few of its landmarks survive."""
    from soundalike.identify import landmarks
    from soundalike.duplicates import COVERAGE_SPAN, MIN_COVERAGE, agreement_at, coverage, pair_votes
    from soundalike.identify.align import SR as ID_SR

    x = render_track(11, seconds=30, sample_rate=ID_SR).astype(np.float32)
    y = render_track(12, seconds=30, sample_rate=ID_SR).astype(np.float32)
    y[10 * ID_SR: 16 * ID_SR] = x[10 * ID_SR: 16 * ID_SR]  # 6 s in common, at the same place
    a, b = landmarks.extract(x, ID_SR), landmarks.extract(y, ID_SR)
    agree, at = agreement_at(a, b, offset=0.0, tolerance=3.0)
    assert agree >= 0.015 and at == pytest.approx(0.0, abs=0.05)  # enough to pass the agreement rule alone
    votes, _, frames = pair_votes(a, b)
    assert coverage(frames, a.frames, span=COVERAGE_SPAN) < 0.4
    assert agreement_at(a, b, offset=0.0, tolerance=3.0, min_coverage=MIN_COVERAGE) == (0.0, 0.0)
    rng = np.random.default_rng(0)
    noisy = x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(0.1 * np.std(x))  # 20 dB SNR: 4 % survive
    c = landmarks.extract(noisy, ID_SR)
    agree, _ = agreement_at(c, a, offset=0.0, tolerance=3.0, min_coverage=MIN_COVERAGE)
    assert agree > 0.015 and coverage(pair_votes(c, a)[2], c.frames, span=COVERAGE_SPAN) >= 0.9


def test_landmark_lookups_find_copies_the_track_vectors_do_not(report_lib):
    """A copy whose embedding moved far from its original's (Opus 24k) is not among its nearest track vectors;
    the landmark postings still name it. Here no vector neighbour passes (min_cosine above 1)."""
    from soundalike.duplicates import find_duplicates

    _, lib = report_lib
    names = {t.id: t.path.rsplit("/", 1)[-1] for t in lib.tracks()}
    kw = dict(threshold=0.5, hop=lib.hop, min_cosine=1.01)
    assert find_duplicates(lib.catalog, lib.store, **kw) == []
    lib.postings.sync(lib.catalog)
    pairs = find_duplicates(lib.catalog, lib.store, postings=lib.postings, **kw)
    found = {frozenset((names[p.a], names[p.b])) for p in pairs}
    assert frozenset(("t0.flac", "t0-64k.mp3")) in found and frozenset(("t1.flac", "t1-trim.flac")) in found
    assert all(names[p.a][:2] == names[p.b][:2] for p in pairs)  # copies only
