"""CI strictness: with CI set, a missing Debian tool fails the run instead of passing as skipped tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fake_bin(tmp_path: Path, apt_rc: int) -> Path:
    """A PATH folder whose apt-get exits with ``apt_rc`` and whose make only says it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\nexit {apt_rc}\n")
    (bin_dir / "make").write_text("#!/bin/sh\necho \"make $*\"\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def _ci_run(tmp_path: Path, *, apt_rc: int, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{_fake_bin(tmp_path, apt_rc)}:/usr/bin:/bin"
    if ci:
        env["CI"] = "true"
    return subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)


def test_ci_run_stops_when_apt_fails_under_ci(tmp_path):
    run = _ci_run(tmp_path, apt_rc=100, ci=True)
    assert run.returncode != 0
    assert "make test" not in run.stdout
    assert "apt-get update failed" in run.stderr and "CI is set" in run.stderr


def test_ci_run_goes_on_when_apt_fails_outside_ci(tmp_path):
    run = _ci_run(tmp_path, apt_rc=100, ci=False)
    assert run.returncode == 0, run.stderr
    assert "make test" in run.stdout


def _pytest(args: list[str], *, ci: bool, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | extra_env
    if ci:
        env["CI"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_browser_tests_fail_without_chromium_under_ci():
    args = ["tests/test_web.py", "-k", "api_docs_render_offline"]
    missing = {"SOUNDALIKE_CHROMIUM": "/nonexistent/chromium"}
    strict = _pytest(args, ci=True, extra_env=missing)
    assert strict.returncode == 1, strict.stdout
    assert "/nonexistent/chromium not found" in strict.stdout and "CI is set" in strict.stdout
    lenient = _pytest(args, ci=False, extra_env=missing)
    assert lenient.returncode == 0, lenient.stdout
    assert "1 skipped" in lenient.stdout


def test_the_quality_gate_fails_without_its_tools_under_ci(tmp_path):
    """No corpus and no apt-get: skipped on a developer machine, a failure under CI."""
    args = ["tests/test_quality.py", "-k", "the_corpus_has_its_parts"]
    env = {"SOUNDALIKE_QUALITY_DATA": str(tmp_path), "PATH": str(Path(sys.executable).parent) + ":/nonexistent"}
    strict = _pytest(args, ci=True, extra_env=env)
    assert strict.returncode == 1, strict.stdout
    assert "no apt-get" in strict.stdout and "CI is set" in strict.stdout
    assert _pytest(args, ci=False, extra_env=env).returncode == 0
