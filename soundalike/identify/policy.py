"""The identification policy: each candidate's evidence in, one rank key out.

A search that carries the query's audio gathers evidence about its leading
candidates (search.py, ``Searcher.rerank``): the embedding's fused score, the
fingerprint alignment of their audio with the query's (identify/align.py), the
landmark votes (identify/landmarks.py) and the scan prints' sweep (identify/prints.py). ``judge``
turns that evidence into a ``Verdict`` per candidate, with one ``Policy``
holding every threshold, and nothing else: no catalogue, no audio, no state,
so that each rule can be tested, and replayed over recorded evidence to
calibrate it (bench/calibrate.py, docs/quality.md).

The verdict's rank key is (tier, score): a **copy** of the query (tier 2) ranks
above the track the two views agree on (tier 1, ``agreed``), which ranks above
everything else (tier 0); within a tier, copies by their match and the others
by their score. The **score** shown is how alike the track sounds, the fused
score plus what its audio match adds (``boost``), never more than 1; how sure
the copy judgement is, is a separate **confidence** (``copy_confidence``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COPY, AGREED, OTHER = 2, 1, 0


@dataclass(frozen=True)
class Policy:
    """Every threshold of the identification judgement. The defaults were set on the project's corpora
    (docs/quality.md: "Copies that lead", "Two views that agree"); bench/calibrate.py replays them on the
    calibration half and reports them on the other half."""

    #: alignment matches at or below this count for nothing (99 % of other tracks' stretches stay below it)
    floor: float = 0.25
    #: how much a match above ``floor`` adds to the fused score
    weight: float = 1.0
    #: a match this high is a copy (other tracks stay below 0.45 on the small corpus); the alignment stops
    #: aligning further candidates once a leading one reaches it (align.match_candidates)
    confirm: float = 0.6
    #: a match at least ``sure`` that is at least ``standout`` times every other aligned recording's is a copy
    #: too: at 0 dB SNR the true source aligns at 0.35-0.55 while the other candidates stay near 0.1-0.2
    sure: float = 0.4
    standout: float = 2.0
    #: aligned recordings needed to judge that one stands out
    min_aligned: int = 3
    #: the sweep's best recording is a copy when its alignment is the query's best and two of three hold: it is
    #: above ``floor``, it is ``ahead`` times the next, the sweep's lead is clear (``sweep_lead``). Landmark
    #: votes for the query as it is (no warp) count only where the alignment leads by ``ahead`` (``unbacked``)
    ahead: float = 1.5
    #: the sweep's best track leads when it correlates at least this many times as well as the second: with the
    #: source left out of the full corpus the best led by at most 1.56; the sources the other rules missed at
    #: 0 dB led by 1.6-2.7
    sweep_lead: float = 1.6
    #: copy confidence: a logistic function of the evidence (``copy_confidence``): intercept, then the weights of
    #: the match, of the log of its lead over the best other aligned recording, and of the sweep's best. Fitted
    #: on the calibration half of the small corpus by bench/calibrate.py (454 aligned candidates, split by piece);
    #: on the report half (947) its Brier score is 0.020, and the 133 candidates it gave 0.9 or more were all
    #: sources (docs/quality.md)
    confidence_weights: tuple[float, float, float, float] = (-1.142, 0.88, 6.872, 2.118)


DEFAULT = Policy()


@dataclass
class Evidence:
    """What the search found out about one candidate track."""

    track_id: int
    fused: float  # the embedding's fused score (fusion.py)
    #: the fingerprint alignment's match (align.align: 0 chance, 1 identical); None: not aligned
    alignment: float | None = None
    #: the landmark votes' match (landmarks.rank); None: landmarks did not find it
    landmarks: float | None = None
    #: landmarks found it with the query as it is, not under a pitch or tempo warp
    unwarped: bool = True
    #: the representative of its recording: copies of one recording share it (align.recordings), so that the
    #: rules compare a candidate with the *other* recordings, not with its own copies
    recording: int | None = None
    #: the scan prints' best track (identify/prints.py)
    swept: bool = False


@dataclass(frozen=True)
class Verdict:
    tier: int  # COPY, AGREED or OTHER
    score: float  # within the tier: a copy's match, otherwise fused + boost(match)
    shown: float  # the score shown: how alike it sounds, its audio match included (fused + boost), at most 1
    match: float | None  # the surer of the alignment and the landmark votes; None: neither ran
    copy: bool
    confidence: float | None  # copy_confidence; None where the audio was not aligned
    reason: str  # which rule placed it: "aligned", "stands out", "sweep agrees", "landmarks", "agreed", ""
    why: tuple[str, ...] = field(default=())  # the evidence in words, for explanations


def boost(match: float | None, policy: Policy = DEFAULT) -> float:
    """What a candidate's match adds to its fused score."""
    return 0.0 if match is None else policy.weight * max(0.0, match - policy.floor)


