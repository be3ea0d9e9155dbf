"""A small real run tree for the service's page and browser tests, built once per test session.

Echo at two betas and beta-VAE at one, two seeds each (six runs), each trained a few steps on the real-image
fixture and scored on MIG and the FactorVAE score at small sample counts (the real sweep path),
and one run's figures drawn (traversal GIF, Fig. 4, MI heatmap, reconstructions). About half a
minute on a 2-core machine; the scores mean nothing, the files are the real ones.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "data" / "dsprites_real_fixture.npz"

# The run whose figures are drawn (a sweep job's folder name).
FIGURED_RUN = "model=echo__beta=1__seed=0"

SWEEP = f"""
name: serve-small
base:
  data: {FIXTURE}
  steps: 6
  batch_size: 16
  checkpoint_every: 3
  log_every: 2
  device: cpu
include:
  - model: echo
    beta: [1.0, 4.0]
  - model: beta_vae
    beta: 1.0
grid:
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

TREE_ENV = "DIS_EVAL_SERVE_TREE"
_CACHE: dict[str, Path] = {}


def build_run_tree(folder: Path) -> Path:
    """Train, score and plot the small tree into ``folder/runs``; returns that folder."""
    from pipelines.figures import PlotSettings, make_run_figures
    from pipelines.sweep.run import prepare_out_dir, resolve_train_config
    from pipelines.sweep.runner import run_job, train_and_evaluate
    from pipelines.sweep.spec import expand_jobs, load_sweep

    sweep = folder / "serve_small.yaml"
    sweep.write_text(SWEEP)
    root = folder / "runs"
    # The sweep's own job path, in this process (one torch import instead of one a job).
    spec = load_sweep(sweep)
    jobs = expand_jobs(spec, resolve_train_config, None, [])
    prepare_out_dir(spec, jobs, root)
    for job in jobs:
        result = run_job(job, root / job.name, train_and_evaluate, "serve-tests")
        if result.status != "done":
            raise RuntimeError(f"small run tree: job {job.name} {result.status}: {result.error}")
    settings = PlotSettings(rows=1500, seed_images=1, traversal_values=5, mi_points=1000, noise_draws=2)
    make_run_figures(root / FIGURED_RUN, device="cpu", settings=settings, log=lambda _m: None)
    return root


def run_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's small run tree (built on first use, shared by every test module). Working
    on the pages, ``DIS_EVAL_SERVE_TREE=FOLDER`` builds it into FOLDER once and reuses it after
    (a copy is served, so the tests' jobs and uploads never land in it)."""
    if "root" not in _CACHE:
        keep = os.environ.get(TREE_ENV)
        if keep:
            built = Path(keep) / "runs"
            if not (built / "sweep.json").is_file() or not (built / FIGURED_RUN / "figures").is_dir():
                shutil.rmtree(built, ignore_errors=True)
                build_run_tree(Path(keep))
            copy = tmp_path_factory.mktemp("serve_tree") / "runs"
            shutil.copytree(built, copy, ignore=shutil.ignore_patterns(".dis-eval-service*"))
            _CACHE["root"] = copy
        else:
            _CACHE["root"] = build_run_tree(tmp_path_factory.mktemp("serve_tree"))
    return _CACHE["root"]
