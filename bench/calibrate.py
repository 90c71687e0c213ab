#!/usr/bin/env python3
"""Calibrate the identification policy (soundalike/identify/policy.py) on one half of the small corpus, report it
on the other half.

Every query of bench/.data/corpus-small is searched once through the library bench/quality.py built
(bench/.data/work-small/lib-catalogue), and the evidence the search handed to ``policy.judge`` is recorded
(bench/.data/evidence-small.json). The rest is a replay of ``judge`` over that evidence, which is a pure function:

* halves: queries are split by their source's *piece* (a hash of its name without a GM render's program), so
  no recording and no piece is in both;
* thresholds: every policy of a grid over the judgement's thresholds (``sure``, ``standout``, ``ahead``,
  ``sweep_lead``, ``min_aligned``) is replayed on the calibration half; the best (top-1, then fewest copies
  judged on a wrong track, then nearest the defaults) is reported on the report half beside the defaults.
  ``floor`` and ``confirm`` also decide which evidence the search gathers (which tracks are aligned, whether the
  sweep runs), so a replay cannot judge them: they stay;
* confidence: the logistic ``copy_confidence`` is fitted on the calibration half's aligned candidates (is it the
  source?) and its Brier score and reliability are reported on the report half.

    .venv/bin/python bench/quality.py --size small --parts identification --peers none   # builds the library
    .venv/bin/python bench/calibrate.py            # records the evidence (about 5 min), then fits and reports
    .venv/bin/python bench/calibrate.py --replay   # fits and reports from the recorded evidence
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soundalike.identify import policy as P  # noqa: E402

DATA = ROOT / "bench" / ".data"
GRID = {
    "sure": (0.35, 0.4, 0.45),
    "standout": (1.6, 1.8, 2.0, 2.4),
    "ahead": (1.3, 1.5, 1.7),
    "sweep_lead": (1.4, 1.6, 1.8),
    "min_aligned": (2, 3, 4),
}


def half(track: str) -> str:
    """The half of a query by its source's *piece*: a GM render's name without its program (``-p024``), so that
    the same chorale on another instrument (the hardest distractor) is never on the other side."""
    piece = re.sub(r"-p\d+$", "", Path(track).stem)
    return "calibration" if hashlib.sha1(piece.encode()).digest()[0] % 2 == 0 else "report"


def record(corpus: Path, work: Path, out: Path) -> None:
    """Search every query once; keep the last evidence each search handed to ``judge``."""
    import soundalike
    from soundalike.evaluate.sets import QueryCase, read_csv

    lib = soundalike.Library(work / "lib-catalogue")
    by_path = {os.path.realpath(t.path): t.id for t in lib.catalog.tracks()}
    queries = read_csv(corpus / "queries.csv", QueryCase)
    seen: list = []
    judge = P.judge

    def recording_judge(evidence, *, sweep_lead=False, policy=P.DEFAULT):
        seen.append(([asdict(e) for e in evidence], sweep_lead))
        return judge(evidence, sweep_lead=sweep_lead, policy=policy)

    P.judge = recording_judge  # search.py calls it through the module
    rows, t0 = [], time.time()
    try:
        for i, q in enumerate(queries):
            seen.clear()
            hits = lib.search(corpus / q.query, top=10).hits
            target = by_path.get(os.path.realpath(corpus / q.track))
            evidence, lead = seen[-1] if seen else ([], False)
            rows.append({"query": q.query, "degradation": q.degradation, "track": q.track, "target": target,
                         "half": half(q.track), "live_top1": hits[0].track_id if hits else None,
                         "evidence": evidence, "sweep_lead": lead})
            if (i + 1) % 20 == 0:
                print(f"  {i + 1}/{len(queries)} queries, {time.time() - t0:.0f} s", file=sys.stderr)
    finally:
        P.judge = judge
    out.write_text(json.dumps({"recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}))


def evidence_of(row) -> list[P.Evidence]:
    return [P.Evidence(**e) for e in row["evidence"]]


def replay(rows, policy: P.Policy) -> dict:
    """Top-1 and copies judged on a wrong track, under ``policy``."""
    top1 = wrong_copies = 0
    for row in rows:
        verdicts = P.judge(evidence_of(row), sweep_lead=row["sweep_lead"], policy=policy)
        order = P.order(verdicts)
        top1 += bool(order) and order[0] == row["target"]
        wrong_copies += any(v.copy for t, v in verdicts.items() if t != row["target"])
    n = max(1, len(rows))
    return {"queries": len(rows), "top1": round(top1 / n, 4), "top1_n": top1,
            "queries_with_a_wrong_copy": wrong_copies}


def features(rows, policy: P.Policy) -> tuple[np.ndarray, np.ndarray]:
    """One row per aligned candidate: (1, match, log lead over the best other recording, swept), and whether it is
    the query's source."""
    x, y = [], []
    for row in rows:
        evidence = evidence_of(row)
        distinct, rep = P.recordings(evidence)
        swept = next((rep[e.track_id] for e in evidence if e.swept), None)
        for e in evidence:
            if e.alignment is None:
                continue
            r = rep[e.track_id]
            mine = distinct.get(r, e.alignment)
            other = max((m for t, m in distinct.items() if t != r), default=0.0)
            lead = min(max(mine / max(other, 0.05), 1e-3), 10.0)
            x.append((1.0, mine, math.log(lead), float(r == swept)))
            y.append(float(e.track_id == row["target"]))
    return np.array(x), np.array(y)


