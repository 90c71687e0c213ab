#!/usr/bin/env python3
"""Ray ingest benchmark: a local run against a two-node Ray run on the same files and the same cores.

Starts a Ray cluster of --nodes nodes on this machine (tests/ray_cluster.py: one `ray start` per node, one CPU
each), synthesises --tracks tracks of --seconds each (soundalike.synth, FLAC), and indexes them with the real
musicnn into fresh libraries:
  1. locally (soundalike's worker threads), --runs times;
  2. on the cluster (--ray), --runs times, each connecting anew as `soundalike index --ray` does (a new Ray
     job: worker processes start, import soundalike, load the model).
Reports wall times; the steady throughput (audio written between the first and the last track over that
time) and the start-up apart (the wall time the steady rate does not explain; plus the cluster's own start
and connecting); the catalogue writer's CPU per audio second (the ceiling of one writing process); and the
per-node throughput. Writes bench/results/ray_ingest.json.

    .venv/bin/python bench/ray_ingest.py [--tracks 10] [--seconds 30] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine  # bench/_machine.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import soundalike  # noqa: E402
from soundalike.models.musicnn.fast import instruction_set  # noqa: E402
from soundalike.synth import encode, render_track  # noqa: E402
from tests.ray_cluster import local_cluster  # noqa: E402


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cluster_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's descendants (the local cluster's processes), by kind: ``work``,
    the Ray workers that run tasks and actors (alive, or exited and reaped by their raylet), and ``ray``,
    Ray's own processes (raylets, GCS, agents, monitors)."""
    import psutil

    out = {"work": 0.0, "ray": 0.0}
    for proc in psutil.Process().children(recursive=True):
        try:
            t, cmd, name = proc.cpu_times(), " ".join(proc.cmdline()), proc.name()
        except psutil.Error:
            continue
        worker = (cmd.startswith("ray::") and "Agent" not in cmd) or "default_worker.py" in cmd
        out["work" if worker else "ray"] += t.user + t.system
        if name == "raylet":  # its workers that exited during the run
            out["work"] += t.children_user + t.children_system
    return out


