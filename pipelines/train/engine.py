"""The training step and what it runs on: seeds and generators, model and optimisers built
from the config, restoring a checkpoint, the device-side loss accumulators, and the CUDA-graph
capture of a whole step. Shared by the training loop and the benchmarks.

Speed: the data set stays bit-packed on the training device and batches are drawn there with
counter-based random numbers (``dis_eval.rng``: a pure function of seed, step and draw, computed
on the device from the device-side step counter); the step issues no host-device copies or syncs. On CUDA the whole step
(sampling, forward, backward, both fused Adam updates) is captured once in a CUDA graph and
replayed (``cuda_graph``: default on for CUDA; ``false`` runs eager).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dis_eval.config.train import TrainConfig
from dis_eval.errors import UserError
from dis_eval.models.build import build_model, build_objective
from dis_eval.models.checkpoint import set_global_rng_state
from dis_eval.rng import DRAW_BATCH, Draws

GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capturing the CUDA graph


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


class RunningStats:
    """Loss sums, per-dimension rate sums and NaN flags kept on the device between host reads."""

    def __init__(self, n_terms: int, n_latents: int, device: torch.device, members: int | None = None) -> None:
        lead = () if members is None else (members,)  # a pack keeps one row per member
        self.sum = torch.zeros(*lead, n_terms, dtype=torch.float64, device=device)
        self.rate_sum = torch.zeros(*lead, n_latents, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        # The step counter also keys the step's random numbers (dis_eval.rng.Draws).
        self.step = torch.zeros((), dtype=torch.int64, device=device)  # completed steps
        self.first_bad = torch.full((*lead, n_terms), -1, dtype=torch.int64, device=device)

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

    def read_members_and_reset(self) -> tuple[list[list[float]], list[list[float]], list[list[int]], int]:
        """A pack's (mean terms, mean rate per dim, first bad step per term) per member, and the
        count: one host sync."""
        m, n_terms = self.sum.shape
        n_lat = self.rate_sum.shape[1]
        packed = torch.cat([self.sum, self.rate_sum, self.first_bad.double()], dim=1)
        flat = torch.cat([packed.flatten(), self.count.double().view(1)]).tolist()
        count = int(flat[-1])
        rows = [flat[i * (2 * n_terms + n_lat):(i + 1) * (2 * n_terms + n_lat)] for i in range(m)]
        means = [[v / max(count, 1) for v in r[:n_terms]] for r in rows]
        rates = [[v / max(count, 1) for v in r[n_terms:n_terms + n_lat]] for r in rows]
        bad = [[int(v) for v in r[n_terms + n_lat:]] for r in rows]
        self.sum.zero_()
        self.rate_sum.zero_()
        self.count.zero_()
        return means, rates, bad, count


def make_train_step(objective: Any, opts: list[torch.optim.Optimizer], data: Any, draws: Draws,
                    stats: RunningStats, batch: int, fmt: torch.memory_format) -> Callable[[], None]:
    """One training step, all on the data's device: sample rows, unpack, forward, backward, update.

    ``draws`` reads ``stats.step`` (the index of the step being taken). No host-device copies and
    no syncs, so it can run asynchronously or inside a CUDA graph.
    """
    n_rows = len(data)

    def train_step() -> None:
        positions = draws.randint(DRAW_BATCH, n_rows, (batch,))
        x = data.images(positions).contiguous(memory_format=fmt)
        out = objective(x, draws)
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

    def __init__(self, step: Callable[[], None], device: torch.device,
                 generators: tuple[torch.Generator, ...] = (), warmup: int = GRAPH_WARMUP_STEPS) -> None:
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
    draws: Draws
    stats: RunningStats
    fmt: torch.memory_format
    train_step: Callable[[], None]  # eager step
    run_step: Callable[[], None]  # what the loop calls: the eager step or its CUDA-graph replay


def init_model(cfg: TrainConfig) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Seed the global generators from ``cfg.seed`` and build the model (and discriminator) on the
    CPU: the same initial weights on any device, alone or in a pack."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    return build_model(cfg.model_spec)


def make_optimizers(cfg: TrainConfig, model: torch.nn.Module, disc: torch.nn.Module | None,
                    device: torch.device, graph: bool) -> list[torch.optim.Optimizer]:
    """Adam for the model (and one for the discriminator): fused and capturable on CUDA. Adam is
    elementwise, so one Adam over a pack's stacked parameters is M separate Adams."""
    adam = dict(fused=True, capturable=graph) if device.type == "cuda" else {}
    opts = [torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, **adam)]
    if disc is not None:
        opts.append(torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=cfg.disc_betas,
                                     eps=cfg.adam_eps, **adam))
    return opts


def build_training(cfg: TrainConfig, data: Any, device: torch.device, ckpt: dict | None = None) -> Training:
    """Seed, build model/discriminator/optimisers on ``device`` for ``data`` (its images on
    ``device``), restore ``ckpt``."""
    # Global generators seed the model init; every draw of a step (batch rows; Echo orders /
    # Gaussian noise / TC permutation) is counter-based (dis_eval.rng).
    spec = cfg.model_spec
    model, disc = init_model(cfg)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    if disc is not None:
        disc.to(device)
    graph = use_cuda_graph(cfg, device)
    opts = make_optimizers(cfg, model, disc, device, graph)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opts[0].load_state_dict(ckpt["optimizer"])
        if disc is not None:
            disc.load_state_dict(ckpt["discriminator"])
            opts[1].load_state_dict(ckpt["disc_optimizer"])
        set_global_rng_state(ckpt["rng"]["global"])
    if cfg.compile:  # in place: state_dict keys stay unprefixed
        for module in (model.encoder, model.decoder, disc):
            if module is not None:
                module.compile()
    objective = build_objective(spec, model, disc)
    stats = RunningStats(len(objective.term_names), cfg.latents, device)
    stats.step.fill_(ckpt["step"] if ckpt is not None else 0)
    draws = Draws.for_seeds(cfg.seed, stats.step)
    step = make_train_step(objective, opts, data, draws, stats, cfg.batch_size, fmt)
    run = StepGraph(step, device) if graph else step
    return Training(model, disc, objective, opts, data, draws, stats, fmt, step, run)
