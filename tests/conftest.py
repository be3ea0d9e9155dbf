"""Shared test fixtures.

No fixture here changes torch's thread count: the tests run at the thread count users get (see
docs/reproducibility.md); a test that needs a specific count sets it in a subprocess of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANG_S = 1800  # a guard against a hung child only: these runs take seconds on 2 free cores


def run_det_runner(out: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m tests.det_runner OUT ARGS`` in a fresh process (torch's default thread count
    unless ARGS says --threads)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.det_runner", str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=HANG_S)


@pytest.fixture(scope="session")
def default_thread_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every family's small run (tests.det_runner.run_config) trained twice, uninterrupted, in one
    fresh process at torch's default thread count: OUT/<model>.0 and OUT/<model>.1."""
    out = tmp_path_factory.mktemp("default_threads")
    done = run_det_runner(out, "--copies", "2")
    assert done.returncode == 0, done.stderr
    return out