def recordings(evidence: list[Evidence]) -> tuple[dict[int, float], dict[int, int]]:
    """The aligned candidates, one per recording (the best-aligned of each; ties: the lower id), and each
    candidate's representative: the aligned one of its recording, or itself."""
    best: dict[int, tuple[float, int]] = {}
    for e in evidence:
        if e.alignment is None:
            continue
        label = e.track_id if e.recording is None else e.recording
        if label not in best or (e.alignment, -e.track_id) > (best[label][0], -best[label][1]):
            best[label] = (e.alignment, e.track_id)
    rep = {e.track_id: best.get(e.track_id if e.recording is None else e.recording, (0.0, e.track_id))[1]
           for e in evidence}
    return {tid: match for match, tid in best.values()}, rep


def unbacked(track_id: int, distinct: dict[int, float], policy: Policy = DEFAULT) -> bool:
    """Whether landmark votes for ``track_id`` as the query is fail to make it a copy, because its audio,
    aligned with the query's (``distinct``: one alignment per recording), does not lead: it is at or below
    ``floor``, or below ``confirm`` and less than ``ahead`` times every other recording's. With the source left
    out of the full corpus such votes went to another Bach chorale on the same instrument (landmarks follow the
    notes); every source found by landmark votes alone led by 1.65x or more (docs/quality.md)."""
    match = distinct.get(track_id)
    if match is None or match >= policy.confirm:
        return False
    best_other = max((m for tid, m in distinct.items() if tid != track_id), default=0.0)
    return match <= policy.floor or match < policy.ahead * best_other


