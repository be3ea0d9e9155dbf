"""Inputs against reconstructions. For stochastic encoders the paper (Brekelmans et al. 2019,
Sec. 5.2) shows the decoder output averaged over 10 encoding samples, which shows how the
noise in the latent space carries through the decoder; the mean-code reconstruction is shown too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from dis_eval.plots.common import save_figure

Decoder = Callable[[np.ndarray], np.ndarray]


def average_reconstruction(decode: Decoder, sample_codes: Callable[[int], np.ndarray], num_draws: int) -> np.ndarray:
    """Mean over ``num_draws`` of decode(sample_codes(draw)): pixel probabilities (K, H, W)."""
    if num_draws < 1:
        raise ValueError("num_draws must be at least 1")
    total = None
    for k in range(num_draws):
        out = np.asarray(decode(np.asarray(sample_codes(k), dtype=np.float32)), dtype=np.float64)
        total = out if total is None else total + out
    return total / num_draws


@dataclass(frozen=True)
class NoisyAverage:
    """The decoder output averaged over noisy codes (K, H, W), as ``average_reconstruction``
    returns it, with its number of draws and the noise's name for the row label."""

    images: np.ndarray
    num_draws: int
    noise_name: str = "noise"


def plot_reconstructions(inputs: np.ndarray, recon_mean: np.ndarray, stem: str | Path, title: str = "",
                         average: NoisyAverage | None = None, recon_sample: np.ndarray | None = None) -> list[Path]:
    """Rows, each labelled: inputs, decoder(mean code), when ``recon_sample`` is given the
    decoder output of one noisy sample (what the model was trained to decode: for Echo the mean
    code is never seen in training), and when ``average`` is given the decoder output averaged
    over its noisy codes."""
    rows = [("input", inputs), ("reconstruction\n(mean code)", recon_mean)]
    if recon_sample is not None:
        rows.append(("reconstruction\n(one noisy sample)", recon_sample))
    if average is not None:
        rows.append((f"average over\n{average.num_draws} {average.noise_name} draws", average.images))
    k = inputs.shape[0]
    fig, axes = plt.subplots(len(rows), k, figsize=(1.05 * k + 1.2, 1.15 * len(rows) + 0.8), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or "inputs and reconstructions (pixel probabilities)", fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.08)
    return save_figure(fig, stem)
