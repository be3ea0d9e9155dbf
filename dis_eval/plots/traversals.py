"""Latent traversals: for a few seed images, vary one latent at a time across its observed
range (quantiles of the encoded data set) with the others fixed at the seed's code, and
decode. A grid per seed image (rows latents, columns values) as PNG/PDF, and one animated
GIF per seed image sweeping all latents at once (one tile per latent).

Latents are ordered by rate (Echo: -E[log s_j]; VAE: KL to the prior) when available, else by
the variance of their mean; inactive ones (variance of the mean <= 0.01) are marked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dis_eval.plots.common import ACTIVE_VARIANCE, latent_variances, save_figure, save_gif

Decoder = Callable[[np.ndarray], np.ndarray]  # codes (M, D) -> pixel probabilities (M, 64, 64)


def traversal_values(mean: np.ndarray, num_values: int = 9, lo: float = 0.02, hi: float = 0.98) -> np.ndarray:
    """(D, num_values): per latent, the quantiles at levels linspace(lo, hi) of its encoded means."""
    levels = np.linspace(lo, hi, num_values)
    return np.quantile(np.asarray(mean, dtype=np.float64), levels, axis=0).T


def latent_order(mean: np.ndarray, rates: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Latents sorted by decreasing rate, ties (within 1e-3 nats, e.g. Echo latents all at the
    rate floor -log r) broken by decreasing variance of the mean; by variance alone without rates."""
    var = latent_variances(mean)
    if rates is not None:
        return np.lexsort((-var, -np.round(np.asarray(rates, dtype=np.float64), 3))), "rate (ties: variance)"
    return np.argsort(-var, kind="stable"), "variance"


@dataclass(frozen=True)
class LatentSummary:
    """What every seed image's traversal shares, computed once from the encoded means of the data
    set: per latent its traversal values (D, num_values), the variance of its mean (D,) and its
    rate (D,) or None; the drawing order (latents top to bottom) and what it is by; and the
    variance at or below which a latent is marked inactive."""

    values: np.ndarray
    variances: np.ndarray
    rates: np.ndarray | None
    order: np.ndarray
    order_by: str
    threshold: float = ACTIVE_VARIANCE

    @classmethod
    def from_codes(cls, mean: np.ndarray, rates: np.ndarray | None = None, num_values: int = 9,
                   threshold: float = ACTIVE_VARIANCE) -> LatentSummary:
        """``mean`` (N, D): the data set's encoded means; ``rates`` (D,): per-latent rates, if any."""
        mean = np.asarray(mean, dtype=np.float64)
        if mean.ndim != 2 or mean.shape[0] == 0:
            raise ValueError(f"need encoded means (N, D) with N >= 1; got shape {mean.shape}")
        if rates is not None:
            rates = np.asarray(rates, dtype=np.float64)
            if rates.shape != (mean.shape[1],):
                raise ValueError(f"need one rate per latent ({mean.shape[1]},); got shape {rates.shape}")
        order, order_by = latent_order(mean, rates)
        return cls(traversal_values(mean, num_values), latent_variances(mean), rates, order, order_by, threshold)

    @property
    def inactive(self) -> np.ndarray:
        """(D,) True where the variance of the latent's mean is at or below ``threshold``."""
        return self.variances <= self.threshold


@dataclass(frozen=True)
class TraversalSeeds:
    """The seed images traversals start from: their mean codes (K, D), the images (K, 64, 64),
    a name each for the files (default ``seed<k>``) and, for a noisy model, one noisy sample of
    each code (K, D), decoded beside the mean code's reconstruction."""

    codes: np.ndarray
    images: np.ndarray
    names: Sequence[str] | None = None
    sample_codes: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = len(self.codes)
        names = tuple(f"seed{i}" for i in range(k)) if self.names is None else tuple(self.names)
        if len(self.images) != k or len(names) != k:
            raise ValueError(f"need as many seed images and names as seed codes ({k}); "
                             f"got {len(self.images)} images and {len(names)} names")
        object.__setattr__(self, "names", names)


