"""Two ingest stages, an older commit against this checkout, interleaved in one process.

    python bench/stages_ab.py --base 9a8f010                # decode and network, 6 rounds each
    python bench/stages_ab.py --base HEAD~3 --rounds 10 --parts network

End-to-end figures on this VM move by 20 % or more from one minute to the
next, more than most single changes are worth; two versions of one stage run
alternately in the same process see the same machine. ``--base`` is checked
out into a temporary git worktree, and its modules are loaded beside this
checkout's (its compiled kernels built from its own ``_kernels.c`` with gcc):

* **decode**: ``decode.stream`` (with the side signal, as the indexer asks)
  over every file of the 1-hour library (``bench/ingest.py --hours 1`` makes
  it), CPU seconds per pass, and a check that both give the same samples;
* **network**: ``FastMusicnn`` (MSD + MTT) of both versions on the same
  random log-mels, on 1 and 2 threads, wall ms per window, and the largest
  difference between their outputs.

Prints medians and writes bench/results/stages-ab.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIBRARY = ROOT / "bench" / ".data" / "mixed-1h"


def load(name: str, path: Path, package: str):
    """The module at ``path`` as ``name``, its relative imports resolved inside ``package``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def old_musicnn(tree: Path, tmp: Path):
    """The base commit's fast path and network as a package of their own (``base_musicnn``)."""
    pkg = tmp / "base_musicnn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    src = tree / "soundalike" / "models" / "musicnn"
    for f in ("fast.py", "net.py"):
        shutil.copy(src / f, pkg / f)
    if (src / "_kernels.c").exists():  # the base's own C kernels, built as setuptools would (-O3)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        subprocess.run(["gcc", "-O3", "-fPIC", "-shared", f"-I{sysconfig.get_paths()['include']}",
                        str(src / "_kernels.c"), "-o", str(pkg / f"_kernels{suffix}")], check=True)
    sys.path.insert(0, str(tmp))
    import base_musicnn.fast
    import base_musicnn.net

    return base_musicnn.net.MusicnnNet, base_musicnn.fast.FastMusicnn


def decode_ab(old, new, rounds: int) -> dict:
    files = sorted(p for p in LIBRARY.iterdir() if p.suffix != ".json")
    samples = 0
    for f in files:  # the same samples, mono and side
        got = []
        for m in (old, new):
            side: list[np.ndarray] = []
            mono = np.concatenate(list(m.stream(f, sample_rate=16000, side=side.append)))
            got.append((mono, np.concatenate(side) if side else None))
        (a, sa), (b, sb) = got
        samples += len(b)
        if not (np.array_equal(a, b) and (sa is None) == (sb is None) and (sa is None or np.array_equal(sa, sb))):
            raise SystemExit(f"decode: {f.name} decodes differently")
    cpu: dict[str, list[float]] = {"base": [], "new": []}
    for r in range(rounds):
        for name, m in (("base", old), ("new", new)) if r % 2 else (("new", new), ("base", old)):
            t = time.process_time()
            for f in files:
                for _ in m.stream(f, sample_rate=16000, side=lambda x: None):
                    pass
            cpu[name].append(round(time.process_time() - t, 3))
    return {"files": len(files), "audio_seconds": round(samples / 16000, 1), "cpu_seconds": cpu,
            "median": {k: statistics.median(v) for k, v in cpu.items()}, "identical": True}


def network_ab(Old, OldFast, rounds: int) -> dict:
    import torch

    from soundalike.models.musicnn.fast import FastMusicnn
    from soundalike.models.musicnn.net import MusicnnNet
    from soundalike.models.musicnn.weights import load_weights

    weights = {k: load_weights(k) for k in ("msd", "mtt")}
    new = FastMusicnn([MusicnnNet.from_tf(w) for w in weights.values()])
    old = OldFast([Old.from_tf(w) for w in weights.values()])
    out = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        batch = 16 * threads
        mel = torch.randn(batch, 187, 96, generator=torch.Generator().manual_seed(0)) * 2
        ms: dict[str, list[float]] = {"base": [], "new": []}
        with torch.inference_mode():
            diff = max((a[i] - b[i]).abs().max().item() for a, b in zip(old(mel), new(mel)) for i in range(2))
            for r in range(rounds):
                for name, f in (("base", old), ("new", new)) if r % 2 else (("new", new), ("base", old)):
                    t = time.perf_counter()
                    f(mel)
                    ms[name].append(round((time.perf_counter() - t) / batch * 1000, 2))
        out[f"{threads}_threads"] = {"ms_per_window": ms, "median": {k: statistics.median(v) for k, v in ms.items()},
                                     "max_abs_difference": diff, "batch": batch}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare with (any git revision)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--parts", nargs="+", choices=("decode", "network"), default=["decode", "network"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stages-ab.json")
    args = ap.parse_args()
    if "decode" in args.parts and not LIBRARY.exists():
        raise SystemExit(f"{LIBRARY} is missing: run bench/ingest.py --hours 1 once to make it")
    base = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True,
                          text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    result = {"base": base, "new": head, "rounds": args.rounds, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with tempfile.TemporaryDirectory(prefix="soundalike-ab-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), base], check=True)
        try:
            if "decode" in args.parts:
                import soundalike.decode as new_decode

                old_decode = load("soundalike._base_decode", tree / "soundalike" / "decode.py", "soundalike")
                result["decode"] = d = decode_ab(old_decode, new_decode, args.rounds)
                print(f"decode, {d['files']} files: base {d['median']['base']:.2f} CPU s, "
                      f"new {d['median']['new']:.2f} CPU s (median of {args.rounds}; samples identical)")
            if "network" in args.parts:
                result["network"] = n = network_ab(*old_musicnn(tree, Path(tmp)), args.rounds)
                for key, v in n.items():
                    threads = key.replace("_", " ").replace("1 threads", "1 thread")
                    print(f"network, {threads}: base {v['median']['base']:.2f} ms/window, "
                          f"new {v['median']['new']:.2f} (median of {args.rounds}; "
                          f"largest output difference {v['max_abs_difference']:.2g})")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
