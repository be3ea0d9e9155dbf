"""The training loop: one loop for every model (families differ only in their Objective),
config in, run folder out.

The host reads the losses (one sync) every ``log_every`` steps and at checkpoints.

Exact resumption (CPU): model, optimiser(s), discriminator, the global generators (torch/numpy/
Python) and the step counter are checkpointed atomically every
``checkpoint_every`` steps; logs are flushed at the same steps, so a resumed run repeats the
uninterrupted run's arithmetic and metrics bit for bit. A step's batch and noise are counter-based
(``dis_eval.rng``): a function of the seed and the step alone, so no generator state is saved.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from dis_eval.config.train import TrainConfig
from dis_eval.device import resolve_device
from dis_eval.errors import UserError
from dis_eval.models.checkpoint import (
    atomic_torch_save,
    check_same_run,
    global_rng_state,
    load_checkpoint,
)
from dis_eval.run_dir import RunDir
from pipelines.train.engine import Training, build_training, use_cuda_graph

CHECKPOINT_VERSION = 2  # 2: counter-based random numbers (1 held generator states)
RECON_IMAGES = 8


class TrainingDiverged(UserError):
    """A loss term became NaN or infinite."""


def train(config: TrainConfig | None, run_dir: str | os.PathLike | RunDir, resume: bool = False,
          progress: bool = True, data: Any = None) -> Path:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``); returns its path.

    ``data``: the training data (``load_data(DataSpec(cfg.data, cfg.subset))``) when the caller
    already holds it, moved to the training device if needed; loaded here when None. The run
    folder's lock is held throughout: a second writer gets a one-line error.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    with run.lock("train"):
        return _train(config, run, resume, progress, data)


def _train(config: TrainConfig | None, run: RunDir, resume: bool, progress: bool, data: Any) -> Path:
    cfg, ckpt = _prepare_run_dir(config, run, resume)
    device = training_device(cfg)
    cfg_dict = cfg.to_dict()
    cfg_dict["device_used"] = str(device)
    if not resume:
        run.write_config(cfg_dict)
    data = training_data(cfg, device, data)

    t = build_training(cfg, data, device, ckpt)
    model, objective, stats, run_step = t.model, t.objective, t.stats, t.run_step
    start = ckpt["step"] if ckpt is not None else 0
    wall_prev = float(ckpt.get("wall_s", 0.0)) if ckpt is not None else 0.0
    last: dict[str, Any] = dict(ckpt.get("last", {})) if ckpt is not None else {}  # summary.json values
    n_rows = len(data)

    writer = _summary_writer(run.tb, purge_step=start + 1)
    recon_pos = torch.linspace(0, n_rows - 1, RECON_IMAGES, device=device).long()
    summary: dict[str, Any] = {"status": "running", "step": start, "steps": cfg.steps, "model": cfg.model,
                               "family": cfg.family, "device": str(device), "step_unit": "batch",
                               "cuda_graph": use_cuda_graph(cfg, device)}
    from tqdm import tqdm

    pbar = tqdm(total=cfg.steps, initial=start, disable=not progress, unit="step", dynamic_ncols=True,
                desc=f"{cfg.model}")
    t0 = time.perf_counter()
    t_log, step_log = t0, start

    def flush(step: int) -> None:
        """Read the device-side sums (one sync), stop on NaN/inf, write logs."""
        nonlocal t_log, step_log
        means, rates, bad, count = stats.read_and_reset()
        if count == 0:
            return
        bad_at = {name: first for name, first in zip(objective.term_names, bad, strict=True) if first >= 0}
        if bad_at:
            first = min(bad_at.values())
            # Name the components before the total they feed.
            names = sorted((n for n, s in bad_at.items() if s == first), key=lambda n: n == "loss")
            msg = (f"non-finite {' and '.join(names)} at step {first}: training stopped; the last good "
                   f"checkpoint (step {_ckpt_step(run)}) is kept in {run.path}. Lower lr or check the data")
            summary.update(status="failed", step=step, error=msg, wall_s=wall_prev + time.perf_counter() - t0)
            run.write_summary(summary)
            raise TrainingDiverged(msg)
        now = time.perf_counter()
        sps = (step - step_log) / max(now - t_log, 1e-9)
        t_log, step_log = now, step
        terms = dict(zip(objective.term_names, means, strict=True))
        for name, v in terms.items():
            writer.add_scalar(f"train/{name}", v, step)
        for j, v in enumerate(rates):
            writer.add_scalar(f"rate_per_dim/{j}", v, step)
        writer.add_scalar("perf/steps_per_s", sps, step)
        last.update(terms=terms, rates=rates, sps=sps)
        pbar.set_postfix({k: f"{v:.4g}" for k, v in terms.items()}, refresh=False)

    try:
        for step in range(start + 1, cfg.steps + 1):
            run_step()
            pbar.update(1)
            at_ckpt = step % cfg.checkpoint_every == 0 or step == cfg.steps
            if at_ckpt or step % cfg.log_every == 0:
                flush(step)
            if at_ckpt:
                _log_reconstructions(writer, model, data, recon_pos, step)
                wall = wall_prev + time.perf_counter() - t0
                _save_checkpoint(run, cfg_dict, step, t, wall, last)
                summary.update(step=step, wall_s=wall, **_summary_fields(objective, last))
                run.write_summary(summary)
    finally:
        pbar.close()
        writer.close()

    final = {"config": cfg_dict, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "step": cfg.steps}
    atomic_torch_save(final, run.model)
    summary.update(status="done", step=cfg.steps, wall_s=wall_prev + time.perf_counter() - t0,
                   **_summary_fields(objective, last))
    run.write_summary(summary)
    return run.path


def training_device(cfg: TrainConfig) -> torch.device:
    """The device ``cfg`` trains on, its backend flags set; a missing data file fails here first."""
    from dis_eval.data import DataSpec

    DataSpec(cfg.data, cfg.subset).source_path()
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.backends.cudnn.benchmark = True
    return device


def training_data(cfg: TrainConfig, device: torch.device, data: Any = None) -> Any:
    """The training images on ``device``: ``data`` if given (moved if needed), else loaded."""
    from dis_eval.data import DataSpec, load_data

    if data is None:
        return load_data(DataSpec(cfg.data, cfg.subset), device=device)
    return data if data.device == device else data.to(device)


def _prepare_run_dir(config: TrainConfig | None, run: RunDir, resume: bool
                     ) -> tuple[TrainConfig, dict | None]:
    """The config to train and the checkpoint to continue from (None: start at step 0)."""
    if resume:
        if not run.is_run():
            raise UserError(f"cannot resume {run.path}: no {run.config.name} there (is it a run folder?)")
        saved = run.read_config()
        if config is not None and config.to_dict() != saved.to_dict():
            raise UserError(f"the given config differs from {run.config}; resume without a config")
        run.remove_temporaries()  # writes cut off by the interruption
        ckpt = load_checkpoint(run.checkpoint) if run.checkpoint.exists() else None
        if ckpt is not None and ckpt.get("version") != CHECKPOINT_VERSION:
            raise UserError(f"{run.checkpoint} has checkpoint version {ckpt.get('version')}, expected {CHECKPOINT_VERSION}")
        if ckpt is not None:
            check_same_run(ckpt.get("config"), run.read_config_dict(), run.checkpoint, run.config)
        return saved, ckpt
    if config is None:
        raise UserError("train needs a config (or resume=True)")
    if run.is_run():
        raise UserError(f"{run.path} already holds a run; continue it with --resume {run.path} or choose another --out")
    run.path.mkdir(parents=True, exist_ok=True)
    return config, None


def _ckpt_step(run: RunDir) -> int:
    return int(load_checkpoint(run.checkpoint)["step"]) if run.checkpoint.exists() else 0


def _save_checkpoint(run: RunDir, cfg_dict: dict, step: int, t: Training, wall_s: float,
                     last: dict[str, Any]) -> None:
    state = {
        "version": CHECKPOINT_VERSION,
        "step": step,
        "wall_s": wall_s,
        "config": cfg_dict,
        "model": t.model.state_dict(),
        "optimizer": t.opts[0].state_dict(),
        "rng": {"global": global_rng_state()},
        "last": last,
    }
    if t.disc is not None:
        state["discriminator"] = t.disc.state_dict()
        state["disc_optimizer"] = t.opts[1].state_dict()
    atomic_torch_save(state, run.checkpoint)


def _summary_fields(objective: Any, last: dict[str, Any]) -> dict[str, Any]:
    if not last:
        return {}
    rates = last["rates"]
    rate_name = objective.term_names[2]
    return {"final_losses": last["terms"], "rate_per_dim": rates, f"{rate_name}_total": float(sum(rates)),
            "rate_term": rate_name, "steps_per_s": last["sps"]}


def _summary_writer(path: Path, purge_step: int) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events a killed run logged after its last checkpoint.
    return SummaryWriter(log_dir=str(path), purge_step=purge_step)


@torch.no_grad()
def _log_reconstructions(writer: Any, model: torch.nn.Module, data: Any, positions: torch.Tensor,
                         step: int) -> None:
    """Inputs over reconstructions from the mean code (deterministic: consumes no randomness)."""
    x = data.images(positions)
    mean, _ = model.encode(x)
    recon = torch.sigmoid(model.decode(mean))
    writer.add_images("reconstruction", torch.cat([x, recon.float()]).cpu(), step)


