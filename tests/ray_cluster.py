"""A Ray cluster of several nodes on this machine, for the Ray ingest tests and bench/ray_ingest.py.

Each node is a ``ray start --block`` child process (the head first, then ``ray start --address``), with one
CPU each, its own free ports and a temporary folder. ``ray start --block`` stops the processes it began when
it gets SIGTERM, so stopping the cluster ends exactly what it started, by process id (never ``ray stop``,
which would stop every Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ray_command() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


@contextmanager
def local_cluster(nodes: int = 2, cpus: int = 1, *, timeout: float = 120.0):
    """Yield the head's address (``127.0.0.1:port``) of a running ``nodes``-node cluster; stop it after.

    The nodes' workers import soundalike (and tests.fakes) from this checkout (PYTHONPATH).
    """
    tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    port, client, dashboard, *_ = _free_ports(3)
    address = f"127.0.0.1:{port}"
    common = ["--block", f"--num-cpus={cpus}", "--num-gpus=0", "--object-store-memory=200000000",
              "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    try:
        for i in range(nodes):
            node = ["--head", f"--port={port}", f"--temp-dir={tmp}", "--include-dashboard=false",
                    f"--ray-client-server-port={client}", f"--dashboard-port={dashboard}"] if i == 0 \
                else [f"--address={address}"]
            log = open(tmp / f"node{i}.log", "wb")
            procs.append(subprocess.Popen(
                [*_ray_command(), "start", *node, *common],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
            _wait_for_nodes(address, i + 1, procs, tmp, timeout)
        yield address
    finally:
        for proc in reversed(procs):  # the workers first, then the head
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the processes this node began
                    proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_for_nodes(address: str, n: int, procs: list[subprocess.Popen], tmp: Path, timeout: float) -> None:
    """Until the cluster at ``address`` counts ``n`` live nodes (a child process answers, not this one)."""
    probe = ("import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='error'); "
             "print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(tmp.glob("node*.log")))
                raise RuntimeError(f"ray start exited with {proc.returncode}:\n{logs}")
        try:
            out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=60)
            if out.returncode == 0 and out.stdout.strip() and int(out.stdout.split()[-1]) >= n:
                return
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the local Ray cluster at {address} did not reach {n} nodes in {timeout:.0f} s")