def standout(distinct: dict[int, float], policy: Policy = DEFAULT) -> int | None:
    """The recording whose alignment stands out from all the others (``sure``, ``standout``), or None: a copy
    under noise that keeps its match below ``confirm``."""
    if len(distinct) < policy.min_aligned:
        return None
    (tid, best), (_, second) = sorted(distinct.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    return tid if best >= policy.sure and best >= policy.standout * second else None


def swept_copy(distinct: dict[int, float], swept: int | None, *, lead: bool, policy: Policy = DEFAULT) -> int | None:
    """``swept`` (the sweep's best recording) when its alignment is also the query's best (two views of one copy)
    and two of these hold: the alignment is above ``floor``, it is ``ahead`` times the next, the sweep's lead is
    clear (``lead``); else None."""
    if swept not in distinct or len(distinct) < policy.min_aligned:
        return None
    best, second = sorted(distinct.values(), reverse=True)[:2]
    if distinct[swept] < best:
        return None
    above, ahead = best > policy.floor, best >= policy.ahead * second
    return swept if above + ahead + lead >= 2 else None


def agreed(distinct: dict[int, float], swept: int | None, policy: Policy = DEFAULT) -> bool:
    """Whether the sweep's best recording is also the best of at least ``min_aligned`` aligned ones: two views
    pick the same track. Too weak for a copy, strong enough to rank it first among the rest: at 0 dB pink noise a
    source that aligns below ``floor`` otherwise ranks by an embedding that hears mostly the noise."""
    if swept not in distinct or len(distinct) < policy.min_aligned:
        return False
    return distinct[swept] > 0.0 and distinct[swept] >= max(distinct.values())  # a match of 0 is no evidence


def settled(evidence: list[Evidence], policy: Policy = DEFAULT) -> bool:
    """Whether a candidate is already a copy by its match alone (``confirm``), landmark votes counting only where
    they are backed: the search then skips the scan prints' sweep."""
    return any(v.copy and v.reason in ("aligned", "landmarks") for v in judge(evidence, policy=policy).values())


def copy_confidence(match: float, lead: float, swept: bool, policy: Policy = DEFAULT) -> float:
    """How likely the query is a copy of this recording, 0..1: a logistic function of its match, of how many
    times it leads the best other aligned recording (``lead``; capped at 10), and of whether the scan prints'
    sweep found it first (``Policy.confidence_weights``, fitted on the calibration half by bench/calibrate.py)."""
    b0, b_match, b_lead, b_swept = policy.confidence_weights
    z = b0 + b_match * match + b_lead * math.log(min(max(lead, 1e-3), 10.0)) + b_swept * float(swept)
    return 1.0 / (1.0 + math.exp(-z))


def judge(evidence: list[Evidence], *, sweep_lead: bool = False, policy: Policy = DEFAULT) -> dict[int, Verdict]:
    """Each candidate's verdict (tier, score, copy, confidence) from the evidence of one query.

    ``sweep_lead``: the sweep's best track leads the second by ``policy.sweep_lead`` (identify/prints.py: leader)."""
    distinct, rep = recordings(evidence)
    swept = next((rep[e.track_id] for e in evidence if e.swept), None)
    sure = standout(distinct, policy)
    below = sure if sure is not None else swept_copy(distinct, swept, lead=sweep_lead, policy=policy)
    first = swept if below is None and agreed(distinct, swept, policy) else None
    out = {}
    for e in evidence:
        r = rep[e.track_id]
        marks = e.landmarks
        if marks is not None and e.unwarped and unbacked(r, distinct, policy):
            marks = 0.0  # votes for the query as it is, for a recording whose audio does not lead: no copy
        match = None if e.alignment is None and marks is None else max(e.alignment or 0.0, marks or 0.0)
        reason, tier = "", OTHER
        if e.alignment is not None and e.alignment >= policy.confirm:
            reason, tier = "aligned", COPY
        elif marks is not None and marks >= policy.confirm:
            reason, tier = "landmarks", COPY
        elif below is not None and r == below:
            reason, tier = ("stands out" if below == sure else "sweep agrees"), COPY
        elif e.track_id == first:
            reason, tier = "agreed", AGREED
        confidence = None
        if match is not None:
            mine = max(distinct.get(r, 0.0), match)
            other = max((m for t, m in distinct.items() if t != r), default=0.0)
            confidence = copy_confidence(mine, mine / max(other, 0.05), r == swept, policy)
        why = tuple(w for w in (
            f"audio aligned {e.alignment:.2f}" if e.alignment is not None else "",
            (f"landmarks {e.landmarks:.2f}" + (" (not backed by the alignment)" if marks != e.landmarks else ""))
            if e.landmarks is not None else "",
            "the scan prints' best" if e.swept else "") if w)
        fused = e.fused + boost(match, policy)
        out[e.track_id] = Verdict(tier, match if tier == COPY else fused, min(1.0, fused), match,
                                  tier == COPY, confidence, reason, why)
    return out


def order(verdicts: dict[int, Verdict], tie: dict[int, float] | None = None) -> list[int]:
    """Track ids by rank key, best first; ties by ``tie`` (the track cosine), then by id."""
    tie = tie or {}
    return sorted(verdicts, key=lambda t: (-verdicts[t].tier, -verdicts[t].score, -tie.get(t, 0.0), t))
