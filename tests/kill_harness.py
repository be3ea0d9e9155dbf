"""Kill-anywhere harness (issue 17, item 4): run a `dis-eval` command as a subprocess, SIGKILL it
after a random delay, and check what it left; then re-run it the user's way and compare with an
uninterrupted run.

After each kill:
* every file that existed before is still there and readable, and unchanged unless the command
  rewrites it (then it is the old or the new complete file, never a mix);
* every file under a final name is complete (it parses as its kind: JSON, YAML, torch, HDF5,
  .npz, image); partial files exist only under the temporary mark ``.tmp-``;
After the re-run: no temporary file is left anywhere, and the result equals the uninterrupted
run's (bit-identical weights, equal scores, equal data).

Logs that are appended to by design (TensorBoard event files under ``tb/``, ``*.log``) and the
lock file are not final files in this sense and are not checked for completeness.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dis_eval.atomic import TEMP_MARK
from tests.safety_helpers import REPO, cli_command, cli_env

NOT_FINAL = ("tb", ".lock")  # appended logs and the lock: not files written whole


@dataclass
class KillPoint:
    """One kill: which command, after how long, and whether it was still running."""

    scenario: str
    seed: int
    delay_s: float
    killed: bool
    files_after: int

    def describe(self) -> str:
        what = "killed" if self.killed else "finished before the kill"
        return f"{self.scenario} seed {self.seed}: {what} at {self.delay_s:.2f} s ({self.files_after} files)"


@dataclass
class Scenario:
    """A command to kill. ``rerun(work)`` is the user's way to finish it after a kill (it may look
    at what the kill left); ``result(work)`` is what must equal the uninterrupted run's;
    ``setup(work)`` makes the files that exist before the command runs; ``rewrites`` are the
    relative paths (glob patterns) the command may replace."""

    name: str
    command: Callable[[Path], list[str]]
    result: Callable[[Path], Any]
    rerun: Callable[[Path], list[str]] | None = None
    setup: Callable[[Path], None] | None = None
    rewrites: tuple[str, ...] = ()
    max_delay_s: float = 30.0
    log: list[KillPoint] = field(default_factory=list)


def run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"dis-eval {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def run_and_kill(args: list[str], delay_s: float) -> bool:
    """Start ``dis-eval ARGS``; SIGKILL it after ``delay_s`` seconds. True when it was killed."""
    proc = subprocess.Popen(cli_command(*args), cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def final_files(root: Path) -> dict[str, Path]:
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and TEMP_MARK not in p.name and not any(part in NOT_FINAL for part in rel.parts) \
                and p.suffix != ".log":
            out[str(rel)] = p
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_complete(path: Path) -> None:
    """``path`` is a whole file of its kind (raises otherwise)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        json.loads(path.read_text())
    elif suffix in (".yaml", ".yml"):
        import yaml

        yaml.safe_load(path.read_text())
    elif suffix == ".pt":
        import torch

        torch.load(path, map_location="cpu", weights_only=True)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            for key in f:
                f[key][()]
    elif suffix in (".npz", ".npy"):
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            for key in getattr(z, "files", []):
                if key != "metadata":
                    z[key]
        if suffix == ".npz":
            with zipfile.ZipFile(path) as zf:
                assert zf.testzip() is None
    elif suffix in (".png", ".gif"):
        from PIL import Image

        with Image.open(path) as im:
            im.load()
    elif suffix == ".pdf":
        data = path.read_bytes()
        assert data.startswith(b"%PDF") and b"%%EOF" in data[-1024:], "truncated PDF"
    elif suffix in (".csv", ".md", ".tex", ".txt"):
        path.read_text()
    # other kinds: existence is all that can be checked


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{TEMP_MARK}*") if p.is_file()]


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(rel, pat) for pat in patterns)


def kill_and_check(scenario: Scenario, work: Path, seed: int, reference: Any, kills: int = 1) -> None:
    """``kills`` successive kills of the command (and of its re-runs), each checked, then an
    uninterrupted re-run whose result must equal ``reference``."""
    rng = random.Random(f"{scenario.name}-{seed}")
    if scenario.setup is not None:
        scenario.setup(work)
    args = scenario.command(work)
    for _ in range(kills):
        before = {rel: digest(p) for rel, p in final_files(work).items()}
        delay = rng.uniform(0.0, scenario.max_delay_s)
        killed = run_and_kill(args, delay)
        after = final_files(work)
        scenario.log.append(KillPoint(scenario.name, seed, delay, killed, len(after)))
        where = scenario.log[-1].describe()
        for rel in before:
            assert rel in after, f"{where}: {rel} existed before and is gone"
            if not _matches(rel, scenario.rewrites):
                assert digest(after[rel]) == before[rel], f"{where}: {rel} was changed"
        for rel, p in after.items():
            try:
                check_complete(p)
            except Exception as exc:  # noqa: BLE001 - any failure to read is a partial file
                raise AssertionError(f"{where}: {rel} is not a complete file ({type(exc).__name__}: {exc})") from exc
        if not killed:
            break
        args = scenario.rerun(work) if scenario.rerun is not None else args
    if killed:  # a command that finished before its kill needs no re-run (train would refuse one)
        run(args)
    left = temporaries(work)
    assert not left, f"{scenario.log[-1].describe()}: temporaries left after the re-run: {left}"
    got = scenario.result(work)
    assert got == reference, f"{scenario.log[-1].describe()}: the re-run's result differs from the uninterrupted run's"


def time_it(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