def index_once(folder: Path, lib_dir: Path, ray: str | None, *, tracks: int = 0) -> dict:
    """One run into a fresh library: wall time, when each track was written, the writer's CPU time; on Ray,
    the cluster's CPU seconds up to the last track (before the job's workers end)."""
    lib = soundalike.open(lib_dir, hop=3.0)
    before = cluster_cpu() if ray else None
    c0, t0 = cpu_seconds(), time.perf_counter()
    written: list[tuple[float, float]] = []  # (seconds since the start, audio seconds written so far)
    cluster = None
    for event in lib.index([folder], ray=ray):
        if event.event == "indexed":
            written.append((time.perf_counter() - t0, event.audio_seconds))
            if ray and len(written) == tracks:
                after = cluster_cpu()
                cluster = {k: round(after[k] - before[k], 2) for k in after}
        done = event
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    assert done.event == "done" and not done.error_list, done.error_list
    lib.close()
    # steady throughput: the audio written between the first and the last track over that time (start-up and
    # the first track's latency left out), and the start-up: the wall time that throughput does not explain
    (t_first, a_first), (t_last, a_last) = written[0], written[-1]
    steady = (a_last - a_first) / (t_last - t_first) if t_last > t_first else 0.0
    return {"wall_s": round(wall, 2), "first_track_s": round(t_first, 2), "driver_cpu_s": round(cpu, 2),
            "audio_s": round(done.audio_seconds, 1), "tracks": len(written),
            "steady_x_realtime": round(steady, 2),
            "startup_s": round(wall - done.audio_seconds / steady, 1) if steady else None,
            "cluster_cpu_s": cluster,
            "stage_seconds": {k: round(v, 2) for k, v in done.stage_seconds.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=2, help="local runs, and warm Ray runs")
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray_ingest.json")
    args = ap.parse_args()

    import ray

    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "music"
        folder.mkdir()
        for seed in range(args.tracks):
            encode(render_track(100 + seed, seconds=args.seconds, sample_rate=22050), 22050, folder / f"t{seed}.flac")
        soundalike.open(tmp / "warm", hop=3.0).model  # the weights converted and cached before any timing

        local = [index_once(folder, tmp / f"local{i}", None) for i in range(args.runs)]
        t = time.perf_counter()
        with local_cluster(nodes=args.nodes, cpus=1) as address:
            cluster_start = time.perf_counter() - t
            t = time.perf_counter()
            ray.init(address=address, log_to_driver=False, logging_level="warning", include_dashboard=False)
            connect = time.perf_counter() - t
            ray.shutdown()
            # each run connects, as `soundalike index --ray` does: a new Ray job, new worker processes and actors
            runs = [index_once(folder, tmp / f"ray{i}", address, tracks=args.tracks) for i in range(args.runs)]

    audio = local[0]["audio_s"]
    med = lambda rs, k: round(statistics.median(r[k] for r in rs), 2)  # noqa: E731
    local_wall, ray_wall = med(local, "wall_s"), med(runs, "wall_s")
    local_steady, ray_steady = med(local, "steady_x_realtime"), med(runs, "steady_x_realtime")
    driver_cpu = med(runs, "driver_cpu_s")
    writer = round(statistics.median(r["stage_seconds"]["store"] for r in runs), 3)
    result = {
        "machine": machine(instruction_set()),
        "command": f"bench/ray_ingest.py --tracks {args.tracks} --seconds {args.seconds:g} --runs {args.runs}",
        "load_average_1min": round(os.getloadavg()[0], 1),
        "nodes": args.nodes, "cpus_per_node": 1, "tracks": args.tracks, "audio_s": audio,
        "local": local, "ray": runs,
        "local_wall_s": local_wall, "ray_wall_s": ray_wall, "ray_vs_local_wall": round(ray_wall / local_wall, 3),
        "local_steady_x_realtime": local_steady, "ray_steady_x_realtime": ray_steady,
        "ray_vs_local_steady_time": round(local_steady / ray_steady, 3),
        "startup": {"cluster_start_s": round(cluster_start, 1), "connect_s": round(connect, 2),
                    "ray_run_startup_s": med(runs, "startup_s"), "local_run_startup_s": med(local, "startup_s")},
        "ray_x_realtime_per_node": round(ray_steady / args.nodes, 2),
        # the catalogue writer's own work per track (catalogue rows and vector store), and the driver process's
        # CPU all told (mostly Ray's own threads following the run, over the whole wall time)
        "writer_store_s": writer,
        "writer_ceiling_x_realtime": round(audio / writer) if writer else None,
        "driver_cpu_s": driver_cpu,
        "driver_cores_busy": round(driver_cpu / ray_wall, 3),
        # CPU time, not wall: what the pipeline costs per audio second whatever else runs on the machine.
        # local: the whole local run's process; Ray: the workers' (tasks and actors) and Ray's own processes'
        "local_cpu_s": med(local, "driver_cpu_s"),
        "ray_worker_cpu_s": round(statistics.median(r["cluster_cpu_s"]["work"] for r in runs), 2),
        "ray_system_cpu_s": round(statistics.median(r["cluster_cpu_s"]["ray"] for r in runs), 2),
    }
    result["local_x_realtime_per_cpu_s"] = round(audio / result["local_cpu_s"], 1)
    result["ray_x_realtime_per_worker_cpu_s"] = round(audio / result["ray_worker_cpu_s"], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.tracks} tracks, {audio / 60:.1f} min of audio, musicnn, {args.nodes} nodes x 1 CPU on "
          f"{result['machine']['cpus']} cores (load average {result['load_average_1min']})")
    print(f"local run: {local_wall:6.1f} s wall; steady {local_steady:.1f}x realtime; start-up "
          f"{result['startup']['local_run_startup_s']} s  (runs {[r['wall_s'] for r in local]})")
    print(f"Ray run:   {ray_wall:6.1f} s wall; steady {ray_steady:.1f}x realtime; start-up "
          f"{result['startup']['ray_run_startup_s']} s  (runs {[r['wall_s'] for r in runs]})")
    print(f"Ray / local: wall {result['ray_vs_local_wall']:.2f}; time at the steady rates "
          f"{result['ray_vs_local_steady_time']:.2f}")
    print(f"Ray start-up apart: cluster start {cluster_start:.1f} s (once), connect {connect:.2f} s, per run "
          f"{result['startup']['ray_run_startup_s']} s (worker processes, imports, model loads, Ray Data)")
    print(f"per node (1 CPU): {result['ray_x_realtime_per_node']}x realtime at the steady rate")
    print(f"CPU time: local run {result['local_cpu_s']:.1f} s ({result['local_x_realtime_per_cpu_s']}x realtime per "
          f"CPU second); Ray workers {result['ray_worker_cpu_s']:.1f} s ({result['ray_x_realtime_per_worker_cpu_s']}x "
          f"realtime per CPU second), Ray's own processes {result['ray_system_cpu_s']:.1f} s, the driver "
          f"{driver_cpu:.1f} s")
    print(f"the catalogue writer: {writer:.2f} s writing {audio:.0f} s of audio (one writer keeps up with about "
          f"{result['writer_ceiling_x_realtime']}x realtime); the driver process used {driver_cpu:.2f} CPU s in all "
          f"({result['driver_cores_busy']:.2f} of a core over the run)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
