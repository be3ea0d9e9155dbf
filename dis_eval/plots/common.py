"""Shared figure plumbing: headless backend, atomic figure/GIF files, active latents, colours.

Figures and GIFs are written through ``dis_eval.atomic`` (a temporary file beside the target,
renamed into place). Active latents follow Chen et al. (2018); per-latent rates come from the
models (``dis_eval.models.rate_per_latent``); the shape colours are those of the paper's Fig. 4.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI and servers have no display)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dis_eval.atomic import atomic_path  # noqa: E402

# The paper's Fig. 4 caption (Brekelmans et al. 2019): orange, blue and green lines are
# ellipse, square and heart. Keyed by the names in dis_eval.data.factors.SHAPE_NAMES.
SHAPE_COLOURS: dict[str, str] = {"square": "#1f77b4", "ellipse": "#ff7f0e", "heart": "#2ca02c"}

# Chen et al. (2018), plot_latent_vs_true.py: a latent is inactive when the variance of its
# mean over the data set is below 1e-2. Used for Fig. 4 rows and traversal marks alike.
ACTIVE_VARIANCE = 1e-2

FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf")


def latent_variances(mean: np.ndarray) -> np.ndarray:
    """Variance (ddof=1) of each latent's mean over the encoded rows."""
    mean = np.asarray(mean, dtype=np.float64)
    return mean.var(axis=0, ddof=1) if mean.shape[0] > 1 else np.zeros(mean.shape[1])


def active_latents(mean: np.ndarray, threshold: float = ACTIVE_VARIANCE) -> np.ndarray:
    """Indices of latents whose mean varies over the data by more than ``threshold``."""
    return np.flatnonzero(latent_variances(mean) > threshold)


def save_figure(fig: plt.Figure, stem: str | os.PathLike, formats: Sequence[str] = FIGURE_FORMATS,
                dpi: int = 130) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format (tight bounding box), atomically, then close it."""
    stem = Path(stem)
    paths = []
    try:
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_path(path, suffix=f".{fmt}") as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, duration_ms: int = 150) -> Path:
    """Write uint8 RGB/grey frames as a looping animated GIF (atomically)."""
    from PIL import Image

    path = Path(path)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=duration_ms)
    return path