@dataclass(frozen=True)
class TraversalGrid:
    """One seed image's traversal: the decoded grid (rows: latents in the summary's order,
    columns: its values; (R, V, H, W)), the seed image and its mean-code reconstruction (H, W)."""

    images: np.ndarray
    seed_image: np.ndarray
    recon: np.ndarray
    recon_sample: np.ndarray | None = None  # decoded from one noisy sample of the seed image's code


def traverse(decode: Decoder, seed_code: np.ndarray, values: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Decoded grid (len(order), num_values, H, W): row r sets latent order[r] to each value."""
    d, v = values.shape
    order = list(order)
    z = np.repeat(np.asarray(seed_code, dtype=np.float32)[None, :], len(order) * v, axis=0)
    for r, j in enumerate(order):
        z[r * v : (r + 1) * v, j] = values[j]
    imgs = np.asarray(decode(z))
    return imgs.reshape(len(order), v, *imgs.shape[-2:])


def _row_label(j: int, variance: float, rate: float | None, threshold: float) -> str:
    parts = [f"z{j}"]
    if rate is not None:
        parts.append(f"rate {rate:.2f} nats")
    parts.append(f"var {variance:.2f}")
    label = "\n".join(parts)
    return label + "\nINACTIVE" if variance <= threshold else label


def mosaic(grid: np.ndarray, gap: int = 2, fill: float = 0.55) -> np.ndarray:
    """(R, C, H, W) tiles -> one (R*(H+gap)+gap, C*(W+gap)+gap) image with grey gaps."""
    r, c, h, w = grid.shape
    out = np.full((r * (h + gap) + gap, c * (w + gap) + gap), fill, dtype=np.float32)
    for i in range(r):
        for j in range(c):
            y, x = gap + i * (h + gap), gap + j * (w + gap)
            out[y : y + h, x : x + w] = grid[i, j]
    return out


def plot_traversal_grid(grid: TraversalGrid, latents: LatentSummary, stem: str | Path,
                        title: str) -> list[Path]:
    """Draw one seed image's traversal grid as a single mosaic (one image, so PDF/PNG writing
    stays fast); inactive rows are shown at reduced contrast with a red label."""
    n_rows, n_cols, h, w = grid.images.shape
    gap = 2
    order, values, variances, rates = latents.order, latents.values, latents.variances, latents.rates
    threshold, inactive = latents.threshold, latents.inactive
    shown = grid.images.astype(np.float32).copy()
    for r, j in enumerate(order):
        if inactive[j]:
            shown[r] = 0.3 + 0.4 * shown[r]  # washed out: still visible, clearly set apart
    fig = plt.figure(figsize=(0.8 * n_cols + 3.2, 0.8 * n_rows + 1.3))
    gs = fig.add_gridspec(1, 2, width_ratios=[1.0, n_cols * 1.0], wspace=0.32)
    ax = fig.add_subplot(gs[0, 1])
    ax.imshow(mosaic(shown, gap), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    centres = [gap + r * (h + gap) + h / 2 for r in range(n_rows)]
    ax.set_yticks(centres)
    labels = [_row_label(j, variances[j], None if rates is None else rates[j], threshold) for j in order]
    ax.set_yticklabels(labels, fontsize=7)
    for tick, j in zip(ax.get_yticklabels(), order, strict=True):
        tick.set_color("red" if inactive[j] else "black")
    ax.tick_params(axis="y", length=0)
    for r, j in enumerate(order):
        for c in range(n_cols):
            ax.text(gap + c * (w + gap) + w / 2, gap + r * (h + gap) + h - 1, f"{values[j, c]:.2f}",
                    ha="center", va="bottom", fontsize=5.5, color="yellow")
    for spine in ax.spines.values():
        spine.set_visible(False)
    side = fig.add_subplot(gs[0, 0])
    panels = [("input", grid.seed_image), ("recon.\n(mean code)", grid.recon)]
    if grid.recon_sample is not None:
        panels.append(("recon.\n(one noisy\nsample)", grid.recon_sample))
    step = h + gap + 10
    pair = np.full((len(panels) * step + gap, w + 2 * gap), 1.0, dtype=np.float32)
    for i, (_, img) in enumerate(panels):
        pair[gap + i * step : gap + i * step + h, gap : gap + w] = img
    side.imshow(pair, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    side.set_xticks([])
    side.set_yticks([gap + i * step + h / 2 for i in range(len(panels))])
    side.set_yticklabels([label for label, _ in panels], fontsize=7)
    side.tick_params(axis="y", length=0)
    for spine in side.spines.values():
        spine.set_visible(False)
    fig.suptitle(f"{title}\nrows: latents by decreasing {latents.order_by} (red: inactive, variance of the mean "
                 f"<= {threshold:g})\ncolumns: the latent set to its 2%..98% quantiles over the encoded data "
                 f"(value in yellow), the others fixed at the seed image's code", fontsize=8, y=0.99)
    return save_figure(fig, stem)


def _tile_frame(tiles: np.ndarray, labels: Sequence[str], inactive: np.ndarray, scale: int = 2) -> np.ndarray:
    """Lay out (D, H, W) tiles side by side, a label above each and a 3-px bar under each:
    green active, red inactive."""
    from PIL import Image, ImageDraw

    d, h, w = tiles.shape
    gap, bar, top = 2, 3, 12
    frame = np.full((top + h * scale + bar + 2 * gap, d * (w * scale + gap) + gap, 3), 60, dtype=np.uint8)
    for k in range(d):
        x0 = gap + k * (w * scale + gap)
        tile = np.kron(np.clip(tiles[k], 0, 1), np.ones((scale, scale)))
        frame[top : top + h * scale, x0 : x0 + w * scale, :] = (tile * 255).astype(np.uint8)[..., None]
        colour = (200, 40, 40) if inactive[k] else (40, 180, 60)
        frame[top + h * scale + 1 : top + h * scale + 1 + bar, x0 : x0 + w * scale] = colour
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    for k, label in enumerate(labels):
        draw.text((gap + k * (w * scale + gap) + 2, 0), label, fill=(255, 255, 255))
    return np.asarray(img)


def traversal_gif(grid: TraversalGrid, latents: LatentSummary, path: str | Path) -> Path:
    """Animated GIF: frame t shows every latent (tiles in the summary's order) at its t-th value,
    sweeping low -> high -> low. Bars under the tiles: green active, red inactive."""
    n_values = grid.images.shape[1]
    sweep = list(range(n_values)) + list(range(n_values - 2, 0, -1))
    order, inactive = list(latents.order), latents.inactive
    labels = [f"z{j}" + (" (inactive)" if inactive[j] else "") for j in order]
    frames = [_tile_frame(grid.images[:, t], labels, inactive[order]) for t in sweep]
    return save_gif(frames, path)


def plot_traversals(decode: Decoder, latents: LatentSummary, seeds: TraversalSeeds, out_dir: str | Path,
                    title: str = "") -> list[Path]:
    """Traversal grids (PNG, PDF) and GIFs for each seed image, named ``traversal_<seed name>``.

    ``latents``: the summary of the data set's encoded means (ranges, activity, order), built
    once by ``LatentSummary.from_codes``; ``seeds``: the seed images and their mean codes.
    """
    out_dir = Path(out_dir)
    recons = np.asarray(decode(np.asarray(seeds.codes, dtype=np.float32)))
    samples = None if seeds.sample_codes is None else np.asarray(decode(np.asarray(seeds.sample_codes, dtype=np.float32)))
    paths: list[Path] = []
    for k, name in enumerate(seeds.names):
        grid = TraversalGrid(traverse(decode, seeds.codes[k], latents.values, latents.order),
                             seeds.images[k], recons[k], None if samples is None else samples[k])
        paths += plot_traversal_grid(grid, latents, out_dir / f"traversal_{name}",
                                     f"{title} — seed image {name}".strip(" —"))
        paths.append(traversal_gif(grid, latents, out_dir / f"traversal_{name}.gif"))
    return paths
