"""Shared figure plumbing: a headless backend, atomic PNG/PDF writing, active latents,
per-latent rates and the shape colours of the paper's Fig. 4."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI and servers have no display)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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


def latent_rates(mean: np.ndarray, aux: np.ndarray | None, family: str) -> np.ndarray | None:
    """Average per-latent rate in nats over the encoded rows, or None without ``aux``.

    Echo (Brekelmans et al. 2019, Eq. for I(x;z)): rate_j = -E_x[log s_j(x)], with ``aux`` =
    log s_j (clip factor included). Gaussian VAE: KL(q(z_j|x) || N(0,1)) averaged over x,
    0.5 * E[mu^2 + exp(logvar) - logvar - 1], with ``aux`` = log-variance.
    """
    if aux is None:
        return None
    aux = np.asarray(aux, dtype=np.float64)
    if family == "echo":
        return -aux.mean(axis=0)
    mean = np.asarray(mean, dtype=np.float64)
    return 0.5 * (mean**2 + np.exp(aux) - aux - 1.0).mean(axis=0)


def save_figure(fig: plt.Figure, stem: str | Path, formats: Sequence[str] = FIGURE_FORMATS,
                dpi: int = 130) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format, atomically, then close it."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{fmt}")
            os.close(fd)
            try:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            paths.append(path)
    finally:
        plt.close(fig)
    return paths


def save_gif(frames: Sequence[np.ndarray], path: str | Path, duration_ms: int = 150) -> Path:
    """Write uint8 RGB/grey frames as a looping animated GIF (atomically)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".gif")
    os.close(fd)
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=duration_ms)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
