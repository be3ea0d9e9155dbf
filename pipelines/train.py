"""``dis-eval train``: one training loop for every model; families differ only in their Objective.

    dis-eval train pipelines/configs/echo.yaml beta=2 seed=3 --run-dir runs/echo-b2-s3
    dis-eval train --resume runs/echo-b2-s3

Speed: the data set stays bit-packed on the training device and batches are drawn there with a
device-side generator; the step issues no host-device copies or syncs. The host reads the losses
(one sync) every ``log_every`` steps and at checkpoints. On CUDA the whole step (sampling, forward,
backward, both fused Adam updates) is captured once in a CUDA graph and replayed (``cuda_graph``:
default on for CUDA; ``false`` runs eager).

Exact resumption (CPU): model, optimiser(s), discriminator, every generator (data sampling, noise,
torch/numpy/Python global) and the step counter are checkpointed atomically every
``checkpoint_every`` steps; logs are flushed at the same steps, so a resumed run repeats the
uninterrupted run's arithmetic and metrics bit for bit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from dis_eval.atomic import atomic_write_text
from dis_eval.errors import UserError
from dis_eval.models import build_model, build_objective
from dis_eval.models.checkpoint import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    atomic_torch_save,
    global_rng_state,
    load_checkpoint,
    set_global_rng_state,
)
from pipelines.config import TrainConfig

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINT_VERSION = 1
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capturing the CUDA graph
RECON_IMAGES = 8


class TrainingDiverged(UserError):
    """A loss term became NaN or infinite."""


# ---- small helpers ---------------------------------------------------------------------------
def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={requested} but CUDA is not available here; use device=cpu or auto")
    return dev


def use_cuda_graph(cfg: TrainConfig, device: torch.device) -> bool:
    """``cuda_graph``: True/False as set; None (default) means on whenever training on CUDA."""
    has_api = hasattr(torch.cuda.CUDAGraph, "register_generator_state")
    if cfg.cuda_graph:
        if device.type != "cuda":
            raise UserError("cuda_graph needs a CUDA device; set device=cuda or cuda_graph=false")
        if not has_api:
            raise UserError("cuda_graph needs PyTorch >= 2.5 (CUDAGraph.register_generator_state)")
        return True
    # Auto: summary.json records whether it was used ("cuda_graph").
    return cfg.cuda_graph is None and device.type == "cuda" and has_api


def derive_seeds(seed: int, n: int) -> list[int]:
    """Independent 63-bit seeds for the separate generators (numpy's SeedSequence)."""
    return [int(s) & ((1 << 63) - 1) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)]