def fit_logistic(x: np.ndarray, y: np.ndarray, *, ridge: float = 1e-2) -> np.ndarray:
    """Maximum likelihood by Newton's method, with a small ridge so that separable data stays finite."""
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + ridge * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def calibration_report(x: np.ndarray, y: np.ndarray, w) -> dict:
    p = 1.0 / (1.0 + np.exp(-(x @ np.asarray(w))))
    bins = []
    for lo, hi in ((0, 0.1), (0.1, 0.5), (0.5, 0.9), (0.9, 1.01)):
        m = (p >= lo) & (p < hi)
        bins.append({"confidence": f"{lo:.1f}-{min(hi, 1.0):.1f}", "candidates": int(m.sum()),
                     "mean_confidence": round(float(p[m].mean()), 3) if m.any() else None,
                     "sources": round(float(y[m].mean()), 3) if m.any() else None})
    eps = 1e-9
    return {"candidates": len(y), "sources": int(y.sum()), "brier": round(float(np.mean((p - y) ** 2)), 4),
            "log_loss": round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 4),
            "bins": bins}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DATA / "corpus-small")
    ap.add_argument("--work", type=Path, default=DATA / "work-small")
    ap.add_argument("--evidence", type=Path, default=DATA / "evidence-small.json")
    ap.add_argument("--replay", action="store_true", help="use the recorded evidence; search nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "calibrate-small.json")
    args = ap.parse_args()
    if not args.replay:
        if not (args.work / "lib-catalogue").exists():
            print(f"{args.work / 'lib-catalogue'}: no library; run bench/quality.py --size small first",
                  file=sys.stderr)
            return 3
        record(args.corpus, args.work, args.evidence)
    rows = json.loads(args.evidence.read_text())["rows"]
    for r in rows:
        r["half"] = half(r["track"])
    halves = {h: [r for r in rows if r["half"] == h] for h in ("calibration", "report")}
    live = sum(r["live_top1"] == r["target"] for r in rows)
    replayed = replay(rows, P.DEFAULT)["top1_n"]

    defaults = {name: getattr(P.DEFAULT, name) for name in GRID}
    best, best_key = P.DEFAULT, None
    for values in itertools.product(*GRID.values()):
        policy = replace(P.DEFAULT, **dict(zip(GRID, values)))
        r = replay(halves["calibration"], policy)
        distance = sum(abs(math.log(v / defaults[k])) for k, v in zip(GRID, values))
        key = (r["top1_n"], -r["queries_with_a_wrong_copy"], -distance)
        if best_key is None or key > best_key:
            best, best_key = policy, key
    chosen = {name: getattr(best, name) for name in GRID}

    xc, yc = features(halves["calibration"], P.DEFAULT)
    xr, yr = features(halves["report"], P.DEFAULT)
    w = fit_logistic(xc, yc)

    per_degradation = {}
    for row in halves["report"]:
        d = per_degradation.setdefault(row["degradation"], {"queries": 0, "defaults": 0, "chosen": 0})
        d["queries"] += 1
        for name, pol in (("defaults", P.DEFAULT), ("chosen", best)):
            order = P.order(P.judge(evidence_of(row), sweep_lead=row["sweep_lead"], policy=pol))
            d[name] += bool(order) and order[0] == row["target"]

    report = {
        "corpus": str(args.corpus), "queries": len(rows), "halves": {h: len(v) for h, v in halves.items()},
        "replay_check": {"live_top1": live, "replayed_top1": replayed},
        "grid": GRID, "defaults": defaults, "chosen_on_calibration": chosen,
        "thresholds": {h: {"defaults": replay(v, P.DEFAULT), "chosen": replay(v, best)} for h, v in halves.items()},
        "report_half_by_degradation": per_degradation,
        "confidence": {
            "fitted_weights": [round(float(v), 3) for v in w],
            "policy_weights": list(P.DEFAULT.confidence_weights),
            "calibration_half": calibration_report(xc, yc, w),
            "report_half": calibration_report(xr, yr, w),
            "report_half_policy_weights": calibration_report(xr, yr, P.DEFAULT.confidence_weights),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"{len(rows)} queries ({report['halves']}); replay gives top-1 {replayed}, the live search {live}")
    print(f"defaults {defaults}\nchosen on the calibration half {chosen}")
    for h, r in report["thresholds"].items():
        print(f"  {h:12s} defaults {r['defaults']}\n  {'':12s} chosen   {r['chosen']}")
    print("copy confidence: fitted", report["confidence"]["fitted_weights"])
    for k in ("calibration_half", "report_half", "report_half_policy_weights"):
        c = report["confidence"][k]
        print(f"  {k}: brier {c['brier']} log-loss {c['log_loss']} bins {c['bins']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
