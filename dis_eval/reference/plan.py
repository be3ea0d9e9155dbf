"""The sweep ``scripts/reproduce_reference.sh`` runs: the shipped reference sweep file
(pipelines/configs/reference_beta1.yaml, the one owner of the runs' settings), with the seed list
set to 0..N-1 when asked, and in CPU mode shrunk to a smoke test on the real-image test fixture
(tiny step counts and metric samples; everything else unchanged, so CI runs the same pipeline).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dis_eval.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SWEEP = REPO_ROOT / "pipelines" / "configs" / "reference_beta1.yaml"
FIXTURE = REPO_ROOT / "tests" / "data" / "dsprites_real_fixture.npz"


@dataclass(frozen=True)
class CpuMode:
    """The CPU smoke version: a few batches on the 3,000-image fixture, the paper's two scores at
    small metric samples, both conventions (scores are not meaningful; the pipeline is what is
    tested: plan, sweep, both conventions, collection, reading back)."""

    data: Path = FIXTURE
    steps: int = 6
    batch_size: int = 16
    checkpoint_every: int = 3
    log_every: int = 3
    seeds: int = 2
    samples: int = 128  # training points of every metric (evaluation/test points: half)
    batch: int = 16  # metric batches (the fixture is small; FactorVAE/BetaVAE votes use it)
    metrics: tuple[str, ...] = ("factor_vae", "mig")  # of the sweep file's list, these are kept

    def metric_settings(self, metrics: list[str]) -> dict[str, dict[str, int]]:
        n, half = self.samples, self.samples // 2
        small: dict[str, dict[str, int]] = {
            "factor_vae": {"num_train": n, "num_eval": half, "num_variance_estimate": n, "batch_size": self.batch},
            "beta_vae": {"num_train": n, "num_eval": half, "batch_size": self.batch},
            "sap": {"num_train": n, "num_test": half}, "modularity_explicitness": {"num_train": n, "num_test": half},
            "dci": {"num_train": n, "num_test": half},
        }
        return {m: small.get(m, {"num_train": n}) for m in metrics}


def plan_sweep(source: str | os.PathLike = REFERENCE_SWEEP, seeds: int | None = None,
               cpu: CpuMode | None = None, steps: int | None = None) -> dict[str, Any]:
    """The sweep mapping to run: ``source`` with seeds 0..``seeds``-1 (None: as the file says),
    with ``cpu`` the CPU smoke settings, and ``steps`` (None: the file's, or the CPU mode's)
    batches per run. Validated by the sweep loader when it runs."""
    import yaml

    path = Path(source)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read the reference sweep {path}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("grid"), dict) or "seed" not in raw["grid"]:
        raise UserError(f"{path}: expected a sweep file with a `grid: {{seed: [...]}}` axis")
    plan = copy.deepcopy(raw)
    n_seeds = seeds if seeds is not None else (cpu.seeds if cpu is not None else None)
    if n_seeds is not None:
        if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
            raise UserError(f"--seeds must be an integer >= 1, got {n_seeds!r}")
        plan["grid"]["seed"] = list(range(n_seeds))
    if cpu is not None:
        if not cpu.data.is_file():
            raise UserError(f"the CPU mode's data {cpu.data} is missing (it ships with the repository's tests)")
        plan["name"] = f"{raw.get('name', path.stem)}_cpu"
        if not isinstance(raw.get("base"), dict):
            raise UserError(f"{path}: the CPU mode needs an inline `base:` mapping")
        plan["base"] = {**raw["base"], "data": str(cpu.data), "steps": cpu.steps,
                        "batch_size": cpu.batch_size, "checkpoint_every": cpu.checkpoint_every,
                        "log_every": cpu.log_every, "device": "cpu"}
        evaluation = dict(raw.get("evaluation") or {})
        metrics = [m for m in evaluation.get("metrics") or [] if m in cpu.metrics]
        if not metrics:
            raise UserError(f"{path}: the evaluation block must list {' or '.join(cpu.metrics)} for the CPU mode")
        evaluation["metrics"] = metrics
        evaluation["settings"] = cpu.metric_settings(metrics)
        evaluation["device"] = "cpu"
        plan["evaluation"] = evaluation
        plan["notes"] = ("CPU smoke run of the reference pipeline on the real-image test fixture: "
                         f"{steps or cpu.steps} steps, {' and '.join(metrics)} at small samples, both "
                         "conventions; the scores mean nothing.")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise UserError(f"--steps must be an integer >= 1, got {steps!r}")
        if not isinstance(plan.get("base"), dict):
            raise UserError(f"{path}: --steps needs an inline `base:` mapping")
        plan["base"] = {**plan["base"], "steps": steps}
        if cpu is None:  # a shorter check is its own sweep, never mixed with the full-length runs
            plan["name"] = f"{raw.get('name', path.stem)}_{steps}steps"
    return plan


def write_plan(out: str | os.PathLike, source: str | os.PathLike = REFERENCE_SWEEP, seeds: int | None = None,
               cpu: bool = False, steps: int | None = None) -> Path:
    """Write the planned sweep file to ``out`` (atomically); returns its path."""
    import yaml

    from dis_eval.atomic import atomic_write_text

    plan = plan_sweep(source, seeds, CpuMode() if cpu else None, steps)
    path = Path(out)
    atomic_write_text(path, yaml.safe_dump(plan, sort_keys=False))
    return path
