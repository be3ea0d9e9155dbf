"""Job functions for the sweep tests (module-level so spawned processes and Ray workers
can import them). Each writes the two files that mark a job done, like the real job."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from dis_eval.run_dir import RunDir
from pipelines.sweep.spec import Job


def merge_resolver(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for the training config loader: flat merge, rejecting one bad value."""
    from dis_eval.errors import UserError

    config = {**base, **overrides}
    if config.get("beta", 0) < 0:
        raise UserError(f"beta must be >= 0, got {config['beta']}")
    return config


def _finish(job: Job, run_dir: Path, **extra: Any) -> None:
    run = RunDir(run_dir)
    run.model.write_text(json.dumps({"config": job.train_config, **extra}))
    run.metrics.write_text(json.dumps({"settings": job.settings, **extra}))


def _count_call(run_dir: Path) -> int:
    log = run_dir / "calls.log"
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return len(log.read_text().splitlines())


def marker_job(job: Job, run_dir: Path) -> None:
    """Succeeds unless the config says ``behaviour: fail``; optionally sleeps first."""
    _count_call(run_dir)
    start = time.time()
    time.sleep(float(job.train_config.get("sleep", 0)))
    if job.train_config.get("behaviour") == "fail":
        raise RuntimeError(f"deliberate failure of {job.name}")
    _finish(job, run_dir, interval=[start, time.time()])


def kill_once_job(job: Job, run_dir: Path) -> None:
    """``behaviour: kill_once``: the first call writes a checkpoint, then SIGKILLs its own
    process mid-job; the second resumes from the checkpoint and finishes, recording where
    it resumed from. ``behaviour: fail`` raises."""
    _count_call(run_dir)
    if job.train_config.get("behaviour") == "fail":
        raise RuntimeError(f"deliberate failure of {job.name}")
    ckpt = RunDir(run_dir).checkpoint
    if job.train_config.get("behaviour") == "kill_once" and not ckpt.exists():
        ckpt.write_text(json.dumps({"step": 5}))
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # never reached
    resumed_from = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    _finish(job, run_dir, resumed_from=resumed_from)


FIXTURE = Path(__file__).resolve().parent / "data" / "dsprites_real_fixture.npz"

# 2 models x 2 seeds, a few steps on the real-image fixture, two metrics at small sample
# counts: the real train + evaluate path in seconds.
SMALL_REAL_SWEEP = f"""
name: e2e-small
base:
  data: {FIXTURE}
  steps: 4
  batch_size: 16
  checkpoint_every: 2
  log_every: 2
  device: cpu
grid:
  model: [echo, beta_vae]
  seed: [0, 1]
evaluation:
  metrics: [mig, factor_vae]
  representation: mean
  seed: 0
  device: cpu
  settings:
    mig: {{num_train: 256, batch_size: 16}}
    factor_vae: {{num_train: 64, num_eval: 32, num_variance_estimate: 256, batch_size: 16}}
"""


def write_small_real_sweep(folder: Path) -> Path:
    path = Path(folder) / "e2e_small.yaml"
    path.write_text(SMALL_REAL_SWEEP)
    return path
