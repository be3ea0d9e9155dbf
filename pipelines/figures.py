"""A trained run's figures (PNG + PDF, GIFs), in RUN/figures by default: what ``dis-eval plot``
and the main job draw.

Figures: latent traversals (grid + GIF per seed image), mean latent vs factor (the paper's
Fig. 4), the latent x factor MI heatmap (MIG's estimator) for mean codes and, for Echo and VAE
models, for the noisy sample (inactive latents marked by the rate rule of
``dis_eval.metrics.activity``), reconstructions (mean code and, for Echo and VAE models, one noisy
sample and the average over 10 noise draws as in the paper's Sec. 5.2), each row labelled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dis_eval.config.train import TrainConfig
from dis_eval.data.factors import SHAPE_NAMES
from dis_eval.run_dir import RunDir


@dataclass
class PlotSettings:
    """What ``make_run_figures`` draws and from how many rows."""

    rows: int | None = None  # encode only this many random rows (None: every row of the data)
    seed_images: int = 3  # traversal seed images (one per shape, cycling)
    traversal_values: int = 9
    mi_points: int = 10_000  # MIG's num_train
    mi_bins: int = 20  # MIG's histogram bins
    recon_images: int = 8
    noise_draws: int = 10  # the paper's Sec. 5.2 averages 10 encoding samples
    representation: str | None = None  # codes for the MI heatmap: mean, sample, or None for both (where possible)
    seed: int = 0
    encode_batch: int = 1024


def _decoder(model: torch.nn.Module, device: torch.device, batch: int = 512):  # noqa: ANN202
    """codes (M, D) numpy -> pixel probabilities (M, 64, 64) numpy."""

    def decode(z: np.ndarray) -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for lo in range(0, len(z), batch):
                zt = torch.as_tensor(np.asarray(z[lo: lo + batch], dtype=np.float32), device=device)
                outs.append(torch.sigmoid(model.decode(zt)).float().cpu().numpy()[:, 0])
        return np.concatenate(outs, axis=0)

    return decode


def _title(run_dir: Path, config: TrainConfig, step: Any) -> str:
    parts = [f"{run_dir.name}: {config.model}", f"beta={config.beta}"]
    if config.tc_weight:
        parts.append(f"TC weight={config.tc_weight}")
    parts.append(f"seed={config.seed}")
    if step is not None:
        parts.append(f"step {step}")
    return ", ".join(parts)


def make_run_figures(run_dir: str | Path | RunDir, out_dir: str | Path | None = None, device: str = "auto",
                     settings: PlotSettings | None = None, data: Any = None, codes: Any = None,
                     log: Any = print) -> list[Path]:
    """Draw every figure of a trained run; returns the files written.

    ``data`` (a GroundTruthData) and ``codes`` (its EncodedData for this run) may be passed to
    reuse work already done (the main job passes the data it trained and scored on).
    """
    from dis_eval.data import DataSpec, load_data
    from dis_eval.device import resolve_device
    from dis_eval.encode import encode_data, representation
    from dis_eval.metrics.activity import activity_from_rates
    from dis_eval.metrics.utils import represent
    from dis_eval.models import rate_per_latent
    from dis_eval.plots import (
        LatentSummary,
        NoisyAverage,
        TraversalSeeds,
        average_reconstruction,
        plot_latent_vs_factor,
        plot_mi_heatmap,
        plot_reconstructions,
        plot_traversals,
    )

    s = settings or PlotSettings()
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run.require_folder()
    out = Path(out_dir) if out_dir is not None else run.figures
    dev = resolve_device(device)
    train_cfg = run.read_config()
    model, _ = run.load_model(dev)
    step = (run.read_summary() or {}).get("step")
    title = _title(run.path, train_cfg, step)
    if data is None:
        data = load_data(DataSpec(train_cfg.data, train_cfg.subset), device=dev)
    rng = np.random.RandomState(s.seed)
    n = len(data)
    if codes is None:
        t0 = time.perf_counter()
        positions = None
        if s.rows is not None and s.rows < n:
            positions = np.sort(rng.choice(n, size=s.rows, replace=False))
        codes = encode_data(model, data, batch_size=s.encode_batch, device=dev, positions=positions)
        log(f"  encoded {codes.info.get('rows_encoded', n):,} rows in {time.perf_counter() - t0:.1f}s")
    # Rows whose codes exist (all, or the random sample asked for).
    rows = np.flatnonzero(np.isfinite(codes.mean[:, 0]))
    mean = codes.mean[rows].astype(np.float64)
    aux = codes.aux[rows] if codes.aux is not None else None
    classes = data.classes[rows]
    family = codes.family or getattr(model, "family", "vae")
    decode = _decoder(model, dev)
    rates = rate_per_latent(mean, aux, family) if aux is not None else None
    latents = LatentSummary.from_codes(mean, rates, num_values=s.traversal_values)
    noisy = codes.aux is not None and family in ("echo", "vae")
    if rates is not None and noisy:  # the rate rule the score warnings use (dis_eval.metrics.activity)
        activity = activity_from_rates(rates, family, getattr(model, "clip", None), "codes")
        inactive = activity.inactive
        rule = f"rate < floor + {activity.threshold:g} nats"
    else:
        inactive = np.flatnonzero(latents.inactive).tolist()
        rule = f"variance of the mean <= {latents.threshold:g}"
    sampler = representation(codes, "sample", seed=s.seed + 1) if noisy else None
    batch = train_cfg.batch_size

    def noisy_codes(picked: np.ndarray) -> np.ndarray:
        """One noisy sample of the codes of ``picked`` rows (Echo: the batch's other members are
        random encoded rows, as in training)."""
        others = rows[rng.randint(len(rows), size=max(batch - len(picked), 0))]
        return sampler(np.concatenate([picked, others]))[: len(picked)]
    note = f"{len(rows):,} of {n:,} rows of {data.info.get('subset', 'the data')}"
    paths: list[Path] = []

    # Traversals: one seed image per shape (cycling), at random among the encoded rows.
    seed_rows = []
    for k in range(s.seed_images):
        shape = k % len(SHAPE_NAMES)
        cand = np.flatnonzero(classes[:, 0] == shape)
        cand = cand if len(cand) else np.arange(len(rows))
        seed_rows.append(int(cand[rng.randint(len(cand))]))
    seed_imgs = data.images(rows[seed_rows]).float().cpu().numpy()[:, 0]
    names = [f"{k}_{SHAPE_NAMES[classes[r, 0]]}" for k, r in enumerate(seed_rows)]
    seed_samples = noisy_codes(rows[seed_rows]) if sampler is not None else None
    paths += plot_traversals(decode, latents, TraversalSeeds(mean[seed_rows], seed_imgs, names, seed_samples), out,
                             title=title)

    # The paper's Fig. 4.
    paths += plot_latent_vs_factor(classes, mean, out / "latent_vs_factor", title=f"{title}\n{note}")

    # MI heatmap with MIG's estimator, on MIG's number of random rows.
    # One per representation (mean: mi_heatmap; sample: mi_heatmap_sample), labelled.
    mi_rows = rows[rng.randint(len(rows), size=s.mi_points)]
    kinds = [s.representation] if s.representation else ["mean"] + (["sample"] if noisy else [])
    for kind in kinds:
        rep = representation(codes, kind, seed=s.seed)
        mi_codes = represent(rep, mi_rows, 16) if kind == "sample" else rep(mi_rows)
        label = "mean codes (disentanglement_lib)" if kind == "mean" else "noisy sample (the authors' protocol)"
        mi_paths, _ = plot_mi_heatmap(mi_codes, data.classes[mi_rows],
                                      out / ("mi_heatmap" if kind == "mean" else f"mi_heatmap_{kind}"),
                                      title=f"{title}\n{label}", num_bins=s.mi_bins,
                                      inactive=inactive, inactive_rule=rule)
        paths += mi_paths

    # Reconstructions: mean code, and the average over noise draws where the batch supplies the
    # noise (Echo: each image's noise comes from the other members of its batch of batch_size).
    k = min(s.recon_images, len(rows))
    pick = rows[rng.choice(len(rows), size=k, replace=False)]
    inputs = data.images(pick).float().cpu().numpy()[:, 0]
    recon_mean = decode(codes.mean[pick])
    average = recon_sample = None
    if sampler is not None:
        recon_sample = decode(noisy_codes(pick))
        average = NoisyAverage(average_reconstruction(decode, lambda _i: noisy_codes(pick), s.noise_draws),
                               s.noise_draws, "Echo noise" if family == "echo" else "Gaussian noise")
    paths += plot_reconstructions(inputs, recon_mean, out / "reconstructions",
                                  title=f"{title}: inputs and reconstructions (pixel probabilities)",
                                  average=average, recon_sample=recon_sample)
    return paths