class RunningStats:
    """Loss sums, per-dimension rate sums and NaN flags kept on the device between host reads."""

    def __init__(self, n_terms: int, n_latents: int, device: torch.device) -> None:
        self.sum = torch.zeros(n_terms, dtype=torch.float64, device=device)
        self.rate_sum = torch.zeros(n_latents, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.step = torch.zeros((), dtype=torch.int64, device=device)  # completed steps
        self.first_bad = torch.full((n_terms,), -1, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, terms: torch.Tensor, rate_per_dim: torch.Tensor) -> None:
        self.step += 1
        newly_bad = (self.first_bad < 0) & ~torch.isfinite(terms)
        self.first_bad.copy_(torch.where(newly_bad, self.step, self.first_bad))
        self.sum += terms
        self.rate_sum += rate_per_dim
        self.count += 1

    def read_and_reset(self) -> tuple[list[float], list[float], list[int], int]:
        """(mean terms, mean rate per dim, first bad step per term, count): one host sync."""
        n_terms = self.sum.numel()
        packed = torch.cat([self.sum, self.rate_sum, self.first_bad.double(), self.count.double().view(1)]).tolist()
        count = int(packed[-1])
        means = [v / max(count, 1) for v in packed[:n_terms]]
        rates = [v / max(count, 1) for v in packed[n_terms:n_terms + self.rate_sum.numel()]]
        bad = [int(v) for v in packed[n_terms + self.rate_sum.numel():-1]]
        self.sum.zero_()
        self.rate_sum.zero_()
        self.count.zero_()
        return means, rates, bad, count


def make_train_step(objective: Any, opts: list[torch.optim.Optimizer], data: Any,
                    g_data: torch.Generator, g_noise: torch.Generator, stats: RunningStats,
                    batch: int, fmt: torch.memory_format) -> Callable[[], None]:
    """One training step, all on the data's device: sample rows, unpack, forward, backward, update.

    No host-device copies and no syncs, so it can run asynchronously or inside a CUDA graph.
    """
    n_rows, device = len(data), data.device

    def train_step() -> None:
        positions = torch.randint(n_rows, (batch,), generator=g_data, device=device)
        x = data.images(positions).contiguous(memory_format=fmt)
        out = objective(x, g_noise)
        for o in opts:
            o.zero_grad(set_to_none=True)
        objective.backward(out)
        for o in opts:
            o.step()
        stats.update(out.terms, out.rate_per_dim)

    return train_step


class StepGraph:
    """Runs ``step`` eagerly for a few warm-up calls (on a side stream, as PyTorch's CUDA-graph
    recipe requires: optimiser state, cuDNN choices), then captures it once in a CUDA graph and
    replays it. Every call, warm-up or replay, is one real training step."""

    def __init__(self, step: Callable[[], None], generators: tuple[torch.Generator, ...],
                 device: torch.device, warmup: int = GRAPH_WARMUP_STEPS) -> None:
        self.step, self.generators, self.device, self.warmup = step, generators, device, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side = torch.cuda.Stream(device)

    def __call__(self) -> None:
        if self.graph is None and self.warmup > 0:
            self.warmup -= 1
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                self.step()
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            return
        if self.graph is None:
            graph = torch.cuda.CUDAGraph()
            for g in self.generators:  # custom generators must be registered to advance per replay
                graph.register_generator_state(g)
            with torch.cuda.graph(graph):  # records the step without running it
                self.step()
            self.graph = graph
        self.graph.replay()


@dataclass
class Training:
    """Everything a run's step touches, built identically by ``train`` and the benchmarks."""

    model: torch.nn.Module
    disc: torch.nn.Module | None
    objective: Any
    opts: list[torch.optim.Optimizer]
    data: Any
    g_data: torch.Generator
    g_noise: torch.Generator
    stats: RunningStats
    fmt: torch.memory_format
    train_step: Callable[[], None]  # eager step
    run_step: Callable[[], None]  # what the loop calls: the eager step or its CUDA-graph replay


def build_training(cfg: TrainConfig, cfg_dict: dict[str, Any], device: torch.device, spec: Any,
                   ckpt: dict | None = None) -> Training:
    """Seed, build model/discriminator/optimisers/generators, load data, restore ``ckpt``."""
    from dis_eval.data import load_data

    # Global generators seed the model init (on the CPU: same weights on any device); one device
    # generator per random stream (batch rows; Echo orders / Gaussian noise / TC permutation).
    seed_data, seed_noise = derive_seeds(cfg.seed, 2)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    model, disc = build_model(cfg_dict)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    if disc is not None:
        disc.to(device)
    data = load_data(spec, device=device)
    g_data = torch.Generator(device=device).manual_seed(seed_data)
    g_noise = torch.Generator(device=device).manual_seed(seed_noise)

    graph = use_cuda_graph(cfg, device)
    adam = dict(fused=True, capturable=graph) if device.type == "cuda" else {}
    opts = [torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, **adam)]
    if disc is not None:
        opts.append(torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=cfg.disc_betas,
                                     eps=cfg.adam_eps, **adam))
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opts[0].load_state_dict(ckpt["optimizer"])
        if disc is not None:
            disc.load_state_dict(ckpt["discriminator"])
            opts[1].load_state_dict(ckpt["disc_optimizer"])
        g_data.set_state(ckpt["rng"]["data"])
        g_noise.set_state(ckpt["rng"]["noise"])
        set_global_rng_state(ckpt["rng"]["global"])
    if cfg.compile:  # in place: state_dict keys stay unprefixed
        for module in (model.encoder, model.decoder, disc):
            if module is not None:
                module.compile()
    objective = build_objective(cfg_dict, model, disc)
    stats = RunningStats(len(objective.term_names), cfg.latents, device)
    stats.step.fill_(ckpt["step"] if ckpt is not None else 0)
    step = make_train_step(objective, opts, data, g_data, g_noise, stats, cfg.batch_size, fmt)
    run = StepGraph(step, (g_data, g_noise), device) if graph else step
    return Training(model, disc, objective, opts, data, g_data, g_noise, stats, fmt, step, run)


