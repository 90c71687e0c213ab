"""The identification policy (identify/policy.py): evidence in, verdicts out, through ``judge`` alone.

Each test gives one query's evidence as the search gathers it and checks the verdicts; each fails when its rule
is taken out of ``judge`` (the wiring through Searcher.rerank is tested in test_align.py, "wiring")."""

from dataclasses import replace

import pytest

from soundalike.identify import policy as P

D = P.DEFAULT


def ev(*aligned, fused=None, landmarks=None, warped=(), recording=None, swept=None):
    """Evidence for tracks 0..n-1: track i aligned at ``aligned[i]`` (None: not aligned), fused score ``fused[i]``
    (default 0.5), landmark matches ``{i: match}``, ``recording`` {i: representative}, ``swept`` the sweep's best."""
    fused = fused or [0.5] * len(aligned)
    landmarks, recording = landmarks or {}, recording or {}
    return [P.Evidence(i, fused[i], a, landmarks.get(i), i not in warped, recording.get(i), i == swept)
            for i, a in enumerate(aligned)]


def ranked(verdicts, cosine=None):
    return P.order(verdicts, cosine)


def test_a_copy_ranks_above_every_candidate_that_is_not_one():
    v = P.judge(ev(D.confirm, D.confirm - 0.01, None, fused=[0.2, 0.99, 0.99]))
    assert v[0].copy and v[0].reason == "aligned" and v[0].tier == P.COPY
    assert not v[1].copy and v[2].copy is False and v[2].match is None
    assert ranked(v) == [0, 1, 2]  # 1 and 2 by score: 1's match adds to its fused score
    assert v[1].shown == 1.0 and v[2].shown == 0.99
    v = P.judge(ev(0.9, 0.7, fused=[0.1, 0.9]))
    assert ranked(v) == [0, 1]  # copies by their match, not by their score
    assert v[0].shown == pytest.approx(0.1 + P.boost(0.9)) and v[1].shown == 1.0  # the score says how alike


def test_landmark_votes_make_a_copy_only_of_a_track_that_leads():
    # another chorale on the same hymn tune (0) beside the source (1), under pink noise at 0 dB
    v = P.judge(ev(0.26, 0.52, 0.11, landmarks={0: 0.9}, fused=[0.9, 0.5, 0.4]))
    assert not v[0].copy and v[0].match == pytest.approx(0.26)  # its votes count for nothing
    assert "not backed" in " ".join(v[0].why)
    # another chorale on the same instrument, the source absent: 1.33x the next is no lead
    assert not P.judge(ev(0.44, 0.33, 0.2, landmarks={0: 0.8}))[0].copy
    assert P.judge(ev(0.44, 0.2, 0.1, landmarks={0: 0.8}))[0].reason == "landmarks"  # 2.2x: the source under noise
    assert P.judge(ev(D.floor, 0.1, landmarks={0: 0.8}))[0].copy is False  # at chance
    assert P.judge(ev(None, 0.3, 0.2, landmarks={0: 0.8}))[0].reason == "landmarks"  # not aligned: nothing against it
    # under a pitch or tempo warp the alignment cannot follow: the votes stand
    assert P.judge(ev(0.1, 0.3, 0.2, landmarks={0: 0.8}, warped={0}))[0].reason == "landmarks"


def test_without_the_unbacked_rule_the_votes_would_win(monkeypatch):
    evidence = ev(0.26, 0.52, 0.11, landmarks={0: 0.9}, fused=[0.9, 0.5, 0.4])
    assert ranked(P.judge(evidence))[0] == 1
    monkeypatch.setattr(P, "unbacked", lambda *a, **k: False)
    assert ranked(P.judge(evidence))[0] == 0  # the test above can fail


def test_a_match_that_stands_out_from_every_other_recording_is_a_copy():
    """Under heavy noise the source's match stays below ``confirm``; it is a copy when it stands out."""
    v = P.judge(ev(0.45, 0.2, 0.15, 0.1, fused=[0.1, 0.99, 0.9, 0.8]))
    assert v[0].reason == "stands out" and ranked(v)[0] == 0
    assert P.judge(ev(0.1, 0.5, 0.24))[1].reason == "stands out"
    assert not P.judge(ev(0.45, 0.25, 0.1))[0].copy  # not twice the next
    assert not P.judge(ev(0.35, 0.1, 0.1))[0].copy  # below ``sure``
    assert not P.judge(ev(0.5, 0.1))[0].copy  # too few aligned recordings to judge


