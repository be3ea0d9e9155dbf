"""Shared test fixtures.

No fixture here changes torch's thread count: the tests run at the thread count users get (see
docs/reproducibility.md); a test that needs a specific count sets it in a subprocess of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANG_S = 1800  # a guard against a hung child only: these runs take seconds on 2 free cores


def run_det_runner(out: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m tests.det_runner OUT ARGS`` in a fresh process (torch's default thread count
    unless ARGS says --threads)."""
    return run_det_runners(out, [list(args)])[0]


def run_det_runners(out: Path, arg_lists: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Several ``python -m tests.det_runner OUT ARGS`` processes started together (each with
    torch's default thread count unless its ARGS say --threads); their results in order."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.det_runner", str(out), *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in arg_lists]
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=HANG_S)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


@pytest.fixture(scope="session")
def default_thread_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every family's small run (tests.det_runner.run_config) trained twice, uninterrupted, in one
    fresh process at torch's default thread count: OUT/<model>.0 and OUT/<model>.1."""
    out = tmp_path_factory.mktemp("default_threads")
    done = run_det_runner(out, "--copies", "2")
    assert done.returncode == 0, done.stderr
    return out


# ---- the main job, run once for the tests that read what it writes -----------------------------
FIXTURE = ROOT / "tests" / "data" / "dsprites_real_fixture.npz"


def main_quick_command(work: Path) -> list[str]:
    """``dis-eval main --quick`` on the real-image fixture into WORK/out (2 steps a model)."""
    return ["main", "--out", str(work / "out"), "--data", str(FIXTURE), "--quick", "--steps", "2",
            "--device", "cpu"]


@dataclass(frozen=True)
class MainQuickRun:
    """One uninterrupted ``main --quick`` in a process of its own: its folder, output, wall time."""

    work: Path
    stdout: str
    seconds: float

    @property
    def out(self) -> Path:
        return self.work / "out"


@pytest.fixture(scope="session")
def main_quick(tmp_path_factory: pytest.TempPathFactory) -> MainQuickRun:
    """The main job as a user starts it (a fresh process, torch's default thread count), shared by
    the tests that only read its output (test_main_job, test_strict_json) and by the kill test,
    which compares a killed-and-rerun main job with it. Tests must not write into it."""
    from tests.safety_helpers import cli_command, cli_env

    work = tmp_path_factory.mktemp("main-quick")
    env = {**cli_env(), "DIS_EVAL_CACHE": str(work / "cache")}
    t0 = time.perf_counter()
    proc = subprocess.run(cli_command(*main_quick_command(work)), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return MainQuickRun(work, proc.stdout, time.perf_counter() - t0)