# ---- the loop -------------------------------------------------------------------------------
def train(config: TrainConfig | None, run_dir: str | os.PathLike, resume: bool = False,
          progress: bool = True) -> Path:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``); returns run_dir."""
    from dis_eval.data import DataSpec

    run_dir = Path(run_dir)
    cfg, ckpt = _prepare_run_dir(config, run_dir, resume)
    spec = DataSpec(cfg.data, cfg.subset)
    spec.source_path()  # a missing data file fails here, before anything is built
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
        torch.backends.cudnn.benchmark = True
    cfg_dict = cfg.to_dict()
    cfg_dict["device_used"] = str(device)
    if not resume:
        atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(cfg_dict, sort_keys=False))

    t = build_training(cfg, cfg_dict, device, spec, ckpt)
    model, data, objective, stats, run_step = t.model, t.data, t.objective, t.stats, t.run_step
    start = ckpt["step"] if ckpt is not None else 0
    wall_prev = float(ckpt.get("wall_s", 0.0)) if ckpt is not None else 0.0
    last: dict[str, Any] = dict(ckpt.get("last", {})) if ckpt is not None else {}  # summary.json values
    n_rows = len(data)

    writer = _summary_writer(run_dir / "tb", purge_step=start + 1)
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
                   f"checkpoint (step {_ckpt_step(run_dir)}) is kept in {run_dir}. Lower lr or check the data")
            summary.update(status="failed", step=step, error=msg, wall_s=wall_prev + time.perf_counter() - t0)
            atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
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
                _save_checkpoint(run_dir, cfg_dict, step, t, wall, last)
                summary.update(step=step, wall_s=wall, **_summary_fields(objective, last))
                atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    finally:
        pbar.close()
        writer.close()

    final = {"config": cfg_dict, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "step": cfg.steps}
    atomic_torch_save(final, run_dir / MODEL_FILE)
    summary.update(status="done", step=cfg.steps, wall_s=wall_prev + time.perf_counter() - t0,
                   **_summary_fields(objective, last))
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))
    return run_dir


def _prepare_run_dir(config: TrainConfig | None, run_dir: Path, resume: bool
                     ) -> tuple[TrainConfig, dict | None]:
    """The config to train and the checkpoint to continue from (None: start at step 0)."""
    cfg_path = run_dir / CONFIG_FILE
    if resume:
        if not cfg_path.is_file():
            raise UserError(f"cannot resume {run_dir}: no {CONFIG_FILE} there (is it a run folder?)")
        saved = TrainConfig.load(cfg_path, allow_derived=True)
        if config is not None and config.to_dict() != saved.to_dict():
            raise UserError(f"the given config differs from {cfg_path}; resume without a config")
        for stale in run_dir.glob(".*.tmp"):  # a write cut off by the interruption
            stale.unlink()
        ckpt_path = run_dir / CHECKPOINT_FILE
        ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
        if ckpt is not None and ckpt.get("version") != CHECKPOINT_VERSION:
            raise UserError(f"{ckpt_path} has checkpoint version {ckpt.get('version')}, expected {CHECKPOINT_VERSION}")
        return saved, ckpt
    if config is None:
        raise UserError("train needs a config (or resume=True)")
    if cfg_path.exists():
        raise UserError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    return config, None


def _ckpt_step(run_dir: Path) -> int:
    path = run_dir / CHECKPOINT_FILE
    return int(load_checkpoint(path)["step"]) if path.exists() else 0


def _save_checkpoint(run_dir: Path, cfg_dict: dict, step: int, t: Training, wall_s: float,
                     last: dict[str, Any]) -> None:
    state = {
        "version": CHECKPOINT_VERSION,
        "step": step,
        "wall_s": wall_s,
        "config": cfg_dict,
        "model": t.model.state_dict(),
        "optimizer": t.opts[0].state_dict(),
        "rng": {"data": t.g_data.get_state(), "noise": t.g_noise.get_state(), "global": global_rng_state()},
        "last": last,
    }
    if t.disc is not None:
        state["discriminator"] = t.disc.state_dict()
        state["disc_optimizer"] = t.opts[1].state_dict()
    atomic_torch_save(state, run_dir / CHECKPOINT_FILE)


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


# ---- CLI --------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (echo, beta_vae, factor_vae, echo_tc, vae_tc) into a run folder",
        description="Train from a YAML config with key=value overrides, or continue a run with --resume.",
    )
    p.add_argument("config", nargs="?", help="config YAML (e.g. pipelines/configs/echo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. beta=4 seed=1")
    p.add_argument("--run-dir", help="run folder (default: runs/<model>-s<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        if args.config or args.overrides:
            raise UserError("--resume takes the run folder only; its config.yaml is used as saved")
        run_dir = train(None, args.resume, resume=True, progress=not args.no_progress)
    else:
        if not args.config:
            raise UserError("give a config file (e.g. pipelines/configs/echo.yaml) or --resume RUN_DIR")
        cfg = TrainConfig.load(args.config, args.overrides)
        run_dir = args.run_dir or f"runs/{cfg.model}-s{cfg.seed}-{datetime.now():%Y%m%d-%H%M%S}"
        run_dir = train(cfg, run_dir, progress=not args.no_progress)
    summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary.get("final_losses", {}).items()
                       if isinstance(v, float) and math.isfinite(v))
    print(f"trained {summary['model']} for {summary['step']} steps in {summary.get('wall_s', 0):.1f} s: {losses}")
    print(f"run folder: {run_dir}")
    return 0
