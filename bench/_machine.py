"""What the benchmarks record of the machine they ran on: the same figures differ between CPUs."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(kernels: str) -> dict:
    """CPU count and model, Python, and the instruction set of the model's compiled kernels (``kernels``)."""
    return {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(), "kernels": kernels}
