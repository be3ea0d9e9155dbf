"""Mean latent versus ground-truth factor: the paper's Fig. 4 (Brekelmans et al. 2019,
Sec. 5.3), drawn after Chen et al. (2018)'s ``plot_latent_vs_true.py`` (beta-TCVAE).

One row per active latent (variance of its mean over the data above 0.01); columns:
the posX x posY heatmap of the latent's mean averaged over the other factors (a diverging
colour map with one scale shared by all rows), the mean against scale with one line per
shape, and the mean against orientation with one line per shape (shared y-limits).

Aggregation is from (factor classes, codes) pairs, so a dependent subset or a fixture with
only some rows present gives averages over the rows present (absent cells are blank)
instead of a wrong reshape; on the full grid it equals Chen et al.'s reshape-and-mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from dis_eval.data.factors import FACTOR_NAMES, FACTOR_SIZES, SHAPE_NAMES, latent_possible_values
from dis_eval.plots.common import ACTIVE_VARIANCE, SHAPE_COLOURS, latent_variances, save_figure

_SHAPE, _SCALE, _ORIENT, _POSX, _POSY = (FACTOR_NAMES.index(n) for n in
                                         ("shape", "scale", "orientation", "posX", "posY"))


@dataclass
class FactorMeans:
    """Latent means averaged over the rows present, NaN where no row has that cell.

    pos: (D, posX, posY); scale: (D, shape, scale); orientation: (D, shape, orientation);
    variance: (D,) variance of each latent's mean over all rows.
    """

    pos: np.ndarray
    scale: np.ndarray
    orientation: np.ndarray
    variance: np.ndarray


def _grouped_mean(index: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
    """(D, size) mean of ``values`` (N, D) per group label in ``index``; NaN for empty groups."""
    counts = np.bincount(index, minlength=size).astype(np.float64)
    out = np.empty((values.shape[1], size))
    for j in range(values.shape[1]):
        out[j] = np.bincount(index, weights=values[:, j], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / counts
    out[:, counts == 0] = np.nan
    return out


def factor_means(classes: np.ndarray, mean: np.ndarray) -> FactorMeans:
    """Aggregate encoder means (N, D) by factor classes (N, 5) for Fig. 4."""
    classes = np.asarray(classes, dtype=np.int64)
    mean = np.asarray(mean, dtype=np.float64)
    if classes.ndim != 2 or classes.shape[1] != len(FACTOR_SIZES) or classes.shape[0] != mean.shape[0]:
        raise ValueError(f"need classes (N, {len(FACTOR_SIZES)}) and means (N, D) with equal N; "
                         f"got {classes.shape} and {mean.shape}")
    sz = FACTOR_SIZES
    d = mean.shape[1]
    pos = _grouped_mean(classes[:, _POSX] * sz[_POSY] + classes[:, _POSY], sz[_POSX] * sz[_POSY], mean)
    scale = _grouped_mean(classes[:, _SHAPE] * sz[_SCALE] + classes[:, _SCALE], sz[_SHAPE] * sz[_SCALE], mean)
    orient = _grouped_mean(classes[:, _SHAPE] * sz[_ORIENT] + classes[:, _ORIENT], sz[_SHAPE] * sz[_ORIENT], mean)
    return FactorMeans(
        pos=pos.reshape(d, sz[_POSX], sz[_POSY]),
        scale=scale.reshape(d, sz[_SHAPE], sz[_SCALE]),
        orientation=orient.reshape(d, sz[_SHAPE], sz[_ORIENT]),
        variance=latent_variances(mean),
    )


def _limits(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    vals = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.array([])
    if vals.size == 0:
        return -1.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def plot_latent_vs_factor(classes: np.ndarray, mean: np.ndarray, stem: str | Path, *, title: str = "",
                          latents: Sequence[int] | None = None,
                          threshold: float = ACTIVE_VARIANCE) -> list[Path]:
    """Draw Fig. 4 for codes ``mean`` (N, D) of rows with factor ``classes`` (N, 5).

    ``latents`` defaults to the active ones (variance > ``threshold``), largest variance
    first. With none active the figure says so in its title and shows the three
    largest-variance latents (so an under-trained model's figure is still informative).
    """
    fm = factor_means(classes, mean)
    fallback = ""
    if latents is None:
        active = np.flatnonzero(fm.variance > threshold)
        if len(active) == 0:
            # Say so, and still show where the (tiny) variation is: the 3 largest-variance latents.
            active = np.arange(mean.shape[1])
            fallback = f"NO ACTIVE LATENT (all variances <= {threshold:g}): showing the 3 largest-variance latents"
        latents = active[np.argsort(-fm.variance[active], kind="stable")].tolist()
        if fallback:
            latents = latents[:3]
        rows_desc = (f"rows: latents with variance of the mean > {threshold:g} "
                     f"({0 if fallback else len(latents)} of {mean.shape[1]}), largest first")
    else:
        rows_desc = "rows: latents " + ", ".join(f"z{j}" for j in latents)
    latents = list(latents)
    if not latents:
        raise ValueError("no latents to plot")
    n_rows = len(latents)
    values = latent_possible_values()
    height = 1.75 * n_rows + 1.3
    fig = plt.figure(figsize=(10.5, height))
    gs = fig.add_gridspec(n_rows, 5, width_ratios=[1.0, 0.06, 0.3, 1.45, 1.45], wspace=0.3, hspace=0.25,
                          top=0.88 - 0.25 / n_rows, bottom=0.85 / height)
    subtitle = f"{rows_desc}; means over {len(classes):,} rows"
    # Anchored at the top edge, growing upwards: bbox_inches="tight" keeps it clear of the axes.
    fig.suptitle("\n".join(x for x in (title, subtitle, fallback) if x), fontsize=10, y=0.92, va="bottom",
                 color="black" if not fallback else "darkred")

    lo_pos, hi_pos = _limits([fm.pos[j] for j in latents])
    lines = [fm.scale[j] for j in latents] + [fm.orientation[j] for j in latents]
    lo_line, hi_line = _limits(lines)
    pad = 0.05 * (hi_line - lo_line)
    xs_scale, xs_orient = values["scale"], values["orientation"]
    # Cells with no rows (dependent subsets, fixtures): dark grey, never mistaken for "zero".
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="#404040")
    im = None
    for r, j in enumerate(latents):
        ax = fig.add_subplot(gs[r, 0])
        # Rows of the image are posY (0 at the top, as in the images), columns posX.
        im = ax.imshow(fm.pos[j].T, cmap=cmap, vmin=lo_pos, vmax=hi_pos, origin="upper",
                       extent=(0, 1, 1, 0), interpolation="nearest")
        ax.set_ylabel(f"$z_{{{j}}}$\nvar {fm.variance[j]:.3g}", rotation=0, ha="right", va="center")
        ax.set_xticks([0, 1] if r == len(latents) - 1 else [])
        ax.set_yticks([0, 1])
        ax.tick_params(labelsize=7)
        if r == 0:
            missing = "\ndark grey: no rows" if np.isnan(fm.pos[j]).any() else ""
            ax.set_title(f"position (posX →, posY ↓){missing}", fontsize=9)
        if r == len(latents) - 1:
            ax.set_xlabel("posX")
        for c, (name, xs, data) in enumerate(((FACTOR_NAMES[_SCALE], xs_scale, fm.scale[j]),
                                              (FACTOR_NAMES[_ORIENT], xs_orient, fm.orientation[j]))):
            ax = fig.add_subplot(gs[r, 3 + c])
            # Thick to thin so that coinciding lines stay visible as bands.
            for s, shape in enumerate(SHAPE_NAMES):
                ax.plot(xs, data[s], color=SHAPE_COLOURS[shape], lw=2.8 - 0.7 * s,
                        marker="." if c == 0 else None)
            ax.set_ylim(lo_line - pad, hi_line + pad)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(f"mean vs {name}", fontsize=9)
            if r == len(latents) - 1:
                ax.set_xlabel(name + (" (radians)" if name == "orientation" else ""))
            else:
                ax.set_xticklabels([])
    cax = fig.add_subplot(gs[:, 1])
    cb = fig.colorbar(im, cax=cax)
    cb.set_label("latent mean (shared scale)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color=SHAPE_COLOURS[s], lw=2, label=s) for s in SHAPE_NAMES]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9,
               bbox_to_anchor=(0.66, 0.0))
    return save_figure(fig, stem)
