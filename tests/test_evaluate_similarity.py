"""The similarity benchmark (soundalike.evaluate.simsets / simrun / spaces).

The pure parts (halves split by piece, the scores, the MFCC peer's spread) run on
hand-made data. ``test_similarity_benchmark_ci`` builds the benchmark's CI size
(the sfx and groove sets: Debian packages by apt-get download, MMA and fluidsynth
renders) and runs ``soundalike evaluate --similarity --json`` on it with the real
model, the MFCC baseline and text search side by side.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli, data_lock, missing_tool

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SOUNDALIKE_QUALITY_DATA") or ROOT / "tests" / ".data")


def _item(label_set, label, group, i):
    from soundalike.evaluate.simsets import SimItem

    return SimItem(f"{label_set}-{i:04d}.flac", label_set, label, group, "", "test", "test")


def test_halves_never_share_a_group_and_split_every_class():
    from soundalike.evaluate.simsets import _halves

    items = []
    for c in ("a", "b", "c"):
        for g in range(6):
            for copy in range(3):  # three items of one piece: all must land in one half
                items.append(_item("s", c, f"{c}-piece{g}", len(items)))
    _halves(items)
    half_of: dict[str, set[str]] = {}
    for it in items:
        half_of.setdefault(it.group, set()).add(it.half)
    assert all(len(h) == 1 for h in half_of.values())
    for c in ("a", "b", "c"):
        halves = [it.half for it in items if it.label == c]
        assert halves.count("calibration") == halves.count("report") == 9


def test_a_recording_family_in_several_classes_stays_in_one_half():
    from soundalike.evaluate.simsets import _halves

    # one drum kit gives a kick, a snare and a cymbal: the kit is one group across three classes
    # (not every kit has every drum, so each class holds a different subset of the kits)
    items = [_item("sfx", c, f"kit{k}", 3 * k + i) for k in range(8) for i, c in enumerate(("kick", "snare", "cymbal"))
             if not (c == "snare" and k % 3 == 0) and not (c == "cymbal" and k % 4 == 1)]
    _halves(items)
    for k in range(8):
        assert len({it.half for it in items if it.group == f"kit{k}"}) == 1
    assert {it.half for it in items} == {"calibration", "report"}


def test_scores_reward_the_right_neighbours_and_punish_the_wrong():
    from soundalike.evaluate.simrun import _scores, _text_p5

    labels = {f"x{i}": "x" for i in range(4)} | {f"y{i}": "y" for i in range(4)}
    same_first = {q: sorted((p for p in labels if p != q), key=lambda p: labels[p] != labels[q]) for q in labels}
    other_first = {q: sorted((p for p in labels if p != q), key=lambda p: labels[p] == labels[q]) for q in labels}
    good, bad = _scores(same_first, labels), _scores(other_first, labels)
    assert good["p10"] == 1.0 and good["knn5"] == 1.0 and good["p10_by_class"] == {"x": 1.0, "y": 1.0}
    assert bad["p10"] == 0.0 and bad["knn5"] == 0.0
    # text: k shrinks to the class size; items outside the set and half are ignored
    assert _text_p5(["elsewhere", "x0", "y0", "x1", "x2", "x3"], labels, "x") == (0.75, 4)  # k = 4: x0 y0 x1 x2
    assert _text_p5(["y0", "y1", "y2", "y3"], labels, "x") == (0.0, 4)


def test_mfcc_baseline_with_spread_ranks_within_the_given_items(tmp_path):
    pytest.importorskip("librosa")
    from soundalike.evaluate.peers import MfccBaseline
    from soundalike.synth import encode, render_track

    paths = []
    for seed in range(4):
        p = tmp_path / f"t{seed}.flac"
        encode(render_track(seed, seconds=4.0), 22050, p, channels=1)
        paths.append(str(p))
    mf = MfccBaseline(spread=True)
    mf.add(paths)
    assert all(v.shape == (40,) for v in mf.refs.values())
    ranked, _ = mf.rank(paths[0], top=10, exclude=paths[0], among=paths[:3])
    assert sorted(ranked) == sorted(paths[1:3])
    assert MfccBaseline().raw(paths[0]).shape == (20,)  # the identification peer keeps its 20 means


def test_whitening_and_centering_are_library_statistics():
    from soundalike.evaluate.spaces import center, whiten

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)) * np.arange(1, 9) + 5.0  # a shared offset and uneven spreads
    c, w = center(x), whiten(x, shrink=0.0)
    assert np.allclose(np.linalg.norm(c, axis=1), 1) and np.allclose(np.linalg.norm(w, axis=1), 1)
    assert abs(float((x / np.linalg.norm(x, axis=1, keepdims=True)).mean(0) @ np.ones(8))) > 1  # raw: all alike
    assert np.allclose(c.mean(0), 0, atol=0.1)


def test_unknown_set_and_missing_folder_are_clear(tmp_path, capsys):
    from soundalike.errors import UserError
    from soundalike.evaluate.simsets import build

    with pytest.raises(UserError, match="unknown label set nope"):
        build(tmp_path / "b", sets=["nope"])
    with pytest.raises(UserError, match="size: 'huge'"):
        build(tmp_path / "b", size="huge")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text('{"size": "full", "seed": 0}')
    with pytest.raises(UserError, match="built with size full and seed 0, not ci and 0"):
        build(tmp_path / "c", sets=["sfx"], size="ci")
    code, _, err = cli(capsys, "evaluate", "--similarity", str(tmp_path / "none"))
    assert code != 0 and "no such benchmark folder" in err


@pytest.mark.slow
def test_similarity_benchmark_ci(tmp_path, capsys):
    """The CI version of the benchmark: built from Debian packages, evaluated end to end."""
    from soundalike.errors import UserError
    from soundalike.evaluate.simsets import build, read_items
    from soundalike.synth import fluidsynth_missing

    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        missing_tool("the similarity benchmark fetches Debian packages: no apt-get here")
    if reason := fluidsynth_missing():
        missing_tool(reason)
    pytest.importorskip("librosa")
    folder = DATA / "similarity-ci"
    try:
        with data_lock():
            build(folder, sets=["sfx", "groove"], size="ci", debs=DATA / "debs")
    except UserError as exc:
        if "apt-get download" in str(exc):
            missing_tool(str(exc))
        raise
    items = read_items(folder)
    groups: dict[str, set[str]] = {}
    for it in items:
        groups.setdefault(it.group, set()).add(it.half)
    assert all(len(h) == 1 for h in groups.values()), "a piece or recording in both halves"
    assert {it.label_set for it in items} == {"sfx", "groove"}
    code, out, err = cli(capsys, "evaluate", "--similarity", str(folder), "--sets", "sfx,groove",
                         "--work", str(tmp_path / "work"), "--json")
    assert code == 0, err
    report = json.loads(out)
    for name in ("sfx", "groove"):
        for half in ("calibration", "report"):
            row = report["sets"][name][half]
            assert row["tracks"] >= row["classes"] >= 6
            for system in ("soundalike", "mfcc"):
                assert 0.0 <= row[system]["p10"] <= 1.0 and 0.0 <= row[system]["knn5"] <= 1.0
            assert 0.0 <= row["text"]["mean_p5"] <= 1.0 and len(row["text"]["queries"]) == row["classes"]
    # the effects are told apart well above chance (13 classes), by both systems
    assert report["sets"]["sfx"]["calibration"]["soundalike"]["p10"] > 0.15  # chance: about 0.08
    assert report["load_before"] and report["timings_s"]["index"] >= 0
    # the calibration half named: text is scored on the report half only, seeding off and on; off, the names
    # cannot reach the results (they are outside the half's filter), so it is the unnamed run's figure
    code, out, err = cli(capsys, "evaluate", "--similarity", str(folder), "--sets", "sfx", "--work",
                         str(tmp_path / "work"), "--named-half", "calibration", "--peers", "none", "--json")
    assert code == 0, err
    named = json.loads(out)
    sfx = named["sets"]["sfx"]
    assert named["named_half"] == "calibration" and "text" not in sfx["calibration"]
    assert sfx["report"]["text"] == report["sets"]["sfx"]["report"]["text"]
    seeded = sfx["report"]["text_seeded"]
    assert seeded["queries"].keys() == sfx["report"]["text"]["queries"].keys()
    assert 0.0 <= seeded["mean_p5"] <= 1.0


def test_a_package_cache_not_made_yet_is_made(tmp_path, monkeypatch):
    """On a clean clone the shared package cache does not exist: the benchmark folder's link to it must lead
    to a folder (CI failed with FileExistsError on the dangling link). The set's builder is replaced by one
    that fetches nothing (named as such: the link is what is tested)."""
    from soundalike.evaluate import simsets

    monkeypatch.setitem(simsets.BUILDERS, "sfx", lambda folder, cfg, rng, progress: [])
    simsets.build(tmp_path / "bench", sets=["sfx"], size="ci", debs=tmp_path / "cache" / "debs")
    assert (tmp_path / "bench" / "debs").is_dir() and (tmp_path / "cache" / "debs").is_dir()
