"""Latent x factor mutual-information heatmap with MIG's top-two gap per factor marked.

The estimator is MIG's own (Chen et al. 2018, as in disentanglement_lib): each latent
discretised into equal-width bins over its own range, plug-in MI against the factor
classes, gap = (largest - second largest MI) / H(factor). The estimators come from
``dis_eval.metrics.utils`` and the gap from ``dis_eval.metrics.mig.mig_gaps``, so the figure
and the MIG score cannot disagree (edge cases included: one latent, a factor of entropy 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.patches import Rectangle

from dis_eval.data.factors import FACTOR_NAMES
from dis_eval.metrics.mig import mig_gaps
from dis_eval.metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize
from dis_eval.plots.common import save_figure


@dataclass
class MIResult:
    """mi: (D, F) nats; entropy: (F,); gap: (F,) MIG's normalised top-two gap (NaN where the
    factor's entropy is 0); top2: (F, 2) latents (-1: no second latent)."""

    mi: np.ndarray
    entropy: np.ndarray
    gap: np.ndarray
    top2: np.ndarray

    @property
    def mig(self) -> float:
        return float(np.mean(self.gap))


def mi_matrix(codes: np.ndarray, classes: np.ndarray, num_bins: int = 20) -> MIResult:
    """MIG's MI matrix and per-factor gaps for codes (N, D) and factor classes (N, F)."""
    codes = np.asarray(codes, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64)
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), classes)
    entropy = discrete_entropy(classes)
    gap, top2 = mig_gaps(mi, entropy)
    return MIResult(mi=mi, entropy=entropy, gap=gap, top2=top2)


def plot_mi_heatmap(codes: np.ndarray, classes: np.ndarray, stem: str | Path, *, title: str = "",
                    num_bins: int = 20, factor_names: Sequence[str] = FACTOR_NAMES,
                    inactive: Sequence[int] = (), inactive_rule: str = "") -> tuple[list[Path], MIResult]:
    """Heatmap of MI (nats), rows latents, columns factors; per factor the largest MI has a
    solid red frame, the second a dashed one, and the column label gives H and the gap.
    Latents in ``inactive`` get a red "(inactive)" label and hatching; ``inactive_rule`` says
    what made them inactive, and a factor whose top latent is inactive gets "top latent
    INACTIVE" under its gap (the warning metrics.json records)."""
    res = mi_matrix(codes, classes, num_bins)
    d, f = res.mi.shape
    off = set(int(j) for j in inactive)
    fig, ax = plt.subplots(figsize=(1.5 * f + 2.5, 0.45 * d + 2.4))
    ylabels = [f"z{j}" + (" (inactive)" if j in off else "") for j in range(d)]
    gaps = ["undefined" if np.isnan(g) else f"{g:.3f}" for g in res.gap]
    xlabels = [f"{factor_names[k]}\nH={res.entropy[k]:.2f}\ngap={gaps[k]}"
               + ("\ntop latent INACTIVE" if int(res.top2[k, 0]) in off else "") for k in range(f)]
    sns.heatmap(res.mi, ax=ax, cmap="viridis", vmin=0.0, annot=True, fmt=".2f",
                annot_kws={"fontsize": 7}, xticklabels=xlabels, yticklabels=ylabels,
                cbar_kws={"label": "mutual information (nats)"})
    for tick in ax.get_yticklabels():
        if "(inactive)" in tick.get_text():
            tick.set_color("red")
    for j in sorted(off):
        if 0 <= j < d:
            ax.add_patch(Rectangle((0, j), f, 1, fill=False, hatch="///", edgecolor="red", lw=0, alpha=0.5))
    for k in range(f):
        best, second = res.top2[k]
        # Inset a little so that marks in neighbouring cells stay distinct.
        ax.add_patch(Rectangle((k + 0.04, best + 0.06), 0.92, 0.88, fill=False, edgecolor="red", lw=2.5))
        if second >= 0:
            ax.add_patch(Rectangle((k + 0.04, second + 0.06), 0.92, 0.88, fill=False, edgecolor="red", lw=1.5,
                                   ls="--"))
    ax.set_xlabel("factor (H: entropy in nats; gap: (top MI - 2nd MI) / H)")
    ax.set_ylabel("latent")
    ax.tick_params(axis="y", rotation=0)
    head = f"{title}\n" if title else ""
    mig = "undefined" if np.isnan(res.mig) else f"{res.mig:.3f}"
    rule = f"\nhatched, red label: inactive ({inactive_rule})" if off and inactive_rule else (
        "\nhatched, red label: inactive" if off else "")
    ax.set_title(f"{head}MI latent x factor, {len(codes):,} rows, {num_bins} equal-width bins; "
                 f"MIG = {mig}\nsolid red: top latent per factor, dashed: second{rule}", fontsize=9)
    return save_figure(fig, stem), res