def test_the_sweeps_best_is_a_copy_when_its_alignment_is_also_the_best_and_two_of_three_hold():
    assert P.judge(ev(0.1, 0.33, 0.2, 0.15, swept=1))[1].reason == "sweep agrees"  # above floor and 1.65x
    assert not P.judge(ev(0.1, 0.33, 0.25, swept=1))[1].copy  # 1.32x: chance reaches that
    assert P.judge(ev(0.1, 0.33, 0.25, swept=1), sweep_lead=True)[1].copy  # the sweep's clear leader
    assert not P.judge(ev(0.1, 0.2, 0.05, swept=1))[1].copy  # not above floor, no lead
    assert P.judge(ev(0.1, 0.21, 0.12, swept=1), sweep_lead=True)[1].copy  # ahead and the clear leader
    assert not P.judge(ev(0.1, 0.21, 0.16, swept=1), sweep_lead=True)[1].copy  # only the lead
    assert not P.judge(ev(0.35, 0.33, 0.1, swept=1), sweep_lead=True)[1].copy  # another aligns better
    assert not any(v.copy for v in P.judge(ev(0.1, 0.3, 0.1, None, swept=3)).values())  # swept, not aligned


def test_the_sweeps_best_ranks_first_among_non_copies_when_it_also_aligns_best():
    """Pink noise at 0 dB (docs/quality.md, query 028): the source is the sweep's best and the best aligned,
    at 0.16 and 1.3x the next, too weak for a copy; it must still outrank what the embedding liked."""
    v = P.judge(ev(0.12, 0.162, 0.1, None, fused=[0.99, 0.2, 0.9, 0.95], swept=1))
    assert v[1].tier == P.AGREED and v[1].reason == "agreed" and not v[1].copy
    assert ranked(v)[0] == 1
    with_copy = P.judge(ev(0.12, 0.162, 0.1, None, landmarks={3: 0.9}, fused=[0.99, 0.2, 0.9, 0.0], swept=1))
    assert ranked(with_copy)[:2] == [3, 1]  # below every copy
    assert P.judge(ev(0.12, 0.162, 0.1, swept=0))[0].tier == P.OTHER  # the sweep's best aligns worse
    assert P.judge(ev(0.1, 0.3, swept=1))[1].tier == P.OTHER  # too few aligned to judge
    assert P.judge(ev(0.0, 0.0, 0.0, swept=1))[1].tier == P.OTHER  # a tie at no match at all is no agreement


def test_copies_of_one_recording_are_one_candidate_to_the_rules():
    """A catalogue holding the source twice (0 and its copy 1): each rule compares the source with the other
    recordings, not with its own copy (issue 18: with 47 copies of each recording, the rules never fired)."""
    alone = P.judge(ev(0.45, 0.44, 0.2, 0.15))
    assert not alone[0].copy  # the copy ties with the source
    grouped = P.judge(ev(0.45, 0.44, 0.2, 0.15, recording={0: 0, 1: 0}))
    assert grouped[0].reason == grouped[1].reason == "stands out"  # both files of the recording are copies
    assert P.judge(ev(0.1, 0.33, 0.32, 0.15, recording={1: 1, 2: 1}, swept=2))[2].reason == "sweep agrees"
    assert not P.judge(ev(0.1, 0.33, 0.32, 0.15, swept=2))[2].copy
    assert P.judge(ev(0.12, 0.162, 0.16, 0.1, recording={1: 1, 2: 1}, swept=2))[1].tier == P.AGREED  # its recording
    assert {v.tier for v in P.judge(ev(0.12, 0.162, 0.16, 0.1, swept=2)).values()} == {P.OTHER}
    assert not P.judge(ev(0.44, 0.43, 0.2, landmarks={0: 0.9}))[0].copy
    assert P.judge(ev(0.44, 0.43, 0.2, landmarks={0: 0.9}, recording={0: 0, 1: 0}))[0].copy


def test_the_copy_confidence_grows_with_the_evidence():
    strong = P.judge(ev(0.9, 0.1, 0.1))[0].confidence
    weak = P.judge(ev(0.45, 0.2, 0.15, 0.1))[0].confidence
    near = P.judge(ev(0.3, 0.28, 0.1))[0].confidence
    assert 1.0 >= strong > weak > near >= 0.0
    assert P.judge(ev(None, 0.3))[0].confidence is None  # nothing measured: no confidence
    assert P.copy_confidence(0.5, 2.0, True) > P.copy_confidence(0.5, 2.0, False)


def test_the_policy_holds_every_threshold():
    evidence = ev(0.55, 0.5, 0.1)
    assert not P.judge(evidence)[0].copy
    assert P.judge(evidence, policy=replace(D, confirm=0.5))[0].reason == "aligned"
    assert P.judge(ev(0.45, 0.25, 0.1), policy=replace(D, standout=1.5))[0].reason == "stands out"
    assert P.judge(ev(0.3, 0.1, 0.1, swept=0), policy=replace(D, min_aligned=4))[0].tier == P.OTHER


def test_settled_is_a_copy_by_its_match_alone():
    assert P.settled(ev(0.7, 0.1))
    assert P.settled(ev(0.4, 0.1, 0.1, landmarks={0: 0.9}))  # backed landmark votes
    assert not P.settled(ev(0.45, 0.2, 0.15, 0.1))  # stands out, but the sweep may find better
    assert not P.settled(ev(0.26, 0.52, 0.11, landmarks={0: 0.9}))  # unbacked votes
